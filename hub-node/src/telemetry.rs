//! Logs: one line per event on stderr, text or JSON, filtered by `RUST_LOG` (default
//! `info`). Colours only on a terminal, so log files and collectors get plain text. Stdout
//! carries only the machine-readable `listening` line. Nothing here logs tokens, topics or
//! FHIR resources: callers log refs and ids only.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Lets through at most one log line a second for an event that can come in floods
/// (refused connections, failed handshakes), counting the others, so a flood cannot flood
/// the log.
#[derive(Debug)]
pub struct LogThrottle {
    started: Instant,
    last_logged_second: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last_logged_second: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl LogThrottle {
    /// Notes one event: `Some(n)` when it may be logged (`n` events were left out since the
    /// last line), `None` when it is only counted.
    pub fn admit(&self) -> Option<u64> {
        let second = self.started.elapsed().as_secs();
        if self.last_logged_second.swap(second, Ordering::Relaxed) == second {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}
