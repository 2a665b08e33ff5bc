//! `fhircast-log-sweep <archive>`: the LOG-01 sweep over the logs a test run archived
//! (`HUB_TESTS_LOG_ARCHIVE`, set by `make test`). Prints what it read and every hit; exits 1
//! on a hit, or when there was nothing to read (a sweep of nothing proves nothing).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

fn main() -> Result<ExitCode> {
    let archive: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: fhircast-log-sweep <archive directory>")?;
    let report = hub_tests::log_sweep::sweep(&archive)?;
    print!("{report}");
    if report.files == 0 || report.recorded.is_empty() {
        eprintln!(
            "LOG-01 sweep: nothing archived under {} (was HUB_TESTS_LOG_ARCHIVE set?)",
            archive.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.hits.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
