//! A client of the gateway's admin API (mint, list, revoke topics), and the secret file a
//! gateway under test reads its credential from.

use anyhow::{Context as _, Result, bail};
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::log_archive::SecretKind;

use crate::client::Reply;
use crate::scratch::Scratch;

/// The admin secret the harness gives gateways.
pub const ADMIN_SECRET: &str = "hub-tests-admin-secret-0123456789abcdef";

/// A secret file for `GatewayBuilder::admin`, removed when dropped.
#[derive(Debug)]
pub struct AdminSecretFile {
    dir: Scratch,
}

impl AdminSecretFile {
    /// Writes [`ADMIN_SECRET`] (with a trailing newline, as editors leave it).
    pub fn new() -> Result<Self> {
        let dir = Scratch::new("admin")?;
        dir.write("admin-secret", &format!("{ADMIN_SECRET}\n"))?;
        crate::log_archive::register_secret(SecretKind::Credential, ADMIN_SECRET);
        Ok(Self { dir })
    }

    /// The file's path.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join("admin-secret")
    }
}

/// Calls the admin API at `base` (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    secret: Option<String>,
}

impl AdminClient {
    /// A client presenting [`ADMIN_SECRET`].
    pub fn new(base: &str) -> Self {
        Self {
            http: crate::certs::http_client(),
            base: base.to_owned(),
            secret: Some(ADMIN_SECRET.to_owned()),
        }
    }

    /// The same client presenting `secret` instead (`None`: no `Authorization`).
    pub fn with_secret(&self, secret: Option<&str>) -> Self {
        Self {
            secret: secret.map(str::to_owned),
            ..self.clone()
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.secret {
            Some(secret) => request.header(AUTHORIZATION, format!("Bearer {secret}")),
            None => request,
        }
    }

    /// `POST /admin/topics` with `body`.
    pub async fn post(&self, body: &Value) -> Result<Reply> {
        let request = self.send(self.http.post(format!("{}/admin/topics", self.base)));
        Reply::read(
            request
                .json(body)
                .send()
                .await
                .context("POST /admin/topics")?,
        )
        .await
    }

    /// Mints a topic for `user`; returns the topic.
    pub async fn mint(&self, user: &str) -> Result<String> {
        let reply = self.post(&json!({ "user": user })).await?;
        reply.expect(201, "minting a topic")?;
        let record = reply.json()?;
        match record["topic"].as_str() {
            Some(topic) => Ok(topic.to_owned()),
            None => bail!("a minted record without a topic: {record}"),
        }
    }

    /// `GET /admin/topics?{query}`.
    pub async fn list(&self, query: &str) -> Result<Reply> {
        let request = self.send(self.http.get(format!("{}/admin/topics?{query}", self.base)));
        Reply::read(request.send().await.context("GET /admin/topics")?).await
    }

    /// `DELETE /admin/topics/{topic}`.
    pub async fn revoke(&self, topic: &str) -> Result<Reply> {
        let request = self.send(
            self.http
                .delete(format!("{}/admin/topics/{topic}", self.base)),
        );
        Reply::read(request.send().await.context("DELETE /admin/topics/…")?).await
    }
}
