//! CPU and memory from /proc: utime + stime of the watched processes (the system under
//! test) and of the generator itself, VmRSS, and the kernel's TCP memory. Clock ticks are
//! converted with `getconf CLK_TCK`, read once (100 when it cannot be read, which is what
//! Linux uses everywhere).

use std::sync::OnceLock;
use std::time::Instant;

use crate::results::Resources;

/// Clock ticks per second.
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|tck| *tck > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime of `/proc/<pid>/stat` (`self` for this process), in milliseconds.
pub fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 (1-based) → indexes 11, 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000.0 / clk_tck())
}

/// VmRSS of `/proc/<pid>/status`, in bytes.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `TCP: … mem N` of /proc/net/sockstat, in pages.
pub fn kernel_tcp_pages() -> Option<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = sockstat.lines().find(|line| line.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == "mem" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// The CPUs this process may run on, when that is fewer than the machine has (pinned with
/// `taskset`): their busy and total jiffies from /proc/stat, softirq included. Kernel work
/// on our behalf (loopback TCP receive in softirq) is not in our own utime + stime, so this
/// is what tells whether the generator's cores were saturated.
fn pinned_jiffies() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .to_owned();
    let mut allowed = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => allowed.extend(lo.parse::<usize>().ok()?..=hi.parse::<usize>().ok()?),
            None => allowed.push(part.parse::<usize>().ok()?),
        }
    }
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpus: Vec<&str> = stat
        .lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .collect();
    if allowed.len() >= cpus.len() {
        return None;
    }
    let (mut busy, mut total) = (0u64, 0u64);
    for line in cpus {
        let mut fields = line.split_whitespace();
        let cpu: usize = fields.next()?.trim_start_matches("cpu").parse().ok()?;
        if !allowed.contains(&cpu) {
            continue;
        }
        let values: Vec<u64> = fields.take(8).filter_map(|v| v.parse().ok()).collect();
        let all: u64 = values.iter().sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        busy += all - idle.min(all);
        total += all;
    }
    Some((busy, total))
}

/// A CPU sample of the watched processes and of this one.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    sut_ms: f64,
    own_ms: f64,
    pinned: Option<(u64, u64)>,
}

/// The processes watched.
#[derive(Debug, Clone)]
pub struct Watch {
    pids: Vec<String>,
}

impl Watch {
    pub fn new(pids: &[u32]) -> Self {
        Self {
            pids: pids.iter().map(u32::to_string).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    pub fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            sut_ms: self.pids.iter().filter_map(|pid| cpu_ms(pid)).sum(),
            own_ms: cpu_ms("self").unwrap_or_default(),
            pinned: pinned_jiffies(),
        }
    }

    /// Summed RSS of the watched processes.
    pub fn rss(&self) -> u64 {
        self.pids.iter().filter_map(|pid| rss_bytes(pid)).sum()
    }

    /// A note on how busy the CPUs this generator is pinned to were since `start`.
    pub fn pinned_note(&self, start: &Sample) -> Option<String> {
        let (busy0, total0) = start.pinned?;
        let (busy1, total1) = pinned_jiffies()?;
        let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
        let busy = busy1.saturating_sub(busy0) as f64 / total as f64;
        Some(format!(
            "the load generator's pinned CPUs were {:.0}% busy (softirq included; loadgen_cores counts only its own user+system time)",
            busy * 100.0
        ))
    }

    /// The figures between `start` and now; `work` is deliveries (or publishes) done.
    pub fn resources(&self, start: &Sample, work: u64) -> Resources {
        let end = self.sample();
        let wall_ms = end.at.duration_since(start.at).as_secs_f64() * 1000.0;
        let sut_cpu_ms = (end.sut_ms - start.sut_ms).max(0.0);
        let own_ms = (end.own_ms - start.own_ms).max(0.0);
        Resources {
            sut_cpu_ms,
            sut_cores: if wall_ms > 0.0 {
                sut_cpu_ms / wall_ms
            } else {
                0.0
            },
            sut_cpu_ms_per_1k: (work > 0 && !self.is_empty())
                .then(|| sut_cpu_ms / (work as f64 / 1000.0)),
            sut_rss_bytes: self.rss(),
            loadgen_cores: if wall_ms > 0.0 { own_ms / wall_ms } else { 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(cpu_ms("self").is_some());
        assert!(rss_bytes("self").is_some_and(|rss| rss > 0));
        assert!(kernel_tcp_pages().is_some());
    }
}
