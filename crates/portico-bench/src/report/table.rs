//! Rendering of a run: the headline table (the shape of `docs/performance.md`'s reference
//! table), detail tables, Portico's targets, failures, and the summary JSON.
//!
//! Every cell is `median (min–max)` over the repeats, or one number for a single repeat.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Mode, Runs, Scenario};
use crate::stats::Spread;

fn target_label(target: &str) -> String {
    match target {
        "direct" => "direct to the mock (no hop)".to_owned(),
        "nginx" => "nginx proxy_pass".to_owned(),
        "portico" => "**Portico**".to_owned(),
        "portico-fallback" => "Portico, one fallback hop (first target 404s)".to_owned(),
        "portico-limits" => "Portico, key budget and rate limit on".to_owned(),
        "portico-cache" => "Portico, simple cache on (every request a hit)".to_owned(),
        "portico-full" => {
            "Portico, fallback + retry config, key budget and rate limit on".to_owned()
        }
        "portico-baseline" => "Portico, baseline build (--baseline)".to_owned(),
        "portkey" => "Portkey gateway (node)".to_owned(),
        "litellm" => "LiteLLM proxy (python, 1 worker)".to_owned(),
        other => other.to_owned(),
    }
}

fn fmt_num(x: f64, signed: bool) -> String {
    let decimals = match x.abs() {
        a if a < 1.0 => 3,
        a if a < 100.0 => 2,
        _ => 1,
    };
    if signed {
        format!("{x:+.decimals$}")
    } else {
        format!("{x:.decimals$}")
    }
}

