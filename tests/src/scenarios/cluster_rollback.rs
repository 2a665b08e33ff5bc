//! P9 at the gateway: a topic whose store lost acknowledged changes (a Redis failover to a
//! replica that missed them) may come back in the same epoch, numbering new events with
//! seqs its subscribers already had. The gateway recognises a reused seq by its content and
//! closes the topic's sockets with 1011, so clients resubscribe and get the current
//! context; it never takes the new events for repeats and drops them silently.
//!
//! The loss is made by hand: the owner is killed, and the topic's sequence, header and
//! stream in Redis are set back by two envelopes, as a replica promoted before it received
//! them would hold them. (Verified to fail when the gateway takes a reused seq for a
//! repeat: the subscriber then receives nothing.)

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use super::{MSG, expect_id, publish};
use crate::cluster::ClusterBuilder;
use crate::payloads::random_topic;
use crate::subscriber::Subscriber;

/// One stream entry as XRANGE answers it: its id and its fields.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p9_a_seq_reused_after_lost_writes_closes_the_topics_sockets_with_1011() -> Result<()> {
    let mut cluster = ClusterBuilder::new().nodes(2).gateways(1).start().await?;
    let topic = random_topic();
    let client = cluster.client(0, &topic)?;
    let endpoint = client.subscribe("Patient-open").await?;
    let mut app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    for label in ["a", "b", "c"] {
        let id = publish(&client, label).await?;
        expect_id(&mut app, &id, label).await?;
    }

    // The owner dies; Redis "loses" the last two envelopes (seq 2 and 3 of 3).
    let owner = cluster.owner(&topic).await?.context("no owner")?;
    let index = cluster.node_index(&owner).context("unknown owner")?;
    cluster.nodes_mut()[index].kill_9().await?;
    let keys = cluster.keys_of(&topic);
    let mut get = ::redis::cmd("HGET");
    get.arg(&keys.meta).arg("header");
    let header: String = cluster.deployment().query(&get).await?;
    let mut header: Value = serde_json::from_str(&header)?;
    let seq = header["seq"].as_u64().context("no seq in the header")?;
    ensure!(seq >= 3, "the topic is at seq {seq}");
    header["seq"] = Value::from(seq - 2);
    let mut set = ::redis::cmd("HSET");
    set.arg(&keys.meta)
        .arg("header")
        .arg(header.to_string())
        .arg("seq")
        .arg(seq - 2);
    let _: i64 = cluster.deployment().query(&set).await?;
    // The stream as the replica had it: without the last two entries (and with its last id
    // back where they start, which XDEL would not do).
    let mut range = ::redis::cmd("XRANGE");
    range
        .arg(&keys.stream)
        .arg("-")
        .arg(format!("{}-0", seq - 2));
    let kept: Vec<StreamEntry> = cluster.deployment().query(&range).await?;
    let mut drop_stream = ::redis::cmd("DEL");
    drop_stream.arg(&keys.stream);
    let _: i64 = cluster.deployment().query(&drop_stream).await?;
    for (id, fields) in kept {
        let mut add = ::redis::cmd("XADD");
        add.arg(&keys.stream).arg(id);
        for (name, value) in fields {
            add.arg(name).arg(value);
        }
        let _: String = cluster.deployment().query(&add).await?;
    }

    // The next event reuses seq - 1 with other content: the socket is closed, not starved.
    let _ = publish(&client, "d").await?;
    match app.expect_close(MSG).await? {
        Some(1011) => {}
        other => bail!("after a reused seq the socket ended with {other:?}, not 1011"),
    }
    drop(app);
    cluster.stop().await
}
