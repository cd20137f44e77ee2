//! The run's extra scenarios, beside the matrix: overload (`RAW/overload/<target>/`: `oha.json`
//! with `--stats-success-breakdown`, `offered-rps.txt`, `mem.json`) and cold start
//! (`RAW/coldstart/<target>.json`, from `portico-bench coldstart`). Each is a table of its own
//! when its files are there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use crate::oha::{RawOha, ms, parse_hwm_kb};

/// One target offered more than it can serve.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Overload {
    pub(crate) offered_rps: Option<f64>,
    /// 2xx answers per second.
    pub(crate) ok_rps: f64,
    /// 503 answers (the admission limit's refusals).
    pub(crate) refused: u64,
    /// Every other non-2xx answer and transport error.
    pub(crate) other_failures: u64,
    /// The most frequent of those.
    pub(crate) first_other: Option<String>,
    /// Percentiles of the 2xx answers only, in ms.
    pub(crate) ok_p50_ms: Option<f64>,
    pub(crate) ok_p99_ms: Option<f64>,
    /// Slowest 503, in ms: how fast a refusal is.
    pub(crate) refused_p99_ms: Option<f64>,
    pub(crate) hwm_kb: Option<f64>,
}

impl Overload {
    /// Parses oha's JSON (run with `--stats-success-breakdown`).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Overload> {
        let raw = RawOha::parse(text)?;
        let tally = raw.tally(Some("503"));
        Ok(Overload {
            offered_rps: None,
            ok_rps: raw.per_second(tally.ok),
            refused: tally.set_apart,
            other_failures: tally.failures,
            first_other: tally.first_failure,
            ok_p50_ms: ms(&raw.ok_percentiles, "p50"),
            ok_p99_ms: ms(&raw.ok_percentiles, "p99"),
            refused_p99_ms: if tally.set_apart > 0 {
                ms(&raw.not_ok_percentiles, "p99")
            } else {
                None
            },
            hwm_kb: None,
        })
    }
}

/// `portico-bench coldstart`'s report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Coldstart {
    pub(crate) median_ms: f64,
    pub(crate) min_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) runs_ms: Vec<f64>,
    pub(crate) path: String,
}

/// The extra scenarios found under a run's raw directory.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) overload: BTreeMap<String, Overload>,
    pub(crate) coldstart: BTreeMap<String, Coldstart>,
}

impl Extras {
    /// Loads what is there; a missing directory is no extra.
    pub(crate) fn load(raw: &Path) -> anyhow::Result<Extras> {
        let mut extras = Extras::default();
        let overload = raw.join("overload");
        if overload.is_dir() {
            for (dir, target) in super::subdirs(&overload)? {
                let read = |name: &str| std::fs::read_to_string(dir.join(name));
                let Ok(text) = read("oha.json") else {
                    continue;
                };
                let mut run = Overload::parse(&text)
                    .with_context(|| format!("in {}", dir.join("oha.json").display()))?;
                run.offered_rps = read("offered-rps.txt")
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                run.hwm_kb = read("mem.json").ok().and_then(|t| parse_hwm_kb(&t).ok());
                extras.overload.insert(target, run);
            }
        }
        let coldstart = raw.join("coldstart");
        if coldstart.is_dir() {
            for entry in std::fs::read_dir(&coldstart)? {
                let path = entry?.path();
                let Some(target) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                else {
                    continue;
                };
                let text = std::fs::read_to_string(&path)?;
                let report: Coldstart = serde_json::from_str(&text)
                    .with_context(|| format!("in {}", path.display()))?;
                extras.coldstart.insert(target.to_owned(), report);
            }
        }
        Ok(extras)
    }

