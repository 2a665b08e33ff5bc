//! `Rig`: the test issuer, the canary and one gateway process that a test process shares,
//! and the run of one case against them.
//!
//! The gateway trusts the issuer with the allowlist `ES256,RS256` (the issuer is
//! asymmetric; `RS512`, `PS256`, `ES384`, `EdDSA` are left out on purpose, TOK-04). Cases
//! run one at a time per rig so that JWKS fetches and canary hits belong to one case.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;

use super::forge::Forge;
use super::keys::Keys;
use super::{Case, Expect, Lookup};
use crate::canary::Canary;
use crate::client::{HubClient, Reply};
use crate::eventually::eventually;
use crate::gateway::{Gateway, GatewayBuilder};
use crate::payloads::{patient_open, random_topic};

/// The algorithms the gateway under attack accepts.
const ALLOWLIST: &str = "ES256,RS256";
/// How long the gateway may take to fetch the JWKS after it starts.
const PREFETCH_DEADLINE: Duration = Duration::from_secs(10);

/// An issuer, a canary and a gateway trusting the issuer.
#[derive(Debug)]
pub struct Rig {
    keys: Keys,
    canary: Canary,
    gateway: Gateway,
    one_case_at_a_time: tokio::sync::Mutex<()>,
}

impl Rig {
    /// Starts the issuer and the canary, then a gateway, and waits until the gateway holds
    /// the issuer's keys. `key_cache` is a directory where the RSA key is kept between test
    /// processes.
    pub async fn start(key_cache: &Path) -> Result<Self> {
        let keys = Keys::start(key_cache).await?;
        // What a naive hub would find at a token's `jku`: the attacker's key.
        let canary = Canary::start(json!({ "keys": [keys.attacker.jwk()] })).await?;
        let gateway = GatewayBuilder::new()
            .name("attack-corpus-gateway")
            .issuer(&keys.issuer)
            .arg("--algorithms")
            .arg(ALLOWLIST)
            .start()
            .await?;
        eventually(
            "the gateway fetches the issuer's JWKS",
            PREFETCH_DEADLINE,
            || async { Ok((keys.issuer.jwks_fetches() > 0).then_some(())) },
        )
        .await?;
        Ok(Self {
            keys,
            canary,
            gateway,
            one_case_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// Runs one case on a fresh topic.
    pub async fn run(&self, case: &Case) -> Result<()> {
        let _alone = self.one_case_at_a_time.lock().await;
        let topic = random_topic();
        let forge = Forge::new(&self.keys, &self.canary, &topic);
        let valid = HubClient::new(&self.gateway.hub_url(), &topic, Some(forge.valid()?));
        valid
            .publish_ok(&patient_open(&topic, "p-staged"))
            .await
            .context("staging: the valid token publishes")?;
        let before = valid.context().await.context("staging: the context")?;
        let fetches_before = self.keys.issuer.jwks_fetches();

        let token = (case.forge)(&forge).context("forging the token")?;
        let presented = valid.with_token(Some(token.clone()));
        let attempts = match (case.expect, case.lookup) {
            (Expect::Refused, Lookup::MayRefetch) => Routes::SubscribeOnly,
            _ => Routes::All,
        };
        let replies = attempts.try_all(&presented).await?;
        let after = valid
            .context()
            .await
            .context("the context after the case")?;
        judge(case, &replies, &token)?;
        match case.expect {
            Expect::Refused => ensure!(after == before, "the context changed: {before} → {after}"),
            Expect::Accepted => ensure!(
                after != before,
                "the accepted publish left the context as it was"
            ),
        }
        self.check_side_effects(case, fetches_before).await
    }

    /// The JWKS fetches the case caused, the canary's hits, and the gateway's health.
    async fn check_side_effects(&self, case: &Case, fetches_before: usize) -> Result<()> {
        let fetches = self.keys.issuer.jwks_fetches() - fetches_before;
        match case.lookup {
            Lookup::Cached => ensure!(fetches == 0, "the case caused {fetches} JWKS fetches"),
            Lookup::MayRefetch => ensure!(fetches <= 1, "the case caused {fetches} JWKS fetches"),
        }
        ensure!(
            self.canary.hits() == 0,
            "the canary (jku/x5u target) was fetched {} times",
            self.canary.hits()
        );
        self.gateway.assert_ready().await
    }

    /// Stops the gateway with SIGTERM and asserts a clean exit.
    pub async fn stop(self) -> Result<()> {
        self.gateway.stop().await
    }
}

/// Which routes a case presents its token to.
#[derive(Clone, Copy, Debug)]
enum Routes {
    All,
    SubscribeOnly,
}

impl Routes {
    async fn try_all(self, client: &HubClient) -> Result<Vec<(&'static str, Reply)>> {
        let mut replies = vec![(
            "subscribe",
            client.subscribe_with("Patient-open", &[]).await?,
        )];
        if let Self::All = self {
            let forged = patient_open(client.topic(), "p-forged");
            replies.push(("publish", client.publish(&forged).await?));
            replies.push(("get current context", client.get_context().await?));
        }
        Ok(replies)
    }
}

/// Checks every route's answer: 2xx for a control, else a refusal.
fn judge(case: &Case, replies: &[(&'static str, Reply)], token: &str) -> Result<()> {
    for (route, reply) in replies {
        match case.expect {
            Expect::Accepted => {
                reply.expect_success(route)?;
            }
            Expect::Refused => refused(reply, route, token)?,
        }
    }
    Ok(())
}

/// A 401 with a text reason that does not echo the token, and a Bearer challenge.
fn refused(reply: &Reply, route: &str, token: &str) -> Result<()> {
    reply.expect_error(401, route)?;
    let challenge = reply
        .headers
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !challenge.starts_with("Bearer") {
        bail!("{route}: 401 without a Bearer challenge (`{challenge}`)");
    }
    let echo = token.get(..24).unwrap_or(token);
    if echo.len() >= 16 && reply.body.contains(echo) {
        bail!("{route}: the reason echoes the token: `{}`", reply.body);
    }
    Ok(())
}
