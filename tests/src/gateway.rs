//! The `fhircast-gateway` process: locating the binary, starting it, knowing its URLs.
//!
//! The harness never builds binaries (`make test` builds them first). The binary is taken
//! from `GATEWAY_BIN`, else `<target dir>/debug/fhircast-gateway`, where the target dir is
//! `CARGO_TARGET_DIR` or `<workspace>/target`. Every gateway listens on `127.0.0.1:0` and
//! announces its address with one stdout line `listening http://127.0.0.1:PORT` (`https://`
//! with [`GatewayBuilder::tls`]); the harness then waits for `GET /readyz` to answer 200.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::certs::TlsFiles;
use crate::eventually::eventually;
use crate::issuer::TestIssuer;
use crate::process::{Process, target_binary};

/// How long a gateway may take to print its listening line, and then to become ready.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a gateway may take to exit after SIGTERM.
pub const STOP_DEADLINE: Duration = Duration::from_secs(15);
pub use crate::process::EX_USAGE;
/// The audience the test issuer puts in its tokens and the gateway is told to expect.
pub const TEST_AUDIENCE: &str = "fhircast-hub-test";

/// Returns the path of the gateway binary, or explains how to build it.
pub fn gateway_binary() -> Result<PathBuf> {
    target_binary("GATEWAY_BIN", "fhircast-gateway")
}

/// Builds the command line of a gateway under test.
#[derive(Debug, Default, Clone)]
pub struct GatewayBuilder {
    name: Option<String>,
    binary: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    listen: Option<String>,
    /// The CA a TLS gateway's certificate chains to (clients of the harness trust it).
    ca: Option<PathBuf>,
    /// Whether the admin API is served (on a port of its own choosing).
    admin: bool,
}

impl GatewayBuilder {
    /// Starts from an empty command line (listening on `127.0.0.1:0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the process in its log directory and failure messages (default `gateway`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Uses this binary instead of the default lookup.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Trusts the in-process test issuer, finding its JWKS through its SMART configuration
    /// (`--issuer`, `--audience`, no `--jwks-url`).
    pub fn issuer_discovered(self, issuer: &TestIssuer) -> Self {
        self.arg("--issuer")
            .arg(issuer.issuer())
            .arg("--audience")
            .arg(TEST_AUDIENCE)
    }

    /// Trusts the in-process test issuer (`--issuer`, `--jwks-url`, `--audience`).
    pub fn issuer(self, issuer: &TestIssuer) -> Self {
        self.arg("--issuer")
            .arg(issuer.issuer())
            .arg("--jwks-url")
            .arg(issuer.jwks_url())
            .arg("--audience")
            .arg(TEST_AUDIENCE)
    }

    /// Trusts the issuers listed in `file` (`--issuers-file`), with [`TEST_AUDIENCE`] as the
    /// audience of those that name none.
    pub fn issuers_file(self, file: &std::path::Path) -> Self {
        self.arg(format!("--issuers-file={}", file.display()))
            .arg("--audience")
            .arg(TEST_AUDIENCE)
    }

    /// With [`GatewayBuilder::issuer_discovered`] or [`GatewayBuilder::issuer`]: also accepts
    /// the issuer's opaque tokens, checked at the introspection endpoint its SMART
    /// configuration names, as [`crate::issuer::INTROSPECTION_CLIENT_ID`] with the secret in
    /// `secret_file`, reusing answers for `cache_seconds`.
    pub fn introspection(self, secret_file: &std::path::Path, cache_seconds: u64) -> Self {
        self.arg("--introspection-client-id")
            .arg(crate::issuer::INTROSPECTION_CLIENT_ID)
            .arg(format!(
                "--introspection-client-secret-file={}",
                secret_file.display()
            ))
            .arg(format!("--introspection-cache-seconds={cache_seconds}"))
    }

    /// Enables the built-in development issuer.
    pub fn dev_issuer(self) -> Self {
        self.arg("--dev-issuer")
    }

    /// Sets the ack timeout.
    pub fn ack_timeout(self, timeout: Duration) -> Self {
        self.arg("--ack-timeout-ms")
            .arg(timeout.as_millis().to_string())
    }

    /// Sets the interval between the gateway's pings on idle sockets.
    pub fn ping_interval(self, interval: Duration) -> Self {
        self.arg("--ping-interval-ms")
            .arg(interval.as_millis().to_string())
    }

    /// Sets the attach window.
    pub fn attach_window(self, window: Duration) -> Self {
        self.arg("--attach-window-ms")
            .arg(window.as_millis().to_string())
    }

    /// Sets the re-attach window (0: single-use endpoints).
    pub fn reattach_window(self, window: Duration) -> Self {
        self.arg("--reattach-window-ms")
            .arg(window.as_millis().to_string())
    }

    /// Sets the reconnect grace before an abnormal close's SyncError.
    pub fn reconnect_grace(self, grace: Duration) -> Self {
        self.arg("--reconnect-grace-ms")
            .arg(grace.as_millis().to_string())
    }

    /// Overrides the listen address (only for tests that expect a refusal to start).
    pub fn listen(mut self, address: &str) -> Self {
        self.listen = Some(address.to_owned());
        self
    }

    /// Sets an environment variable of the process (e.g. `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Appends one raw argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Serves HTTPS and WSS with this certificate (`--tls-cert`, `--tls-key`); starting it
    /// makes this test process trust its CA ([`crate::certs::trust`]).
    pub fn tls(mut self, files: &TlsFiles) -> Self {
        self.ca = Some(files.ca.clone());
        self.arg(format!("--tls-cert={}", files.cert.display()))
            .arg(format!("--tls-key={}", files.key.display()))
    }

