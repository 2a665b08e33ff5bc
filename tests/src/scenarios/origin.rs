//! TOP-12: `Origin` grants nothing, and cookies carry no credentials. With no `Origin`, a
//! forged one or a browser-like one, the hub decides the same: a valid token is served, a
//! token for another topic gets the unknown-topic 403, and a token offered only as a
//! cookie is a 401.

use anyhow::{Context as _, Result, ensure};
use reqwest::header::{AUTHORIZATION, COOKIE, ORIGIN};

use super::Rig;
use crate::client::Reply;
use crate::payloads::random_topic;

const ORIGINS: [Option<&str>; 4] = [
    None,
    Some("https://evil.example"),
    Some("null"),
    Some("https://ehr.hospital.example"),
];

async fn get_context(
    rig: &Rig,
    topic: &str,
    origin: Option<&str>,
    token: Option<&str>,
    cookie: Option<&str>,
) -> Result<Reply> {
    let mut request = crate::certs::http_client().get(format!("{}/{topic}", rig.gateway.hub_url()));
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    Reply::read(request.send().await.context("GET context")?).await
}

#[tokio::test]
async fn top_12_origin_grants_nothing_and_cookies_carry_no_credentials() -> Result<()> {
    let rig = Rig::start().await?;
    let topic = random_topic();
    let token = rig.issuer.mint(&topic, crate::token::ALL_SCOPES, 3600)?;
    let mut answers = Vec::new();
    for origin in ORIGINS {
        let own = get_context(&rig, &topic, origin, Some(&token), None).await?;
        let foreign = get_context(&rig, &random_topic(), origin, Some(&token), None).await?;
        let cookie = format!("access_token={token}; Authorization=Bearer%20{token}");
        let cookie_only = get_context(&rig, &topic, origin, None, Some(&cookie)).await?;
        answers.push((
            origin,
            [own.status, foreign.status, cookie_only.status],
            foreign.body,
        ));
    }
    for (origin, statuses, foreign_body) in &answers {
        ensure!(
            *statuses == [200, 403, 401],
            "with Origin {origin:?}: own topic, foreign topic, cookie only answered {statuses:?}"
        );
        ensure!(
            foreign_body == &answers[0].2,
            "the foreign-topic answer depends on Origin {origin:?}"
        );
    }
    rig.gateway.stop().await
}
