//! `portico-bench report`: the tables of a run, built from its raw result files.
//!
//! `bench/run.sh` lays the raw files out as
//! `RAW/r<repeat>/lat<ms>/<mode>/<target>/{saturation,rate-<rps>,ttfb,mem}.json`, where mode is
//! `nonstream` or `stream` and target is `direct` (straight to the mock), `nginx`, `portico`,
//! or a peer. This module loads that tree ([`Runs`]); [`table`] renders it. Added latency is
//! always target minus `direct` *of the same repeat*, then the median and min–max over repeats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::oha::{OhaRun, TtfbRun, parse_hwm_kb};
use crate::stats::Spread;

mod extras;
mod table;

/// Options of `portico-bench report`.
#[derive(clap::Args, Debug)]
pub(crate) struct ReportArgs {
    /// The raw results directory of one run.
    #[arg(long)]
    raw: PathBuf,
    /// Markdown file to write (the tables); also printed to stdout.
    #[arg(long)]
    markdown: PathBuf,
    /// JSON file to write (the same numbers, per scenario and repeat).
    #[arg(long)]
    json: PathBuf,
    /// Markdown put before the tables (date, commit, machine, noise notes).
    #[arg(long)]
    preamble: Option<PathBuf>,
    /// Concurrency of the saturation runs, for the table headers.
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// Exit 1 when a request to one of these targets failed (comma-separated), e.g.
    /// `direct,nginx,portico`; peers are usually left out, their failures are only reported.
    #[arg(long, value_delimiter = ',')]
    fail_on_errors_of: Vec<String>,
}

/// Whether the mock streamed its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    NonStream,
    Stream,
}

impl Mode {
    fn parse(dir: &str) -> Option<Mode> {
        match dir {
            "nonstream" => Some(Mode::NonStream),
            "stream" => Some(Mode::Stream),
            _ => None,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::NonStream => "non-streaming",
            Mode::Stream => "streaming",
        }
    }
}

/// Everything measured for one target in one scenario of one repeat.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scenario {
    pub(crate) saturation: Option<OhaRun>,
    pub(crate) rates: BTreeMap<u64, OhaRun>,
    pub(crate) ttfb: Option<TtfbRun>,
    pub(crate) hwm_kb: Option<f64>,
}

/// (mock latency ms, mode, target)
pub(crate) type Key = (u64, Mode, String);

/// All scenarios of a run, by repeat.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    pub(crate) repeats: BTreeMap<u32, BTreeMap<Key, Scenario>>,
}

/// The order targets are listed in; peers and unknown names follow.
const TARGET_ORDER: [&str; 10] = [
    "direct",
    "nginx",
    "portico",
    "portico-fallback",
    "portico-limits",
    "portico-cache",
    "portico-full",
    "portico-baseline",
    "portkey",
    "litellm",
];

impl Runs {
    /// Loads `RAW/r*/lat*/*/*/`; files that are missing are simply absent from the report.
    pub(crate) fn load(raw: &Path) -> anyhow::Result<Runs> {
        let mut runs = Runs::default();
        for (rep_dir, rep) in numbered(raw, "r")? {
            for (lat_dir, lat) in numbered(&rep_dir, "lat")? {
                for (mode_dir, mode_name) in subdirs(&lat_dir)? {
                    let Some(mode) = Mode::parse(&mode_name) else {
                        continue;
                    };
                    for (target_dir, target) in subdirs(&mode_dir)? {
                        let scenario = load_scenario(&target_dir)?;
                        runs.repeats
                            .entry(rep as u32)
                            .or_default()
                            .insert((lat, mode, target), scenario);
                    }
                }
            }
        }
        Ok(runs)
    }

