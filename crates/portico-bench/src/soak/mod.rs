//! `portico-bench soak`: an hour (or a minute) at a fixed rate with every kind of traffic
//! mixed in, then an audit: every request in the log, every micro-dollar of spend accounted
//! for, and memory, file descriptors and tasks flat (docs/performance.md, "Soak").
//!
//! The run: start a mock upstream on a thread of this process ([`crate::mock`], plus its
//! failing paths) and `portico serve` on a fresh data dir (or use a gateway that is given);
//! create through the admin API what the mix needs ([`gateway::set_up`]): three providers
//! on the mock (one good, one answering 500, one 429), a fallback config from the 500 one to
//! the good one, and one key per kind of request, each with a budget (the budget kind's
//! small enough to run out half-way); send the mix ([`mix`]) at `--rate` for `--duration`
//! ([`load`]), open loop, each request with a unique trace id and the run's metadata,
//! tallying what the client saw; sample the gateway every `--sample-every` ([`sample`]);
//! then wait for the log writer, read the run's records and the budgets back and compare
//! them with the tally ([`check`]); write the markdown report ([`report`]) and exit 1 on
//! any lost record, cost mismatch or growth.

mod check;
mod gateway;
mod load;
mod mix;
mod report;
mod sample;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use self::gateway::Gateway;
use self::mix::{Kind, Mix};
use self::report::{Report, ResourceLine};
use self::sample::{Sample, Trend};

/// Options of `portico-bench soak`.
#[derive(clap::Args, Debug)]
pub(crate) struct SoakArgs {
    /// The gateway binary to start (on a fresh data dir, a free port).
    #[arg(long, default_value = "target/release/portico")]
    portico: PathBuf,
    /// Soak a gateway that is already running instead (needs --admin-key and --pid).
    #[arg(long, requires_all = ["admin_key", "pid"])]
    url: Option<String>,
    /// The admin key of the gateway given by --url.
    #[arg(long)]
    admin_key: Option<String>,
    /// The process id of the gateway given by --url (for /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// Requests per second, sent open loop (a slow answer does not delay the next).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// How long to send: `90s`, `3m`, `1h`, or seconds.
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    duration: Duration,
    /// The start that is not judged for flatness (allocator and pools warming up); default:
    /// a sixth of the duration, 10 s to 5 minutes.
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Time between two samples of the gateway; default 10 s, 2 s for runs under 5 minutes.
    #[arg(long, value_parser = parse_duration)]
    sample_every: Option<Duration>,
    /// The weights of the request kinds, `kind=weight,...` over the default
    /// chat=35,stream=25,fail500=5,fail429=3,fallback=10,cancel=7,budget=10,messages=5.
    #[arg(long)]
    mix: Option<String>,
    /// Where the markdown report goes; the samples go beside it as `.csv`.
    #[arg(long, default_value = "soak-report.md")]
    report: PathBuf,
    /// Where the started gateway's data dir is made (kept when the soak fails).
    #[arg(long, default_value = "/tmp")]
    work_dir: PathBuf,
    /// Fail when RSS grows (last quarter's mean over the first's) by more than this many MiB
    /// and by more than --max-rss-growth-pct.
    #[arg(long, default_value_t = 10.0)]
    max_rss_growth_mib: f64,
    /// See --max-rss-growth-mib.
    #[arg(long, default_value_t = 20.0)]
    max_rss_growth_pct: f64,
    /// Fail when the open descriptors other than sockets (files, pipes, event fds) grow by
    /// more than this (quarter means): they do not come and go with connections.
    #[arg(long, default_value_t = 4.0)]
    max_fd_growth: f64,
    /// Fail when the open sockets grow by more than this (quarter means): they follow the
    /// connections in use, which vary with the load; a leak of one a request passes it
    /// within a minute at 50 requests/s.
    #[arg(long, default_value_t = 32.0)]
    max_socket_growth: f64,
    /// Fail when the runtime's live tasks grow by more than this (quarter means; a task
    /// a connection, so they vary like the sockets).
    #[arg(long, default_value_t = 32.0)]
    max_task_growth: f64,
    /// The mock upstream's delay before answering, in ms.
    #[arg(long, default_value_t = 20)]
    upstream_latency_ms: u64,
    /// The mock's delay between two events of a stream, in ms (16 content events).
    #[arg(long, default_value_t = 10)]
    chunk_delay_ms: u64,
    /// Most requests waiting at once; past it a request is not sent and counted (a stall).
    #[arg(long, default_value_t = 2_000)]
    max_in_flight: u64,
    /// Most time to wait for the log to hold every answered request after the load.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    flush_timeout: Duration,
}

