//! The LOG-01 sweep: searches every archived process log ([`crate::log_archive`]) for the
//! secrets the harness recorded (topics, tokens, endpoint ids, credentials), for any
//! `CANARY` marker (the PHI in test payloads carries one), for JWT shapes and for
//! `Authorization:` headers carrying a credential. A hit is a line of a hub process's log
//! that holds one of them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use anyhow::{Context as _, Result};
use regex::Regex;

/// Shorter recorded values are not searched: they could match by chance.
pub const MIN_SECRET_LEN: usize = 16;
/// The marker test PHI carries (`CANARY-PHI-…`, and the log canary scenario's own).
pub const PHI_MARKER: &str = "CANARY";
/// How many hits a report lists in full.
const LISTED_HITS: usize = 20;

/// What the sweep looks for.
#[derive(Debug)]
pub struct Needles {
    /// Recorded secrets and the marker, searched together.
    fixed: AhoCorasick,
    /// The kind of each fixed pattern, by pattern index.
    kinds: Vec<String>,
    /// How many secrets of each kind were recorded (the marker aside).
    recorded: BTreeMap<String, usize>,
    /// A JWT's first two segments: `eyJ…` `.` `eyJ…` `.`.
    jwt: Regex,
    /// An `Authorization:` header with a credential in it, any case (the walkthrough the dev
    /// hub prints says `Authorization: Bearer $TOKEN`, which holds none).
    authorization: Regex,
}

impl Needles {
    /// Reads the secrets every test process recorded under `<archive>/secrets/`.
    pub fn load(archive: &Path) -> Result<Self> {
        let mut secrets: BTreeMap<String, String> = BTreeMap::new();
        let dir = archive.join("secrets");
        if dir.is_dir() {
            for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
                let path = entry?.path();
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                for line in text.lines() {
                    if let Some((kind, value)) = line.split_once('\t')
                        && value.len() >= MIN_SECRET_LEN
                    {
                        secrets.insert(value.to_owned(), kind.to_owned());
                    }
                }
            }
        }
        Self::new(secrets)
    }

    /// Builds the needles from secrets (value → kind).
    pub fn new(secrets: BTreeMap<String, String>) -> Result<Self> {
        let mut recorded = BTreeMap::new();
        for kind in secrets.values() {
            *recorded.entry(kind.clone()).or_insert(0) += 1;
        }
        let (mut patterns, mut kinds): (Vec<String>, Vec<String>) = secrets.into_iter().unzip();
        patterns.push(PHI_MARKER.to_owned());
        kinds.push("phi-marker".to_owned());
        Ok(Self {
            fixed: AhoCorasick::new(&patterns).context("building the secret matcher")?,
            kinds,
            recorded,
            jwt: Regex::new(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.")?,
            authorization: Regex::new(
                r"(?i)authorization:\s*(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}",
            )?,
        })
    }

    /// How many secrets of each kind are searched for.
    pub fn recorded(&self) -> &BTreeMap<String, usize> {
        &self.recorded
    }

    /// Returns what `line` holds, by kind (empty when clean).
    pub fn find(&self, line: &str) -> Vec<&str> {
        let mut found: Vec<&str> = self
            .fixed
            .find_overlapping_iter(line)
            .filter_map(|hit| self.kinds.get(hit.pattern().as_usize()))
            .map(String::as_str)
            .collect();
        if self.jwt.is_match(line) {
            found.push("jwt-shape");
        }
        if self.authorization.is_match(line) {
            found.push("authorization-header");
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// One line that holds something it must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The log file.
    pub file: PathBuf,
    /// Its 1-based line number.
    pub line: usize,
    /// What the line holds.
    pub kinds: Vec<String>,
}

/// What a sweep saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Log files read.
    pub files: usize,
    /// Lines read.
    pub lines: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Secrets searched for, by kind.
    pub recorded: BTreeMap<String, usize>,
    /// Every hit.
    pub hits: Vec<Hit>,
}

/// Sweeps every `*.log` file under `<archive>/logs/`.
pub fn sweep(archive: &Path) -> Result<Report> {
    let needles = Needles::load(archive)?;
    let mut report = Report {
        recorded: needles.recorded().clone(),
        ..Report::default()
    };
    let mut pending = vec![archive.join("logs")];
    while let Some(dir) = pending.pop() {
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "log") {
                sweep_file(&needles, &path, &mut report)?;
            }
        }
    }
    Ok(report)
}