    /// The tables, or nothing when there are no extras.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.overload.is_empty() {
            out.push_str(
                "\n**Overload** (mock at once, non-streaming; offered twice the gateway's measured saturation, open loop, more connections than its admission limit):\n\n\
                 | target | offered rps | 2xx rps | 503 (refused) | other failures | 2xx p50 / p99 (ms) | slowest 503 p99 (ms) | peak RSS (MB) |\n\
                 | --- | --- | --- | --- | --- | --- | --- | --- |\n",
            );
            for (target, run) in &self.overload {
                let opt = |v: Option<f64>, digits: usize| {
                    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
                };
                let other = match (&run.first_other, run.other_failures) {
                    (_, 0) => "0".to_owned(),
                    (Some(what), n) => format!("{n} ({what})"),
                    (None, n) => n.to_string(),
                };
                let _ = writeln!(
                    out,
                    "| {target} | {} | {:.0} | {} | {other} | {} / {} | {} | {} |",
                    opt(run.offered_rps, 0),
                    run.ok_rps,
                    run.refused,
                    opt(run.ok_p50_ms, 3),
                    opt(run.ok_p99_ms, 2),
                    opt(run.refused_p99_ms, 2),
                    opt(run.hwm_kb.map(|kb| kb / 1024.0), 1),
                );
            }
        }
        if !self.coldstart.is_empty() {
            out.push_str(
                "\n**Cold start** (a new process on an empty data dir, to its first answer):\n\n\
                 | target | request | median (min–max) ms | runs |\n| --- | --- | --- | --- |\n",
            );
            for (target, c) in &self.coldstart {
                let _ = writeln!(
                    out,
                    "| {target} | {} | {:.1} ({:.1}–{:.1}) | {} |",
                    c.path,
                    c.median_ms,
                    c.min_ms,
                    c.max_ms,
                    c.runs_ms.len()
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_separates_refusals_from_other_failures_and_reads_success_latency() {
        let run = Overload::parse(
            r#"{"summary": {"total": 2.0},
                "latencyPercentilesSuccessful": {"p50": 0.002, "p99": 0.011},
                "latencyPercentilesNotSuccessful": {"p50": 0.0001, "p99": 0.0004},
                "statusCodeDistribution": {"200": 4000, "503": 900, "502": 3},
                "errorDistribution": {"connection closed": 1}}"#,
        )
        .unwrap();
        assert_eq!(run.ok_rps, 2000.0);
        assert_eq!(run.refused, 900);
        assert_eq!(run.other_failures, 4);
        assert_eq!(run.first_other.as_deref(), Some("status 502"));
        assert!((run.ok_p99_ms.unwrap() - 11.0).abs() < 1e-9);
        assert!((run.refused_p99_ms.unwrap() - 0.4).abs() < 1e-9);
    }

    #[test]
    fn extras_are_loaded_from_their_directories_and_rendered() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("overload/portico");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(
            target.join("oha.json"),
            r#"{"summary": {"total": 1.0}, "statusCodeDistribution": {"200": 10}}"#,
        )
        .unwrap();
        std::fs::write(target.join("offered-rps.txt"), "40000\n").unwrap();
        std::fs::write(target.join("mem.json"), r#"{"hwm_kb": 20480}"#).unwrap();
        std::fs::create_dir_all(dir.path().join("coldstart")).unwrap();
        std::fs::write(
            dir.path().join("coldstart/portico.json"),
            r#"{"median_ms": 21.5, "min_ms": 20.0, "max_ms": 30.0, "runs_ms": [20.0, 21.5, 30.0],
                "path": "/v1/chat/completions"}"#,
        )
        .unwrap();
        let extras = Extras::load(dir.path()).unwrap();
        let md = extras.markdown();
        assert!(md.contains("| portico | 40000 | 10 | 0 | 0 |"), "{md}");
        assert!(md.contains("| 20.0 |"), "{md}");
        assert!(
            md.contains("| portico | /v1/chat/completions | 21.5 (20.0–30.0) | 3 |"),
            "{md}"
        );
        assert!(
            Extras::load(&dir.path().join("none"))
                .unwrap()
                .overload
                .is_empty()
        );
    }
}
