//! The LOG-01 sweep's half inside the harness. When `HUB_TESTS_LOG_ARCHIVE` names a
//! directory (`make test` sets it), every process the harness starts keeps its logs under
//! `<archive>/logs/` instead of a temporary directory removed after a clean stop, gateways
//! and hub nodes log at `debug` unless a test chose a level, and every secret the harness
//! makes up (topics, tokens, endpoint ids, admin and Redis credentials) is written to
//! `<archive>/secrets/`. After the run, `fhircast-log-sweep` searches every log for those
//! secrets and for the shapes of secrets and PHI; one hit fails `make test`.
//!
//! Without the variable nothing is kept and nothing is written.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The variable naming the archive directory.
pub const ARCHIVE_VAR: &str = "HUB_TESTS_LOG_ARCHIVE";
/// The log level of gateways and hub nodes while logs are archived, unless a test sets one.
pub const SWEEP_LOG_LEVEL: &str = "debug";

/// What a registered secret is, for the sweep's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A `hub.topic`.
    Topic,
    /// A bearer token (JWT or opaque).
    Token,
    /// The id in a `hub.channel.endpoint`.
    Endpoint,
    /// An admin bearer secret, a Redis password or another credential.
    Credential,
}

impl SecretKind {
    /// The name the secrets file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Topic => "topic",
            Self::Token => "token",
            Self::Endpoint => "endpoint",
            Self::Credential => "credential",
        }
    }
}

/// Returns the archive directory, when logs are archived.
pub fn archive_dir() -> Option<PathBuf> {
    std::env::var_os(ARCHIVE_VAR)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// Returns the directory a process's logs go to: under the archive when there is one.
pub fn logs_dir() -> Option<PathBuf> {
    archive_dir().map(|dir| dir.join("logs"))
}

/// Records `value` as a secret no process may log. A no-op without an archive; a failure
/// to write is reported on stderr and otherwise ignored (the sweep then misses a secret,
/// it never finds a false one).
pub fn register_secret(kind: SecretKind, value: &str) {
    static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    let Some(file) = FILE.get_or_init(open_secrets_file) else {
        return;
    };
    if value.is_empty() || value.contains('\n') {
        return;
    }
    let Ok(mut file) = file.lock() else {
        return;
    };
    if let Err(err) = writeln!(file, "{}\t{value}", kind.as_str()) {
        eprintln!("log archive: could not record a secret: {err}");
    }
}

/// Opens this test process's secrets file (`<archive>/secrets/<pid>.tsv`), appending.
fn open_secrets_file() -> Option<Mutex<File>> {
    let dir = archive_dir()?.join("secrets");
    let opened = std::fs::create_dir_all(&dir).and_then(|()| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.tsv", std::process::id())))
    });
    match opened {
        Ok(file) => Some(Mutex::new(file)),
        Err(err) => {
            eprintln!("log archive: could not open the secrets file: {err}");
            None
        }
    }
}
