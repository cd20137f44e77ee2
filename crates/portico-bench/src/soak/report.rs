//! The soak's markdown report (figures and verdict) and its samples as CSV.

use std::fmt::Write as _;

use super::check::{Checked, KindFigures};
use super::mix::Kind;
use super::sample::{Sample, Trend};

/// One resource's line of the verdict.
pub(crate) struct ResourceLine {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) trend: Option<Trend>,
    /// The limit on growth, as text; `None`: reported, not judged.
    pub(crate) limit: Option<String>,
    pub(crate) failed: bool,
}

/// What the report shows.
pub(crate) struct Report<'a> {
    pub(crate) title: String,
    pub(crate) preamble: Vec<String>,
    pub(crate) failures: &'a [String],
    pub(crate) checked: &'a Checked,
    pub(crate) resources: &'a [ResourceLine],
    pub(crate) idle: Vec<String>,
    pub(crate) samples: &'a [Sample],
    pub(crate) csv_name: String,
}

impl Report<'_> {
    /// The markdown text.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let verdict = if self.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        let _ = writeln!(out, "# {}: {verdict}\n", self.title);
        for line in &self.preamble {
            let _ = writeln!(out, "{line}  ");
        }
        out.push('\n');
        out.push_str("## Verdict\n\n");
        if self.failures.is_empty() {
            out.push_str(
                "Every answered request is in the request log once, with the status, outcome and \
                 cost the client saw; every key's budget was charged exactly the tally's amount, \
                 nothing is left reserved; RSS, file descriptors and tasks stayed flat.\n",
            );
        } else {
            for failure in self.failures {
                let _ = writeln!(out, "- **{failure}**");
            }
        }
        out.push_str(
            "\n## Requests: the client's tally against the request log and the budgets\n\n",
        );
        out.push_str(
            "Costs in micro-USD (the catalog price: 1 µUSD per prompt token, 2 per completion \
             token). *log cost* sums the log records' `cost_usd`; *charge* is what the key's budget \
             should hold: the usage, or the request's estimate for a stream the client left before \
             its usage came.\n\n",
        );
        out.push_str("| kind | sent | client saw | left mid-stream (after the usage) | logged | tokens in / out | log cost expected | log cost | charge expected | budget spent |\n");
        out.push_str("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        let mut rows: Vec<(String, KindFigures)> = Kind::ALL
            .into_iter()
            .filter_map(|k| Some((k.name().to_owned(), self.checked.kinds.get(&k)?.clone())))
            .collect();
        rows.push(("**total**".to_owned(), self.checked.total()));
        for (name, f) in rows {
            let statuses = f
                .statuses
                .iter()
                .map(|(s, n)| {
                    if *s == 0 {
                        format!("no answer ×{n}")
                    } else {
                        format!("{s} ×{n}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "| {name} | {} | {statuses} | {} ({}) | {} | {} / {} | {} | {} | {} | {} |",
                f.sent,
                f.cancelled,
                f.cancelled_late,
                f.logged,
                f.prompt_tokens,
                f.completion_tokens,
                f.expected_log_cost,
                f.log_cost,
                f.expected_charge,
                f.budget_spent.map_or("-".to_owned(), |s| s.to_string()),
            );
        }
        let _ = writeln!(
            out,
            "\nLost records: {}; logged twice: {}; records never sent: {}; records unlike the client's answer: {}; client-side problems: {}. The log held every answered request {:.1} s after the load ended.\n",
            self.checked.lost.len(),
            self.checked.duplicates.len(),
            self.checked.strangers,
            self.checked.mismatches.len(),
            self.checked.problems.len(),
            self.checked.flush_wait_s,
        );
        out.push_str("## Resources\n\n");
        out.push_str("| resource | first quarter (mean) | last quarter (mean) | growth | max | slope per minute | limit on growth | |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
        for line in self.resources {
            match &line.trend {
                Some(t) => {
                    let _ = writeln!(
                        out,
                        "| {} ({}) | {:.1} | {:.1} | {:+.1} | {:.1} | {:+.2} | {} | {} |",
                        line.name,
                        line.unit,
                        t.first_mean,
                        t.last_mean,
                        t.growth(),
                        t.max,
                        t.slope_per_min,
                        line.limit.as_deref().unwrap_or("reported only"),
                        if line.failed { "**grew**" } else { "flat" },
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "| {} ({}) | - | - | - | - | - | not measured | |",
                        line.name, line.unit
                    );
                }
            }
        }
        out.push('\n');
        for line in &self.idle {
            let _ = writeln!(out, "{line}  ");
        }
        out.push_str("\n## Samples (about one a minute; every sample in ");
        out.push_str(&self.csv_name);
        out.push_str(")\n\n| t (s) | RSS (MiB) | fds (sockets) | threads | runtime tasks | in flight | background | soak in flight | load avg |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        let mut next_t = 0.0;
        for (i, s) in self.samples.iter().enumerate() {
            if s.t_s < next_t && i + 1 != self.samples.len() {
                continue;
            }
            next_t = s.t_s + 59.0;
            let _ = writeln!(
                out,
                "| {:.0} | {:.1} | {} ({}) | {} | {} | {} | {} | {} | {:.2} |",
                s.t_s,
                s.rss_kb as f64 / 1024.0,
                s.fds,
                s.sockets,
                s.threads,
                opt(s.tasks),
                opt(s.in_flight),
                opt(s.background),
                s.client_in_flight,
                s.load1,
            );
        }
        out
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

/// Every sample as CSV.
pub(crate) fn csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "t_s,rss_kb,fds,sockets,threads,runtime_tasks,requests_in_flight,background_tasks,soak_in_flight,load1\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            s.t_s,
            s.rss_kb,
            s.fds,
            s.sockets,
            s.threads,
            s.tasks.map_or(String::new(), |v| v.to_string()),
            s.in_flight.map_or(String::new(), |v| v.to_string()),
            s.background.map_or(String::new(), |v| v.to_string()),
            s.client_in_flight,
            s.load1
        );
    }
    out
}
