//! The scenarios each system under test is put through, as load-generator command lines
//! (full size, or `--quick` to check the harness), and one generator call: pinned, with a
//! time budget past which it is stopped, its JSON lines read back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::process::{Launch, Procs, log_tail};
use super::sut::Sut;
use crate::report::header::RunOutcome;
use crate::results::StepResult;

/// One generator call.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `--scenario` id.
    pub scenario: &'static str,
    /// Subcommand and its options.
    pub args: Vec<String>,
    /// `--max-seconds` given to the generator; it is stopped 15 s after that.
    pub max_seconds: u64,
}

fn plan(scenario: &'static str, args: &str, max_seconds: u64) -> Plan {
    Plan {
        scenario,
        args: args.split_whitespace().map(str::to_owned).collect(),
        max_seconds,
    }
}

/// S2's topic count: 5000 (2 subscribers each), fewer when the open-files limit does not
/// leave room for 2 sockets per topic plus 1000 spare descriptors in each process.
pub fn s2_topics(quick: bool, open_files: Option<u64>) -> (u64, Option<String>) {
    let want: u64 = if quick { 200 } else { 5000 };
    let Some(limit) = open_files else {
        return (want, None);
    };
    let room = limit.saturating_sub(1000) / 2;
    if room >= want {
        (want, None)
    } else {
        let topics = room.max(10);
        (
            topics,
            Some(format!(
                "S2/S4 scaled down from {want} to {topics} topics: the open-files limit is {limit}"
            )),
        )
    }
}

/// The scenarios in run order: S1, S2 (whose `idle` step is S4), S3, S5, S6.
pub fn plans(quick: bool, s2_topics: u64) -> Vec<Plan> {
    if quick {
        vec![
            plan(
                "S1",
                "fanout --topics 1 --subscribers-per-topic 200 --rates 20,100 --step-seconds 1 --warmup-seconds 1",
                40,
            ),
            plan(
                "S2",
                &format!(
                    "fanout --topics {s2_topics} --subscribers-per-topic 2 --rates 100,500 --step-seconds 1 --warmup-seconds 1 --idle-seconds 1"
                ),
                40,
            ),
            plan("S3", "storm --subscriptions 200 --in-flight 50", 30),
            plan(
                "S5",
                "fanout --topics 1 --subscribers-per-topic 100 --rates 50 --stall 5 --step-seconds 2 --warmup-seconds 1",
                30,
            ),
            plan("S6", "publish --connections 4 --seconds 1", 20),
        ]
    } else {
        vec![
            plan(
                "S1",
                "fanout --topics 1 --subscribers-per-topic 1000 --rates 20,100,300,600 --step-seconds 4",
                60,
            ),
            plan(
                "S2",
                &format!(
                    "fanout --topics {s2_topics} --subscribers-per-topic 2 --rates 1000,5000,10000,25000 --step-seconds 4 --idle-seconds 3"
                ),
                90,
            ),
            plan("S3", "storm --subscriptions 5000 --in-flight 100", 60),
            plan(
                "S5",
                "fanout --topics 1 --subscribers-per-topic 1000 --rates 100 --stall 10 --step-seconds 9",
                45,
            ),
            plan("S6", "publish --connections 16 --seconds 5", 30),
        ]
    }
}

/// How a generator call is made.
#[derive(Debug, Clone)]
pub struct Generator {
    pub program: PathBuf,
    pub core: Option<u32>,
    pub tmp: PathBuf,
}

