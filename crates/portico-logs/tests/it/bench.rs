//! Query times on 100,000 logged requests, and write costs (ignored by default; run with
//! `cargo test --release -p portico-logs --test it -- --ignored --nocapture bench`; the
//! PostgreSQL one needs `PORTICO_TEST_POSTGRES_URL`). The numbers are recorded in
//! docs/request-logs.md.

#![expect(clippy::print_stdout, reason = "a measurement prints its numbers")]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use portico_logs::{
    AnalyticsQuery, LogEntry, LogFilter, LogQuery, LogStore, Payload, PgLogStore, SqliteLogStore,
    StatusFilter,
};

const ROWS: usize = 100_000;
const DAY: i64 = 86_400_000;

/// xorshift: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seeded(i: usize, now: i64, rng: &mut Rng) -> LogEntry {
    let models = [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("gemini", "gemini-2.5-flash"),
    ];
    let (provider, model) = models[rng.below(5) as usize];
    let status = match rng.below(100) {
        0..=94 => 200,
        95..=97 => 429,
        _ => 500,
    };
    let metadata = serde_json::json!({
        "team": format!("team-{}", rng.below(5)),
        "project": format!("project-{}", rng.below(20)),
    });
    LogEntry {
        id: format!("0193a0b0-0000-7000-8000-{i:012}"),
        created_at_ms: now - (rng.below(30 * DAY as u64) as i64),
        trace_id: format!("trace-{}", rng.below(10_000)),
        metadata: metadata.as_object().cloned(),
        key_name: Some(format!("key-{}", rng.below(10))),
        gateway: None,
        user: Some(format!("user-{}", rng.below(50))),
        provider: Some(provider.into()),
        model: Some(model.into()),
        endpoint: "chat.completions".into(),
        status,
        stream: rng.below(2) == 0,
        outcome: if status == 200 { "completed" } else { "failed" }.into(),
        latency_ms: 50 + rng.below(3000),
        upstream_latency_ms: Some(40 + rng.below(2900)),
        ttft_ms: None,
        prompt_tokens: Some(rng.below(4000)),
        completion_tokens: Some(rng.below(800)),
        cached_tokens: Some(0),
        cache_write_tokens: Some(0),
        cost_usd: (rng.below(10) != 0).then(|| rng.below(10_000) as f64 / 1e6),
        cache_status: None,
        cache_saved_usd: None,
        cache_similarity: None,
        retry_count: 0,
        target: None,
        config_id: None,
        error_code: (status != 200).then(|| "upstream_error".into()),
        error: (status != 200).then(|| format!("upstream answered {status}")),
        attempts: Vec::new(),
        guardrails: None,
        request: Some(Payload::capped(Bytes::from(vec![b'x'; 600]), 1 << 20)),
        response: Some(Payload::capped(Bytes::from(vec![b'y'; 400]), 1 << 20)),
    }
}

