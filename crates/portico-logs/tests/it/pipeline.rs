use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::ManualClock;
use portico_core::RequestRecord;
use portico_core::RequestSink as _;
use portico_logs::{
    Analytics, AnalyticsQuery, LogDetail, LogEntry, LogError, LogPage, LogPipeline, LogQuery,
    LogStore, PipelineOptions, Retention,
};

use crate::stores::{TestDb, on_both_stores};

fn record(id: String) -> RequestRecord {
    let mut r = RequestRecord::new(id, portico_core::now_ms(), "chat.completions");
    r.status = 200;
    r.request = Some(Bytes::from_static(br#"{"model":"m","messages":[]}"#));
    r.response = Some(Bytes::from_static(br#"{"id":"x"}"#));
    r
}

fn options(dir: &Path, queue: usize, batch: usize) -> PipelineOptions {
    PipelineOptions {
        queue_capacity: queue,
        batch_max: batch,
        ..PipelineOptions::new(dir.join("logs-spill.jsonl"))
    }
}

async fn concurrent_load_with_a_tiny_queue_loses_nothing(db: TestDb) {
    let store = db.open().await;
    let pipeline = LogPipeline::start(store.clone(), options(db.dir(), 4, 16));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20 {
        let sink = pipeline.sink();
        tasks.spawn(async move {
            for i in 0..500 {
                sink.record(record(format!("t{t}-{i}")));
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let stats = pipeline.shutdown().await;
    assert_eq!(stats.received, 10_000);
    assert!(
        stats.spilled > 0,
        "a 4-record queue should have overflowed: {stats:?}"
    );
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.stored, 10_000, "{stats:?}");
    assert_eq!(store.count().await.unwrap(), 10_000);
    assert!(!db.dir().join("logs-spill.jsonl").exists());
    assert!(!db.dir().join("logs-spill.replay.jsonl").exists());
}

/// A store that refuses every write (a full disk), so everything ends in the spill file.
struct Refusing;

#[async_trait]
impl LogStore for Refusing {
    async fn insert(&self, _: std::sync::Arc<[LogEntry]>) -> Result<u64, LogError> {
        Err(LogError::Io(std::io::Error::other("disk full")))
    }
    async fn search(&self, _: &LogQuery) -> Result<LogPage, LogError> {
        unreachable!()
    }
    async fn get(&self, _: &str) -> Result<Option<LogDetail>, LogError> {
        unreachable!()
    }
    async fn analytics(&self, _: &AnalyticsQuery) -> Result<Analytics, LogError> {
        unreachable!()
    }
    async fn prune(&self, _: &Retention, _: i64) -> Result<u64, LogError> {
        Ok(0)
    }
    async fn count(&self) -> Result<u64, LogError> {
        Ok(0)
    }
    async fn close(&self) {}
}

async fn spilled_records_are_replayed_on_the_next_start(db: TestDb) {
    let failing = LogPipeline::start(Arc::new(Refusing), options(db.dir(), 8, 8));
    let sink = failing.sink();
    for i in 0..300 {
        sink.record(record(format!("r{i}")));
    }
    let stats = failing.shutdown().await;
    assert_eq!(stats.lost, 0, "{stats:?}");
    assert_eq!(stats.stored, 0);
    let spilled = ["logs-spill.jsonl", "logs-spill.replay.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(db.dir().join(f)).unwrap_or_default())
        .map(|text| text.lines().count())
        .sum::<usize>();
    assert_eq!(spilled, 300, "every record is in a spill file");

    // The next start replays them without being asked.
    let store = db.open().await;
    let pipeline = LogPipeline::start(store.clone(), options(db.dir(), 8, 8));
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.count().await.unwrap() < 300 {
        assert!(Instant::now() < deadline, "the spill file was not replayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let detail = store.get("r299").await.unwrap().unwrap();
    assert_eq!(
        detail.request,
        Some(serde_json::json!({"model": "m", "messages": []})),
        "payloads survive the spill file"
    );
    pipeline.shutdown().await;
    assert_eq!(store.count().await.unwrap(), 300);
    assert!(!db.dir().join("logs-spill.jsonl").exists());
    assert!(!db.dir().join("logs-spill.replay.jsonl").exists());
}

/// A store whose writes wait until the gate opens: a database that has fallen behind.
struct Gated {
    inner: Arc<dyn LogStore>,
    open: tokio::sync::watch::Receiver<bool>,
}

#[async_trait]
impl LogStore for Gated {
    async fn insert(&self, entries: std::sync::Arc<[LogEntry]>) -> Result<u64, LogError> {
        let mut open = self.open.clone();
        open.wait_for(|open| *open).await.unwrap();
        self.inner.insert(entries).await
    }
    async fn search(&self, q: &LogQuery) -> Result<LogPage, LogError> {
        self.inner.search(q).await
    }
    async fn get(&self, id: &str) -> Result<Option<LogDetail>, LogError> {
        self.inner.get(id).await
    }
    async fn analytics(&self, q: &AnalyticsQuery) -> Result<Analytics, LogError> {
        self.inner.analytics(q).await
    }
    async fn prune(&self, r: &Retention, now: i64) -> Result<u64, LogError> {
        self.inner.prune(r, now).await
    }
    async fn count(&self) -> Result<u64, LogError> {
        self.inner.count().await
    }
    async fn close(&self) {}
}

async fn the_queue_is_bounded_by_bytes_and_what_overflows_is_still_stored(db: TestDb) {
    let store = db.open().await;
    let (gate, open_rx) = tokio::sync::watch::channel(false);
    let pipeline = LogPipeline::start(
        Arc::new(Gated {
            inner: store.clone(),
            open: open_rx,
        }),
        PipelineOptions {
            queue_bytes: 64 * 1024,
            // Far more records than will fit in 64 KiB: the byte bound is the one reached.
            ..options(db.dir(), 10_000, 500)
        },
    );
    let sink = pipeline.sink();
    let payload = Bytes::from(vec![b'x'; 4096]);
    for i in 0..100 {
        let mut r = record(format!("b{i}"));
        r.request = Some(payload.clone());
        sink.record(r);
    }
    let stats = pipeline.stats();
    // 64 KiB holds about 15 records of 4 KiB; the rest went to the spill file.
    assert!(
        (75..=90).contains(&stats.spilled),
        "about 85 of 100 4-KiB records overflow a 64 KiB queue: {stats:?}"
    );

    gate.send(true).unwrap();
    let stats = pipeline.shutdown().await;
    assert_eq!((stats.received, stats.lost), (100, 0), "{stats:?}");
    assert_eq!(
        store.count().await.unwrap(),
        100,
        "queued and spilled records are all stored"
    );
    let detail = store.get("b99").await.unwrap().unwrap();
    assert_eq!(detail.request, Some(serde_json::json!("x".repeat(4096))));
}

async fn payloads_are_stored_only_when_the_key_allows_it(db: TestDb) {
    let store = db.open().await;
    let pipeline = LogPipeline::start(
        store.clone(),
        PipelineOptions {
            max_payload_bytes: 12,
            ..options(db.dir(), 100, 10)
        },
    );
    let sink = pipeline.sink();
    let mut off = record("off".into());
    off.log_payloads = false;
    sink.record(off);
    sink.record(record("on".into()));
    pipeline.shutdown().await;

    let off = store.get("off").await.unwrap().unwrap();
    assert_eq!((off.request, off.response), (None, None));
    let on = store.get("on").await.unwrap().unwrap();
    // Cut at 12 bytes: answered as text and marked.
    assert_eq!(on.request, Some(serde_json::json!(r#"{"model":"m""#)));
    assert!(on.request_truncated);
    assert_eq!(on.response, Some(serde_json::json!({"id": "x"})));
    assert!(!on.response_truncated);
    let rows = db.payload_rows().await;
    assert_eq!(
        rows, 1,
        "no payload row for the key without payload logging"
    );
}

/// The pruner counts ages from the pipeline's clock, read at every round: a test can put
/// "now" anywhere.
async fn the_pruner_counts_ages_from_the_pipelines_clock(db: TestDb) {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    // 2025-01-01T00:00:00Z: by the system clock, everything here is well over 30 days old.
    let now = 1_735_689_600_000;
    let store = db.open().await;
    let at = |id: &str, created_at_ms: i64| {
        let mut r = record(id.to_owned());
        r.created_at_ms = created_at_ms;
        LogEntry::from_record(r, 1024)
    };
    let entries: Arc<[LogEntry]> =
        vec![at("old", now - 40 * DAY_MS), at("recent", now - DAY_MS)].into();
    store.insert(entries).await.unwrap();
    let pipeline = LogPipeline::start(
        store.clone(),
        PipelineOptions {
            retention: Retention {
                max_age_days: Some(30),
                max_rows: None,
                every: Duration::from_secs(3600),
            },
            clock: Arc::new(ManualClock::at(now)),
            ..options(db.dir(), 100, 10)
        },
    );
    // Shutting down waits for the pruner's first round, which runs at start.
    pipeline.shutdown().await;
    assert!(
        store.get("old").await.unwrap().is_none(),
        "40 days old on the clock"
    );
    assert!(
        store.get("recent").await.unwrap().is_some(),
        "1 day old on the clock"
    );
}

/// A spill line as versions before the `gateway` field wrote it, byte for byte.
const LEGACY_SPILL_LINE: &str = r#"{"id":"legacy-1","created_at_ms":1764083045123,"trace_id":"trace-legacy","metadata":{"team":"backend"},"key_name":"service","user":null,"provider":"openai","model":"gpt-4o-mini","endpoint":"chat.completions","status":200,"stream":false,"outcome":"completed","latency_ms":120,"upstream_latency_ms":100,"ttft_ms":null,"prompt_tokens":10,"completion_tokens":5,"cached_tokens":null,"cache_write_tokens":null,"cost_usd":0.001,"cache_status":null,"cache_saved_usd":null,"cache_similarity":null,"retry_count":0,"target":null,"config_id":null,"error_code":null,"error":null,"attempts":[],"guardrails":null,"request":{"bytes":"eyJtb2RlbCI6Im0ifQ==","size":13},"response":null}"#;

async fn a_spill_line_written_before_the_gateway_field_is_replayed(db: TestDb) {
    std::fs::write(
        db.dir().join("logs-spill.jsonl"),
        format!("{LEGACY_SPILL_LINE}\n"),
    )
    .unwrap();
    let store = db.open().await;
    let pipeline = LogPipeline::start(
        store.clone(),
        PipelineOptions {
            // The line is from 2025: by the system clock, the pruner would take it.
            retention: Retention {
                max_age_days: None,
                max_rows: None,
                ..Retention::default()
            },
            ..options(db.dir(), 8, 8)
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.count().await.unwrap() < 1 {
        assert!(Instant::now() < deadline, "the spill file was not replayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pipeline.shutdown().await;
    let detail = store.get("legacy-1").await.unwrap().unwrap();
    let json = serde_json::to_value(&detail).unwrap();
    assert_eq!(json["gateway"], serde_json::Value::Null);
    assert_eq!(json["created_at"], "2025-11-25T15:04:05.123Z");
    assert_eq!(json["metadata"], serde_json::json!({"team": "backend"}));
    assert_eq!(json["request"], serde_json::json!({"model": "m"}));
    assert!(!db.dir().join("logs-spill.jsonl").exists());
}

on_both_stores!(
    concurrent_load_with_a_tiny_queue_loses_nothing,
    spilled_records_are_replayed_on_the_next_start,
    the_queue_is_bounded_by_bytes_and_what_overflows_is_still_stored,
    payloads_are_stored_only_when_the_key_allows_it,
    the_pruner_counts_ages_from_the_pipelines_clock,
    a_spill_line_written_before_the_gateway_field_is_replayed,
);
