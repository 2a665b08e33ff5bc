//! The facts of a run besides its steps: the machine, the pinning, the commit, the limits
//! raised, each generator call's outcome, the SUTs' memory at start and end, and notes. It is
//! the first element of `<date>.json`, followed by every [`crate::results::StepResult`].

use serde::{Deserialize, Serialize};

/// The header object of a run's results file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunHeader {
    /// Always `header`, so the element is told apart from the steps.
    pub kind: String,
    /// The day of the run (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// When it started (UTC), `YYYY-MM-DDTHH:MM:SSZ`.
    pub started_at: String,
    /// How long the whole run took, in seconds.
    pub wall_seconds: f64,
    /// A `--quick` run (the harness check, not a measurement).
    pub quick: bool,
    pub machine: Machine,
    pub pinning: Pinning,
    /// `git rev-parse HEAD` of the working tree (`unknown` outside one).
    pub git_commit: String,
    pub limits_raised: Vec<RaisedLimit>,
    /// One per generator call.
    pub runs: Vec<RunOutcome>,
    /// The 1-minute load average when the run started and when it ended: well above 0 at
    /// the start means other work shared the cores.
    pub load_1m_start: Option<f64>,
    pub load_1m_end: Option<f64>,
    /// Resident memory of each SUT process when it was ready and before it was stopped.
    pub rss: Vec<RssSample>,
    pub notes: Vec<String>,
}

/// The machine the run was on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Cores this process was allowed to run on.
    pub allowed_cpus: Vec<u32>,
    pub kernel: String,
    pub mem_total_bytes: Option<u64>,
    /// Soft open-files limit the SUTs and the generator inherited.
    pub open_files_limit: Option<u64>,
}

/// Which core ran what.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pinning {
    pub pinned: bool,
    /// Core of every SUT process (`taskset -c`).
    pub sut_core: Option<u32>,
    /// Core of the load generator.
    pub loadgen_core: Option<u32>,
    /// Why it is unpinned, when it is.
    pub note: Option<String>,
}

/// A limit raised for the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RaisedLimit {
    /// Which processes take it.
    pub applies_to: String,
    pub flag: String,
    pub default: String,
    pub value: String,
}

/// How one generator call went.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunOutcome {
    pub target: String,
    pub scenario: String,
    /// The generator's command line after the common options.
    pub command: String,
    /// `ok`, `checks failed` (exit 1: results written), `failed` (anything else).
    pub outcome: String,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// Steps read from its output.
    pub steps: usize,
    /// What went wrong (the end of its stderr, a timeout).
    pub detail: Option<String>,
}

/// Resident memory of one SUT process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RssSample {
    pub target: String,
    pub process: String,
    pub pid: u32,
    pub start_bytes: Option<u64>,
    pub end_bytes: Option<u64>,
}

/// `YYYY-MM-DD` and `YYYY-MM-DDTHH:MM:SSZ` of a time.
pub fn utc_date_and_stamp(epoch_seconds: u64) -> (String, String) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch_seconds);
    let stamp = humantime::format_rfc3339_seconds(time).to_string();
    (stamp.get(..10).unwrap_or_default().to_owned(), stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            utc_date_and_stamp(0),
            ("1970-01-01".into(), "1970-01-01T00:00:00Z".into())
        );
        // 2024-02-29T12:34:56Z
        assert_eq!(utc_date_and_stamp(1_709_210_096).1, "2024-02-29T12:34:56Z");
        // 2026-12-04T11:30:00Z
        assert_eq!(utc_date_and_stamp(1_796_383_800).0, "2026-12-04");
    }
}