    /// Every (latency, mode) seen, in order.
    pub(crate) fn scenarios(&self) -> Vec<(u64, Mode)> {
        let mut all: Vec<(u64, Mode)> = self
            .repeats
            .values()
            .flat_map(|m| m.keys().map(|k| (k.0, k.1)))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Every target seen, direct first, then nginx, portico and the peers.
    pub(crate) fn targets(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .repeats
            .values()
            .flat_map(|m| m.keys().map(|k| k.2.clone()))
            .collect();
        all.sort_by_key(|t| {
            (
                TARGET_ORDER
                    .iter()
                    .position(|o| o == t)
                    .unwrap_or(usize::MAX),
                t.clone(),
            )
        });
        all.dedup();
        all
    }

    /// Every open-loop rate seen.
    pub(crate) fn rates(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .repeats
            .values()
            .flat_map(|m| m.values().flat_map(|s| s.rates.keys().copied()))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// `metric` of one target over the repeats.
    pub(crate) fn spread(
        &self,
        lat: u64,
        mode: Mode,
        target: &str,
        metric: impl Fn(&Scenario) -> Option<f64>,
    ) -> Option<Spread> {
        let values: Vec<f64> = self
            .repeats
            .values()
            .filter_map(|m| m.get(&(lat, mode, target.to_owned())).and_then(&metric))
            .collect();
        Spread::of(&values)
    }

    /// `metric` of one target minus that of `direct`, per repeat, over the repeats.
    pub(crate) fn added(
        &self,
        lat: u64,
        mode: Mode,
        target: &str,
        metric: impl Fn(&Scenario) -> Option<f64>,
    ) -> Option<Spread> {
        let values: Vec<f64> = self
            .repeats
            .values()
            .filter_map(|m| {
                let t = m.get(&(lat, mode, target.to_owned())).and_then(&metric)?;
                let d = m.get(&(lat, mode, "direct".to_owned())).and_then(&metric)?;
                Some(t - d)
            })
            .collect();
        Spread::of(&values)
    }

    /// Scenarios where requests failed, one line each.
    pub(crate) fn failures(&self) -> Vec<String> {
        self.failures_by_target()
            .into_iter()
            .map(|(_, line)| line)
            .collect()
    }

    /// Scenarios where requests failed: (target, line).
    pub(crate) fn failures_by_target(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (rep, scenarios) in &self.repeats {
            for ((lat, mode, target), s) in scenarios {
                let place = format!("repeat {rep}, {target}, mock {lat} ms, {}", mode.label());
                let runs = s
                    .saturation
                    .iter()
                    .map(|r| ("saturation".to_owned(), r))
                    .chain(s.rates.iter().map(|(q, r)| (format!("{q} rps"), r)));
                for (what, run) in runs {
                    if run.failures > 0 {
                        out.push((
                            target.clone(),
                            format!(
                                "{place}, {what}: {} failed ({})",
                                run.failures,
                                run.first_failure.as_deref().unwrap_or("?")
                            ),
                        ));
                    }
                }
                if let Some(t) = s.ttfb.as_ref().filter(|t| t.errors > 0) {
                    out.push((
                        target.clone(),
                        format!(
                            "{place}, ttfb: {} failed ({})",
                            t.errors,
                            t.first_error.as_deref().unwrap_or("?")
                        ),
                    ));
                }
            }
        }
        out
    }
}

fn load_scenario(dir: &Path) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::default();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let text = || {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let context = || format!("in {}", path.display());
        if name == "saturation.json" {
            scenario.saturation = Some(OhaRun::parse(&text()?).with_context(context)?);
        } else if let Some(rate) = name
            .strip_prefix("rate-")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|r| r.parse().ok())
        {
            let run = OhaRun::parse(&text()?).with_context(context)?;
            scenario.rates.insert(rate, run);
        } else if name == "ttfb.json" {
            scenario.ttfb = Some(TtfbRun::parse(&text()?).with_context(context)?);
        } else if name == "mem.json" {
            scenario.hwm_kb = Some(parse_hwm_kb(&text()?).with_context(context)?);
        }
    }
    Ok(scenario)
}

/// Subdirectories `PREFIX<number>` of `dir`, by number.
fn numbered(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut out: Vec<(PathBuf, u64)> = subdirs(dir)?
        .into_iter()
        .filter_map(|(path, name)| Some((path, name.strip_prefix(prefix)?.parse().ok()?)))
        .collect();
    out.sort_by_key(|(_, n)| *n);
    Ok(out)
}

/// Subdirectories of `dir` with their names, sorted.
fn subdirs(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && let Some(name) = entry.file_name().to_str()
        {
            out.push((entry.path(), name.to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads the run, writes the markdown and JSON, and prints the markdown.
pub(crate) fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let runs = Runs::load(&args.raw)?;
    if runs.repeats.is_empty() {
        anyhow::bail!("no results under {}", args.raw.display());
    }
    let preamble = match &args.preamble {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => String::new(),
    };
    let extras = extras::Extras::load(&args.raw)?;
    let markdown = format!(
        "{preamble}{}{}",
        table::markdown(&runs, args.concurrency),
        extras.markdown()
    );
    std::fs::write(&args.markdown, &markdown)
        .with_context(|| format!("writing {}", args.markdown.display()))?;
    let mut json = table::summary_json(&runs);
    if let Some(object) = json.as_object_mut() {
        let overload: serde_json::Map<String, serde_json::Value> = extras
            .overload
            .iter()
            .map(|(target, o)| {
                let value = serde_json::json!({
                    "offered_rps": o.offered_rps, "ok_rps": o.ok_rps, "refused": o.refused,
                    "other_failures": o.other_failures, "ok_p50_ms": o.ok_p50_ms,
                    "ok_p99_ms": o.ok_p99_ms, "refused_p99_ms": o.refused_p99_ms,
                    "hwm_kb": o.hwm_kb,
                });
                (target.clone(), value)
            })
            .collect();
        object.insert("overload".into(), overload.into());
        let coldstart: serde_json::Map<String, serde_json::Value> = extras
            .coldstart
            .iter()
            .map(|(target, c)| (target.clone(), serde_json::json!(c.median_ms)))
            .collect();
        object.insert("coldstart_median_ms".into(), coldstart.into());
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(markdown.as_bytes())?;
    }
    let fatal: Vec<String> = runs
        .failures_by_target()
        .into_iter()
        .filter(|(target, _)| args.fail_on_errors_of.contains(target))
        .map(|(_, line)| line)
        .collect();
    if fatal.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("portico-bench report: requests failed:");
    for line in &fatal {
        eprintln!("  {line}");
    }
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests;
