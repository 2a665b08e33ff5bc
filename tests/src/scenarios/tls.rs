//! HTTPS and WSS on the gateway itself (TLS-02, TLS-05, TLS-06, checklist 15.05 and 15.07):
//! with a certificate the gateway serves only TLS on its port, hands out `wss://` endpoints,
//! sends HSTS, never negotiates compression (a CRIME/BREACH-style oracle on PHI), and picks
//! up a rotated certificate for new connections while open sockets stay; a
//! plaintext listener off loopback, or a TLS proxy declared without its `https://` URL, is
//! refused at start-up.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig};
use crate::certs::TlsFiles;
use crate::conformance::assert::expect_event;
use crate::eventually::eventually;
use crate::gateway::GatewayBuilder;
use crate::payloads::{patient_open, random_topic};
use crate::scratch::Scratch;
use crate::subscriber::Subscriber;

/// How often the gateway under test checks its certificate files.
const RELOAD_CHECK: Duration = Duration::from_millis(200);

fn certificates(dir: &Path, name: &str) -> Result<TlsFiles> {
    TlsFiles::generate(&dir.join(name))
}

async fn tls_rig(files: &TlsFiles) -> Result<Rig> {
    Rig::start_with(|builder| {
        builder.tls(files).arg(format!(
            "--tls-reload-check-ms={}",
            RELOAD_CHECK.as_millis()
        ))
    })
    .await
}

#[tokio::test]
async fn tls_02_a_tls_gateway_serves_https_and_wss_only_with_hsts() -> Result<()> {
    let dir = Scratch::new("tls")?;
    let files = certificates(&dir, "first")?;
    let rig = tls_rig(&files).await?;
    ensure!(rig.gateway.base_url().starts_with("https://"));

    // 15.05: the API answers over HTTPS, with HSTS.
    let client = rig.client(&random_topic())?;
    let discovery = client.discovery().await?;
    discovery.expect(200, "discovery over HTTPS")?;
    let hsts = discovery
        .headers
        .get("strict-transport-security")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(
        hsts.starts_with("max-age="),
        "no HSTS header: {:?}",
        discovery.headers
    );

    // 15.07: the endpoint is wss://, and a subscriber gets its events over it.
    let endpoint = client.subscribe("Patient-open").await?;
    ensure!(endpoint.starts_with("wss://"), "the endpoint is {endpoint}");
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let event = patient_open(client.topic(), "p-tls");
    client.publish_ok(&event).await?;
    expect_event(&mut subscriber, "Patient-open", event["id"].as_str()).await?;

    // The same port refuses plain HTTP and ws://.
    let plain = rig.gateway.base_url().replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/api/hub"))
        .timeout(MSG)
        .send()
        .await;
    ensure!(
        answer.is_err(),
        "plain HTTP on the TLS port was answered: {answer:?}"
    );
    let plain_ws = endpoint.replacen("wss://", "ws://", 1);
    ensure!(
        Subscriber::try_connect(&plain_ws).await.is_err(),
        "ws:// on the TLS port was accepted"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn tls_06_a_rotated_certificate_serves_new_connections_and_open_sockets_stay() -> Result<()> {
    let dir = Scratch::new("tls")?;
    let first = certificates(&dir, "first")?;
    let second = certificates(&dir, "second")?;
    let rig = tls_rig(&first).await?;
    let client = rig.client(&random_topic())?;
    let mut subscriber = rig.subscriber(&client, "Patient-open").await?;

    // Only a client that trusts the second CA alone tells which certificate is served.
    let second_only = client_trusting_only(&second.ca)?;
    let healthz = format!("{}/healthz", rig.gateway.base_url());
    ensure!(
        second_only.get(&healthz).send().await.is_err(),
        "the first certificate chains to the second CA?"
    );
    std::fs::copy(&second.key, &first.key).context("rotating the key")?;
    std::fs::copy(&second.cert, &first.cert).context("rotating the certificate")?;
    eventually(
        "new connections get the rotated certificate",
        Duration::from_secs(10),
        || async {
            let fresh = client_trusting_only(&second.ca)?;
            Ok(fresh.get(&healthz).send().await.is_ok().then_some(()))
        },
    )
    .await?;

    // The socket opened before the rotation still delivers.
    let event = patient_open(client.topic(), "p-after-rotation");
    client.publish_ok(&event).await?;
    expect_event(&mut subscriber, "Patient-open", event["id"].as_str()).await?;

    // A broken rotation (a key that does not match) keeps the current certificate.
    std::fs::copy(&second.key, &first.key).context("re-copying the key")?;
    std::fs::write(&first.cert, b"not a certificate").context("breaking the certificate")?;
    tokio::time::sleep(RELOAD_CHECK * 5).await;
    let fresh = client_trusting_only(&second.ca)?;
    fresh
        .get(&healthz)
        .send()
        .await
        .context("a broken rotation replaced the working certificate")?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn tls_05_no_compression_is_negotiated_whatever_the_client_offers() -> Result<()> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let dir = Scratch::new("tls")?;
    let rig = tls_rig(&certificates(&dir, "first")?).await?;
    let client = rig.client(&random_topic())?;
    let endpoint = client.subscribe("Patient-open").await?;
    let mut request = endpoint.as_str().into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits".parse()?,
    );
    let (_socket, response) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        crate::certs::websocket_connector(),
    )
    .await
    .context("the upgrade")?;
    ensure!(
        response.headers().get("sec-websocket-extensions").is_none(),
        "the hub negotiated an extension: {:?}",
        response.headers()
    );
    rig.gateway.stop().await
}