fn sweep_file(needles: &Needles, path: &Path, report: &mut Report) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    report.files += 1;
    let mut reader = BufReader::new(file);
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        buffer.clear();
        let read = reader
            .read_until(b'\n', &mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        report.lines += 1;
        report.bytes += read as u64;
        let line = String::from_utf8_lossy(&buffer);
        let kinds = needles.find(&line);
        if !kinds.is_empty() {
            report.hits.push(Hit {
                file: path.to_owned(),
                line: number,
                kinds: kinds.into_iter().map(str::to_owned).collect(),
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recorded: Vec<String> = self
            .recorded
            .iter()
            .map(|(kind, count)| format!("{count} {kind}s"))
            .collect();
        writeln!(
            f,
            "LOG-01 sweep: {} lines ({} KiB) in {} process logs, searched for {}, the \
             `{PHI_MARKER}` marker of test PHI, JWT shapes and `Authorization:` credentials: {} hits",
            self.lines,
            self.bytes / 1024,
            self.files,
            if recorded.is_empty() {
                "no recorded secrets".to_owned()
            } else {
                recorded.join(", ")
            },
            self.hits.len()
        )?;
        for hit in self.hits.iter().take(LISTED_HITS) {
            writeln!(
                f,
                "  {}:{}: {}",
                hit.file.display(),
                hit.line,
                hit.kinds.join(", ")
            )?;
        }
        if self.hits.len() > LISTED_HITS {
            writeln!(f, "  … and {} more", self.hits.len() - LISTED_HITS)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::Scratch;

    fn needles() -> Result<Needles> {
        Needles::new(BTreeMap::from([
            (
                "Jx3fQ0pLr8sTuVwXyZa1b2c3d4e5f6g7h8i9j0kLmNo".to_owned(),
                "topic".to_owned(),
            ),
            ("short".to_owned(), "credential".to_owned()),
        ]))
    }

    #[test]
    fn each_kind_of_leak_is_found_and_clean_lines_are_not() -> Result<()> {
        let needles = needles()?;
        let topic = "x topic=Jx3fQ0pLr8sTuVwXyZa1b2c3d4e5f6g7h8i9j0kLmNo y";
        assert_eq!(needles.find(topic), vec!["topic"]);
        assert_eq!(needles.find("family=CANARY-PHI-p-1"), vec!["phi-marker"]);
        assert_eq!(
            needles.find("token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig"),
            vec!["jwt-shape"]
        );
        assert_eq!(
            needles.find("header AUTHORIZATION: Bearer abc.def.ghi"),
            vec!["authorization-header"]
        );
        assert!(
            needles
                .find(r#"curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080"#)
                .is_empty()
        );
        assert!(
            needles
                .find("INFO request refused status=401 reason=\"missing bearer token\" ref=3fa9")
                .is_empty()
        );
        Ok(())
    }

    #[test]
    fn the_sweep_reads_every_log_under_the_archive_and_names_the_line() -> Result<()> {
        let archive = Scratch::new("sweep")?;
        archive.write(
            "secrets/1.tsv",
            "topic\tJx3fQ0pLr8sTuVwXyZa1b2c3d4e5f6g7h8i9j0kLmNo\ncredential\tshort\n",
        )?;
        archive.write("logs/gw/stdout.log", "listening http://127.0.0.1:1\n")?;
        archive.write(
            "logs/gw/stderr.log",
            "INFO ok\nWARN topic Jx3fQ0pLr8sTuVwXyZa1b2c3d4e5f6g7h8i9j0kLmNo\n",
        )?;
        archive.write("logs/gw/redis.conf", "requirepass CANARY\n")?;
        let report = sweep(&archive)?;
        assert_eq!((report.files, report.lines), (2, 3));
        assert_eq!(report.recorded, BTreeMap::from([("topic".to_owned(), 1)]));
        assert_eq!(report.hits.len(), 1);
        assert_eq!(report.hits[0].line, 2);
        assert!(report.hits[0].file.ends_with("logs/gw/stderr.log"));
        Ok(())
    }
}
