//! The Redis topologies the cluster tests run on: each starts, does what the hub will rely
//! on, survives the fault it exists for, and stops cleanly.

use std::time::Duration;

use ::redis::AsyncCommands as _;
use anyhow::{Context as _, Result, ensure};

use crate::eventually::eventually;
use crate::redis::{
    RedisCluster, RedisOptions, RedisSentinelSet, RedisServer, connect, redis_client,
};

/// How long a test waits for a replicated write or a pub/sub message.
const ARRIVAL: Duration = Duration::from_secs(5);

fn set_cmd(key: &str, value: &str) -> ::redis::Cmd {
    let mut command = ::redis::cmd("SET");
    command.arg(key).arg(value);
    command
}

fn get_cmd(key: &str) -> ::redis::Cmd {
    let mut command = ::redis::cmd("GET");
    command.arg(key);
    command
}

#[tokio::test]
async fn an_aof_write_survives_kill_9_and_restart() -> Result<()> {
    let mut server = RedisServer::start(RedisOptions::new()).await?;
    let _: () = server.query(&set_cmd("fhircast:kept", "yes")).await?;
    let port = server.port();

    server.kill_9().await?;
    ensure!(server.pid().is_none(), "the server still has a pid");
    server.restart().await?;

    ensure!(server.port() == port, "the restart moved the port");
    let kept: Option<String> = server.query(&get_cmd("fhircast:kept")).await?;
    ensure!(
        kept.as_deref() == Some("yes"),
        "the key is {kept:?} after kill -9 and restart\n{}",
        server.logs_tail()
    );
    server.stop().await
}

#[tokio::test]
async fn tls_with_an_acl_user_accepts_the_user_and_refuses_a_wrong_password() -> Result<()> {
    let server = RedisServer::start(RedisOptions::new().user("hub", "secret").tls()).await?;
    let url = server.url();
    ensure!(url.starts_with("rediss://hub:secret@127.0.0.1:"), "{url}");
    ensure!(
        server.ca_path().is_some_and(|ca| ca.is_file()),
        "no CA file"
    );

    let pong: String = server.query(&::redis::cmd("PING")).await?;
    ensure!(pong == "PONG", "PING answered {pong}");

    let wrong = redis_client(
        &format!("rediss://hub:wrong@{}/", server.address()),
        server.ca_path(),
    )?;
    let refused = connect(&wrong)
        .await
        .err()
        .context("a wrong password was accepted")?;
    ensure!(
        refused
            .chain()
            .filter_map(|cause| cause.downcast_ref::<::redis::RedisError>())
            .any(|error| error.kind() == ::redis::ErrorKind::AuthenticationFailed),
        "unexpected refusal: {refused:#}"
    );

    let anonymous = redis_client(&format!("rediss://{}/", server.address()), server.ca_path())?;
    let mut connection = connect(&anonymous).await?;
    let denied = ::redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .err()
        .context("the default user was not disabled")?;
    ensure!(
        denied.code() == Some("NOAUTH"),
        "unexpected denial: {denied}"
    );
    server.stop().await
}

#[tokio::test]
async fn sentinels_name_the_primary_and_follow_a_failover() -> Result<()> {
    let set = RedisSentinelSet::start().await?;
    let first = set.servers()[0].address();
    let second = set.servers()[1].address();
    ensure!(set.sentinel_addresses().len() == 3, "not three sentinels");
    ensure!(
        set.master_name() == "fhircast",
        "master name {}",
        set.master_name()
    );
    ensure!(
        set.primary_address().await? == first,
        "the first server is not the primary"
    );

    let new = set.failover().await?;
    ensure!(new == second, "failed over to {new}, not {second}");
    for sentinel in set.sentinels() {
        let mut command = ::redis::cmd("SENTINEL");
        command
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(set.master_name());
        let (_, port): (String, String) = sentinel.query(&command).await?;
        ensure!(
            port == second.port().to_string(),
            "a sentinel names port {port}"
        );
    }

    let primary = set.primary().await?;
    let _: () = primary
        .query(&set_cmd("fhircast:after-failover", "written"))
        .await?;
    let old = &set.servers()[0];
    eventually(
        "the old primary replicates the new one's write",
        ARRIVAL,
        || async {
            let value: Option<String> = old.query(&get_cmd("fhircast:after-failover")).await?;
            Ok((value.as_deref() == Some("written")).then_some(()))
        },
    )
    .await?;
    set.stop().await
}

#[tokio::test]
async fn a_cluster_spreads_keys_over_three_masters_and_carries_sharded_pubsub() -> Result<()> {
    let cluster = RedisCluster::start().await?;
    cluster.check_ok().await?;
    ensure!(cluster.seed_urls().len() == 3, "not three seeds");

    let mut connection = cluster.client()?.get_async_connection().await?;
    for i in 0..100 {
        let _: () = connection.set(format!("fhircast:key:{i}"), i).await?;
    }
    for i in 0..100 {
        let value: i64 = connection.get(format!("fhircast:key:{i}")).await?;
        ensure!(value == i, "fhircast:key:{i} is {value}");
    }
    let mut total = 0;
    for node in cluster.nodes() {
        let keys: i64 = node.query(&::redis::cmd("DBSIZE")).await?;
        ensure!(keys > 0, "{} holds no key", node.address());
        total += keys;
    }
    ensure!(total == 100, "the nodes hold {total} keys, not 100");

    let (pushes, mut received) = tokio::sync::mpsc::unbounded_channel();
    let subscriber_client = ::redis::cluster::ClusterClient::builder(cluster.seed_urls())
        .use_protocol(::redis::ProtocolVersion::RESP3)
        .push_sender(pushes)
        .build()?;
    let mut subscriber = subscriber_client.get_async_connection().await?;
    subscriber.ssubscribe("fhircast:shard").await?;
    let receivers: usize = connection.spublish("fhircast:shard", "hello").await?;
    ensure!(receivers == 1, "SPUBLISH reached {receivers} subscribers");
    let message = tokio::time::timeout(ARRIVAL, async {
        while let Some(push) = received.recv().await {
            if push.kind == ::redis::PushKind::SMessage {
                return Some(push);
            }
        }
        None
    })
    .await
    .context("no sharded message in time")?
    .context("the push channel closed")?;
    let data: Vec<String> = message
        .data
        .iter()
        .map(::redis::from_redis_value_ref)
        .collect::<Result<_, _>>()?;
    ensure!(
        data == ["fhircast:shard", "hello"],
        "sharded message {data:?}"
    );
    drop(subscriber);
    drop(connection);
    cluster.stop().await
}
