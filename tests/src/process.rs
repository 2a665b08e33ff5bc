//! Child processes under test: spawn, wait for the "listening" line, stop gracefully.
//!
//! Each process gets its own temporary directory holding `stdout.log` and `stderr.log`.
//! Stopping sends SIGTERM by pid and asserts a successful exit within a deadline, because the
//! graceful path is a feature; SIGKILL is only the fallback after that deadline, and then the
//! stop fails. Dropping a [`Process`] kills it (best effort) so a panicking test never leaks
//! a child. Failures include the tail of the process's logs.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::process::{Child, Command};

use crate::eventually::eventually;

/// Returns the path of a workspace binary: the file named by the environment variable
/// `env_var` when set, else `<target dir>/debug/<name>`, where the target dir is
/// `CARGO_TARGET_DIR` or `<workspace>/target`. The harness never builds binaries: a missing
/// one is an error that says how to build it.
pub fn target_binary(env_var: &str, name: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{env_var}={} does not exist", path.display());
        }
        return Ok(path);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target"),
    };
    let path = target.join("debug").join(name);
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first (or set {env_var})",
            path.display()
        );
    }
    Ok(path)
}

/// How many log lines a failure message shows.
const LOG_TAIL_LINES: usize = 40;
/// What the binaries exit with on a configuration they refuse (EX_USAGE).
pub const EX_USAGE: i32 = 64;

/// A running child process with its log files.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
}

impl Process {
    /// Spawns `program` with `args`, stdout and stderr going to log files in a fresh
    /// temporary directory.
    pub fn spawn(name: &str, program: &Path, args: &[String]) -> Result<Self> {
        Self::spawn_with_env(name, program, args, None, &[])
    }

