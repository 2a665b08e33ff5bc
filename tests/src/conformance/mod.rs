//! The black-box FHIRcast STU3 conformance suite (the checklist in docs/conformance.md).
//!
//! One async check per applicable checklist item, named after its number
//! (`c15_06_subscribe_returns_202_with_endpoint`), plus a table of skipped items with their
//! reasons. Checks talk to the hub only over HTTP and WebSocket and get tokens only from a
//! [`TokenSource`], so the suite runs against any hub. Each check uses a fresh random topic,
//! so checks are independent and run concurrently (see [`runner`]).
//!
//! A [`Ctx`] may hold several hub URLs, the gateways of one cluster ([`Ctx::spread`]): each
//! client and each subscription a check creates then takes the next URL in turn, so one check
//! subscribes through one gateway, publishes through another and reads the context through
//! a third, and every check must pass unchanged. With one URL nothing rotates.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::client::{HubClient, endpoint_of};
use crate::subscriber::Subscriber;
use crate::token::{ALL_SCOPES, TokenSource};

pub(crate) mod assert;
mod auth;
mod channel;
mod content_rules;
mod content_sharing;
mod context;
mod derived;
mod discovery;
mod events;
pub mod runner;
mod subscribe;
mod sync_error;
mod transport;
mod unsubscribe;

/// How long a check waits for a message it expects.
pub(crate) const MSG: Duration = Duration::from_secs(5);
/// What a check adds to a hub timer before it counts on the timer having fired.
pub(crate) const TIMER_SLACK: Duration = Duration::from_millis(500);
/// Lifetime of the tokens checks use by default.
const TOKEN_LIFETIME: u64 = 3600;

/// A boxed check future.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// One checklist item and the check that tests it.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Item number in the checklist (docs/conformance.md).
    pub item: u8,
    /// Short name (the check function's name without the `c15_NN_` prefix).
    pub name: &'static str,
    /// The check function's name, `c15_NN_<name>`.
    pub function: &'static str,
    /// Runs the check.
    pub run: fn(Ctx) -> CheckFuture,
}

/// A checklist item the suite does not run, and why.
#[derive(Debug, Clone)]
pub struct Skip {
    /// Item number in the checklist (docs/conformance.md).
    pub item: u8,
    /// Short name.
    pub name: &'static str,
    /// Why it does not apply.
    pub reason: String,
}

/// Registers `$function` as the check for item `$item`.
macro_rules! check {
    ($item:expr, $function:ident) => {
        $crate::conformance::Check {
            item: $item,
            name: stringify!($function).split_at(7).1,
            function: stringify!($function),
            run: |ctx| Box::pin($function(ctx)),
        }
    };
}
pub(crate) use check;

/// Everything a check needs: where the hub is, how to get tokens, and timing knobs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `hub.url` of every gateway of the hub under test (at least one).
    hub_urls: Arc<[String]>,
    /// Which of `hub_urls` the next client or subscription uses; shared by the clones of one
    /// check's context, fresh for each check (see [`Ctx::for_check`]).
    next_url: Arc<AtomicUsize>,
    tokens: TokenSource,
    /// The hub's ack timeout (10 s by default).
    pub ack_timeout: Duration,
    /// The hub's attach window (30 s by default).
    pub attach_window: Duration,
    /// How long the hub waits for a subscriber whose connection closed abnormally to
    /// re-attach before it raises a SyncError about it (10 s by default).
    pub reconnect_grace: Duration,
}

impl Ctx {
    /// Creates a context with the hub's default timing.
    pub fn new(hub_url: &str, tokens: TokenSource) -> Self {
        Self::with_urls(vec![hub_url.trim_end_matches('/').to_owned()], tokens)
    }

    /// Creates a context for a hub served by several gateways (`hub.url` of each): the
    /// clients and subscriptions of every check are spread over them round-robin.
    pub fn spread<S: AsRef<str>>(hub_urls: &[S], tokens: TokenSource) -> Result<Self> {
        ensure!(!hub_urls.is_empty(), "a hub needs at least one hub.url");
        let urls = hub_urls
            .iter()
            .map(|url| url.as_ref().trim_end_matches('/').to_owned())
            .collect();
        Ok(Self::with_urls(urls, tokens))
    }

