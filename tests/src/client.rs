//! HTTP side of a FHIRcast client: subscribe, unsubscribe, publish, get context, raw posts.
//!
//! Every call returns a [`Reply`] (status, content type, body as text) so tests can assert
//! error reasons as well as success bodies. Nothing here retries: one call, one request.

use anyhow::{Context as _, Result, bail};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use serde_json::Value;

use crate::log_archive::SecretKind;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Reply {
    pub(crate) async fn read(response: reqwest::Response) -> Result<Self> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.context("reading the response body")?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    /// Returns the `Content-Type` header (empty when absent).
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// Parses the body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("body is not JSON: `{}`", self.body))
    }

    /// Fails unless the status is `status`.
    pub fn expect(&self, status: u16, what: &str) -> Result<&Self> {
        if self.status != status {
            bail!(
                "{what}: expected {status}, got {} `{}`",
                self.status,
                self.body
            );
        }
        Ok(self)
    }

    /// Fails unless the status is 2xx.
    pub fn expect_success(&self, what: &str) -> Result<&Self> {
        if !(200..300).contains(&self.status) {
            bail!("{what}: expected 2xx, got {} `{}`", self.status, self.body);
        }
        Ok(self)
    }

    /// Fails unless this is a 4xx carrying a non-empty human-readable reason.
    pub fn expect_client_error(&self, what: &str) -> Result<&Self> {
        if !(400..500).contains(&self.status) {
            bail!("{what}: expected 4xx, got {} `{}`", self.status, self.body);
        }
        self.expect_reason(what)
    }

    /// Fails unless this has exactly `status` and a non-empty reason.
    pub fn expect_error(&self, status: u16, what: &str) -> Result<&Self> {
        self.expect(status, what)?.expect_reason(what)
    }

    fn expect_reason(&self, what: &str) -> Result<&Self> {
        if self.body.trim().is_empty() {
            bail!(
                "{what}: {} has an empty body, expected a reason",
                self.status
            );
        }
        let content_type = self.content_type();
        if !(content_type.starts_with("text/plain") || content_type.starts_with("application/json"))
        {
            bail!("{what}: error body has content type `{content_type}`");
        }
        Ok(self)
    }
}

/// An HTTP client bound to one hub, one topic and (optionally) one token.
#[derive(Debug, Clone)]
pub struct HubClient {
    http: reqwest::Client,
    hub_url: String,
    topic: String,
    token: Option<String>,
}

impl HubClient {
    /// Creates a client for `topic` on the hub at `hub_url`.
    pub fn new(hub_url: &str, topic: &str, token: Option<String>) -> Self {
        Self {
            http: crate::certs::http_client(),
            hub_url: hub_url.trim_end_matches('/').to_owned(),
            topic: topic.to_owned(),
            token,
        }
    }

    /// Returns the same client with another token (or none).
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// Returns the same client for another topic (same token).
    pub fn with_topic(&self, topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            ..self.clone()
        }
    }

    /// Returns the same client (topic, token) talking to another hub URL: another gateway of
    /// the same cluster.
    pub fn with_hub_url(&self, hub_url: &str) -> Self {
        Self {
            hub_url: hub_url.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    /// Returns the topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Returns `hub.url`.
    pub fn hub_url(&self) -> &str {
        &self.hub_url
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    /// Fetches the discovery document (no token).
    pub async fn discovery(&self) -> Result<Reply> {
        let url = format!("{}/.well-known/fhircast-configuration", self.hub_url);
        Reply::read(
            self.http
                .get(&url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?,
        )
        .await
    }

    /// Posts a form with exactly these parameters (duplicates allowed).
    pub async fn post_form(&self, params: &[(&str, &str)]) -> Result<Reply> {
        let request = self.authorized(self.http.post(&self.hub_url)).form(params);
        Reply::read(request.send().await.context("POST form")?).await
    }

    /// Subscribes to `events` with the standard parameters plus `extra`.
    pub async fn subscribe_with(&self, events: &str, extra: &[(&str, &str)]) -> Result<Reply> {
        let mut params = vec![
            ("hub.channel.type", "websocket"),
            ("hub.mode", "subscribe"),
            ("hub.topic", self.topic.as_str()),
            ("hub.events", events),
        ];
        params.extend_from_slice(extra);
        self.post_form(&params).await
    }

    /// Subscribes to `events` and returns the endpoint, failing unless the hub answers 202.
    pub async fn subscribe(&self, events: &str) -> Result<String> {
        endpoint_of(
            self.subscribe_with(events, &[])
                .await?
                .expect(202, "subscribe")?,
        )
    }

    /// Unsubscribes `endpoint`.
    pub async fn unsubscribe(&self, endpoint: &str) -> Result<Reply> {
        self.post_form(&[
            ("hub.channel.type", "websocket"),
            ("hub.mode", "unsubscribe"),
            ("hub.topic", self.topic.as_str()),
            ("hub.channel.endpoint", endpoint),
        ])
        .await
    }

    /// Posts an event as `application/json`.
    pub async fn publish(&self, event: &Value) -> Result<Reply> {
        let body = serde_json::to_vec(event)?;
        self.post_raw(Some("application/json"), body).await
    }

    /// Posts an event and fails unless it is accepted with a 2xx.
    pub async fn publish_ok(&self, event: &Value) -> Result<()> {
        let reply = self.publish(event).await?;
        let name = event["event"]["hub.event"].as_str().unwrap_or("event");
        reply.expect_success(&format!("publish {name}"))?;
        Ok(())
    }

    /// Posts a raw body to `hub.url` with an optional content type.
    pub async fn post_raw(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Result<Reply> {
        self.post_raw_to(&self.hub_url, content_type, body).await
    }

    /// Posts a raw body to any URL with this client's token.
    pub async fn post_raw_to(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Result<Reply> {
        let mut request = self.authorized(self.http.post(url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        Reply::read(
            request
                .send()
                .await
                .with_context(|| format!("POST {url}"))?,
        )
        .await
    }

    /// Calls Get Current Context for this client's topic.
    pub async fn get_context(&self) -> Result<Reply> {
        let url = format!("{}/{}", self.hub_url, self.topic);
        Reply::read(
            self.authorized(self.http.get(&url))
                .send()
                .await
                .with_context(|| format!("GET {url}"))?,
        )
        .await
    }

    /// Calls Get Current Context and returns the JSON, failing unless it answers 200.
    pub async fn context(&self) -> Result<Value> {
        self.get_context()
            .await?
            .expect(200, "get current context")?
            .json()
    }
}

/// Extracts `hub.channel.endpoint` from a subscribe or unsubscribe reply.
pub fn endpoint_of(reply: &Reply) -> Result<String> {
    let json = reply.json()?;
    let endpoint = json
        .get("hub.channel.endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no hub.channel.endpoint in `{}`", reply.body))?;
    if let Some(id) = endpoint.rsplit('/').next() {
        crate::log_archive::register_secret(SecretKind::Endpoint, id);
    }
    Ok(endpoint)
}