    /// Like [`Process::spawn`], removing inherited environment variables whose names start
    /// with `env_prefix` (so a developer's `FHIRCAST_*` settings never leak into a test),
    /// then setting `env`.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env_prefix: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Self> {
        let dir = crate::log_archive::logs_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!(
                "hub-tests-{name}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stdout =
            std::fs::File::create(dir.join("stdout.log")).context("creating stdout.log")?;
        let stderr =
            std::fs::File::create(dir.join("stderr.log")).context("creating stderr.log")?;
        let mut command = Command::new(program);
        if let Some(prefix) = env_prefix {
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with(prefix) {
                    command.env_remove(key);
                }
            }
        }
        // Our own binaries log at the sweep's level while logs are archived (LOG-01),
        // unless the test chose a level.
        if env_prefix.is_some()
            && crate::log_archive::archive_dir().is_some()
            && !env.iter().any(|(key, _)| key == "RUST_LOG")
        {
            command.env("RUST_LOG", crate::log_archive::SWEEP_LOG_LEVEL);
        }
        let child = command
            .envs(env.iter().map(|(key, value)| (key, value)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{name} exited before it got a pid"))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            pid,
            dir,
        })
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns the resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("reading /proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS line")
    }

    /// Returns the directory holding this process's logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the whole stdout log so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// Returns the whole stderr log so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Returns the last lines of both logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        fn tail(text: &str) -> String {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        format!(
            "--- {} stdout (tail) ---\n{}\n--- {} stderr (tail) ---\n{}\n--- logs in {} ---",
            self.name,
            tail(&self.stdout_text()),
            self.name,
            tail(&self.stderr_text()),
            self.dir.display()
        )
    }

    /// Waits until stdout has a line starting with `prefix` and returns the rest of it.
    /// Fails early if the process exits first.
    pub async fn wait_for_stdout_line(
        &mut self,
        prefix: &str,
        deadline: Duration,
    ) -> Result<String> {
        let found = eventually(
            &format!("{} prints `{prefix}…`", self.name),
            deadline,
            || {
                let exited = self.try_exit_status();
                let line = self
                    .stdout_text()
                    .lines()
                    .find_map(|line| line.strip_prefix(prefix).map(|rest| rest.trim().to_owned()));
                async move {
                    match (line, exited) {
                        (Some(line), _) => Ok(Some(Ok(line))),
                        (None, Some(status)) => {
                            Ok(Some(Err(anyhow!("exited early with {status}"))))
                        }
                        (None, None) => Ok(None),
                    }
                }
            },
        )
        .await;
        match found {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(error)) | Err(error) => {
                Err(error.context(format!("{} did not start\n{}", self.name, self.logs_tail())))
            }
        }
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Sends a signal (`TERM`, `KILL`, …) to the process by pid.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {} failed: {status}", self.pid);
        }
        Ok(())
    }

    /// Waits for the process to exit and returns its status, or fails after `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow!("{} was already reaped", self.name))?;
        match tokio::time::timeout(deadline, child.wait()).await {
            Ok(status) => status.with_context(|| format!("waiting for {}", self.name)),
            Err(_) => bail!("{} did not exit within {deadline:?}", self.name),
        }
    }

    /// Stops the process with SIGTERM and asserts a successful exit within `deadline`.
    /// After the deadline it is killed and the stop fails. Logs are removed on success
    /// (kept while they are archived for the LOG-01 sweep).
    pub async fn stop(mut self, deadline: Duration) -> Result<()> {
        if let Some(status) = self.try_exit_status() {
            bail!(
                "{} had already exited with {status}\n{}",
                self.name,
                self.logs_tail()
            );
        }
        self.signal("TERM")?;
        match self.wait_exit(deadline).await {
            Ok(status) if status.success() => {
                self.child = None;
                if crate::log_archive::archive_dir().is_none() {
                    let _ = std::fs::remove_dir_all(&self.dir);
                }
                Ok(())
            }
            Ok(status) => bail!(
                "{} exited with {status} after SIGTERM\n{}",
                self.name,
                self.logs_tail()
            ),
            Err(error) => {
                if let Some(child) = self.child.as_mut() {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
                Err(error.context(format!(
                    "killed after SIGTERM deadline\n{}",
                    self.logs_tail()
                )))
            }
        }
    }

    /// Waits for the process to refuse its configuration: exit 64 (EX_USAGE) within
    /// `deadline`, before binding anything (no `listening` line), saying `reason` (case
    /// aside) on stderr.
    pub async fn expect_refusal(mut self, reason: &str, deadline: Duration) -> Result<()> {
        let status = self
            .wait_exit(deadline)
            .await
            .with_context(|| self.logs_tail())?;
        self.forget_child();
        if status.code() != Some(EX_USAGE) {
            bail!(
                "exited with {status}, expected {EX_USAGE}\n{}",
                self.logs_tail()
            );
        }
        if !self
            .stderr_text()
            .to_lowercase()
            .contains(&reason.to_lowercase())
        {
            bail!("stderr does not say {reason:?}\n{}", self.logs_tail());
        }
        if self.stdout_text().contains("listening") {
            bail!("it bound before refusing\n{}", self.logs_tail());
        }
        Ok(())
    }

    /// Whether the process was reaped (killed or stopped and waited for) through this handle.
    pub fn is_reaped(&self) -> bool {
        self.child.is_none()
    }

    /// Marks the process as reaped, for callers that waited for it themselves.
    pub fn forget_child(&mut self) {
        self.child = None;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.start_kill();
            // Only a test that failed early drops a live process: show why (captured by the
            // test runner and printed with the failure).
            eprintln!("{} killed on drop\n{}", self.name, self.logs_tail());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Result<Process> {
        Process::spawn(
            "sh",
            Path::new("/bin/sh"),
            &["-c".to_owned(), script.to_owned()],
        )
    }

    #[tokio::test]
    async fn reads_the_listening_line_and_stops_gracefully() -> Result<()> {
        let mut process = shell(
            "trap 'exit 0' TERM; echo 'listening http://127.0.0.1:1'; while :; do sleep 0.05; done",
        )?;
        let line = process
            .wait_for_stdout_line("listening ", Duration::from_secs(10))
            .await?;
        assert_eq!(line, "http://127.0.0.1:1");
        process.stop(Duration::from_secs(10)).await
    }

    #[tokio::test]
    async fn an_early_exit_fails_fast_with_the_logs() -> Result<()> {
        let mut process = shell("echo 'bad flag' >&2; exit 64")?;
        let error = process
            .wait_for_stdout_line("listening ", Duration::from_secs(10))
            .await
            .expect_err("the process never listens");
        let text = format!("{error:#}");
        assert!(
            text.contains("exited early") && text.contains("bad flag"),
            "{text}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_failing_exit_after_sigterm_is_an_error() -> Result<()> {
        let mut process =
            shell("trap 'exit 3' TERM; echo 'listening x'; while :; do sleep 0.05; done")?;
        process
            .wait_for_stdout_line("listening ", Duration::from_secs(10))
            .await?;
        assert!(process.stop(Duration::from_secs(10)).await.is_err());
        Ok(())
    }
}