    fn with_urls(hub_urls: Vec<String>, tokens: TokenSource) -> Self {
        Self {
            hub_urls: hub_urls.into(),
            next_url: Arc::new(AtomicUsize::new(0)),
            tokens,
            ack_timeout: Duration::from_secs(10),
            attach_window: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(10),
        }
    }

    /// Sets the timing knobs the hub was configured with.
    pub fn with_timing(mut self, ack_timeout: Duration, attach_window: Duration) -> Self {
        self.ack_timeout = ack_timeout;
        self.attach_window = attach_window;
        self
    }

    /// Sets the reconnect grace the hub was configured with.
    pub fn with_reconnect_grace(mut self, reconnect_grace: Duration) -> Self {
        self.reconnect_grace = reconnect_grace;
        self
    }

    /// Waits until any SyncError the hub may raise after its reconnect grace for something
    /// that already happened would have been raised, so a marker sent afterwards follows it.
    pub(crate) async fn wait_out_reconnect_grace(&self) {
        tokio::time::sleep(self.reconnect_grace + TIMER_SLACK).await;
    }

    /// Returns a context for one check: the same hub, timing and tokens, with its own
    /// rotation over the hub URLs starting at `first` (modulo their number), so what a check
    /// does lands on the same gateways whatever runs beside it.
    pub(crate) fn for_check(&self, first: usize) -> Self {
        Self {
            next_url: Arc::new(AtomicUsize::new(first % self.hub_urls.len())),
            ..self.clone()
        }
    }

    /// Returns `hub.url` (the first one when there are several).
    pub fn hub_url(&self) -> &str {
        &self.hub_urls[0]
    }

    /// Returns `hub.url` of every gateway, in rotation order.
    pub fn hub_urls(&self) -> &[String] {
        &self.hub_urls
    }

    /// Returns the hub URL the next client or subscription uses, and moves the rotation on.
    /// This is the one place where a check's clients get their hub URL.
    fn next_hub_url(&self) -> &str {
        let turn = self.next_url.fetch_add(1, Ordering::Relaxed);
        &self.hub_urls[turn % self.hub_urls.len()]
    }

    /// Returns the token source.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// Returns a client for `topic` with a token allowing everything.
    pub(crate) async fn client(&self, topic: &str) -> Result<HubClient> {
        self.client_scoped(topic, ALL_SCOPES, TOKEN_LIFETIME).await
    }

    /// Returns a client for `topic` with a token carrying `scopes` for `expires_in` seconds.
    pub(crate) async fn client_scoped(
        &self,
        topic: &str,
        scopes: &str,
        expires_in: u64,
    ) -> Result<HubClient> {
        let token = self
            .tokens
            .token(topic, scopes, expires_in)
            .await
            .context("obtaining a token")?;
        Ok(HubClient::new(self.next_hub_url(), topic, Some(token)))
    }

    /// Returns a client for `topic` without a token.
    pub(crate) fn anonymous(&self, topic: &str) -> HubClient {
        HubClient::new(self.next_hub_url(), topic, None)
    }

    /// Subscribes `client` to `events`, attaches and reads the confirmation.
    pub(crate) async fn subscriber(&self, client: &HubClient, events: &str) -> Result<Subscriber> {
        self.subscriber_with(client, events, &[]).await
    }

    /// Like [`Ctx::subscriber`] with extra subscribe parameters (`subscriber.name`, …).
    /// The subscription goes through the next hub URL in turn (with `client`'s topic and
    /// token), so on a cluster it is usually another gateway than the one `client` publishes
    /// through.
    pub(crate) async fn subscriber_with(
        &self,
        client: &HubClient,
        events: &str,
        extra: &[(&str, &str)],
    ) -> Result<Subscriber> {
        let client = client.with_hub_url(self.next_hub_url());
        let reply = client.subscribe_with(events, extra).await?;
        reply.expect(202, &format!("subscribe to {events}"))?;
        let endpoint = endpoint_of(&reply)?;
        Subscriber::connect_confirmed(&endpoint, MSG).await
    }

    /// Fetches the discovery document.
    pub(crate) async fn discovery(&self) -> Result<Value> {
        let reply = self.anonymous("discovery").discovery().await?;
        reply.expect(200, "discovery")?;
        reply.json()
    }
}

