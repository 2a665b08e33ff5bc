//! An operator can see what the hub did on its own (catalogue LOG-): one info line for
//! every subscription the hub ends (ack timeout, lease expiry), every SyncError it raises,
//! every refused handshake and every 4xx with its reason; each names the topic's ref, the
//! endpoint's prefix and the client id, and never the token, the raw topic or PHI.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig};
use crate::client::endpoint_of;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::{Ack, ConnectError, Subscriber};

/// Returns the first log line containing every one of `parts`.
fn line_with<'a>(logs: &'a str, parts: &[&str]) -> Option<&'a str> {
    logs.lines()
        .find(|line| parts.iter().all(|part| line.contains(part)))
}

#[tokio::test]
async fn log_01_what_the_hub_does_on_its_own_is_one_info_line_each() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.ack_timeout(Duration::from_millis(500))).await?;
    let topic = random_topic();
    let token = rig.issuer.mint(&topic, crate::token::ALL_SCOPES, 3600)?;
    let client = rig.client(&topic)?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;

    // An unresponsive subscriber: a SyncError, then the hub ends its subscription.
    let reply = client
        .subscribe_with("Patient-open", &[("subscriber.name", "Sleepy app")])
        .await?;
    let sleepy = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    sleepy.set_ack(Ack::Silent);
    let secret_patient = "patient-mrn-4711-do-not-log";
    client
        .publish_ok(&patient_open(&topic, secret_patient))
        .await?;
    watcher
        .next_event(MSG)
        .await
        .context("the timeout SyncError")?;

    // A lease that runs out.
    let reply = client
        .subscribe_with("Patient-open", &[("hub.lease_seconds", "1")])
        .await?;
    let mut leased = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    leased.next_event(MSG).await.context("the replay")?;
    let denial = leased.next_message(Duration::from_secs(3)).await?;
    ensure!(denial["hub.mode"] == "denied", "{denial}");

    // A handshake on an id the hub never issued, and a bad request.
    let unknown = format!(
        "{}/ws/{}",
        rig.gateway.base_url().replace("http", "ws"),
        random_topic()
    );
    ensure!(
        matches!(
            Subscriber::try_connect(&unknown).await,
            Err(ConnectError::Refused(404))
        ),
        "unknown endpoint not refused"
    );
    client
        .subscribe_with("Not-an-event", &[])
        .await?
        .expect(400, "bad subscribe")?;

    let logs = crate::eventually::eventually("the log lines", MSG, || async {
        let logs = rig.gateway.process().stderr_text();
        Ok(logs.contains("lease_expired").then_some(logs))
    })
    .await?;
    let checks: [(&str, &[&str]); 5] = [
        (
            "ack timeout SyncError",
            &[
                "INFO",
                "hub raised a SyncError",
                "failure=\"ack_timeout\"",
                "client=hub-tests",
                "topic=t:",
                "endpoint=e:",
            ],
        ),
        (
            "unresponsive end",
            &[
                "INFO",
                "hub ended a subscription",
                "reason=\"unresponsive\"",
                "client=hub-tests",
            ],
        ),
        (
            "lease end",
            &[
                "INFO",
                "hub ended a subscription",
                "reason=\"lease_expired\"",
            ],
        ),
        (
            "refused handshake",
            &[
                "INFO",
                "request refused",
                "route=/ws/{endpoint}",
                "status=404",
            ],
        ),
        (
            "refused request",
            &[
                "INFO",
                "request refused",
                "status=400",
                "client=hub-tests",
                "Not-an-event",
            ],
        ),
    ];
    for (what, parts) in checks {
        ensure!(
            line_with(&logs, parts).is_some(),
            "no log line for {what} ({parts:?}):\n{logs}"
        );
    }
    for secret in [topic.as_str(), token.as_str(), secret_patient] {
        ensure!(!logs.contains(secret), "a secret reached the log:\n{logs}");
    }
    drop((sleepy, watcher));
    rig.gateway.stop().await
}