fn fmt_rps(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `median (min–max)` with `f` for each number; `—` when there is nothing.
fn cell(spread: Option<Spread>, f: impl Fn(f64) -> String) -> String {
    match spread {
        None => "—".to_owned(),
        Some(s) if s.n == 1 || s.min == s.max => f(s.median),
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
    }
}

fn ms(spread: Option<Spread>) -> String {
    cell(spread, |x| fmt_num(x, false))
}

fn added_ms(spread: Option<Spread>) -> String {
    cell(spread, |x| fmt_num(x, true))
}

fn rps(spread: Option<Spread>) -> String {
    cell(spread, fmt_rps)
}

fn sat_rps(s: &Scenario) -> Option<f64> {
    s.saturation.as_ref().map(|r| r.ok_rps)
}

fn rate_metric(rate: u64, f: fn(&crate::oha::OhaRun) -> f64) -> impl Fn(&Scenario) -> Option<f64> {
    move |s| s.rates.get(&rate).map(f).filter(|x| x.is_finite())
}

fn ttfb_p50(s: &Scenario) -> Option<f64> {
    s.ttfb.as_ref()?.ttfb_ms.map(|q| q.p50)
}
fn ttfb_p99(s: &Scenario) -> Option<f64> {
    s.ttfb.as_ref()?.ttfb_ms.map(|q| q.p99)
}
fn total_p50(s: &Scenario) -> Option<f64> {
    s.ttfb.as_ref()?.total_ms.map(|q| q.p50)
}
fn total_p99(s: &Scenario) -> Option<f64> {
    s.ttfb.as_ref()?.total_ms.map(|q| q.p99)
}

/// Peak VmHWM of a target over every scenario and repeat, in MB.
fn peak_rss_mb(runs: &Runs, target: &str) -> Option<f64> {
    runs.repeats
        .values()
        .flat_map(|m| m.iter())
        .filter(|(k, _)| k.2 == target)
        .filter_map(|(_, s)| s.hwm_kb)
        .map(|kb| kb / 1024.0)
        .reduce(f64::max)
}

/// The whole markdown report.
pub(super) fn markdown(runs: &Runs, concurrency: u32) -> String {
    let mut md = String::new();
    let targets = runs.targets();
    let rates = runs.rates();
    let top_rate = rates.last().copied();
    let lats: Vec<u64> = {
        let mut l: Vec<u64> = runs.scenarios().iter().map(|s| s.0).collect();
        l.dedup();
        l
    };
    let _ = writeln!(
        md,
        "Cells: median (min–max) over {} repeat(s). Added = target minus direct in the same \
         repeat. Latency in ms, RSS in MB (VmHWM).\n",
        runs.repeats.len()
    );

    for &lat in &lats {
        let head = if lat == 0 {
            "mock answers at once".to_owned()
        } else {
            format!("mock answers after {lat} ms")
        };
        let rate_label =
            top_rate.map_or("—".to_owned(), |r| format!("{} rps", fmt_rps(r as f64)));
        let _ = writeln!(
            md,
            "| one proxy hop, {head} | saturation rps (c={concurrency}) | added latency p50 / p99 \
             at {rate_label} | streaming: added TTFB p50 / added total p50 | peak RSS |"
        );
        md.push_str("| --- | --- | --- | --- | --- |\n");
        for target in &targets {
            let sat = rps(runs.spread(lat, Mode::NonStream, target, sat_rps));
            let (lat_cell, stream_cell) = if target == "direct" {
                let l = top_rate.map(|r| {
                    format!(
                        "abs. {} / {}",
                        ms(runs.spread(lat, Mode::NonStream, target, rate_metric(r, |o| o.p50_ms))),
                        ms(runs.spread(lat, Mode::NonStream, target, rate_metric(r, |o| o.p99_ms)))
                    )
                });
                let s = format!(
                    "abs. {} / {}",
                    ms(runs.spread(lat, Mode::Stream, target, ttfb_p50)),
                    ms(runs.spread(lat, Mode::Stream, target, total_p50))
                );
                (l.unwrap_or_else(|| "—".to_owned()), s)
            } else {
                let l = top_rate.map(|r| {
                    format!(
                        "{} / {}",
                        added_ms(runs.added(
                            lat,
                            Mode::NonStream,
                            target,
                            rate_metric(r, |o| o.p50_ms)
                        )),
                        added_ms(runs.added(
                            lat,
                            Mode::NonStream,
                            target,
                            rate_metric(r, |o| o.p99_ms)
                        ))
                    )
                });
                let s = format!(
                    "{} / {}",
                    added_ms(runs.added(lat, Mode::Stream, target, ttfb_p50)),
                    added_ms(runs.added(lat, Mode::Stream, target, total_p50))
                );
                (l.unwrap_or_else(|| "—".to_owned()), s)
            };
            let rss = peak_rss_mb(runs, target).map_or("—".to_owned(), |mb| {
                if target == "direct" {
                    format!("(mock) {mb:.1}")
                } else {
                    format!("{mb:.1}")
                }
            });
            let _ = writeln!(
                md,
                "| {} | {sat} | {lat_cell} | {stream_cell} | {rss} |",
                target_label(target)
            );
        }
        md.push('\n');
    }

    detail_saturation(&mut md, runs, &targets, concurrency);
    detail_latency(&mut md, runs, &targets, &rates);
    detail_streams(&mut md, runs, &targets);
    portico_targets(&mut md, runs, top_rate);

    let failures = runs.failures();
    if !failures.is_empty() {
        md.push_str("\n**Failed requests** (numbers above count only the successful ones):\n\n");
        for f in failures.iter().take(40) {
            let _ = writeln!(md, "- {f}");
        }
        if failures.len() > 40 {
            let _ = writeln!(md, "- ... and {} more", failures.len() - 40);
        }
    }
    md
}

fn detail_saturation(md: &mut String, runs: &Runs, targets: &[String], concurrency: u32) {
    let scenarios = runs.scenarios();
    let _ = writeln!(
        md,
        "#### Saturation throughput (successful rps, closed loop, c={concurrency})\n"
    );
    md.push_str("| target |");
    for (lat, mode) in &scenarios {
        let _ = write!(md, " mock {lat} ms, {} |", mode.label());
    }
    md.push('\n');
    md.push_str("| --- |");
    md.push_str(&" --- |".repeat(scenarios.len()));
    md.push('\n');
    for target in targets {
        let _ = write!(md, "| {} |", target_label(target));
        for (lat, mode) in &scenarios {
            let _ = write!(md, " {} |", rps(runs.spread(*lat, *mode, target, sat_rps)));
        }
        md.push('\n');
    }
    md.push('\n');
}

fn detail_latency(md: &mut String, runs: &Runs, targets: &[String], rates: &[u64]) {
    if rates.is_empty() {
        return;
    }
    md.push_str(
        "#### Open-loop latency (fixed rate, coordinated-omission corrected, ms)\n\n\
         | mock | mode | rate | target | achieved rps | p50 | p90 | p99 | p99.9 | added p50 | added p99 |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (lat, mode) in runs.scenarios() {
        for &rate in rates {
            for target in targets {
                let m = |f: fn(&crate::oha::OhaRun) -> f64| {
                    runs.spread(lat, mode, target, rate_metric(rate, f))
                };
                if m(|o| o.ok_rps).is_none() {
                    continue;
                }
                let (a50, a99) = if target == "direct" {
                    ("—".to_owned(), "—".to_owned())
                } else {
                    (
                        added_ms(runs.added(lat, mode, target, rate_metric(rate, |o| o.p50_ms))),
                        added_ms(runs.added(lat, mode, target, rate_metric(rate, |o| o.p99_ms))),
                    )
                };
                let _ = writeln!(
                    md,
                    "| {lat} ms | {} | {} | {} | {} | {} | {} | {} | {} | {a50} | {a99} |",
                    mode.label(),
                    fmt_rps(rate as f64),
                    target_label(target),
                    rps(m(|o| o.ok_rps)),
                    ms(m(|o| o.p50_ms)),
                    ms(m(|o| o.p90_ms)),
                    ms(m(|o| o.p99_ms)),
                    ms(m(|o| o.p999_ms)),
                );
            }
        }
    }
    md.push('\n');
}

fn detail_streams(md: &mut String, runs: &Runs, targets: &[String]) {
    let lats: Vec<u64> = runs
        .scenarios()
        .into_iter()
        .filter(|s| s.1 == Mode::Stream)
        .map(|s| s.0)
        .collect();
    if lats.is_empty() {
        return;
    }
    md.push_str(
        "#### Streams (portico-bench ttfb, ms)\n\n\
         | mock | target | TTFB p50 | TTFB p99 | total p50 | total p99 | added TTFB p50 | added TTFB p99 | added total p50 |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for lat in lats {
        for target in targets {
            let s = |f: fn(&Scenario) -> Option<f64>| runs.spread(lat, Mode::Stream, target, f);
            if s(ttfb_p50).is_none() {
                continue;
            }
            let a = |f: fn(&Scenario) -> Option<f64>| {
                if target == "direct" {
                    "—".to_owned()
                } else {
                    added_ms(runs.added(lat, Mode::Stream, target, f))
                }
            };
            let _ = writeln!(
                md,
                "| {lat} ms | {} | {} | {} | {} | {} | {} | {} | {} |",
                target_label(target),
                ms(s(ttfb_p50)),
                ms(s(ttfb_p99)),
                ms(s(total_p50)),
                ms(s(total_p99)),
                a(ttfb_p50),
                a(ttfb_p99),
                a(total_p50),
            );
        }
    }
    md.push('\n');
}

/// Portico's targets from docs/performance.md, each with the measured median and a verdict.
fn portico_targets(md: &mut String, runs: &Runs, top_rate: Option<u64>) {
    if !runs.targets().iter().any(|t| t == "portico") {
        return;
    }
    let nonstream = Mode::NonStream;
    let mut rows: Vec<(String, Option<f64>, f64, &str)> = vec![(
        "saturation rps on one core (mock 0 ms, non-streaming)".to_owned(),
        runs.spread(0, nonstream, "portico", sat_rps)
            .map(|s| s.median),
        20_000.0,
        ">=",
    )];
    if let Some(rate) = top_rate {
        rows.push((
            format!("added latency p50 at {} rps (ms)", fmt_rps(rate as f64)),
            runs.added(0, nonstream, "portico", rate_metric(rate, |o| o.p50_ms))
                .map(|s| s.median),
            0.1,
            "<=",
        ));
        rows.push((
            format!("added latency p99 at {} rps (ms)", fmt_rps(rate as f64)),
            runs.added(0, nonstream, "portico", rate_metric(rate, |o| o.p99_ms))
                .map(|s| s.median),
            0.5,
            "<=",
        ));
    }
    rows.push((
        "streaming: added TTFB p50 (ms)".to_owned(),
        runs.added(0, Mode::Stream, "portico", ttfb_p50)
            .map(|s| s.median),
        0.2,
        "<=",
    ));
    let per_chunk = runs
        .added(0, Mode::Stream, "portico", total_p50)
        .zip(runs.added(0, Mode::Stream, "portico", ttfb_p50))
        .map(|(t, f)| t.median - f.median);
    rows.push((
        "streaming: added time after the first byte, p50 (ms; \"nothing per chunk\", read as <= 0.1)".to_owned(),
        per_chunk,
        0.1,
        "<=",
    ));
    rows.push((
        "peak RSS over all scenarios (MB)".to_owned(),
        peak_rss_mb(runs, "portico"),
        30.0,
        "<=",
    ));
    md.push_str("#### Portico against its targets\n\n| target | goal | measured (median) | met? |\n| --- | --- | --- | --- |\n");
    for (what, value, goal, op) in rows {
        let (measured, verdict) = match value {
            None => ("—".to_owned(), "not measured"),
            Some(v) => {
                let met = if op == ">=" { v >= goal } else { v <= goal };
                let shown = if op == ">=" {
                    fmt_rps(v)
                } else {
                    fmt_num(v, false)
                };
                (shown, if met { "yes" } else { "**no**" })
            }
        };
        let goal = if op == ">=" {
            fmt_rps(goal)
        } else {
            fmt_num(goal, false)
        };
        let _ = writeln!(md, "| {what} | {op} {goal} | {measured} | {verdict} |");
    }
}

/// Every scenario and repeat as JSON, plus the headline numbers.
pub(super) fn summary_json(runs: &Runs) -> Value {
    let spread = |s: Option<Spread>| serde_json::to_value(s).unwrap_or(Value::Null);
    let mut scenarios = Vec::new();
    for (lat, mode) in runs.scenarios() {
        for target in runs.targets() {
            let mut rates = serde_json::Map::new();
            for rate in runs.rates() {
                let m = |f: fn(&crate::oha::OhaRun) -> f64| {
                    spread(runs.spread(lat, mode, &target, rate_metric(rate, f)))
                };
                let a = |f: fn(&crate::oha::OhaRun) -> f64| {
                    spread(runs.added(lat, mode, &target, rate_metric(rate, f)))
                };
                rates.insert(
                    rate.to_string(),
                    json!({
                        "achieved_rps": m(|o| o.ok_rps),
                        "p50_ms": m(|o| o.p50_ms), "p90_ms": m(|o| o.p90_ms),
                        "p99_ms": m(|o| o.p99_ms), "p99_9_ms": m(|o| o.p999_ms),
                        "added_p50_ms": a(|o| o.p50_ms), "added_p99_ms": a(|o| o.p99_ms),
                    }),
                );
            }
            scenarios.push(json!({
                "mock_latency_ms": lat,
                "mode": mode.label(),
                "target": target,
                "saturation_rps": spread(runs.spread(lat, mode, &target, sat_rps)),
                "rates": rates,
                "ttfb_p50_ms": spread(runs.spread(lat, mode, &target, ttfb_p50)),
                "ttfb_p99_ms": spread(runs.spread(lat, mode, &target, ttfb_p99)),
                "total_p50_ms": spread(runs.spread(lat, mode, &target, total_p50)),
                "added_ttfb_p50_ms": spread(runs.added(lat, mode, &target, ttfb_p50)),
                "added_ttfb_p99_ms": spread(runs.added(lat, mode, &target, ttfb_p99)),
                "added_total_p50_ms": spread(runs.added(lat, mode, &target, total_p50)),
                "peak_rss_mb": spread(runs.spread(lat, mode, &target, |s| s.hwm_kb.map(|k| k / 1024.0))),
            }));
        }
    }
    json!({
        "repeats": runs.repeats.len(),
        "scenarios": scenarios,
        "failures": runs.failures(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(fmt_rps(51234.4), "51,234");
        assert_eq!(fmt_rps(999.0), "999");
        assert_eq!(fmt_rps(-1500.0), "-1,500");
        assert_eq!(fmt_num(0.04321, true), "+0.043");
        assert_eq!(fmt_num(-1.5, true), "-1.50");
        assert_eq!(fmt_num(415.0, false), "415.0");
        assert_eq!(cell(None, |x| x.to_string()), "—");
        let s = Spread::of(&[1.0, 2.0, 3.0]);
        assert_eq!(rps(s), "2 (1–3)");
    }
}