/// Returns every implemented check, in item order.
pub fn checks() -> Vec<Check> {
    let mut all = Vec::new();
    all.extend(discovery::checks());
    all.extend(transport::checks());
    all.extend(subscribe::checks());
    all.extend(unsubscribe::checks());
    all.extend(channel::checks());
    all.extend(events::checks());
    all.extend(sync_error::checks());
    all.extend(derived::checks());
    all.extend(context::checks());
    all.extend(content_sharing::checks());
    all.extend(content_rules::checks());
    all.extend(auth::checks());
    all.sort_by_key(|check| check.item);
    all
}

/// Returns the items that never apply to this hub, with reasons.
pub fn static_skips() -> Vec<Skip> {
    let skip = |item, name, reason: &str| Skip {
        item,
        name,
        reason: reason.to_owned(),
    };
    vec![
        skip(
            45,
            "deferred_reject_sync_error_to_requester",
            "not applicable: the hub decides synchronously and answers 2xx only after committing",
        ),
        skip(
            65,
            "reject_mismatched_subscriptions",
            "not applicable: the hub supports derived events",
        ),
    ]
}

/// Returns the checks and skips for this hub: reads discovery to pick 89 or 90.
pub async fn plan(ctx: &Ctx) -> Result<(Vec<Check>, Vec<Skip>)> {
    let discovery = ctx
        .discovery()
        .await
        .context("reading discovery to plan the suite")?;
    let non_current = match discovery.pointer("/capabilities/supportsNonCurrentContextUpdates") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => bail!("supportsNonCurrentContextUpdates is not a boolean: {other}"),
    };
    let (skipped_item, name) = if non_current {
        (89, "non_current_update_rejected")
    } else {
        (90, "non_current_update_applied")
    };
    let mut skips = static_skips();
    skips.push(Skip {
        item: skipped_item,
        name,
        reason: format!("discovery advertises supportsNonCurrentContextUpdates={non_current}"),
    });
    let mut skipped = vec![skipped_item];
    if !transport::applies(ctx) {
        for check in transport::checks() {
            skipped.push(check.item);
            skips.push(Skip {
                item: check.item,
                name: check.name,
                reason: "the target is plain HTTP (a loopback hub): run the suite against an \
                         https:// hub, e.g. --embedded --tls"
                    .to_owned(),
            });
        }
    }
    skips.sort_by_key(|skip| skip.item);
    let checks = checks()
        .into_iter()
        .filter(|check| !skipped.contains(&check.item))
        .collect();
    Ok((checks, skips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_checklist_item_is_checked_or_skipped_once() {
        let mut items: Vec<u8> = checks().iter().map(|check| check.item).collect();
        items.extend(static_skips().iter().map(|skip| skip.item));
        items.sort_unstable();
        assert_eq!(items, (1..=96).collect::<Vec<u8>>());
    }

    #[test]
    fn clients_take_the_hub_urls_in_turn_from_a_start_per_check() -> Result<()> {
        let tokens = TokenSource::Command("true".to_owned());
        let ctx = Ctx::spread(&["http://a/api/hub/", "http://b/api/hub"], tokens.clone())?;
        let urls = |ctx: &Ctx| -> Vec<String> {
            (0..3)
                .map(|_| ctx.anonymous("topic").hub_url().to_owned())
                .collect()
        };
        let (a, b) = ("http://a/api/hub".to_owned(), "http://b/api/hub".to_owned());
        assert_eq!(urls(&ctx), [a.clone(), b.clone(), a.clone()]);
        assert_eq!(urls(&ctx.for_check(7)), [b.clone(), a.clone(), b.clone()]);
        assert_eq!(ctx.hub_url(), a);
        // Clones made inside a check share its rotation.
        let check = ctx.for_check(0);
        let clone = check.clone();
        assert_eq!(check.anonymous("t").hub_url(), a);
        assert_eq!(clone.anonymous("t").hub_url(), b);
        // One URL: nothing rotates.
        let single = Ctx::new("http://a/api/hub", tokens.clone());
        assert_eq!(urls(&single.for_check(5)), [a.clone(), a.clone(), a]);
        assert!(Ctx::spread::<&str>(&[], tokens).is_err());
        Ok(())
    }

    #[test]
    fn check_names_match_their_functions() {
        for check in checks() {
            let prefix = format!("c15_{:02}_", check.item);
            assert!(
                check.function.starts_with(&prefix),
                "{} registered as 15.{:02}",
                check.function,
                check.item
            );
            assert_eq!(format!("{prefix}{}", check.name), check.function);
        }
    }
}
