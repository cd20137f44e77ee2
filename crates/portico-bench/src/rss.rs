//! `portico-bench rss`: memory of a running process, sampled from `/proc/PID/status`.
//!
//! Samples `VmRSS` (resident now) and `VmHWM` (the kernel's high-water mark) every
//! `--interval-ms` for `--duration-s` (0: one sample), or until the process is gone, and
//! prints peak, first/last, the mean of the first and last window (a minute by default) and a
//! least-squares growth rate as JSON, with the whole series. With `--max-growth-mb` /
//! `--max-growth-pct` it exits 1 when the last window's mean exceeds the first's by more than
//! either: the soak's verdict.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::stats::slope;

/// Options of `portico-bench rss`.
#[derive(clap::Args, Debug)]
pub(crate) struct RssArgs {
    /// Process to watch.
    #[arg(long)]
    pid: u32,
    /// Time between two samples.
    #[arg(long, default_value_t = 5000)]
    interval_ms: u64,
    /// How long to sample; 0 takes one sample.
    #[arg(long, default_value_t = 0)]
    duration_s: u64,
    /// Length of the first and last windows that are compared.
    #[arg(long, default_value_t = 60)]
    window_s: u64,
    /// Fail (exit 1) when the last window's mean RSS exceeds the first's by more than this.
    #[arg(long)]
    max_growth_mb: Option<f64>,
    /// Fail (exit 1) when the last window's mean RSS exceeds the first's by more than this %.
    #[arg(long)]
    max_growth_pct: Option<f64>,
}

/// One reading of `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    rss_kb: u64,
    hwm_kb: u64,
}

/// Samples, prints the report and gives the verdict as the exit code.
pub(crate) fn run(args: RssArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/proc/{}/status", args.pid);
    let started = Instant::now();
    let end = started + Duration::from_secs(args.duration_s);
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut samples: Vec<(f64, Reading)> = Vec::new();
    loop {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if !samples.is_empty() => break, // the process ended: report what we have
            Err(err) => return Err(err).with_context(|| format!("reading {path}")),
        };
        samples.push((started.elapsed().as_secs_f64(), parse_status(&text)?));
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(interval.min(end - now));
    }
    let verdict = Verdict::of(&samples, args.window_s as f64);
    let over_mb = args
        .max_growth_mb
        .is_some_and(|max| verdict.growth_kb / 1024.0 > max);
    let over_pct = args
        .max_growth_pct
        .is_some_and(|max| verdict.growth_pct > max);
    let pass = !(over_mb || over_pct);
    crate::print_json(&json!({
        "pid": args.pid,
        "samples": samples.len(),
        "duration_s": samples.last().map_or(0.0, |s| s.0),
        "first_rss_kb": samples.first().map(|s| s.1.rss_kb),
        "last_rss_kb": samples.last().map(|s| s.1.rss_kb),
        "peak_rss_kb": samples.iter().map(|s| s.1.rss_kb).max(),
        "hwm_kb": samples.iter().map(|s| s.1.hwm_kb).max(),
        "window_s": verdict.window_s,
        "first_window_mean_kb": verdict.first_mean_kb,
        "last_window_mean_kb": verdict.last_mean_kb,
        "growth_kb": verdict.growth_kb,
        "growth_pct": verdict.growth_pct,
        "slope_kb_per_min": verdict.slope_kb_per_min,
        "max_growth_mb": args.max_growth_mb,
        "max_growth_pct": args.max_growth_pct,
        "pass": pass,
        // Every sample as [seconds, VmRSS KiB], so a plateau can be told from steady growth.
        "series": samples.iter().map(|s| json!([(s.0 * 10.0).round() / 10.0, s.1.rss_kb])).collect::<Vec<_>>(),
    }))?;
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Growth between the first and the last window of a series of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verdict {
    window_s: f64,
    first_mean_kb: f64,
    last_mean_kb: f64,
    growth_kb: f64,
    growth_pct: f64,
    slope_kb_per_min: f64,
}

impl Verdict {
    /// Windows are `window_s` long, shrunk to a quarter of the run for short runs.
    fn of(samples: &[(f64, Reading)], window_s: f64) -> Verdict {
        // Times from the first sample, so that one sample is both the first and last window.
        let t0 = samples.first().map_or(0.0, |s| s.0);
        let samples: Vec<(f64, Reading)> = samples.iter().map(|s| (s.0 - t0, s.1)).collect();
        let span = samples.last().map_or(0.0, |s| s.0);
        let window_s = window_s.min(span / 4.0);
        let mean = |keep: &dyn Fn(f64) -> bool| {
            let v: Vec<f64> = samples
                .iter()
                .filter(|s| keep(s.0))
                .map(|s| s.1.rss_kb as f64)
                .collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let first_mean_kb = mean(&|t| t <= window_s);
        let last_mean_kb = mean(&|t| t >= span - window_s);
        let growth_kb = last_mean_kb - first_mean_kb;
        let growth_pct = if first_mean_kb > 0.0 {
            growth_kb / first_mean_kb * 100.0
        } else {
            0.0
        };
        let points: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| (s.0 / 60.0, s.1.rss_kb as f64))
            .collect();
        Verdict {
            window_s,
            first_mean_kb,
            last_mean_kb,
            growth_kb,
            growth_pct,
            slope_kb_per_min: slope(&points),
        }
    }
}

/// Reads `VmRSS` and `VmHWM` (both in kB) from the text of `/proc/PID/status`.
fn parse_status(text: &str) -> anyhow::Result<Reading> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss_kb), Some(hwm_kb)) => Ok(Reading { rss_kb, hwm_kb }),
        _ => bail!("no VmRSS/VmHWM in /proc status (a kernel thread or a zombie?)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text = "Name:\tportico\nVmPeak:\t  100 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   18000 kB\n";
        assert_eq!(
            parse_status(text).unwrap(),
            Reading {
                rss_kb: 18000,
                hwm_kb: 20480
            }
        );
        assert!(parse_status("Name:\tkthreadd\n").is_err());
    }

    #[test]
    fn own_process_can_be_read() {
        let text = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(parse_status(&text).unwrap().hwm_kb > 0);
    }

    #[test]
    fn growth_compares_first_and_last_window() {
        let reading = |rss_kb| Reading {
            rss_kb,
            hwm_kb: rss_kb,
        };
        // 10 minutes, a sample every 5 s, 100 KiB more every sample.
        let samples: Vec<(f64, Reading)> = (0..=120)
            .map(|i| {
                (
                    f64::from(i) * 5.0,
                    reading(10_000 + 100 * u64::from(i as u32)),
                )
            })
            .collect();
        let v = Verdict::of(&samples, 60.0);
        assert_eq!(v.window_s, 60.0);
        // Means of samples 0..=12 and 108..=120: 10,600 and 21,400 KiB.
        assert!((v.first_mean_kb - 10_600.0).abs() < 1e-6);
        assert!((v.last_mean_kb - 21_400.0).abs() < 1e-6);
        assert!((v.slope_kb_per_min - 1_200.0).abs() < 1e-6);
        let flat: Vec<(f64, Reading)> = (0..=10).map(|i| (f64::from(i), reading(5000))).collect();
        let v = Verdict::of(&flat, 60.0);
        assert_eq!((v.growth_kb, v.growth_pct), (0.0, 0.0));
        let one = Verdict::of(&[(0.25, reading(7000))], 60.0);
        assert_eq!(
            (one.first_mean_kb, one.last_mean_kb, one.growth_kb),
            (7000.0, 7000.0, 0.0)
        );
    }
}
