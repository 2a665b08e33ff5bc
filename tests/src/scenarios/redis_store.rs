//! The Redis store against a real `redis-server` (AOF `always`): ownership and fencing
//! (ORD-, FLT- in the reliability catalogue), scripts surviving a script-cache flush, a
//! rolled-back sequence detected, and a topic rebuilt from what its commits wrote.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;

use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::{Owner, SubscribeCommand, TopicRecord, unix_now_ms};
use fhircast_proto::{EventName, TopicId, TopicKey};
use hub_node::cluster::redis::{RedisConn, RedisTarget};
use hub_node::store::{RedisStore, RedisStoreSettings, Store, StoreError};
use hub_node::topic::{TopicSettings, TopicState};

use crate::eventually::eventually;
use crate::redis::{RedisOptions, RedisServer};

fn store(conn: &RedisConn, node: &str, lease_ms: u64) -> RedisStore<RedisConn> {
    store_waiting_for(conn, node, lease_ms, 0)
}

fn store_waiting_for(
    conn: &RedisConn,
    node: &str,
    lease_ms: u64,
    wait_replicas: u32,
) -> RedisStore<RedisConn> {
    RedisStore::new(
        conn.clone(),
        RedisStoreSettings {
            node_id: node.to_owned(),
            lease_ms,
            stream_max_len: 64,
            accepted_capacity: 100,
            endpoint_ttl_ms: 60_000,
            sharded_pubsub: false,
            wait_replicas,
            wait_timeout_ms: 200,
        },
    )
}

async fn connect(server: &RedisServer) -> Result<RedisConn> {
    let target = RedisTarget::parse(&server.url()).map_err(anyhow::Error::msg)?;
    RedisConn::connect(&target).await.context("connecting")
}

fn topic() -> Result<TopicId> {
    let raw = format!("store-test-{}", uuid::Uuid::new_v4().simple());
    TopicId::parse(&raw, &TopicKey::new(b"store test key, 32 bytes or more!")).context("topic")
}

fn patient_open(topic: &TopicId, id: &str, patient: &str) -> Result<EventRequest> {
    let body = json!({
        "timestamp": "2026-01-01T00:00:00Z",
        "id": id,
        "event": {
            "hub.topic": topic.expose(),
            "hub.event": "Patient-open",
            "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": patient}}]
        }
    });
    EventRequest::from_json(
        &body,
        SystemTime::now(),
        &fhircast_proto::limits::Limits::DEFAULT,
    )
    .context("event")
}

