//! One `redis-server` process under test: its options, config file, data directory and the
//! fault hooks the cluster tests use (kill -9, restart on the same port and data, SIGSTOP).
//!
//! The config file and the data directory live in the server's own temporary directory,
//! which outlives the process so that a restart finds the AOF (and, for a sentinel or a
//! cluster node, the state Redis rewrote into its config). The process itself is a
//! [`Process`]: stdout (Redis's log) and stderr go to its log directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::log_archive::SecretKind;

use ::redis::aio::MultiplexedConnection;
use anyhow::{Context as _, Result, anyhow, ensure};

use super::{START_DEADLINE, STOP_DEADLINE, binary, connect, free_port, info_field, redis_client};
use crate::certs::TlsFiles;
use crate::eventually::eventually;
use crate::process::Process;

/// How a client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAuth {
    /// `requirepass`: the `default` user with this password.
    Password(String),
    /// An ACL user with every permission (`~* &* +@all`); the `default` user is disabled.
    User {
        /// The user name.
        name: String,
        /// Its password.
        password: String,
    },
}

/// What a process is: a plain server, a cluster node or a sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Data,
    ClusterNode,
    Sentinel,
}

/// How to start a [`RedisServer`]. [`RedisOptions::new`] is the production setting: AOF
/// with `appendfsync always`, no auth, no TLS.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    aof: bool,
    auth: Option<RedisAuth>,
    tls: bool,
    replica_of: Option<SocketAddr>,
    directives: Vec<String>,
    mode: Mode,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisOptions {
    /// AOF on (`appendonly yes`, `appendfsync always`), no auth, no TLS.
    pub fn new() -> Self {
        Self {
            aof: true,
            auth: None,
            tls: false,
            replica_of: None,
            directives: Vec::new(),
            mode: Mode::Data,
        }
    }

    /// No persistence at all (`appendonly no`, `save ""`): for topologies whose tests never
    /// restart a server.
    pub fn ephemeral() -> Self {
        Self::new().aof(false)
    }

    /// Turns the AOF on or off (RDB snapshots are always off).
    pub fn aof(mut self, on: bool) -> Self {
        self.aof = on;
        self
    }

    /// Requires this password for the `default` user (`requirepass`).
    pub fn password(mut self, password: &str) -> Self {
        crate::log_archive::register_secret(SecretKind::Credential, password);
        self.auth = Some(RedisAuth::Password(password.to_owned()));
        self
    }

    /// Adds an ACL user with every permission and disables the `default` user.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        crate::log_archive::register_secret(SecretKind::Credential, password);
        self.auth = Some(RedisAuth::User {
            name: name.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Serves TLS only (`port 0`, `tls-port`), with a CA and certificate generated at start.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts as a replica of `primary` (`replicaof`; with `masteruser`/`masterauth` when
    /// this server has auth: the primary must accept the same credentials).
    pub fn replica_of(mut self, primary: SocketAddr) -> Self {
        self.replica_of = Some(primary);
        self
    }

    /// Adds a raw `redis.conf` directive, e.g. `maxmemory 10mb`.
    pub fn directive(mut self, line: &str) -> Self {
        self.directives.push(line.to_owned());
        self
    }

    pub(super) fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Renders `redis.conf` for a server on `port` (and cluster bus port `bus`).
    fn render(&self, port: u16, bus: Option<u16>, data: &Path, tls: Option<&TlsFiles>) -> String {
        let mut lines = vec![
            "bind 127.0.0.1".to_owned(),
            "protected-mode no".to_owned(),
            format!("dir {}", quoted(data)),
        ];
        match tls {
            None => lines.push(format!("port {port}")),
            Some(files) => lines.extend([
                "port 0".to_owned(),
                format!("tls-port {port}"),
                format!("tls-cert-file {}", quoted(&files.cert)),
                format!("tls-key-file {}", quoted(&files.key)),
                format!("tls-ca-cert-file {}", quoted(&files.ca)),
                "tls-auth-clients no".to_owned(),
            ]),
        }
        if self.mode != Mode::Sentinel {
            // A replica syncs at once instead of after the default 5 s batching delay.
            lines.extend([
                "save \"\"".to_owned(),
                "repl-diskless-sync-delay 0".to_owned(),
            ]);
            if self.aof {
                lines.extend(["appendonly yes".to_owned(), "appendfsync always".to_owned()]);
            } else {
                lines.push("appendonly no".to_owned());
            }
        }
        match &self.auth {
            None => {}
            Some(RedisAuth::Password(password)) => lines.push(format!("requirepass {password}")),
            Some(RedisAuth::User { name, password }) => lines.extend([
                "user default off".to_owned(),
                format!("user {name} on >{password} ~* &* +@all"),
            ]),
        }
        if let Some(primary) = self.replica_of {
            lines.push(format!("replicaof {} {}", primary.ip(), primary.port()));
            match &self.auth {
                None => {}
                Some(RedisAuth::Password(password)) => lines.push(format!("masterauth {password}")),
                Some(RedisAuth::User { name, password }) => {
                    lines.extend([
                        format!("masteruser {name}"),
                        format!("masterauth {password}"),
                    ]);
                }
            }
        }
        if let Some(bus) = bus {
            lines.extend([
                "cluster-enabled yes".to_owned(),
                "cluster-config-file nodes.conf".to_owned(),
                format!("cluster-port {bus}"),
                "cluster-node-timeout 3000".to_owned(),
            ]);
        }
        lines.extend(self.directives.iter().cloned());
        lines.push(String::new());
        lines.join("\n")
    }
}

/// A running (or killed, until restarted) Redis process on a fixed loopback port.
#[derive(Debug)]
pub struct RedisServer {
    options: RedisOptions,
    dir: PathBuf,
    port: u16,
    tls: Option<TlsFiles>,
    process: Option<Process>,
    /// The connection [`RedisServer::query`] reuses (polls run many commands); dropped on
    /// any error and whenever the process changes.
    cached: Mutex<Option<MultiplexedConnection>>,
}

impl RedisServer {
    /// Starts a server with `options` on a free port and waits until it answers PING.
    pub async fn start(options: RedisOptions) -> Result<Self> {
        ensure!(
            !(options.tls && options.replica_of.is_some()),
            "a TLS replica is not supported by the harness (each server has its own CA)"
        );
        let dir = std::env::temp_dir().join(format!(
            "hub-tests-redis-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let tls = if options.tls {
            Some(TlsFiles::generate(&dir.join("tls"))?)
        } else {
            None
        };
        let mut server = Self {
            options,
            dir,
            port: 0,
            tls,
            process: None,
            cached: Mutex::new(None),
        };
        // Free ports are only free until someone else binds them: retry once on a clash.
        let mut clash = None;
        for _ in 0..2 {
            server.configure()?;
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(error) if format!("{error:#}").contains("Address already in use") => {
                    clash = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(clash
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context("ports taken twice in a row"))
    }

    /// Picks free ports and writes a fresh config file and an empty data directory.
    fn configure(&mut self) -> Result<()> {
        self.port = free_port()?;
        let bus = match self.options.mode {
            Mode::ClusterNode => Some(loop {
                let bus = free_port()?;
                if bus != self.port {
                    break bus;
                }
            }),
            Mode::Data | Mode::Sentinel => None,
        };
        let data = self.dir.join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("emptying {}", data.display()))?;
        }
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let config = self
            .options
            .render(self.port, bus, &data, self.tls.as_ref());
        std::fs::write(self.config_path(), config).context("writing redis.conf")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("redis.conf")
    }

    /// Spawns the process on the configured port and waits until it answers PING (a server
    /// loading its AOF answers `-LOADING` until it is done) and `INFO` names its pid.
    async fn spawn(&mut self) -> Result<()> {
        let kind = match self.options.mode {
            Mode::Data => "redis",
            Mode::ClusterNode => "redis-cluster",
            Mode::Sentinel => "redis-sentinel",
        };
        let name = format!("{kind}-{}", self.port);
        let mut args = vec![self.config_path().display().to_string()];
        if self.options.mode == Mode::Sentinel {
            args.push("--sentinel".to_owned());
        }
        let process = Process::spawn(&name, &binary("redis-server")?, &args)?;
        let client = self.client()?;
        let pid = process.pid();
        let ready = eventually(&format!("{name} answers PING"), START_DEADLINE, || {
            let exited = has_exited(pid);
            let client = client.clone();
            async move {
                if exited {
                    return Ok(Some(Err(anyhow!("exited early"))));
                }
                let mut connection = connect(&client).await?;
                let pong: String = ::redis::cmd("PING").query_async(&mut connection).await?;
                ensure!(pong == "PONG", "PING answered {pong}");
                // A process that took the port first would answer too.
                let info: String = ::redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut connection)
                    .await?;
                let answered_by = info_field(&info, "process_id");
                ensure!(
                    answered_by == Some(pid.to_string().as_str()),
                    "the port is answered by process {answered_by:?}"
                );
                Ok(Some(Ok(())))
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => {
                self.process = Some(process);
                Ok(())
            }
            Ok(Err(error)) | Err(error) => {
                Err(error.context(format!("{name} did not start\n{}", process.logs_tail())))
            }
        }
    }

    /// Returns `127.0.0.1:port`.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Returns the port (the TLS port for a TLS server). It survives a restart.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the URL a client uses, credentials included: `redis://user:pass@127.0.0.1:port/`
    /// or `rediss://…` (trust [`RedisServer::ca_path`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let credentials = match &self.options.auth {
            None => String::new(),
            Some(RedisAuth::Password(password)) => format!(":{password}@"),
            Some(RedisAuth::User { name, password }) => format!("{name}:{password}@"),
        };
        format!("{scheme}://{credentials}{}/", self.address())
    }

    /// Returns the PEM file of the CA that signed a TLS server's certificate.
    pub fn ca_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|files| files.ca.as_path())
    }

    /// Returns a client for [`RedisServer::url`] (trusting the CA for TLS).
    pub fn client(&self) -> Result<::redis::Client> {
        redis_client(&self.url(), self.ca_path())
    }

    /// Opens a fresh connection with the harness's timeouts.
    pub async fn connection(&self) -> Result<MultiplexedConnection> {
        connect(&self.client()?).await
    }

    /// Runs one command on the harness's own connection to this server (opened on first
    /// use, reopened after any error).
    pub async fn query<T: ::redis::FromRedisValue>(&self, command: &::redis::Cmd) -> Result<T> {
        let cached = self.cached.lock().ok().and_then(|cached| cached.clone());
        let mut connection = match cached {
            Some(connection) => connection,
            None => self.connection().await?,
        };
        let result = command.query_async(&mut connection).await;
        let keep = result.is_ok().then_some(connection);
        if let Ok(mut cached) = self.cached.lock() {
            *cached = keep;
        }
        result.with_context(|| format!("querying {}", self.address()))
    }

    fn forget_connection(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }

    /// Returns the pid of the running process (`None` after [`RedisServer::kill_9`]).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Returns the directory holding `redis.conf` and `data/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the tail of the current process's logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        self.process
            .as_ref()
            .map_or_else(|| "(not running)".to_owned(), Process::logs_tail)
    }

    /// Kills the process with SIGKILL (no shutdown, no final fsync) and reaps it.
    pub async fn kill_9(&mut self) -> Result<()> {
        let mut process = self.process.take().context("the server is not running")?;
        self.forget_connection();
        process.signal("KILL")?;
        process.wait_exit(STOP_DEADLINE).await?;
        process.forget_child();
        let _ = std::fs::remove_dir_all(process.dir());
        Ok(())
    }

    /// Starts the server again on the same port with the same config file and data (a
    /// running process is stopped gracefully first); waits until it answers PING.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(process) = self.process.take() {
            stop_process(process).await?;
        }
        self.forget_connection();
        self.spawn().await
    }

    /// Freezes the process (SIGSTOP): the port stays open, nothing answers.
    pub fn sigstop(&self) -> Result<()> {
        self.running()?.signal("STOP")
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn sigcont(&self) -> Result<()> {
        self.running()?.signal("CONT")
    }

    fn running(&self) -> Result<&Process> {
        self.process.as_ref().context("the server is not running")
    }

    /// Stops the process gracefully (SIGTERM, exit status 0) and removes its directory.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(process) = self.process.take() {
            stop_process(process).await?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Resumes (in case it was frozen) and stops a process with SIGTERM.
async fn stop_process(process: Process) -> Result<()> {
    process.signal("CONT")?;
    process.stop(STOP_DEADLINE).await
}

/// Whether the child `pid` has exited (it is a zombie until reaped, or gone).
fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| matches!(state, 'Z' | 'X')),
    }
}

fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}
