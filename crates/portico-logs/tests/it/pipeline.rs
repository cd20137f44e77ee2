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
    LogStore, PipelineOptions, Retention, SqliteLogStore,
};

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

async fn open(dir: &Path) -> Arc<SqliteLogStore> {
    Arc::new(SqliteLogStore::open(&dir.join("logs.db")).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_load_with_a_tiny_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let pipeline = LogPipeline::start(store.clone(), options(dir.path(), 4, 16));
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
    assert!(!dir.path().join("logs-spill.jsonl").exists());
    assert!(!dir.path().join("logs-spill.replay.jsonl").exists());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_records_are_replayed_on_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let failing = LogPipeline::start(Arc::new(Refusing), options(dir.path(), 8, 8));
    let sink = failing.sink();
    for i in 0..300 {
        sink.record(record(format!("r{i}")));
    }
    let stats = failing.shutdown().await;
    assert_eq!(stats.lost, 0, "{stats:?}");
    assert_eq!(stats.stored, 0);
    let spilled = ["logs-spill.jsonl", "logs-spill.replay.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
        .map(|text| text.lines().count())
        .sum::<usize>();
    assert_eq!(spilled, 300, "every record is in a spill file");

    // The next start replays them without being asked.
    let store = open(dir.path()).await;
    let pipeline = LogPipeline::start(store.clone(), options(dir.path(), 8, 8));
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
    assert!(!dir.path().join("logs-spill.jsonl").exists());
    assert!(!dir.path().join("logs-spill.replay.jsonl").exists());
}

/// A store whose writes wait until the gate opens: a database that has fallen behind.
struct Gated {
    inner: Arc<SqliteLogStore>,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_bounded_by_bytes_and_what_overflows_is_still_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let (gate, open_rx) = tokio::sync::watch::channel(false);
    let pipeline = LogPipeline::start(
        Arc::new(Gated {
            inner: store.clone(),
            open: open_rx,
        }),
        PipelineOptions {
            queue_bytes: 64 * 1024,
            // Far more records than will fit in 64 KiB: the byte bound is the one reached.
            ..options(dir.path(), 10_000, 500)
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

#[tokio::test]
async fn payloads_are_stored_only_when_the_key_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let pipeline = LogPipeline::start(
        store.clone(),
        PipelineOptions {
            max_payload_bytes: 12,
            ..options(dir.path(), 100, 10)
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
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM log_payloads")
        .fetch_one(&raw(&dir.path().join("logs.db")).await)
        .await
        .unwrap();
    assert_eq!(
        rows, 1,
        "no payload row for the key without payload logging"
    );
}

/// The pruner counts ages from the pipeline's clock, read at every round: a test can put
/// "now" anywhere.
#[tokio::test]
async fn the_pruner_counts_ages_from_the_pipelines_clock() {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    // 2025-01-01T00:00:00Z: by the system clock, everything here is well over 30 days old.
    let now = 1_735_689_600_000;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
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
            ..options(dir.path(), 100, 10)
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

async fn raw(db: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}
