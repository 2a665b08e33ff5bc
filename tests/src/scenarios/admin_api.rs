//! The admin API (AUZ-06, AUZ-10, TOP-01): its own listener and credential, topics minted
//! with 256 random bits, listing, and revocation that closes every socket of the topic
//! within a second and refuses the topic afterwards as if it never existed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use super::{MSG, Rig};
use crate::admin::{ADMIN_SECRET, AdminClient, AdminSecretFile};
use crate::conformance::assert::expect_denial_then_close;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;

/// How soon a revocation must close every socket of the topic (AUZ-10).
const REVOCATION_BOUND: Duration = Duration::from_secs(1);

/// Revokes `topic` through `admin` and expects every one of `sockets` to get a denial and
/// close within [`REVOCATION_BOUND`] of the request; returns the admin API's answer.
pub(super) async fn revoke_and_expect_closed(
    admin: &AdminClient,
    topic: &str,
    sockets: &mut [Subscriber],
) -> Result<crate::client::Reply> {
    let started = Instant::now();
    let revoked = admin.revoke(topic).await?;
    revoked.expect(200, "revoking")?;
    for socket in sockets.iter_mut() {
        expect_denial_then_close(socket, topic, REVOCATION_BOUND).await?;
    }
    let lag = started.elapsed();
    eprintln!("AUZ-10: every socket of the revoked topic closed {lag:?} after the revocation");
    ensure!(
        lag <= REVOCATION_BOUND,
        "sockets closed {lag:?} after the revocation"
    );
    Ok(revoked)
}

async fn admin_rig(secret: &AdminSecretFile) -> Result<(Rig, AdminClient)> {
    let rig = Rig::start_with(|builder| builder.admin(&secret.path())).await?;
    let admin = AdminClient::new(rig.gateway.admin_url().context("admin url")?);
    Ok((rig, admin))
}

#[tokio::test]
async fn auz_06_the_admin_api_has_its_own_listener_and_secret() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    let (rig, admin) = admin_rig(&secret).await?;
    let app_token = rig
        .issuer
        .mint(&random_topic(), crate::token::ALL_SCOPES, 3600)?;
    // Wrong, missing, or an app's token: 401, and nothing minted.
    let wrong = format!("{ADMIN_SECRET}x");
    for presented in [None, Some(wrong.as_str()), Some(app_token.as_str())] {
        let refused = admin.with_secret(presented);
        refused
            .post(&json!({"user": "alice"}))
            .await?
            .expect_error(401, "minting without the admin secret")?;
        refused
            .list("")
            .await?
            .expect_error(401, "listing without the admin secret")?;
        refused
            .revoke(&random_topic())
            .await?
            .expect_error(401, "revoking without the admin secret")?;
    }
    let listed = admin.list("").await?;
    listed.expect(200, "listing")?;
    ensure!(
        listed.json()?["topics"] == json!([]),
        "refused requests minted something: {}",
        listed.body
    );
    // The public listener never serves the admin API, whatever the credential.
    let public = AdminClient::new(rig.gateway.base_url());
    for client in [public.clone(), public.with_secret(Some(&app_token))] {
        client
            .post(&json!({"user": "alice"}))
            .await?
            .expect_error(404, "the admin API on the public port")?;
        client
            .list("")
            .await?
            .expect_error(404, "the admin listing on the public port")?;
    }
    // Bad requests are refused with a reason.
    for body in [
        json!({}),
        json!({"user": ""}),
        json!({"user": 7}),
        json!({"user": "a", "x": 1}),
    ] {
        admin
            .post(&body)
            .await?
            .expect_error(400, &format!("minting with {body}"))?;
    }
    admin
        .list("limit=0")
        .await?
        .expect_error(400, "listing with limit 0")?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn top_01_minted_topics_are_256_random_bits_and_listed_newest_first() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    let (rig, admin) = admin_rig(&secret).await?;
    let mut minted = Vec::new();
    for n in 0..20 {
        let user = if n % 2 == 0 { "alice" } else { "bob" };
        minted.push(admin.mint(user).await?);
    }
    let distinct: HashSet<&String> = minted.iter().collect();
    ensure!(distinct.len() == minted.len(), "a minted topic repeated");
    for topic in &minted {
        ensure!(
            topic.len() == 43
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "a minted topic is not 43 base64url characters (256 bits): {topic:?}"
        );
    }
    let listed = admin.list("user=alice&limit=5").await?;
    listed.expect(200, "listing alice's topics")?;
    let topics: Vec<String> = listed.json()?["topics"]
        .as_array()
        .context("topics array")?
        .iter()
        .map(|record| record["topic"].as_str().unwrap_or_default().to_owned())
        .collect();
    let newest_alice: Vec<String> = minted.iter().step_by(2).rev().take(5).cloned().collect();
    ensure!(
        topics == newest_alice,
        "alice's listing is not her 5 newest topics, newest first"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn auz_10_revocation_closes_every_socket_within_a_second_and_the_topic_stays_closed()
-> Result<()> {
    let secret = AdminSecretFile::new()?;
    let (rig, admin) = admin_rig(&secret).await?;
    let topic = random_topic();
    let viewer = rig.client(&topic)?;
    let mut sockets: Vec<Subscriber> = Vec::new();
    for client_id in ["viewer-a", "viewer-b", "viewer-c"] {
        let client = rig.client_as(&topic, client_id)?;
        sockets.push(rig.subscriber(&client, "Patient-open").await?);
    }
    viewer.publish_ok(&patient_open(&topic, "p-before")).await?;
    for socket in &mut sockets {
        socket.next_event(MSG).await?;
    }
    let unknown_reply = viewer.with_topic(&random_topic()).get_context().await?;

    let revoked = revoke_and_expect_closed(&admin, &topic, &mut sockets).await?;
    ensure!(
        revoked.json()?["subscriptions_ended"] == 3,
        "revocation did not end 3 subscriptions: {}",
        revoked.body
    );
    // Afterwards the topic answers exactly as one that never existed; a re-attach gets
    // the denial again.
    let context = viewer.get_context().await?;
    ensure!(
        context.status == unknown_reply.status && context.body == unknown_reply.body,
        "a revoked topic answered {} {:?}, an unknown one {} {:?}",
        context.status,
        context.body,
        unknown_reply.status,
        unknown_reply.body
    );
    viewer
        .subscribe_with("Patient-open", &[])
        .await?
        .expect_error(403, "subscribing to a revoked topic")?;
    viewer
        .publish(&patient_open(&topic, "p-after"))
        .await?
        .expect_error(403, "publishing to a revoked topic")?;
    let mut again = Subscriber::connect(sockets[0].endpoint()).await?;
    let denial = again.next_message(MSG).await?;
    ensure!(denial["hub.mode"] == "denied", "re-attach got {denial}");
    // Revoking again keeps the first revocation.
    let second = admin.revoke(&topic).await?;
    ensure!(
        second.json()?["revoked_unix_ms"] == revoked.json()?["revoked_unix_ms"],
        "a second revocation changed the record"
    );
    rig.gateway.stop().await
}
