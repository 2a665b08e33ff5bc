//! TOP-08: dead after unsubscribe, across gateways, while the socket's gateway cannot hear
//! the denial. The app's socket sits on gw-1, whose Redis connections (the pub/sub link
//! that normally carries the denial among them) go through a [`TcpProxy`]; the proxy
//! blackholes them (a stall, no reset), and the app unsubscribes through gw-0. gw-1 must
//! still send the denial and close the socket within [`CLOSE_BOUND`]: its PINGs on the
//! stalled link go unanswered, so it revalidates its sockets with the topic's owner over
//! gRPC (`--revalidate-interval-ms`, default 2 s). The close lag is printed.
//!
//! Nothing published after the unsubscribe reaches the closed socket, a second subscriber
//! on gw-1 is kept open through the stall (an owner that says "live" keeps a socket) and
//! gets that publish once the link heals, and a re-attach to the old endpoint is refused
//! (FC-15) through either gateway.
//!
//! gw-1's membership TTL is longer than the stall, so the nodes keep it in the cluster and
//! it keeps its sockets: the revalidation, not the membership, closes the socket.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use super::{MSG, SILENCE, expect_id, publish};
use crate::client::HubClient;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::conformance::assert::{expect_dead_endpoint, expect_denial_then_close};
use crate::eventually::eventually;
use crate::payloads::random_topic;
use crate::proxy::{FaultMode, TcpProxy, with_address};
use crate::subscriber::{Incoming, Subscriber};

/// How soon after the unsubscribe gw-1 must have closed the socket.
const CLOSE_BOUND: Duration = Duration::from_secs(5);
/// gw-1's membership TTL: longer than the whole stall.
const GW1_MEMBERSHIP_TTL: Duration = Duration::from_secs(30);
/// The whole scenario, cluster start and stop included.
const BUDGET: Duration = Duration::from_secs(90);
/// What gw-1 logs when its bus link stops answering, and when it answers again.
const LINK_STALLED: &str = "bus link to Redis does not answer";
const LINK_ANSWERS: &str = "bus link to Redis answers again";
/// How long the scenario waits for gw-1 to notice the stall or the heal.
const NOTICE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_08_an_unsubscribe_through_another_gateway_closes_the_socket_while_its_bus_stalls()
-> Result<()> {
    let mut cluster = ClusterBuilder::new().nodes(2).gateways(1).start().await?;
    let outcome = tokio::time::timeout(BUDGET, scenario(&mut cluster)).await;
    let outcome = outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("took longer than {BUDGET:?}")));
    if let Err(error) = outcome {
        return Err(error.context(cluster.logs_tail()));
    }
    cluster.stop().await
}

async fn scenario(cluster: &mut Cluster) -> Result<()> {
    let proxy = TcpProxy::start(cluster.redis().address()).await?;
    let ttl = format!("--membership-ttl-ms={}", GW1_MEMBERSHIP_TTL.as_millis());
    let gw1 = cluster
        .add_gateway_with(&proxy.url_for(&cluster.redis().url()), |builder| {
            builder.arg(ttl)
        })
        .await?;
    let topic = random_topic();
    let on_gw0 = cluster.client(0, &topic)?;
    let on_gw1 = cluster.client(gw1, &topic)?;

    let endpoint = on_gw1.subscribe("Patient-open").await?;
    let mut app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let kept = on_gw1.subscribe("Patient-open").await?;
    let mut keeper = Subscriber::connect_confirmed(&kept, MSG).await?;
    let before = publish(&on_gw0, "before").await?;
    expect_id(&mut app, &before, "`before` on gw-1's app socket").await?;
    expect_id(&mut keeper, &before, "`before` on gw-1's other socket").await?;

    let logged = cluster.gateway_log(gw1).len();
    proxy.set_mode(FaultMode::Blackhole);
    let outcome = async {
        eventually("gw-1 notices its bus link stalled", NOTICE, || {
            let seen = logged_since(cluster, gw1, logged, LINK_STALLED);
            async move { Ok(seen.then_some(())) }
        })
        .await?;
        stalled(cluster, &on_gw0, &topic, &endpoint, &mut app).await
    }
    .await;
    // Healed whatever happened, so the cluster can stop cleanly.
    proxy.set_mode(FaultMode::Pass);
    let after = outcome?;

    eventually("gw-1's bus link answers again", NOTICE, || {
        let seen = logged_since(cluster, gw1, logged, LINK_ANSWERS);
        async move { Ok(seen.then_some(())) }
    })
    .await?;
    expect_id(
        &mut keeper,
        &after,
        "`after` on the kept socket once the link heals",
    )
    .await?;
    expect_dead_endpoint(&endpoint, &topic, "a re-attach through gw-1").await?;
    let through_gw0 = with_address(&endpoint, cluster.gateway_address(0)?);
    expect_dead_endpoint(&through_gw0, &topic, "a re-attach through gw-0").await?;
    // The closed socket's stream ends; nothing was delivered after the close.
    let mut late = Vec::new();
    while let Ok(Some(incoming)) = tokio::time::timeout(SILENCE, app.recv()).await {
        if let Incoming::Message(message) = incoming {
            late.push(message);
        }
    }
    ensure!(
        late.is_empty(),
        "the unsubscribed socket received {late:?} after its close"
    );
    Ok(())
}

/// Returns true if gateway `index` logged `line` after the first `from` bytes of its log.
fn logged_since(cluster: &Cluster, index: usize, from: usize, line: &str) -> bool {
    cluster
        .gateway_log(index)
        .get(from..)
        .is_some_and(|new| new.contains(line))
}

/// While gw-1's link is stalled: unsubscribes through gw-0, publishes `after`, and expects
/// gw-1 to send the denial and close the socket within [`CLOSE_BOUND`] (nothing else
/// first); returns the id of `after`.
async fn stalled(
    cluster: &Cluster,
    on_gw0: &HubClient,
    topic: &str,
    endpoint: &str,
    app: &mut Subscriber,
) -> Result<String> {
    let started = Instant::now();
    on_gw0
        .unsubscribe(endpoint)
        .await?
        .expect(202, "unsubscribe through gw-0")?;
    let after = publish(on_gw0, "after").await?;
    let left = CLOSE_BOUND.saturating_sub(started.elapsed());
    expect_denial_then_close(app, topic, left).await?;
    let lag = started.elapsed();
    println!(
        "TOP-08: gw-1 sent the denial and closed the unsubscribed socket {} ms after the \
         unsubscribe through gw-0, its bus link stalled ({} nodes)",
        lag.as_millis(),
        cluster.nodes().len()
    );
    ensure!(
        lag <= CLOSE_BOUND,
        "gw-1 closed the socket {lag:?} after the unsubscribe"
    );
    Ok(after)
}