/// Runs `plan` against `sut` (labelled `label`; for the TLS gateway the label stays
/// `embedded` while `sut` is the TLS one) and returns the steps it wrote and how it went.
pub async fn run_plan(
    generator: &Generator,
    procs: &Procs,
    sut: &Sut,
    label: &str,
    plan: &Plan,
    call: usize,
) -> (Vec<StepResult>, RunOutcome) {
    let json_out = generator.tmp.join(format!("call-{call}.jsonl"));
    let mut args = vec![
        "--hub-url".to_owned(),
        sut.hub_url.clone(),
        "--label".to_owned(),
        label.to_owned(),
        "--scenario".to_owned(),
        plan.scenario.to_owned(),
        "--json-out".to_owned(),
        json_out.to_string_lossy().into_owned(),
        "--max-seconds".to_owned(),
        plan.max_seconds.to_string(),
        "--quiet".to_owned(),
    ];
    if sut.bare {
        args.extend(["--kind".to_owned(), "bare".to_owned()]);
    }
    if let Some(ca) = &sut.ca_file {
        args.extend(["--ca-file".to_owned(), ca.to_string_lossy().into_owned()]);
    }
    for pid in sut.pids() {
        args.extend(["--watch-pid".to_owned(), pid.to_string()]);
    }
    args.extend(sut.extra_args.iter().cloned());
    args.extend(plan.args.iter().cloned());
    let mut outcome = RunOutcome {
        target: label.to_owned(),
        scenario: if sut.ca_file.is_some() {
            format!("{} (wss)", plan.scenario)
        } else {
            plan.scenario.to_owned()
        },
        command: plan.args.join(" "),
        ..RunOutcome::default()
    };
    let launch = Launch::new(&format!("loadgen-{call}"), &generator.program)
        .args(args)
        .pinned(generator.core);
    let started_at = Instant::now();
    let status = match procs.start(&launch, &generator.tmp) {
        Err(e) => {
            outcome.outcome = "failed".into();
            outcome.detail = Some(format!("{e:#}"));
            return (Vec::new(), outcome);
        }
        Ok(started) => {
            let budget = Duration::from_secs(plan.max_seconds + 15);
            let status = procs.wait(started.pid, budget).await;
            if status.is_none() {
                procs.stop(&[started.pid]).await;
            } else {
                procs.stop(&[started.pid]).await; // reaped; drops it from the registry
            }
            let tail = log_tail(&started.log, 5);
            (status, tail)
        }
    };
    outcome.seconds = started_at.elapsed().as_secs_f64();
    let (status, tail) = status;
    let (mut steps, bad_lines) = read_steps(&json_out);
    outcome.steps = steps.len();
    outcome.exit_code = status.and_then(|s| s.code());
    match (status, outcome.exit_code) {
        (None, _) => {
            outcome.outcome = "failed".into();
            outcome.detail = Some(format!(
                "stopped past its {} s budget; stderr ends: {tail}",
                plan.max_seconds + 15
            ));
        }
        (Some(_), Some(0)) => outcome.outcome = "ok".into(),
        (Some(_), Some(1)) => {
            outcome.outcome = "checks failed".into();
            outcome.detail = Some(tail);
        }
        (Some(_), _) => {
            outcome.outcome = "failed".into();
            outcome.detail = Some(tail);
        }
    }
    if steps.is_empty() && outcome.outcome == "ok" {
        outcome.outcome = "no steps".into();
        outcome.detail = Some("the generator exited 0 but wrote no result".into());
    }
    if bad_lines > 0 {
        let d = outcome.detail.get_or_insert_with(String::new);
        d.push_str(&format!(" ({bad_lines} unreadable result lines)"));
    }
    for s in &mut steps {
        s.target = label.to_owned();
        if s.scenario == "S2" && s.step == "idle" {
            s.scenario = "S4".into();
        }
        if sut.ca_file.is_some() && s.scenario == "S3" {
            s.step = "wss".into();
        }
    }
    (steps, outcome)
}

/// The steps of a JSON-lines file, and how many lines did not parse.
pub fn read_steps(path: &Path) -> (Vec<StepResult>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_steps(&text)
}

/// The steps of a JSON-lines text, and how many lines did not parse.
pub fn parse_steps(text: &str) -> (Vec<StepResult>, usize) {
    let mut steps = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<StepResult>(line) {
            Ok(s) => steps.push(s),
            Err(_) => bad += 1,
        }
    }
    (steps, bad)
}

/// Checks the generator exists before anything is started.
pub fn check_generator(program: &Path) -> Result<()> {
    anyhow::ensure!(
        program.is_file(),
        "{} is missing: cargo build --release -p fhircast-bench --bins",
        program.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_s2() {
        assert_eq!(s2_topics(false, Some(20_000)), (5000, None));
        assert_eq!(s2_topics(false, None), (5000, None));
        let (topics, note) = s2_topics(false, Some(4096));
        assert_eq!(topics, 1548);
        assert!(note.is_some_and(|n| n.contains("4096")));
        assert_eq!(s2_topics(true, Some(1024)).0, 12);
    }

    #[test]
    fn plans_name_their_scenarios() {
        let full = plans(false, 5000);
        let ids: Vec<&str> = full.iter().map(|p| p.scenario).collect();
        assert_eq!(ids, ["S1", "S2", "S3", "S5", "S6"]);
        assert_eq!(full[1].args[2], "5000");
        assert!(plans(true, 100).iter().all(|p| p.max_seconds <= 40));
    }

    #[test]
    fn jsonl_lines() {
        let text = "{\"target\":\"x\",\"scenario\":\"S1\",\"step\":\"20/s\",\"duration_s\":4.0,\
                    \"notes\":[],\"future_field\":1}\n\nnot json\n";
        let (steps, bad) = parse_steps(text);
        assert_eq!(steps.len(), 1);
        assert_eq!(bad, 1);
        assert_eq!(steps[0].step, "20/s");
    }
}