/// `90s`, `3m`, `1h`, `250ms` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 3m or 1h"))?;
    let secs = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("`{text}` must be above zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the soak; exit 0 when it passes, 1 when it fails.
pub(crate) fn run(args: SoakArgs) -> anyhow::Result<ExitCode> {
    if !(args.rate > 0.0 && args.rate <= 10_000.0) {
        bail!("--rate must be above 0 and at most 10000 requests/s");
    }
    // One thread: 50 requests/s is little work, and the gateway should have the cores.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(soak(args))
}

async fn soak(args: SoakArgs) -> anyhow::Result<ExitCode> {
    let mut mix = Mix::parse(args.mix.as_deref())?;
    let warmup = args.warmup.unwrap_or_else(|| {
        (args.duration / 6).clamp(Duration::from_secs(10), Duration::from_secs(300))
    });
    let sample_every = args
        .sample_every
        .unwrap_or(if args.duration < Duration::from_secs(300) {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(10)
        });
    let load_at_start = sample::load_average();
    let mock = crate::mock::spawn_in_thread(
        args.upstream_latency_ms,
        mix::STREAM_CHUNKS,
        args.chunk_delay_ms,
    )?;
    let mut gateway = match (&args.url, &args.admin_key, args.pid) {
        (Some(url), Some(key), Some(pid)) => Gateway::given(url.clone(), key.clone(), pid),
        _ => Gateway::start(&args.portico, &args.work_dir)?,
    };
    eprintln!(
        "portico-bench soak: gateway {} (pid {}), mock upstream http://{mock}",
        gateway.url, gateway.pid
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()?;
    let run_id = run_id();
    // The budget kind's key can pay for half of what the run sends it.
    let budget_requests = args.rate * args.duration.as_secs_f64() * mix.share(Kind::Budget) / 2.0;
    let small_budget_usd =
        (budget_requests.floor().max(1.0) * mix::cost_micro_usd(12, 9) as f64) / 1e6;
    let setup = gateway::set_up(&gateway, &client, mock, &run_id, small_budget_usd)
        .await
        .context("setting up the gateway through its admin API")?;
    let metrics_url = format!("{}/metrics", gateway.url);
    let started = Instant::now();
    let idle_before = sample::take(gateway.pid, &client, &metrics_url, started, 0).await?;

    // The load, with its own client (so its connections can be closed before the idle
    // sample), and the sampler beside it.
    // Idle connections are closed after 5 s, so the connections open follow the recent
    // concurrency rather than the highest one of the run (which only ever grows).
    let load_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let load = Arc::new(load::Load {
        client: load_client,
        url: gateway.url.clone(),
        run_id: run_id.clone(),
        kinds: Kind::ALL
            .into_iter()
            .map(|k| (k, setup.secret(k).to_owned(), bytes::Bytes::from(k.body())))
            .collect(),
        sent: Mutex::new(Vec::new()),
        in_flight: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        max_in_flight: args.max_in_flight,
    });
    eprintln!(
        "portico-bench soak: run {run_id}: {} at {} requests/s, mix {}; warm-up {} s, a sample every {} s",
        human(args.duration),
        args.rate,
        mix.describe(),
        warmup.as_secs(),
        sample_every.as_secs_f64()
    );
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (samples, stop, load) = (Arc::clone(&samples), stop.clone(), Arc::clone(&load));
        let (client, metrics_url, pid) = (client.clone(), metrics_url.clone(), gateway.pid);
        let duration = args.duration;
        tokio_util::task::TaskTracker::new().spawn(async move {
            let mut next_progress = Duration::ZERO;
            let mut tick = tokio::time::interval(sample_every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
                let in_flight = load.in_flight.load(Ordering::Relaxed);
                match sample::take(pid, &client, &metrics_url, started, in_flight).await {
                    Ok(s) => {
                        if started.elapsed() >= next_progress {
                            next_progress += Duration::from_secs(60).min(duration / 4);
                            eprintln!(
                                "portico-bench soak: {:>5.0} s: {} answered, {} in flight; RSS {:.1} MiB, {} fds, {} threads, {} tasks; load {:.2}",
                                s.t_s,
                                load.answered(),
                                in_flight,
                                s.rss_kb as f64 / 1024.0,
                                s.fds,
                                s.threads,
                                s.tasks.map_or("?".to_owned(), |t| t.to_string()),
                                s.load1
                            );
                        }
                        if let Ok(mut all) = samples.lock() {
                            all.push(s);
                        }
                    }
                    Err(err) => {
                        eprintln!("portico-bench soak: sampling failed: {err:#}");
                        break;
                    }
                }
            }
        })
    };
    let until = started + args.duration;
    load::run(&load, &mut mix, args.rate, until, 0).await;
    stop.cancel();
    let _ = sampler.await;
    let load_time = started.elapsed();
    eprintln!(
        "portico-bench soak: load done after {:.0} s; waiting for the request log",
        load_time.as_secs_f64()
    );

    // Idle: the soak's connections closed, the gateway's work should all have ended.
    let sent: Vec<load::Sent> = load
        .sent
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    let skipped = load.skipped.load(Ordering::Relaxed);
    drop(load);
    // A moment for the gateway to see the soak's connections close.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_after = settle(
        gateway.pid,
        &client,
        &metrics_url,
        started,
        idle_before.background.unwrap_or(0),
    )
    .await?;
    let checked = check::check(&gateway, &client, &run_id, &sent, args.flush_timeout).await?;
    let load_at_end = sample::load_average();

    let samples: Vec<Sample> = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let warmup_s = warmup.as_secs_f64();
    let rss = Trend::of(&samples, warmup_s, |s| Some(s.rss_kb as f64 / 1024.0));
    let other_fds = Trend::of(&samples, warmup_s, |s| Some((s.fds - s.sockets) as f64));
    let sockets = Trend::of(&samples, warmup_s, |s| Some(s.sockets as f64));
    let threads = Trend::of(&samples, warmup_s, |s| Some(s.threads as f64));
    let tasks = Trend::of(&samples, warmup_s, |s| s.tasks.map(|t| t as f64));
    let in_flight = Trend::of(&samples, warmup_s, |s| s.in_flight.map(|t| t as f64));
    let background = Trend::of(&samples, warmup_s, |s| s.background.map(|t| t as f64));
    let rss_failed =
        rss.is_some_and(|t| t.grew_beyond(args.max_rss_growth_mib, args.max_rss_growth_pct));
    let fds_failed = other_fds.is_some_and(|t| t.growth() > args.max_fd_growth);
    let sockets_failed = sockets.is_some_and(|t| t.growth() > args.max_socket_growth);
    let tasks_failed = tasks.is_some_and(|t| t.growth() > args.max_task_growth);
    let resources = vec![
        ResourceLine {
            name: "RSS",
            unit: "MiB",
            trend: rss,
            limit: Some(format!(
                "{} MiB and {}%",
                args.max_rss_growth_mib, args.max_rss_growth_pct
            )),
            failed: rss_failed,
        },
        ResourceLine {
            name: "open descriptors but sockets",
            unit: "count",
            trend: other_fds,
            limit: Some(format!("{}", args.max_fd_growth)),
            failed: fds_failed,
        },
        ResourceLine {
            name: "open sockets",
            unit: "count",
            trend: sockets,
            limit: Some(format!("{}", args.max_socket_growth)),
            failed: sockets_failed,
        },
        ResourceLine {
            name: "runtime tasks",
            unit: "portico_runtime_alive_tasks",
            trend: tasks,
            limit: Some(format!("{}", args.max_task_growth)),
            failed: tasks_failed,
        },
        ResourceLine {
            name: "threads",
            unit: "count",
            trend: threads,
            limit: None,
            failed: false,
        },
        ResourceLine {
            name: "requests in flight",
            unit: "portico_requests_in_flight",
            trend: in_flight,
            limit: None,
            failed: false,
        },
        ResourceLine {
            name: "background tasks",
            unit: "portico_background_tasks",
            trend: background,
            limit: None,
            failed: false,
        },
    ];

    let mut failures = checked.failures();
    if skipped > 0 {
        failures.push(format!(
            "{skipped} requests were not sent: {} were still waiting (the gateway stalled)",
            args.max_in_flight
        ));
    }
    for line in &resources {
        if let (true, Some(trend)) = (line.failed, line.trend) {
            failures.push(format!(
                "{} grew by {:.1} {} (first quarter's mean {:.1}, last {:.1}; limit {})",
                line.name,
                trend.growth(),
                line.unit,
                trend.first_mean,
                trend.last_mean,
                line.limit.as_deref().unwrap_or("-")
            ));
        }
        if line.trend.is_none() && line.limit.is_some() {
            failures.push(format!(
                "{} was not measured (too few samples after the warm-up, or no gauge)",
                line.name
            ));
        }
    }
    // Once the traffic has stopped, no request may still be open (the scrape itself is
    // one) and no more background tasks may run than before the load (the gateway keeps
    // one for good: the durable Responses keeper runs on that tracker).
    if idle_after.in_flight.unwrap_or(0) > 1
        || idle_after.background.unwrap_or(0) > idle_before.background.unwrap_or(0)
    {
        failures.push(format!(
            "after the load the gateway still had {} requests in flight (the scrape is one) and {} background tasks ({} before the load)",
            opt(idle_after.in_flight),
            opt(idle_after.background),
            opt(idle_before.background)
        ));
    }

    let csv_path = args.report.with_extension("csv");
    let csv_name = csv_path
        .file_name()
        .map_or("the CSV".to_owned(), |n| n.to_string_lossy().into_owned());
    let total = checked.total();
    let preamble = vec![
        format!(
            "Run `{run_id}` of {} UTC: {} at {} requests/s (open loop), {} requests sent{}; gateway `{}` (pid {}){}.",
            utc_now(),
            human(args.duration),
            args.rate,
            total.sent,
            if skipped > 0 {
                format!(", {skipped} not sent")
            } else {
                String::new()
            },
            gateway.url,
            gateway.pid,
            match &args.url {
                Some(_) => " (given)".to_owned(),
                None => format!(
                    ", started from `{}` on a fresh data dir",
                    args.portico.display()
                ),
            },
        ),
        format!(
            "Mix: {}. Mock upstream: {} ms before the answer, 16 stream events {} ms apart. The budget kind's key has ${small_budget_usd:.6} a day (half of what the run sends it).",
            mix.describe(),
            args.upstream_latency_ms,
            args.chunk_delay_ms
        ),
        format!(
            "Machine: {} cores, shared; load average (1/5/15 min) {} at the start, {} at the end, highest 1-min sample {:.2}. Warm-up excluded from the flatness verdict: {} s; a sample every {} s ({} samples).",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            fmt_load(load_at_start),
            fmt_load(load_at_end),
            samples.iter().map(|s| s.load1).fold(0.0, f64::max),
            warmup.as_secs(),
            sample_every.as_secs_f64(),
            samples.len()
        ),
        format!(
            "Command: `portico-bench {}`.",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
    ];
    let idle = vec![
        format!(
            "Idle before the load (setup done): RSS {:.1} MiB, {} fds ({} sockets), {} threads, {} runtime tasks, {} background tasks.",
            idle_before.rss_kb as f64 / 1024.0,
            idle_before.fds,
            idle_before.sockets,
            idle_before.threads,
            opt(idle_before.tasks),
            opt(idle_before.background)
        ),
        format!(
            "Idle after the load (the soak's connections closed, {:.0} s after the last answer): RSS {:.1} MiB, {} fds ({} sockets), {} threads, {} runtime tasks, {} requests in flight (the scrape itself is one), {} background tasks.",
            idle_after.t_s - load_time.as_secs_f64(),
            idle_after.rss_kb as f64 / 1024.0,
            idle_after.fds,
            idle_after.sockets,
            idle_after.threads,
            opt(idle_after.tasks),
            opt(idle_after.in_flight),
            opt(idle_after.background)
        ),
    ];
    let report = Report {
        title: "Portico soak".to_owned(),
        preamble,
        failures: &failures,
        checked: &checked,
        resources: &resources,
        idle,
        samples: &samples,
        csv_name,
    };
    std::fs::write(&args.report, report.markdown())
        .with_context(|| format!("writing {}", args.report.display()))?;
    std::fs::write(&csv_path, report::csv(&samples))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    gateway.stop();
    if let Some(dir) = &gateway.work_dir {
        if failures.is_empty() {
            let _ = std::fs::remove_dir_all(dir);
        } else {
            eprintln!(
                "portico-bench soak: the gateway's data dir and logs are kept in {}",
                dir.display()
            );
        }
    }
    eprintln!(
        "portico-bench soak: report written to {}",
        args.report.display()
    );
    if failures.is_empty() {
        eprintln!(
            "portico-bench soak: PASS: {} requests, every answered one logged once, {} µUSD charged as tallied, resources flat",
            total.sent, total.expected_charge
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &failures {
            eprintln!("portico-bench soak: FAIL: {failure}");
        }
        Ok(ExitCode::from(1))
    }
}

/// Waits (at most 30 s) until the gateway has no request in flight but the scrape and no
/// more background tasks than `background_idle`, then samples it.
async fn settle(
    pid: u32,
    client: &reqwest::Client,
    metrics_url: &str,
    started: Instant,
    background_idle: i64,
) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = sample::take(pid, client, metrics_url, started, 0).await?;
        let quiet = s.in_flight.unwrap_or(0) <= 1 && s.background.unwrap_or(0) <= background_idle;
        if quiet || Instant::now() > deadline {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A short id for the run: its trace ids, metadata and key names carry it.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}", (nanos / 1_000_000) % (1 << 40))
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{:.0} s", d.as_secs_f64())
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or("?".to_owned(), |v| v.to_string())
}

fn fmt_load(load: Option<[f64; 3]>) -> String {
    load.map_or("?".to_owned(), |l| {
        format!("{:.2}/{:.2}/{:.2}", l[0], l[1], l[2])
    })
}

/// The time now in UTC, `YYYY-MM-DD HH:MM`, from `date` (no time crate for one line).
fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("?".to_owned(), |s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("3m").unwrap(), Duration::from_secs(180));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("42").unwrap(), Duration::from_secs(42));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unit"));
        assert!(parse_duration("m").is_err());
    }
}