#[tokio::test]
async fn ord_a_second_node_cannot_take_a_leased_topic_and_a_fenced_owner_cannot_write() -> Result<()>
{
    let server = RedisServer::start(RedisOptions::new()).await?;
    let conn = connect(&server).await?;
    let (a, b) = (store(&conn, "hub-a", 300), store(&conn, "hub-b", 300));
    let topic = topic()?;
    let topic_ref = topic.topic_ref();

    let fence_a = a.acquire(topic_ref).await.context("a acquires")?;
    match b.acquire(topic_ref).await {
        Err(StoreError::Owned { holder }) => ensure!(holder == "hub-a", "holder {holder}"),
        other => bail!("b took a leased topic: {other:?}"),
    }
    // A stops renewing (a pause past its lease): B takes over with a higher fence.
    let fence_b = eventually(
        "b acquires after a's lease lapsed",
        Duration::from_secs(5),
        || async { Ok(b.acquire(topic_ref).await.ok()) },
    )
    .await?;
    ensure!(
        fence_b.0 > fence_a.0,
        "the fence did not grow: {fence_a:?} → {fence_b:?}"
    );

    let settings = TopicSettings::default();
    let mut state = TopicState::new(topic.clone(), settings, 1);
    let (_, effects) = state
        .publish(patient_open(&topic, "e1", "p1")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let change = state.take_change(effects);
    let stale = a.commit(topic_ref, fence_a, change.clone()).await;
    ensure!(
        stale == Err(StoreError::Fenced),
        "the old owner's write was not fenced off: {stale:?}"
    );
    ensure!(
        !a.renew(topic_ref, fence_a).await.context("renew")?,
        "the old owner renewed a lease it lost"
    );
    b.commit(topic_ref, fence_b, change)
        .await
        .context("the new owner commits")?;
    server.stop().await
}

#[tokio::test]
async fn scripts_survive_a_flushed_script_cache_and_a_skipped_seq_is_detected() -> Result<()> {
    let server = RedisServer::start(RedisOptions::new()).await?;
    let conn = connect(&server).await?;
    let node = store(&conn, "hub-a", 5_000);
    let topic = topic()?;
    let fence = node.acquire(topic.topic_ref()).await?;
    let mut state = TopicState::new(topic.clone(), TopicSettings::default(), 9);
    let (_, effects) = state
        .publish(patient_open(&topic, "e1", "p1")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    node.commit(topic.topic_ref(), fence, state.take_change(effects))
        .await?;

    // A restarted or failed-over Redis has an empty script cache (NOSCRIPT): reloaded.
    let _: () = server.query(::redis::cmd("SCRIPT").arg("FLUSH")).await?;
    let (_, effects) = state
        .publish(patient_open(&topic, "e2", "p2")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    node.commit(topic.topic_ref(), fence, state.take_change(effects))
        .await
        .context("commit after SCRIPT FLUSH")?;

    // The owner believes in a seq the store does not hold (a write it saw acknowledged was
    // lost): the commit is refused and says what the store holds.
    let (_, effects) = state
        .publish(patient_open(&topic, "e3", "p3")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let mut change = state.take_change(effects);
    change.header.seq += 1;
    if let Some(envelope) = change.envelopes.first_mut() {
        envelope.seq += 1;
    }
    match node.commit(topic.topic_ref(), fence, change).await {
        Err(StoreError::RolledBack { stored_seq }) => {
            ensure!(stored_seq == 2, "stored {stored_seq}")
        }
        other => bail!("a skipped seq was not detected: {other:?}"),
    }
    server.stop().await
}

#[tokio::test]
async fn a_topic_is_rebuilt_from_its_commits_after_a_kill_9_of_redis() -> Result<()> {
    let mut server = RedisServer::start(RedisOptions::new()).await?;
    let conn = connect(&server).await?;
    let node = store(&conn, "hub-a", 60_000);
    let topic = topic()?;
    let settings = TopicSettings::default();
    let fence = node.acquire(topic.topic_ref()).await?;
    let mut state = TopicState::new(topic.clone(), settings.clone(), 5);
    let now = unix_now_ms();
    let command = SubscribeCommand {
        events: vec![EventName::parse("Patient-open").map_err(|err| anyhow::anyhow!("{err}"))?],
        lease_seconds: 3600,
        token_expires: now + 7_200_000,
        subscriber_name: Some("viewer".into()),
        endpoint: None,
        owner: Owner::default(),
        minted_for: None,
    };
    let (endpoint, effects) = state
        .subscribe(command, now)
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    node.commit(topic.topic_ref(), fence, state.take_change(effects))
        .await?;
    let (_, effects) = state
        .attach(&endpoint, "gw-1", now)
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    node.commit(topic.topic_ref(), fence, state.take_change(effects))
        .await?;
    for (n, patient) in ["p1", "p2", "p3"].iter().enumerate() {
        let (_, effects) = state
            .publish(
                patient_open(&topic, &format!("e{n}"), patient)?,
                &Owner::default(),
            )
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        node.commit(topic.topic_ref(), fence, state.take_change(effects))
            .await?;
    }
    ensure!(
        node.resolve_endpoint(&endpoint).await? == Some(topic.topic_ref().clone()),
        "the endpoint does not resolve to its topic"
    );

    server.kill_9().await?;
    server.restart().await?;
    let reloaded = eventually(
        "the store answers after the restart",
        Duration::from_secs(10),
        || async { Ok(node.load(topic.topic_ref()).await.ok()) },
    )
    .await?;
    let restored = TopicState::restore(topic.clone(), settings, reloaded).context("restored")?;
    ensure!(
        restored.seq() == state.seq(),
        "seq {} ≠ {}",
        restored.seq(),
        state.seq()
    );
    ensure!(
        restored.current_context() == state.current_context(),
        "the current context differs after the restart"
    );
    let attached: BTreeSet<bool> = restored
        .subscription(&endpoint)
        .map(|s| s.is_attached())
        .into_iter()
        .collect();
    ensure!(
        attached == BTreeSet::from([true]),
        "the attachment was not kept"
    );
    server.stop().await
}

#[tokio::test]
async fn a_forgotten_topic_leaves_only_its_fence_and_its_old_owner_cannot_write() -> Result<()> {
    let server = RedisServer::start(RedisOptions::new()).await?;
    let conn = connect(&server).await?;
    let node = store(&conn, "hub-a", 60_000);
    let topic = topic()?;
    let keys = fhircast_proto::redis_schema::TopicKeys::of(topic.topic_ref());
    let fence = node.acquire(topic.topic_ref()).await?;
    let mut state = TopicState::new(topic.clone(), TopicSettings::default(), 3);
    let (_, effects) = state
        .publish(patient_open(&topic, "e1", "p1")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    node.commit(topic.topic_ref(), fence, state.take_change(effects))
        .await?;

    node.forget(topic.topic_ref(), fence).await?;
    let snapshot = node.load(topic.topic_ref()).await?;
    ensure!(
        snapshot.header.is_none() && snapshot.contexts.is_empty(),
        "state left behind"
    );
    let left: Vec<String> = server
        .query(::redis::cmd("KEYS").arg(format!("fhc:v1:{{{}}}:*", topic.topic_ref().as_str())))
        .await?;
    ensure!(
        left == vec![keys.meta.clone()],
        "keys left behind: {left:?}"
    );
    let ttl: i64 = server.query(::redis::cmd("PTTL").arg(&keys.meta)).await?;
    ensure!(ttl > 0, "the forgotten fence does not expire (PTTL {ttl})");

    // Used again: a higher fence, kept for good; the old owner is fenced off.
    let again = node.acquire(topic.topic_ref()).await?;
    ensure!(
        again.0 > fence.0,
        "the fence went back: {fence:?} → {again:?}"
    );
    let ttl: i64 = server.query(::redis::cmd("PTTL").arg(&keys.meta)).await?;
    ensure!(ttl == -1, "a topic in use again still expires (PTTL {ttl})");
    let (_, effects) = state
        .publish(patient_open(&topic, "e2", "p2")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let stale = node
        .commit(topic.topic_ref(), fence, state.take_change(effects))
        .await;
    ensure!(
        stale == Err(StoreError::Fenced),
        "the old owner wrote: {stale:?}"
    );
    server.stop().await
}

/// The admin API's records (AUZ-10): written only by the fence holder, kept when the
/// topic's state is forgotten, listed newest first, filtered by user.
#[tokio::test]
async fn topic_records_are_fenced_outlive_a_forgotten_topic_and_list_newest_first() -> Result<()> {
    let server = RedisServer::start(RedisOptions::new()).await?;
    let conn = connect(&server).await?;
    let node = store(&conn, "hub-a", 60_000);
    let mut minted = Vec::new();
    for (n, user) in ["alice", "bob", "alice"].iter().enumerate() {
        let topic = topic()?;
        let fence = node.acquire(topic.topic_ref()).await?;
        let record = TopicRecord {
            topic: topic.expose().to_owned(),
            user: Some((*user).to_owned()),
            minted_at: Some(1_000 + n as u64),
            revoked_at: None,
        };
        node.put_record(topic.topic_ref(), fence, &record).await?;
        node.forget(topic.topic_ref(), fence).await?;
        ensure!(
            node.record(topic.topic_ref()).await? == Some(record.clone()),
            "forgetting the topic lost its record"
        );
        // A stale owner cannot rewrite it.
        let again = node.acquire(topic.topic_ref()).await?;
        let stale = node
            .put_record(topic.topic_ref(), fence, &TopicRecord::default())
            .await;
        ensure!(
            stale == Err(StoreError::Fenced),
            "a stale owner wrote: {stale:?}"
        );
        node.release(topic.topic_ref(), again).await?;
        minted.push(record);
    }
    let all = node.list_records(None, 10).await?;
    let newest_first: Vec<TopicRecord> = minted.iter().rev().cloned().collect();
    ensure!(all == newest_first, "listing is not newest first: {all:?}");
    let alice = node.list_records(Some("alice"), 1).await?;
    ensure!(
        alice == vec![minted[2].clone()],
        "alice's newest: {alice:?}"
    );
    server.stop().await
}

/// With `WAIT 1` and no replica, neither taking a topic nor a change is acknowledged.
#[tokio::test]
async fn a_change_no_replica_confirms_is_not_acknowledged() -> Result<()> {
    let server = RedisServer::start(RedisOptions::new()).await?;
    let conn = connect(&server).await?;
    let node = store_waiting_for(&conn, "hub-a", 60_000, 1);
    let topic = topic()?;
    // Taking the topic waits for a replica too (what is loaded next must be held by one).
    let acquired = node.acquire(topic.topic_ref()).await;
    ensure!(
        acquired == Err(StoreError::Unavailable),
        "a topic no replica confirms was acquired: {acquired:?}"
    );
    // The same node, not waiting, takes it; its commits through the waiting store fail.
    let fence = store_waiting_for(&conn, "hub-a", 60_000, 0)
        .acquire(topic.topic_ref())
        .await?;
    let mut state = TopicState::new(topic.clone(), TopicSettings::default(), 4);
    let (_, effects) = state
        .publish(patient_open(&topic, "e1", "p1")?, &Owner::default())
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let outcome = node
        .commit(topic.topic_ref(), fence, state.take_change(effects))
        .await;
    ensure!(
        outcome == Err(StoreError::Unavailable),
        "a change no replica holds was acknowledged: {outcome:?}"
    );
    server.stop().await
}
