//! Placement: which hub node should own a topic (DESIGN §6). Rendezvous (highest random
//! weight) hashing of the topic ref over the live node ids: every process that sees the
//! same live set picks the same node, and a node joining or leaving moves only the topics
//! it gains or loses. Placement is a hint; the lease in Redis decides, and a node that does
//! not hold it answers `NotOwner{holder}`.

use aws_lc_rs::digest;

use crate::ids::TopicRef;

/// Returns the weight of `node` for `topic`: the first 8 bytes of SHA-256(ref ‖ 0 ‖ node).
fn weight(topic: &TopicRef, node: &str) -> u64 {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(topic.as_str().as_bytes());
    context.update(&[0]);
    context.update(node.as_bytes());
    let digest = context.finish();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(bytes)
}

/// Returns the node that should own `topic` among `nodes` (ids), or `None` when there is
/// none. Ties (never seen in practice) go to the smaller id, so the answer is the same in
/// every process.
pub fn owner_of<'a, I>(topic: &TopicRef, nodes: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    nodes
        .into_iter()
        .map(|node| (weight(topic, node), std::cmp::Reverse(node), node))
        .max()
        .map(|(_, _, node)| node)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ids::TopicKey;

    fn topics(count: usize) -> Vec<TopicRef> {
        let key = TopicKey::new(b"placement test key");
        (0..count)
            .map(|n| key.topic_ref(&format!("topic-{n:016}")))
            .collect()
    }

    fn place<'a>(topics: &[TopicRef], nodes: &[&'a str]) -> Vec<&'a str> {
        topics
            .iter()
            .map(|topic| owner_of(topic, nodes.iter().copied()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_thousand_topics_over_three_nodes_give_each_a_fair_share() {
        let topics = topics(1000);
        let owners = place(&topics, &["hub-0", "hub-1", "hub-2"]);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for owner in &owners {
            *counts.entry(owner).or_default() += 1;
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
        for (node, count) in &counts {
            assert!((250..=420).contains(count), "{node} owns {count} of 1000");
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_topics_and_adding_one_moves_only_topics_to_it() {
        let topics = topics(1000);
        let three = place(&topics, &["hub-0", "hub-1", "hub-2"]);
        let two = place(&topics, &["hub-0", "hub-2"]);
        for (before, after) in three.iter().zip(&two) {
            if *before != "hub-1" {
                assert_eq!(before, after, "a topic of a surviving node moved");
            }
        }
        let four = place(&topics, &["hub-0", "hub-1", "hub-2", "hub-3"]);
        let moved = three.iter().zip(&four).filter(|(a, b)| a != b).count();
        for (before, after) in three.iter().zip(&four) {
            assert!(
                before == after || *after == "hub-3",
                "a topic moved between old nodes"
            );
        }
        assert!(
            (150..=350).contains(&moved),
            "adding a 4th node moved {moved} of 1000"
        );
    }

    #[test]
    fn every_process_places_alike_whatever_the_order_of_the_live_set() {
        let topics = topics(100);
        assert_eq!(
            place(&topics, &["hub-0", "hub-1", "hub-2"]),
            place(&topics, &["hub-2", "hub-0", "hub-1"])
        );
        assert_eq!(owner_of(&topics[0], []), None);
    }
}
