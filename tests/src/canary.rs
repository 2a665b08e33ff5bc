//! A canary HTTP server on `127.0.0.1:0` that answers every request with a fixed JSON
//! document and counts the requests. Forged tokens point their `jku`/`x5u` header at it:
//! any hit means the hub fetched a key location chosen by the token (TOK-05).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use serde_json::Value;
use tokio::task::JoinHandle;

/// A running canary. Dropping it stops the server.
#[derive(Debug)]
pub struct Canary {
    base_url: String,
    hits: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl Canary {
    /// Serves `body` (e.g. an attacker's JWKS) for every method and path.
    pub async fn start(body: Value) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the canary")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url,
            hits,
            server,
        })
    }

    /// Returns a URL on the canary (`http://127.0.0.1:PORT/<path>`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Returns how many requests the canary has seen.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn counts_every_request() -> Result<()> {
        let canary = Canary::start(json!({"keys": []})).await?;
        assert_eq!(canary.hits(), 0);
        let body: Value = reqwest::get(canary.url("/any/path")).await?.json().await?;
        assert_eq!(body, json!({"keys": []}));
        reqwest::Client::new()
            .post(canary.url("x5u"))
            .send()
            .await?;
        assert_eq!(canary.hits(), 2);
        Ok(())
    }
}