async fn time<T>(label: &str, f: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = f.await;
    let first = started.elapsed();
    println!("{label:<58} {:>8.2} ms", first.as_secs_f64() * 1000.0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by hand with --release"]
async fn bench_queries_on_100k_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteLogStore::open(&dir.path().join("logs.db"))
            .await
            .unwrap(),
    );
    let now = portico_core::now_ms();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut entries: Vec<LogEntry> = (0..ROWS).map(|i| seeded(i, now, &mut rng)).collect();
    // Records arrive roughly in time order, so the table is laid out by time.
    entries.sort_by_key(|e| e.created_at_ms);
    let started = Instant::now();
    for batch in entries.chunks(500) {
        store.insert(batch.to_vec().into()).await.unwrap();
    }
    let took = started.elapsed();
    println!(
        "insert {ROWS} rows in batches of 500: {:.2} s ({:.0} rows/s)",
        took.as_secs_f64(),
        ROWS as f64 / took.as_secs_f64()
    );
    let size = std::fs::metadata(dir.path().join("logs.db")).unwrap().len()
        + std::fs::metadata(dir.path().join("logs.db-wal")).map_or(0, |m| m.len());
    println!("database size: {:.1} MB", size as f64 / 1e6);

    let list = |filter: LogFilter| {
        let store = Arc::clone(&store);
        async move {
            store
                .search(&LogQuery {
                    filter,
                    limit: 50,
                    cursor: None,
                })
                .await
                .unwrap()
        }
    };
    for round in 0..2 {
        println!("-- round {round}");
        let page = time("list newest 50, no filter", list(LogFilter::default())).await;
        assert_eq!(page.data.len(), 50);
        let mut cursor = page.next_cursor.clone();
        let started = Instant::now();
        for _ in 0..20 {
            let next = store
                .search(&LogQuery {
                    filter: LogFilter::default(),
                    limit: 50,
                    cursor: cursor.as_deref().and_then(portico_logs::Cursor::decode),
                })
                .await
                .unwrap();
            cursor = next.next_cursor;
        }
        println!(
            "{:<58} {:>8.2} ms",
            "list: 20 next pages via cursor (each)",
            started.elapsed().as_secs_f64() * 1000.0 / 20.0
        );
        time(
            "list trace_id=trace-42",
            list(LogFilter {
                trace_id: Some("trace-42".into()),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list metadata.team=team-3",
            list(LogFilter {
                metadata: vec![("team".into(), "team-3".into())],
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list metadata.team=team-3 & metadata.project=project-7",
            list(LogFilter {
                metadata: vec![
                    ("team".into(), "team-3".into()),
                    ("project".into(), "project-7".into()),
                ],
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list model=gpt-4o & status=5xx",
            list(LogFilter {
                model: Some("gpt-4o".into()),
                status: Some(StatusFilter::Class(5)),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list status=2xx (95 % of rows)",
            list(LogFilter {
                status: Some(StatusFilter::Class(2)),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list status=5xx (2 % of rows)",
            list(LogFilter {
                status: Some(StatusFilter::Class(5)),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list provider=openai (40 % of rows)",
            list(LogFilter {
                provider: Some("openai".into()),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list user=user-7 & key=key-3 (rare pair)",
            list(LogFilter {
                user: Some("user-7".into()),
                key: Some("key-3".into()),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list q=answered 500 (substring, common)",
            list(LogFilter {
                q: Some("answered 500".into()),
                ..LogFilter::default()
            }),
        )
        .await;
        time(
            "list q=no-such-text (substring, no match: full scan)",
            list(LogFilter {
                q: Some("no-such-text".into()),
                ..LogFilter::default()
            }),
        )
        .await;
        let one = time(
            "get one by id, with payloads",
            store.get("0193a0b0-0000-7000-8000-000000054321"),
        )
        .await;
        assert!(one.unwrap().is_some());
        let analytics = |pairs: Vec<(&'static str, &'static str)>| {
            let store = Arc::clone(&store);
            async move {
                let q = AnalyticsQuery::parse(pairs, now).unwrap();
                store.analytics(&q).await.unwrap()
            }
        };
        let a = time(
            "analytics hour, last 24 h, group_by=model",
            analytics(vec![("interval", "hour"), ("group_by", "model")]),
        )
        .await;
        assert!(a.totals.requests > 0);
        let a = time(
            "analytics day, 30 days (all rows), group_by=model",
            analytics(vec![("interval", "day"), ("group_by", "model")]),
        )
        .await;
        assert!(a.totals.requests > 90_000);
        time(
            "analytics day, 30 days, group_by=metadata.team",
            analytics(vec![("interval", "day"), ("group_by", "metadata.team")]),
        )
        .await;
        time(
            "analytics day, 30 days, metadata.team=team-1, by provider",
            analytics(vec![
                ("interval", "day"),
                ("group_by", "provider"),
                ("metadata.team", "team-1"),
            ]),
        )
        .await;
    }
}

/// A record as the relay builds one: metadata, one attempt, small JSON payloads.
fn request_record(i: usize) -> portico_core::RequestRecord {
    let mut r = portico_core::RequestRecord::new(
        format!("0193a0b0-0000-7000-8000-{i:012}"),
        portico_core::now_ms(),
        "chat.completions",
    );
    r.trace_id = "session-auth-refactor".into();
    r.metadata = serde_json::json!({"team": "backend", "project": "api-v2"})
        .as_object()
        .cloned();
    r.key_name = Some("service".into());
    r.provider = Some("openai".into());
    r.model = Some("gpt-4o-mini".into());
    r.status = 200;
    r.attempts.push(portico_core::Attempt {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        target: None,
        retry: 0,
        started_at_ms: r.created_at_ms,
        latency_ms: 20,
        status: Some(200),
        error: None,
    });
    r.request = Some(Bytes::from(vec![b'x'; 600]));
    r.response = Some(Bytes::from(vec![b'y'; 400]));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by hand with --release"]
async fn bench_sink_record_cost() {
    use portico_core::RequestSink as _;
    const N: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteLogStore::open(&dir.path().join("logs.db"))
            .await
            .unwrap(),
    );
    for (label, queue) in [("queued", N + 1), ("spilled (queue of 1)", 1)] {
        let options = portico_logs::PipelineOptions {
            queue_capacity: queue,
            ..portico_logs::PipelineOptions::new(dir.path().join(format!("spill-{queue}.jsonl")))
        };
        let pipeline = portico_logs::LogPipeline::start(store.clone(), options);
        let sink = pipeline.sink();
        let records: Vec<_> = (0..N).map(|i| request_record(i + queue * 10)).collect();
        let started = Instant::now();
        for r in records {
            sink.record(r);
        }
        let took = started.elapsed();
        println!(
            "record() {label:<22} {:>6.2} µs per record",
            took.as_secs_f64() * 1e6 / N as f64
        );
        let started = Instant::now();
        let stats = pipeline.shutdown().await;
        println!(
            "  then stored {} in {:.2} s ({:.0} rows/s), spilled {}",
            stats.stored,
            started.elapsed().as_secs_f64(),
            stats.stored as f64 / started.elapsed().as_secs_f64(),
            stats.spilled
        );
    }
}

/// The process's CPU time (user + system) so far, from /proc/self/stat (10 ms ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement, not a check: run it by hand with --release"]
async fn bench_insert_cpu_per_row() {
    const N: usize = 40_000;
    for batch in [50, 500] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteLogStore::open(&dir.path().join("logs.db"))
            .await
            .unwrap();
        let entries: Vec<LogEntry> = (0..N)
            .map(|i| LogEntry::from_record(request_record(i), 1 << 20))
            .collect();
        let chunks: Vec<Arc<[LogEntry]>> = entries.chunks(batch).map(Into::into).collect();
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        for chunk in chunks {
            store.insert(chunk.to_vec().into()).await.unwrap();
        }
        let (cpu, wall) = (cpu_seconds() - cpu, wall.elapsed().as_secs_f64());
        println!(
            "insert {N} rows in batches of {batch:>3}: {:>6.2} µs CPU per row, {:>6.2} µs wall",
            cpu * 1e6 / N as f64,
            wall * 1e6 / N as f64
        );
    }
}

/// Batches of 1,000 entries as the relay builds them (metadata, one attempt, 1 KB of
/// payloads), into an empty store and then again (a replay: every id already stored).
async fn insert_batches_of_1000(label: &str, store: &dyn LogStore) {
    const BATCH: usize = 1000;
    const BATCHES: usize = 20;
    let batches: Vec<Arc<[LogEntry]>> = (0..BATCHES)
        .map(|b| {
            (0..BATCH)
                .map(|i| LogEntry::from_record(request_record(b * BATCH + i), 1 << 20))
                .collect()
        })
        .collect();
    let mut took = Vec::with_capacity(BATCHES);
    for batch in &batches {
        let started = Instant::now();
        assert_eq!(store.insert(Arc::clone(batch)).await.unwrap(), BATCH as u64);
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let started = Instant::now();
    for batch in &batches {
        assert_eq!(store.insert(Arc::clone(batch)).await.unwrap(), 0);
    }
    let replay = started.elapsed().as_secs_f64() * 1000.0 / BATCHES as f64;
    took.sort_by(f64::total_cmp);
    let mean = took.iter().sum::<f64>() / took.len() as f64;
    println!(
        "{label:<10} insert a batch of {BATCH}: median {:>6.2} ms, mean {mean:>6.2} ms, \
         max {:>6.2} ms ({:.0} rows/s); the same batch again (all known) {replay:>6.2} ms",
        took[BATCHES / 2],
        took[BATCHES - 1],
        BATCH as f64 / (mean / 1000.0),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by hand with --release"]
async fn bench_insert_batch_of_1000_on_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteLogStore::open(&dir.path().join("logs.db"))
        .await
        .unwrap();
    insert_batches_of_1000("sqlite", &sqlite).await;
    let db = portico_testkit::TestPostgres::database().await;
    let postgres = PgLogStore::connect(db.url()).await.unwrap();
    insert_batches_of_1000("postgres", &postgres).await;
    postgres.close().await;
}
