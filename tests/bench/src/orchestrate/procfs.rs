//! What the orchestrator reads from `/proc`: a process's resident memory, the cores this
//! process may run on, the open-files limit and the kernel release. Each parser takes the
//! file's text, so the tests feed it samples.

use std::path::Path;

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn rss_bytes_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    let factor = match unit {
        "kB" => 1024,
        "mB" | "MB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    value.checked_mul(factor)
}

/// `Cpus_allowed_list` of a `/proc/<pid>/status` text (`0-3,6`), as core numbers.
pub fn allowed_cpus_from_status(status: &str) -> Option<Vec<u32>> {
    let line = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))?;
    let list = line.split_once(':')?.1.trim();
    parse_cpu_list(list)
}

/// A kernel CPU list (`0-3,6,8-9`) as core numbers, at most 4096 of them.
pub fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.trim().parse::<u32>().ok()?,
                hi.trim().parse::<u32>().ok()?,
            ),
            None => {
                let one = part.parse::<u32>().ok()?;
                (one, one)
            }
        };
        if hi < lo || hi - lo > 4096 || cpus.len() > 4096 {
            return None;
        }
        cpus.extend(lo..=hi);
    }
    Some(cpus)
}

/// The soft `Max open files` of a `/proc/<pid>/limits` text (`None` when unlimited).
pub fn open_files_soft_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// RSS of a running process, in bytes (`None` once it has gone).
pub fn rss_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    rss_bytes_from_status(&text)
}

/// The cores this process may run on.
pub fn own_allowed_cpus() -> Vec<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| allowed_cpus_from_status(&s))
        .unwrap_or_default()
}

/// The soft open-files limit of this process (and so of its children).
pub fn own_open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    open_files_soft_limit(&text)
}

/// The kernel release (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/osrelease")).unwrap_or_else(|| "unknown".into())
}

/// The CPU model (`model name` of `/proc/cpuinfo`).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Total memory (`MemTotal` of `/proc/meminfo`), in bytes.
pub fn mem_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The 1-minute load average of a `/proc/loadavg` text.
pub fn load_1m(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// The 1-minute load average now.
pub fn own_load_1m() -> Option<f64> {
    load_1m(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// True while `pid` runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| state_from_stat(&s))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// The state letter of a `/proc/<pid>/stat` text (after the parenthesised command name,
/// which may itself hold spaces and parentheses).
pub fn state_from_stat(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tfhircast-gatew\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t  123456 kB\nVmRSS:\t   20480 kB\nRssAnon:\t    8000 kB\n\
        Cpus_allowed:\t3\nCpus_allowed_list:\t0-1,4\n";

    #[test]
    fn rss_in_bytes() {
        assert_eq!(rss_bytes_from_status(STATUS), Some(20480 * 1024));
        assert_eq!(rss_bytes_from_status("Name:\tx\n"), None);
        assert_eq!(rss_bytes_from_status("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn allowed_cpus() {
        assert_eq!(allowed_cpus_from_status(STATUS), Some(vec![0, 1, 4]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("2-3,7"), Some(vec![2, 3, 7]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn open_files() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max cpu time              unlimited            unlimited            seconds   \n\
            Max open files            20000                40000                files     \n";
        assert_eq!(open_files_soft_limit(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_files_soft_limit(unlimited), None);
    }

    #[test]
    fn load_average() {
        assert_eq!(load_1m("3.05 2.71 1.87 2/103 22393\n"), Some(3.05));
        assert_eq!(load_1m(""), None);
    }

    #[test]
    fn stat_state_after_odd_names() {
        assert_eq!(state_from_stat("42 (a) b)) S 1 42 42"), Some('S'));
        assert_eq!(state_from_stat("42 (redis-server) Z 1"), Some('Z'));
        assert_eq!(state_from_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(rss_of(std::process::id()).is_some_and(|b| b > 0));
        assert!(alive(std::process::id()));
        assert!(!own_allowed_cpus().is_empty());
    }
}
