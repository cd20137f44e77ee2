//! The report on a small synthetic run tree.

use std::path::Path;

use super::*;

fn oha(rps_total: f64, p50_s: f64, p99_s: f64) -> String {
    format!(
        r#"{{"summary":{{"total":1.0}},
            "latencyPercentiles":{{"p50":{p50_s},"p90":{p99_s},"p99":{p99_s},"p99.9":{p99_s}}},
            "statusCodeDistribution":{{"200":{rps_total}}},"errorDistribution":{{}}}}"#
    )
}

fn ttfb(first: f64, total: f64) -> String {
    format!(
        r#"{{"ok":100,"errors":0,"first_error":null,
            "ttfb_ms":{{"p50":{first},"p90":{first},"p99":{first},"max":{first},"mean":{first}}},
            "total_ms":{{"p50":{total},"p90":{total},"p99":{total},"max":{total},"mean":{total}}}}}"#
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

/// Two repeats; Portico adds 0.1 ms (repeat 1) and 0.3 ms (repeat 2) at p50.
fn fixture(raw: &Path) {
    for (rep, extra) in [(1, 0.0001), (2, 0.0003)] {
        let base = raw.join(format!("r{rep}/lat0"));
        let d = base.join("nonstream/direct");
        write(&d, "saturation.json", &oha(40_000.0, 0.001, 0.002));
        write(&d, "rate-5000.json", &oha(5_000.0, 0.001, 0.002));
        write(&d, "mem.json", r#"{"hwm_kb": 4096}"#);
        let p = base.join("nonstream/portico");
        write(
            &p,
            "saturation.json",
            &oha(20_000.0 + 1000.0 * rep as f64, 0.001, 0.003),
        );
        write(
            &p,
            "rate-5000.json",
            &oha(5_000.0, 0.001 + extra, 0.002 + extra),
        );
        write(&p, "mem.json", r#"{"hwm_kb": 20480}"#);
        write(&base.join("stream/direct"), "ttfb.json", &ttfb(1.0, 2.0));
        write(&base.join("stream/portico"), "ttfb.json", &ttfb(1.1, 2.3));
        write(
            &base.join("stream/portico"),
            "mem.json",
            r#"{"hwm_kb": 25600}"#,
        );
    }
}

#[test]
fn added_latency_is_per_repeat_then_median() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let runs = Runs::load(dir.path()).unwrap();
    assert_eq!(runs.repeats.len(), 2);
    assert_eq!(runs.targets(), vec!["direct", "portico"]);
    assert_eq!(runs.rates(), vec![5000]);
    let added = runs
        .added(0, Mode::NonStream, "portico", |s| {
            s.rates.get(&5000).map(|r| r.p50_ms)
        })
        .unwrap();
    assert!((added.median - 0.2).abs() < 1e-9, "{added:?}");
    assert!((added.min - 0.1).abs() < 1e-9 && (added.max - 0.3).abs() < 1e-9);
    let sat = runs
        .spread(0, Mode::NonStream, "portico", |s| {
            s.saturation.as_ref().map(|r| r.ok_rps)
        })
        .unwrap();
    assert_eq!(
        (sat.median, sat.min, sat.max),
        (21_500.0, 21_000.0, 22_000.0)
    );
    assert!(runs.failures().is_empty());
}

#[test]
fn markdown_has_the_headline_table_and_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let runs = Runs::load(dir.path()).unwrap();
    let md = table::markdown(&runs, 64);
    assert!(
        md.contains("| one proxy hop, mock answers at once | saturation rps (c=64)"),
        "{md}"
    );
    assert!(
        md.contains("| **Portico** | 21,500 (21,000–22,000) | +0.200 (+0.100–+0.300)"),
        "{md}"
    );
    assert!(
        md.contains("| 25.0 |"),
        "peak RSS is the max over scenarios: {md}"
    );
    // 21,500 rps meets 20,000; 0.2 ms added p50 misses 0.1.
    assert!(
        md.contains(
            "| saturation rps on one core (mock 0 ms, non-streaming) | >= 20,000 | 21,500 | yes |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| added latency p50 at 5,000 rps (ms) | <= 0.100 | 0.200 | **no** |"),
        "{md}"
    );
    let json = table::summary_json(&runs);
    assert_eq!(json["repeats"], 2);
}

#[test]
fn empty_or_missing_directories_are_errors_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Runs::load(dir.path()).unwrap().repeats.is_empty());
    assert!(Runs::load(&dir.path().join("nope")).is_err());
}

#[test]
fn failed_requests_are_listed_by_target() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let text = r#"{"summary":{"total":1.0},"latencyPercentiles":{"p50":0.001},
                   "statusCodeDistribution":{"200":10,"502":2},"errorDistribution":{}}"#;
    write(
        &dir.path().join("r1/lat0/nonstream/nginx"),
        "saturation.json",
        text,
    );
    let runs = Runs::load(dir.path()).unwrap();
    let failures = runs.failures_by_target();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "nginx");
    assert!(
        failures[0].1.contains("2 failed (status 502)"),
        "{failures:?}"
    );
    assert!(table::markdown(&runs, 64).contains("**Failed requests**"));
}
