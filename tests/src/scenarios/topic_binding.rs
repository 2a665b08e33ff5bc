//! Topic binding under each policy (catalogue AUZ-04, TOP-03): a token that may not use a
//! topic gets, for subscribe, publish, get-context and unsubscribe, exactly the answer a
//! topic that does not exist gets (same status, same body), and nothing reaches the
//! topic's subscribers or changes its context.
//!
//! - `claim` (default): the token's `hub.topic` claim names the topic.
//! - `owner`: the topic was minted through the admin API for the token's `sub`.
//! - `none`: any token may use any topic; only a revoked topic refuses.

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::{MSG, Rig, SILENCE};
use crate::admin::{AdminClient, AdminSecretFile};
use crate::client::{HubClient, Reply};
use crate::conformance::assert::expect_denial_then_close;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

/// Subscribe, publish, get-context and unsubscribe (of `endpoint`) on `target`.
pub(super) async fn attempts(
    target: &HubClient,
    endpoint: &str,
) -> Result<Vec<(&'static str, Reply)>> {
    Ok(vec![
        (
            "subscribe",
            target.subscribe_with("Patient-open", &[]).await?,
        ),
        (
            "publish",
            target
                .publish(&patient_open(target.topic(), "p-intruder"))
                .await?,
        ),
        ("get context", target.get_context().await?),
        ("unsubscribe", target.unsubscribe(endpoint).await?),
    ])
}

/// The owner's topic with a watcher on it and an opened context.
struct Watched {
    owner: HubClient,
    watcher: Subscriber,
    before: Value,
}

impl Watched {
    async fn start(rig: &Rig, owner: HubClient) -> Result<Self> {
        let mut watcher = rig.subscriber(&owner, "Patient-open").await?;
        owner
            .publish_ok(&patient_open(owner.topic(), "p-owner"))
            .await?;
        watcher.next_event(MSG).await?;
        let before = owner.context().await?;
        Ok(Self {
            owner,
            watcher,
            before,
        })
    }

    /// `intruder` (a client of another topic) is answered on the owner's topic exactly
    /// as on a topic that does not exist, and changes nothing.
    async fn refuses_like_an_unknown_topic(&mut self, intruder: &HubClient) -> Result<()> {
        let endpoint = self.watcher.endpoint().to_owned();
        let existing = attempts(&intruder.with_topic(self.owner.topic()), &endpoint).await?;
        let unknown = attempts(&intruder.with_topic(&random_topic()), &endpoint).await?;
        for ((what, on_existing), (_, on_unknown)) in existing.iter().zip(&unknown) {
            on_existing.expect_error(403, &format!("{what} on a foreign topic"))?;
            ensure!(
                on_existing.status == on_unknown.status && on_existing.body == on_unknown.body,
                "{what}: foreign topic answered {} {:?}, unknown topic {} {:?}",
                on_existing.status,
                on_existing.body,
                on_unknown.status,
                on_unknown.body
            );
        }
        self.watcher
            .expect_silence(SILENCE)
            .await
            .context("the intruder reached the owner's subscriber")?;
        ensure!(
            self.owner.context().await? == self.before,
            "the intruder changed the owner's context"
        );
        // The owner's subscription survived the intruder's unsubscribe.
        self.owner
            .publish_ok(&patient_open(self.owner.topic(), "p-owner-2"))
            .await?;
        self.watcher.next_event(MSG).await?;
        self.before = self.owner.context().await?;
        Ok(())
    }
}

/// A client of `topic` whose token names user `sub` and no topic.
fn client_of_user(rig: &Rig, topic: &str, sub: &str) -> Result<HubClient> {
    let mut claims = rig.issuer.claims(topic, ALL_SCOPES, 3600);
    claims["sub"] = json!(sub);
    if let Some(claims) = claims.as_object_mut() {
        claims.remove("hub.topic");
    }
    let token = rig.issuer.sign(&claims)?;
    Ok(HubClient::new(&rig.gateway.hub_url(), topic, Some(token)))
}

#[tokio::test]
async fn auz_04_claim_binding_foreign_topics_look_exactly_like_unknown_topics() -> Result<()> {
    let rig = Rig::start().await?;
    let mut watched = Watched::start(&rig, rig.client(&random_topic())?).await?;
    let intruder = rig.client(&random_topic())?;
    watched.refuses_like_an_unknown_topic(&intruder).await?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn auz_04_owner_binding_serves_only_the_user_a_topic_was_minted_for() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    let rig = Rig::start_with(|builder| builder.admin(&secret.path()).arg("--topic-binding=owner"))
        .await?;
    let admin = AdminClient::new(rig.gateway.admin_url().context("admin url")?);
    let topic = admin.mint("alice").await?;
    // Alice's tokens carry no topic claim: the minted topic is hers.
    let alice = client_of_user(&rig, &topic, "alice")?;
    let mut watched = Watched::start(&rig, alice).await?;
    // Bob's token, even one that names Alice's topic in its claim, gets nothing.
    let bob = client_of_user(&rig, &random_topic(), "bob")?;
    watched.refuses_like_an_unknown_topic(&bob).await?;
    let bob_claiming = rig.client(&topic)?;
    watched.refuses_like_an_unknown_topic(&bob_claiming).await?;
    // A topic never minted is refused to everyone, Alice included.
    let never_minted = client_of_user(&rig, &random_topic(), "alice")?;
    never_minted
        .subscribe_with("Patient-open", &[])
        .await?
        .expect_error(403, "subscribe to a topic never minted")?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn auz_04_no_binding_is_warned_and_still_refuses_revoked_topics() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    let rig = Rig::start_with(|builder| builder.admin(&secret.path()).arg("--topic-binding=none"))
        .await?;
    ensure!(
        rig.gateway
            .process()
            .stderr_text()
            .contains("--topic-binding none"),
        "start-up did not warn about --topic-binding none"
    );
    // Any valid token may use any topic.
    let topic = random_topic();
    let anyone = client_of_user(&rig, &topic, "anyone")?;
    let mut watched = Watched::start(&rig, anyone).await?;
    AdminClient::new(rig.gateway.admin_url().context("admin url")?)
        .revoke(&topic)
        .await?
        .expect(200, "revoking")?;
    expect_denial_then_close(&mut watched.watcher, &topic, MSG).await?;
    let endpoint = watched.watcher.endpoint().to_owned();
    let reference = attempts(&watched.owner, &endpoint).await?;
    for (what, reply) in &reference {
        reply.expect_error(403, &format!("{what} on a revoked topic"))?;
        ensure!(
            reply.body.trim_end() == fhircast_proto::hub::TOPIC_NOT_PERMITTED,
            "{what} on a revoked topic answered {:?}",
            reply.body
        );
    }
    rig.gateway.stop().await
}
