//! Child processes: started (pinned to a core with `taskset` when pinning is on) with their
//! stdout read line by line and their stderr in a log file, and stopped by pid (SIGTERM,
//! then SIGKILL after a few seconds), every one of them, also on error and on Ctrl-C.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

/// How long a process may take to stop after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a child's stdout kept (the first ones: the `listening` line comes first).
const KEPT_LINES: usize = 200;

/// A temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/fhircast-bench.<pid>.<nanos>`.
    pub fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("fhircast-bench.{}.{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// A short name for logs and messages (`gw-0`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Run it under `taskset -c <core>`.
    pub core: Option<u32>,
}

impl Launch {
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            core: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn pinned(mut self, core: Option<u32>) -> Self {
        self.core = core;
        self
    }
}

/// A started process.
#[derive(Debug, Clone)]
pub struct Started {
    pub name: String,
    pub pid: u32,
    /// Its stderr.
    pub log: PathBuf,
    /// The first lines of its stdout.
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Started {
    /// Waits until a stdout line starts with `prefix` and returns the rest of it; fails if
    /// the process exits or `timeout` passes first.
    pub async fn await_line(
        &self,
        procs: &Procs,
        prefix: &str,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.lines.lock().ok().and_then(|lines| {
                lines
                    .iter()
                    .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            });
            if let Some(rest) = found {
                return Ok(rest.trim().to_owned());
            }
            if procs.exit_status(self.pid).is_some() {
                bail!(
                    "{} exited before printing `{prefix}`; its log ends:\n{}",
                    self.name,
                    log_tail(&self.log, 20)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not print `{prefix}` within {timeout:?}; its log ends:\n{}",
                    self.name,
                    log_tail(&self.log, 20)
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[derive(Debug)]
struct Running {
    name: String,
    pid: u32,
    child: Child,
    status: Option<ExitStatus>,
}

/// Every process this run started, in start order.
#[derive(Debug, Clone, Default)]
pub struct Procs {
    running: Arc<Mutex<Vec<Running>>>,
}

impl Procs {
    /// Starts `launch` with stderr in `<log_dir>/<name>.log`.
    pub fn start(&self, launch: &Launch, log_dir: &Path) -> Result<Started> {
        let log = log_dir.join(format!("{}.log", launch.name));
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = match launch.core {
            Some(core) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(core.to_string()).arg(&launch.program);
                cmd
            }
            None => Command::new(&launch.program),
        };
        cmd.args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} ({})", launch.name, launch.program.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{} has no pid", launch.name))?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stdout) = child.stdout.take() {
            let lines = Arc::clone(&lines);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if let Ok(mut kept) = lines.lock()
                        && kept.len() < KEPT_LINES
                    {
                        kept.push_back(line);
                    }
                }
            });
        }
        if let Ok(mut running) = self.running.lock() {
            running.push(Running {
                name: launch.name.clone(),
                pid,
                child,
                status: None,
            });
        }
        Ok(Started {
            name: launch.name.clone(),
            pid,
            log,
            lines,
        })
    }

    /// The exit status of `pid` if it has exited (and is one of ours).
    pub fn exit_status(&self, pid: u32) -> Option<ExitStatus> {
        let mut running = self.running.lock().ok()?;
        let entry = running.iter_mut().find(|r| r.pid == pid)?;
        if entry.status.is_none() {
            entry.status = entry.child.try_wait().ok().flatten();
        }
        entry.status
    }

    /// Waits for `pid` to exit, at most `timeout`; `None` if it still runs.
    pub async fn wait(&self, pid: u32, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status(pid) {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the processes with these pids: SIGTERM to all, then each is waited for
    /// ([`STOP_GRACE`]) and killed if it still runs. Returns a line per process.
    pub async fn stop(&self, pids: &[u32]) -> Vec<String> {
        let taken: Vec<Running> = match self.running.lock() {
            Ok(mut running) => {
                let (stop, keep): (Vec<_>, Vec<_>) =
                    running.drain(..).partition(|r| pids.contains(&r.pid));
                *running = keep;
                stop
            }
            Err(_) => Vec::new(),
        };
        stop_all(taken).await
    }

    /// Stops every process still registered, the last started first.
    pub async fn stop_everything(&self) -> Vec<String> {
        let taken: Vec<Running> = match self.running.lock() {
            Ok(mut running) => running.drain(..).rev().collect(),
            Err(_) => Vec::new(),
        };
        stop_all(taken).await
    }
}

async fn stop_all(mut taken: Vec<Running>) -> Vec<String> {
    for r in &mut taken {
        if r.status.is_none() && r.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(r.pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
    }
    let mut out = Vec::new();
    for mut r in taken {
        let how = match tokio::time::timeout(STOP_GRACE, r.child.wait()).await {
            Ok(_) => "stopped",
            Err(_) => {
                let _ = r.child.start_kill();
                let _ = tokio::time::timeout(STOP_GRACE, r.child.wait()).await;
                "killed (did not stop on SIGTERM)"
            }
        };
        out.push(format!("{} (pid {}) {how}", r.name, r.pid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_reads_and_stops() -> Result<()> {
        let dir = TempDir::new()?;
        let procs = Procs::default();
        let launch = Launch::new("echo", "sh").args(["-c", "echo 'listening x:1'; sleep 30"]);
        let started = procs.start(&launch, dir.path())?;
        let rest = started
            .await_line(&procs, "listening ", Duration::from_secs(5))
            .await?;
        assert_eq!(rest, "x:1");
        let lines = procs.stop(&[started.pid]).await;
        assert_eq!(lines.len(), 1);
        assert!(!super::super::procfs::alive(started.pid));
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists());
        Ok(())
    }

    #[tokio::test]
    async fn early_exit_is_an_error() -> Result<()> {
        let dir = TempDir::new()?;
        let procs = Procs::default();
        let launch = Launch::new("false", "sh").args(["-c", "echo oops >&2; exit 3"]);
        let started = procs.start(&launch, dir.path())?;
        let err = started
            .await_line(&procs, "listening ", Duration::from_secs(5))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("oops"), "{err}");
        procs.stop_everything().await;
        Ok(())
    }
}