/// A gateway configured as in production (an issuer it never needs to reach: these starts
/// are refused before anything connects).
fn configured() -> GatewayBuilder {
    GatewayBuilder::new()
        .arg("--issuer=https://issuer.example.org")
        .arg("--jwks-url=https://issuer.example.org/jwks.json")
        .arg("--audience=fhircast-hub")
}

#[tokio::test]
async fn tls_02_a_plaintext_listener_off_loopback_is_refused() -> Result<()> {
    let builder = configured().listen("0.0.0.0:0");
    builder
        .expect_refused("refusing a plaintext listener")
        .await
}

#[tokio::test]
async fn tls_02_a_tls_proxy_declared_without_its_https_url_is_refused() -> Result<()> {
    for public_url in [None, Some("http://hub.example.org")] {
        let mut builder = configured().listen("0.0.0.0:0").arg("--behind-tls-proxy");
        if let Some(url) = public_url {
            builder = builder.arg(format!("--public-url={url}"));
        }
        builder
            .expect_refused("--behind-tls-proxy needs --public-url")
            .await
            .with_context(|| format!("public URL {public_url:?}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn tls_a_bad_pair_an_http_public_url_or_the_dev_issuer_are_refused() -> Result<()> {
    let dir = Scratch::new("tls")?;
    let first = certificates(&dir, "first")?;
    let second = certificates(&dir, "second")?;
    let builder = configured()
        .arg(format!("--tls-cert={}", first.cert.display()))
        .arg(format!("--tls-key={}", second.key.display()));
    builder.expect_refused("--tls-cert/--tls-key").await?;
    let builder = configured()
        .tls(&first)
        .arg("--public-url=http://hub.example.org");
    builder
        .expect_refused("--public-url must be an https:// URL")
        .await?;
    let builder = GatewayBuilder::new().dev_issuer().tls(&first);
    builder
        .expect_refused("--dev-issuer does not combine with --tls-cert")
        .await
}

/// An HTTP client that trusts the CA in `ca` and nothing else.
fn client_trusting_only(ca: &Path) -> Result<reqwest::Client> {
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
        .timeout(MSG)
        .build()
        .context("building the HTTP client")
}