    /// Serves the admin API on a free loopback port with the secret in `secret_file`
    /// ([`Gateway::admin_url`] says where).
    pub fn admin(mut self, secret_file: &std::path::Path) -> Self {
        self.admin = true;
        self.arg("--admin-listen=127.0.0.1:0")
            .arg(format!("--admin-token-file={}", secret_file.display()))
    }

    fn command_line(&self) -> Vec<String> {
        let mut args = vec![
            "--listen".to_owned(),
            self.listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:0".to_owned()),
        ];
        args.extend(self.args.iter().cloned());
        args
    }

    /// Spawns the gateway without waiting for anything (for start-up refusal tests).
    pub fn spawn(&self) -> Result<Process> {
        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => gateway_binary()?,
        };
        Process::spawn_with_env(
            self.name.as_deref().unwrap_or("gateway"),
            &binary,
            &self.command_line(),
            Some("FHIRCAST_"),
            &self.env,
        )
    }

    /// Spawns the gateway and expects it to refuse its configuration: exit 64 (EX_USAGE)
    /// before binding anything, saying `reason` (case aside) on stderr.
    pub async fn expect_refused(&self, reason: &str) -> Result<()> {
        self.spawn()?.expect_refusal(reason, STOP_DEADLINE).await
    }

    /// Spawns the gateway and waits until it is listening and ready.
    pub async fn start(&self) -> Result<Gateway> {
        if let Some(ca) = &self.ca {
            crate::certs::trust(ca)?;
        }
        let mut process = self.spawn()?;
        let base_url = process
            .wait_for_stdout_line("listening ", START_DEADLINE)
            .await?;
        let expected = if self.ca.is_some() {
            "https://127.0.0.1:"
        } else {
            "http://127.0.0.1:"
        };
        if !base_url.starts_with(expected) {
            bail!(
                "unexpected listening line `{base_url}`\n{}",
                process.logs_tail()
            );
        }
        let admin_url = if self.admin {
            Some(
                process
                    .wait_for_stdout_line("admin listening ", START_DEADLINE)
                    .await?,
            )
        } else {
            None
        };
        let gateway = Gateway {
            process,
            base_url,
            admin_url,
            http: crate::certs::http_client(),
        };
        let ready = eventually("gateway /readyz answers 200", START_DEADLINE, || async {
            let response = gateway
                .http
                .get(format!("{}/readyz", gateway.base_url))
                .send()
                .await?;
            Ok((response.status() == 200).then_some(()))
        })
        .await;
        if let Err(error) = ready {
            return Err(error.context(gateway.process.logs_tail()));
        }
        Ok(gateway)
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    process: Process,
    base_url: String,
    admin_url: Option<String>,
    http: reqwest::Client,
}

impl Gateway {
    /// Returns `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Returns the admin API's base URL, when it was asked for
    /// ([`GatewayBuilder::admin`]).
    pub fn admin_url(&self) -> Option<&str> {
        self.admin_url.as_deref()
    }

    /// Returns the FHIRcast `hub.url` (`{base_url}/api/hub`).
    pub fn hub_url(&self) -> String {
        format!("{}/api/hub", self.base_url)
    }

    /// Returns the bound socket address.
    pub fn address(&self) -> Result<std::net::SocketAddr> {
        self.base_url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("gateway address in {}", self.base_url))
    }

    /// Returns the underlying process.
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Returns the underlying process, mutably (to signal it or wait for it).
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Asserts `GET /readyz` answers 200 `ok`.
    pub async fn assert_ready(&self) -> Result<()> {
        let response = self
            .http
            .get(format!("{}/readyz", self.base_url))
            .send()
            .await
            .with_context(|| format!("GET /readyz\n{}", self.process.logs_tail()))?;
        if response.status() != 200 {
            bail!(
                "/readyz answered {}\n{}",
                response.status(),
                self.process.logs_tail()
            );
        }
        Ok(())
    }

    /// Whether the process still runs (not killed or drained through this handle).
    pub fn is_running(&self) -> bool {
        !self.process.is_reaped()
    }

    /// Kills the gateway with SIGKILL (no drain: its sockets just drop) and reaps it. Its
    /// logs stay for failure messages.
    pub async fn kill_9(&mut self) -> Result<()> {
        self.process.signal("KILL")?;
        self.process.wait_exit(STOP_DEADLINE).await?;
        self.process.forget_child();
        Ok(())
    }

    /// Drains the gateway with SIGTERM (its sockets close with 1012) and asserts a clean
    /// exit within [`STOP_DEADLINE`]; the handle stays, with its logs.
    pub async fn drain(&mut self) -> Result<()> {
        self.process.signal("TERM")?;
        // Still running after the deadline: the handle keeps it, so dropping it kills it.
        let status = self
            .process
            .wait_exit(STOP_DEADLINE)
            .await
            .map_err(|error| error.context(self.process.logs_tail()))?;
        self.process.forget_child();
        if !status.success() {
            bail!(
                "the gateway exited with {status} after SIGTERM\n{}",
                self.process.logs_tail()
            );
        }
        Ok(())
    }

    /// Stops the gateway with SIGTERM and asserts a clean exit.
    pub async fn stop(self) -> Result<()> {
        self.process.stop(STOP_DEADLINE).await
    }
}
