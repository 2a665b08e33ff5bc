//! `Rig`: the test issuer, the canary and the gateway processes that a test process shares,
//! and the run of one case against them.
//!
//! The gateway trusts the issuer with the allowlist `ES256,RS256` (the issuer is
//! asymmetric; `RS512`, `PS256`, `ES384`, `EdDSA` are left out on purpose, TOK-04) and the
//! default token type policy (`lenient`). A second gateway, the same but for
//! `--token-type-policy strict`, starts when the first TOK-13 strict case runs. Cases run
//! one at a time per rig so that JWKS fetches and canary hits belong to one case.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;

use super::forge::Forge;
use super::keys::Keys;
use super::{Case, Expect, Lookup, Policy};
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
    /// The gateway with `--token-type-policy strict`, once a strict case has run.
    strict_gateway: tokio::sync::OnceCell<Gateway>,
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
        let gateway = start_gateway(&keys, "attack-corpus-gateway", &[]).await?;
        Ok(Self {
            keys,
            canary,
            gateway,
            strict_gateway: tokio::sync::OnceCell::new(),
            one_case_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// The gateway a case is presented to, started if it is the strict one's first case.
    async fn gateway_for(&self, case: &Case) -> Result<&Gateway> {
        match case.policy {
            Policy::Lenient => Ok(&self.gateway),
            Policy::Strict => {
                self.strict_gateway
                    .get_or_try_init(|| {
                        start_gateway(
                            &self.keys,
                            "attack-corpus-strict-gateway",
                            &["--token-type-policy", "strict"],
                        )
                    })
                    .await
            }
        }
    }

    /// Runs one case on a fresh topic.
    pub async fn run(&self, case: &Case) -> Result<()> {
        let _alone = self.one_case_at_a_time.lock().await;
        let gateway = self.gateway_for(case).await?;
        let topic = random_topic();
        let forge = Forge::new(&self.keys, &self.canary, &topic);
        // The valid token is typed `at+jwt` on the strict gateway, `JWT` on the other.
        let staging_token = match case.policy {
            Policy::Lenient => forge.valid()?,
            Policy::Strict => forge.header_changed(|header| {
                super::forge::set(header, "typ", json!("at+jwt"));
            })?,
        };
        let valid = HubClient::new(&gateway.hub_url(), &topic, Some(staging_token));
        valid
            .publish_ok(&patient_open(&topic, "p-staged"))
            .await
            .context("staging: the valid token publishes")?;
        let before = valid.context().await.context("staging: the context")?;
        let fetches_before = self.keys.issuer.jwks_fetches();

        let token = (case.forge)(&forge).context("forging the token")?;
        let presented = valid.with_token(Some(token.clone()));
        let replies = try_every_route(&presented).await?;
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
        self.check_side_effects(case, gateway, fetches_before).await
    }

    /// The JWKS fetches the case caused, the canary's hits, and the gateway's health.
    async fn check_side_effects(
        &self,
        case: &Case,
        gateway: &Gateway,
        fetches_before: usize,
    ) -> Result<()> {
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
        gateway.assert_ready().await
    }

    /// Stops the gateways with SIGTERM and asserts clean exits.
    pub async fn stop(self) -> Result<()> {
        let strict = match self.strict_gateway.into_inner() {
            Some(gateway) => gateway.stop().await,
            None => Ok(()),
        };
        self.gateway.stop().await?;
        strict.context("the strict gateway")
    }
}

/// Starts a gateway trusting the issuer with the allowlist and `extra` flags, and waits
/// until it has fetched the issuer's JWKS, so that later fetches belong to cases.
async fn start_gateway(keys: &Keys, name: &str, extra: &[&str]) -> Result<Gateway> {
    let fetches_before = keys.issuer.jwks_fetches();
    let mut builder = GatewayBuilder::new()
        .name(name)
        .issuer(&keys.issuer)
        .arg("--algorithms")
        .arg(ALLOWLIST);
    for arg in extra {
        builder = builder.arg(*arg);
    }
    let gateway = builder.start().await?;
    eventually(
        "the gateway fetches the issuer's JWKS",
        PREFETCH_DEADLINE,
        || async { Ok((keys.issuer.jwks_fetches() > fetches_before).then_some(())) },
    )
    .await?;
    Ok(gateway)
}

/// Presents the client's token to subscribe, publish and Get Current Context.
async fn try_every_route(client: &HubClient) -> Result<Vec<(&'static str, Reply)>> {
    let forged = patient_open(client.topic(), "p-forged");
    Ok(vec![
        (
            "subscribe",
            client.subscribe_with("Patient-open", &[]).await?,
        ),
        ("publish", client.publish(&forged).await?),
        ("get current context", client.get_context().await?),
    ])
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
