//! Facts about the machine and the run: cores, kernel, memory, open-files limit, whether
//! `taskset` can pin the SUTs and the generator to cores of their own, and the commit.

use std::path::Path;

use super::procfs;
use crate::report::header::{Machine, Pinning};

/// The SUTs' core and the generator's, when pinning is possible.
pub const SUT_CORE: u32 = 0;
pub const LOADGEN_CORE: u32 = 1;

/// What `/proc` says about this machine.
pub fn machine() -> Machine {
    Machine {
        cpu_model: procfs::cpu_model(),
        allowed_cpus: procfs::own_allowed_cpus(),
        kernel: procfs::kernel_release(),
        mem_total_bytes: procfs::mem_total_bytes(),
        open_files_limit: procfs::own_open_files_limit(),
    }
}

/// Whether `program` is an executable file somewhere on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Pinning for a machine allowing `cpus`, with or without `taskset`.
pub fn pinning(cpus: &[u32], has_taskset: bool) -> Pinning {
    let note = if !has_taskset {
        Some("taskset is missing".to_owned())
    } else if !(cpus.contains(&SUT_CORE) && cpus.contains(&LOADGEN_CORE)) {
        Some(format!(
            "cores {SUT_CORE} and {LOADGEN_CORE} are not both available (allowed: {cpus:?})"
        ))
    } else {
        None
    };
    match note {
        None => Pinning {
            pinned: true,
            sut_core: Some(SUT_CORE),
            loadgen_core: Some(LOADGEN_CORE),
            note: None,
        },
        Some(note) => Pinning {
            pinned: false,
            sut_core: None,
            loadgen_core: None,
            note: Some(note),
        },
    }
}

/// `git rev-parse HEAD` (with `-dirty` when the tree has changes), else `unknown`.
pub fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{head}-dirty") } else { head }
        }
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_needs_two_cores_and_taskset() {
        assert!(pinning(&[0, 1], true).pinned);
        let one = pinning(&[0], true);
        assert!(!one.pinned && one.note.is_some_and(|n| n.contains("[0]")));
        let none = pinning(&[0, 1, 2], false);
        assert_eq!(none.note.as_deref(), Some("taskset is missing"));
        assert!(on_path("sh"));
        assert!(!on_path("surely-not-a-program-here"));
    }
}
