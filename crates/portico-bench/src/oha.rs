//! Readers for the raw result files of a run: `oha --output-format json` and our own `ttfb`
//! and `rss` reports. Only the fields the report uses are read; times become milliseconds.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::Deserialize;

/// One `oha` run: throughput and (coordinated-omission-corrected, with `-q`) latency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OhaRun {
    /// Successful (2xx) responses per second of the run.
    pub(crate) ok_rps: f64,
    /// Responses that were not 2xx, plus transport errors.
    pub(crate) failures: u64,
    /// The most frequent failure, to show in the report.
    pub(crate) first_failure: Option<String>,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
}

/// The fields of `oha --output-format json` the reports read.
#[derive(Deserialize)]
pub(crate) struct RawOha {
    summary: RawSummary,
    #[serde(rename = "latencyPercentiles", default)]
    latency_percentiles: BTreeMap<String, Option<f64>>,
    /// With `--stats-success-breakdown`: the 2xx answers only.
    #[serde(rename = "latencyPercentilesSuccessful", default)]
    pub(crate) ok_percentiles: BTreeMap<String, Option<f64>>,
    /// With `--stats-success-breakdown`: every other answer.
    #[serde(rename = "latencyPercentilesNotSuccessful", default)]
    pub(crate) not_ok_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution", default)]
    status_codes: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution", default)]
    errors: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct RawSummary {
    /// Seconds the run took.
    total: f64,
}

/// A run's answers by kind.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// 2xx answers.
    pub(crate) ok: u64,
    /// Answers with the status set apart (an admission limit's 503s).
    pub(crate) set_apart: u64,
    /// Every other answer that was not 2xx, and transport errors.
    pub(crate) failures: u64,
    /// The most frequent of those.
    pub(crate) first_failure: Option<String>,
}

impl RawOha {
    /// Parses the JSON that `oha --output-format json` prints.
    pub(crate) fn parse(text: &str) -> anyhow::Result<RawOha> {
        serde_json::from_str(text).context("not oha's JSON output")
    }

    /// Counts the answers, setting apart those with status `apart` (when given).
    pub(crate) fn tally(&self, apart: Option<&str>) -> Tally {
        let mut tally = Tally::default();
        let mut first: Option<(u64, String)> = None;
        let mut note = |tally: &mut Tally, count: u64, what: String| {
            tally.failures += count;
            if first.as_ref().is_none_or(|(c, _)| count > *c) {
                first = Some((count, what));
            }
        };
        for (status, count) in &self.status_codes {
            if status.starts_with('2') {
                tally.ok += count;
            } else if Some(status.as_str()) == apart {
                tally.set_apart += count;
            } else {
                note(&mut tally, *count, format!("status {status}"));
            }
        }
        for (error, count) in &self.errors {
            note(&mut tally, *count, error.clone());
        }
        tally.first_failure = first.map(|(_, what)| what);
        tally
    }

    /// `count` per second of the run.
    pub(crate) fn per_second(&self, count: u64) -> f64 {
        if self.summary.total > 0.0 {
            count as f64 / self.summary.total
        } else {
            0.0
        }
    }
}

/// Percentile `key` of `map` (seconds), in milliseconds.
pub(crate) fn ms(map: &BTreeMap<String, Option<f64>>, key: &str) -> Option<f64> {
    map.get(key).copied().flatten().map(|s| s * 1e3)
}

impl OhaRun {
    /// Parses the JSON that `oha --output-format json` prints.
    pub(crate) fn parse(text: &str) -> anyhow::Result<OhaRun> {
        let raw = RawOha::parse(text)?;
        let tally = raw.tally(None);
        // Latencies of requests that all failed say nothing about the hop: leave them out.
        let latency = |key: &str| {
            if tally.ok == 0 {
                return f64::NAN;
            }
            ms(&raw.latency_percentiles, key).unwrap_or(f64::NAN)
        };
        Ok(OhaRun {
            ok_rps: raw.per_second(tally.ok),
            failures: tally.failures,
            first_failure: tally.first_failure,
            p50_ms: latency("p50"),
            p90_ms: latency("p90"),
            p99_ms: latency("p99"),
            p999_ms: latency("p99.9"),
        })
    }
}

/// One `portico-bench ttfb` report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct TtfbRun {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) ttfb_ms: Option<Quantiles>,
    pub(crate) total_ms: Option<Quantiles>,
}

/// The percentiles of a `ttfb` series.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(crate) struct Quantiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
}

impl TtfbRun {
    /// Parses the JSON that `portico-bench ttfb` prints.
    pub(crate) fn parse(text: &str) -> anyhow::Result<TtfbRun> {
        serde_json::from_str(text).context("not portico-bench ttfb's JSON output")
    }
}

/// The peak memory of one process (`portico-bench rss` output), in KiB.
pub(crate) fn parse_hwm_kb(text: &str) -> anyhow::Result<f64> {
    let value: serde_json::Value =
        serde_json::from_str(text).context("not portico-bench rss's JSON output")?;
    value["hwm_kb"]
        .as_f64()
        .context("portico-bench rss output without hwm_kb")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OHA: &str = r#"{
      "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.01, "fastest": 0.0001,
                  "average": 0.001, "requestsPerSec": 1000.0, "totalData": 100,
                  "sizePerRequest": 300, "sizePerSec": 1.0},
      "latencyPercentiles": {"p10": 0.0001, "p50": 0.0005, "p90": 0.001, "p99": 0.002,
                             "p99.9": 0.004, "p99.99": 0.005},
      "statusCodeDistribution": {"200": 1990, "502": 4},
      "errorDistribution": {"aborted due to deadline": 6}
    }"#;

    #[test]
    fn oha_json_is_read_in_milliseconds() {
        let run = OhaRun::parse(OHA).unwrap();
        assert_eq!(run.ok_rps, 995.0);
        assert_eq!(run.failures, 10);
        assert_eq!(
            run.first_failure.as_deref(),
            Some("aborted due to deadline")
        );
        assert!((run.p50_ms - 0.5).abs() < 1e-9);
        assert!((run.p999_ms - 4.0).abs() < 1e-9);
    }

    #[test]
    fn oha_without_responses_has_no_latency() {
        let text = r#"{"summary":{"total":1.0},"latencyPercentiles":{"p50":null},
                       "errorDistribution":{"connection refused":3}}"#;
        let run = OhaRun::parse(text).unwrap();
        assert_eq!(run.ok_rps, 0.0);
        assert!(run.p50_ms.is_nan());
        assert_eq!(run.failures, 3);
    }

    #[test]
    fn ttfb_and_rss_reports_are_read() {
        let ttfb = TtfbRun::parse(
            r#"{"ok":10,"errors":0,"first_error":null,
                "ttfb_ms":{"p50":1.0,"p90":2.0,"p99":3.0,"max":4.0,"mean":1.5},
                "total_ms":{"p50":2.0,"p90":3.0,"p99":4.0,"max":5.0,"mean":2.5}}"#,
        )
        .unwrap();
        assert_eq!(ttfb.ttfb_ms.unwrap().p99, 3.0);
        assert_eq!(parse_hwm_kb(r#"{"hwm_kb": 2048}"#).unwrap(), 2048.0);
        assert!(parse_hwm_kb("{}").is_err());
    }
}
