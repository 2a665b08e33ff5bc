//! What the members logged, for the scenarios' checks and failure messages.

use std::fmt::Write as _;

use anyhow::{Result, bail};

use super::ROLLBACK_WARNING;
use super::app::Seen;
use crate::cluster::Cluster;

/// The nodes whose log has a line about `topic` (its ref) containing `needle`.
pub(super) fn nodes_logging(cluster: &Cluster, needle: &str, topic: &str) -> Vec<String> {
    let topic_ref = cluster.topic_ref(topic);
    cluster
        .nodes()
        .iter()
        .filter(|node| {
            node.process().is_some_and(|process| {
                process
                    .stderr_text()
                    .lines()
                    .any(|line| line.contains(needle) && line.contains(&topic_ref))
            })
        })
        .map(|node| node.id().to_owned())
        .collect()
}

/// The lines of the members' logs that tell what happened to ownership, Redis and sockets.
pub(super) fn evidence(cluster: &Cluster) -> String {
    const NEEDLES: [&str; 10] = [
        ROLLBACK_WARNING,
        "new epoch",
        "lease",
        "commit failed",
        "primary",
        "gateways left",
        "stops",
        "1011",
        "gap",
        "resubscrib",
    ];
    let mut out = String::new();
    let members = cluster.member_processes();
    for (id, process) in members {
        for line in process.stderr_text().lines() {
            if NEEDLES.iter().any(|needle| line.contains(needle)) {
                let _ = writeln!(out, "{id}: {line}");
            }
        }
    }
    out
}

/// Fails with every problem and the evidence, or passes.
pub(super) fn verdict(
    cluster: &Cluster,
    problems: Vec<String>,
    seen: &[Seen],
    more: &str,
) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{}\n--- what the app saw ---\n{seen:?}\n{more}\n--- member log lines ---\n{}",
        problems.join("\n"),
        evidence(cluster)
    )
}
