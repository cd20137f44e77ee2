//! The SQLite log store: writing, every filter, paging, payloads, analytics math, pruning.

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::{GroupBy, Interval, LogFilter, Payload, Percentiles, StatusFilter};

const HOUR: i64 = 3_600_000;
/// 2026-11-25T00:00:00Z
const DAY0: i64 = 1_795_564_800_000;

fn entry(id: &str, at: i64) -> LogEntry {
    LogEntry {
        id: id.into(),
        created_at_ms: at,
        trace_id: format!("trace-{id}"),
        metadata: None,
        key_name: Some("service".into()),
        user: None,
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        endpoint: "chat.completions".into(),
        status: 200,
        stream: false,
        outcome: "completed".into(),
        latency_ms: 100,
        upstream_latency_ms: Some(90),
        ttft_ms: None,
        prompt_tokens: Some(10),
        completion_tokens: Some(5),
        cached_tokens: Some(0),
        cache_write_tokens: Some(0),
        cost_usd: Some(0.001),
        cache_status: None,
        cache_saved_usd: None,
        cache_similarity: None,
        retry_count: 0,
        target: None,
        config_id: None,
        error_code: None,
        error: None,
        attempts: Vec::new(),
        guardrails: None,
        request: None,
        response: None,
    }
}

fn meta(pairs: &[(&str, &str)]) -> Option<serde_json::Map<String, serde_json::Value>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect(),
    )
}

/// A store on a file of its own, removed with it.
struct TempStore {
    store: SqliteLogStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TempStore {
    type Target = SqliteLogStore;
    fn deref(&self) -> &SqliteLogStore {
        &self.store
    }
}

async fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteLogStore::open(&dir.path().join("logs.db"))
        .await
        .unwrap();
    TempStore { store, _dir: dir }
}

async fn store_with(entries: Vec<LogEntry>) -> TempStore {
    let store = temp_store().await;
    let n = entries.len() as u64;
    assert_eq!(store.insert(entries.into()).await.unwrap(), n);
    store
}

async fn ids(store: &SqliteLogStore, filter: LogFilter) -> Vec<String> {
    let page = store
        .search(&LogQuery {
            filter,
            limit: 500,
            cursor: None,
        })
        .await
        .unwrap();
    page.data.into_iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn an_entry_round_trips_with_every_field() {
    let mut e = entry("a", DAY0 + 1234);
    e.metadata = meta(&[("team", "backend")]);
    e.user = Some("ada".into());
    e.stream = true;
    e.ttft_ms = Some(40);
    e.cache_status = Some("miss".into());
    e.retry_count = 2;
    e.target = Some("config.targets[1]".into());
    e.config_id = Some("cfg".into());
    e.guardrails = Some(json!({"before_request_hooks": []}));
    e.attempts = vec![crate::LoggedAttempt {
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        target: Some("config.targets[0]".into()),
        retry: 0,
        started_at: "2026-11-25T00:00:01.300Z".into(),
        latency_ms: 20,
        status: Some(503),
        error: Some("overloaded".into()),
    }];
    e.request = Some(Payload::capped(
        Bytes::from_static(br#"{"model":"m"}"#),
        100,
    ));
    e.response = Some(Payload::capped(
        Bytes::from_static(b"data: {\"x\":1}\n\ndata: [DONE]\n\n"),
        100,
    ));
    let store = store_with(vec![e]).await;
    let detail = store.get("a").await.unwrap().unwrap();
    let json = serde_json::to_value(&detail).unwrap();
    assert_eq!(json["created_at"], "2026-11-25T00:00:01.234Z");
    assert_eq!(json["metadata"], json!({"team": "backend"}));
    assert_eq!(json["user"], "ada");
    assert_eq!(json["stream"], true);
    assert_eq!(json["ttft_ms"], 40);
    assert_eq!(json["upstream_latency_ms"], 90);
    assert_eq!(json["cost_usd"], 0.001);
    assert_eq!(json["retry_count"], 2);
    assert_eq!(json["target"], "config.targets[1]");
    assert_eq!(json["config_id"], "cfg");
    assert_eq!(json["attempts"][0]["status"], 503);
    assert_eq!(
        json["attempts"][0]["started_at"],
        "2026-11-25T00:00:01.300Z"
    );
    assert_eq!(json["guardrails"], json!({"before_request_hooks": []}));
    // A JSON payload as JSON, a stream as its text.
    assert_eq!(json["request"], json!({"model": "m"}));
    assert_eq!(json["response"], "data: {\"x\":1}\n\ndata: [DONE]\n\n");
    assert_eq!(json["request_truncated"], false);
    // The list leaves the payloads out.
    let page = store.search(&LogQuery::default()).await.unwrap();
    let listed = serde_json::to_value(&page.data[0]).unwrap();
    assert!(listed.get("request").is_none() && listed.get("response").is_none());
    assert_eq!(listed["attempts"], json["attempts"]);
    assert!(store.get("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn payloads_absent_or_cut_are_answered_as_such() {
    let mut cut = entry("cut", DAY0);
    cut.request = Some(Payload::capped(
        Bytes::from_static(br#"{"model":"abcdef"}"#),
        8,
    ));
    let store = store_with(vec![cut, entry("none", DAY0)]).await;
    let d = store.get("cut").await.unwrap().unwrap();
    assert_eq!(d.request, Some(json!(r#"{"model""#)));
    assert!(d.request_truncated);
    let d = store.get("none").await.unwrap().unwrap();
    assert_eq!((d.request, d.response), (None, None));
}

#[tokio::test]
async fn inserting_an_id_twice_keeps_one() {
    let store = store_with(vec![entry("a", DAY0)]).await;
    assert_eq!(
        store
            .insert(vec![entry("a", DAY0), entry("b", DAY0)].into())
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn an_id_twice_in_one_batch_is_stored_once_with_its_side_rows() {
    let store = temp_store().await;
    let mut first = entry("dup", DAY0);
    first.metadata = meta(&[("team", "a")]);
    first.request = Some(Payload::capped(Bytes::from_static(b"{}"), 10));
    let mut second = first.clone();
    second.metadata = meta(&[("team", "b")]);
    // Far apart in the batch, with many rows between them.
    let mut batch = vec![first];
    batch.extend((0..150).map(|i| entry(&format!("n{i}"), DAY0 + i)));
    batch.push(second);
    assert_eq!(store.insert(batch.into()).await.unwrap(), 151);
    let team = ids(
        &store,
        LogFilter {
            metadata: vec![("team".into(), "a".into())],
            ..LogFilter::default()
        },
    )
    .await;
    assert_eq!(team, ["dup"]);
    let side: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM log_metadata), (SELECT count(*) FROM log_payloads)",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(side, (1, 1));
}

#[tokio::test]
async fn each_filter_selects_its_entries() {
    let mut a = entry("a", DAY0 + 1);
    a.metadata = meta(&[("team", "backend"), ("project", "api-v2")]);
    a.trace_id = "session-auth-refactor".into();
    let mut b = entry("b", DAY0 + 2);
    b.metadata = meta(&[("team", "backend"), ("project", "web")]);
    b.provider = Some("anthropic".into());
    b.model = Some("claude-sonnet-4-5".into());
    b.user = Some("ada".into());
    let mut c = entry("c", DAY0 + 3);
    c.status = 429;
    c.key_name = Some("batch".into());
    c.error = Some("Rate limit exceeded 100%_sure".into());
    let mut d = entry("d", DAY0 + 4);
    d.status = 502;
    d.metadata = meta(&[("team", "frontend")]);
    let store = store_with(vec![a, b, c, d]).await;

    let f = LogFilter::default;
    assert_eq!(ids(&store, f()).await, ["d", "c", "b", "a"]);
    let by = |edit: fn(&mut LogFilter)| {
        let mut filter = f();
        edit(&mut filter);
        filter
    };
    assert_eq!(
        ids(
            &store,
            by(|f| f.trace_id = Some("session-auth-refactor".into()))
        )
        .await,
        ["a"]
    );
    assert_eq!(
        ids(
            &store,
            by(|f| f.metadata = vec![("team".into(), "backend".into())])
        )
        .await,
        ["b", "a"]
    );
    assert_eq!(
        ids(
            &store,
            by(|f| f.metadata = vec![
                ("team".into(), "backend".into()),
                ("project".into(), "web".into())
            ])
        )
        .await,
        ["b"]
    );
    assert_eq!(
        ids(&store, by(|f| f.key = Some("batch".into()))).await,
        ["c"]
    );
    assert_eq!(
        ids(&store, by(|f| f.user = Some("ada".into()))).await,
        ["b"]
    );
    assert_eq!(
        ids(&store, by(|f| f.provider = Some("anthropic".into()))).await,
        ["b"]
    );
    assert_eq!(
        ids(&store, by(|f| f.model = Some("gpt-4o-mini".into()))).await,
        ["d", "c", "a"]
    );
    assert_eq!(
        ids(&store, by(|f| f.status = Some(StatusFilter::Code(429)))).await,
        ["c"]
    );
    assert_eq!(
        ids(&store, by(|f| f.status = Some(StatusFilter::Class(5)))).await,
        ["d"]
    );
    assert_eq!(
        ids(&store, by(|f| f.status = Some(StatusFilter::Class(2)))).await,
        ["b", "a"]
    );
    assert_eq!(
        ids(&store, by(|f| f.from_ms = Some(DAY0 + 2))).await,
        ["d", "c", "b"]
    );
    assert_eq!(ids(&store, by(|f| f.to_ms = Some(DAY0 + 2))).await, ["a"]);
    // q: id, trace id, model, error message, metadata values; LIKE wildcards are literal.
    assert_eq!(
        ids(&store, by(|f| f.q = Some("AUTH-ref".into()))).await,
        ["a"]
    );
    assert_eq!(
        ids(&store, by(|f| f.q = Some("sonnet".into()))).await,
        ["b"]
    );
    assert_eq!(
        ids(&store, by(|f| f.q = Some("100%_s".into()))).await,
        ["c"]
    );
    assert_eq!(
        ids(&store, by(|f| f.q = Some("100%x".into()))).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&store, by(|f| f.q = Some("fronten".into()))).await,
        ["d"]
    );
    assert_eq!(
        ids(&store, by(|f| f.q = Some("team".into()))).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn pages_walk_newest_first_without_gaps_or_repeats() {
    // Several entries share a millisecond: the cursor breaks the tie.
    let entries: Vec<LogEntry> = (0..23)
        .map(|i| entry(&format!("e{i:02}"), DAY0 + i / 3))
        .collect();
    let store = store_with(entries).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .search(&LogQuery {
                filter: LogFilter::default(),
                limit: 5,
                cursor,
            })
            .await
            .unwrap();
        assert!(page.data.len() <= 5);
        seen.extend(page.data.iter().map(|e| (e.created_at_ms, e.id.clone())));
        match page.next_cursor {
            Some(next) => cursor = Some(crate::Cursor::decode(&next).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        seen, sorted,
        "newest first, ties by insertion, newest first"
    );
}

/// A seeded set with hand-computed answers.
fn analytics_seed() -> Vec<LogEntry> {
    let mut v = Vec::new();
    // Hour 0: five gpt-4o-mini requests, latencies 10..50, one 500 (unpriced, not counted
    // as unpriced since it failed), one 200 without a known price.
    for (i, latency) in [10u64, 20, 30, 40, 50].into_iter().enumerate() {
        let mut e = entry(&format!("h0-{i}"), DAY0 + 60_000 * i as i64);
        e.latency_ms = latency;
        e.metadata = meta(&[("team", if i < 3 { "backend" } else { "web" })]);
        v.push(e);
    }
    v[3].status = 500;
    v[3].cost_usd = None;
    v[3].prompt_tokens = None;
    v[3].completion_tokens = None;
    v[4].cost_usd = None;
    // Hour 0: one claude request.
    let mut c = entry("h0-claude", DAY0 + 30 * 60_000);
    c.provider = Some("anthropic".into());
    c.model = Some("claude".into());
    c.latency_ms = 700;
    c.prompt_tokens = Some(100);
    c.completion_tokens = Some(50);
    c.cost_usd = Some(0.0025);
    v.push(c);
    // Hour 2: one gpt-4o-mini 429.
    let mut late = entry("h2", DAY0 + 2 * HOUR + 5);
    late.status = 429;
    late.latency_ms = 5;
    late.cost_usd = None;
    late.prompt_tokens = None;
    late.completion_tokens = None;
    v.push(late);
    // Outside the range.
    v.push(entry("before", DAY0 - 1));
    v.push(entry("after", DAY0 + 24 * HOUR));
    v
}

fn analytics_query(group_by: Option<GroupBy>, interval: Interval) -> AnalyticsQuery {
    AnalyticsQuery {
        filter: LogFilter {
            from_ms: Some(DAY0),
            to_ms: Some(DAY0 + 24 * HOUR),
            ..LogFilter::default()
        },
        interval,
        group_by,
    }
}

#[tokio::test]
async fn analytics_math_on_a_seeded_set() {
    let store = store_with(analytics_seed()).await;
    let a = store
        .analytics(&analytics_query(Some(GroupBy::Model), Interval::Hour))
        .await
        .unwrap();
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(
        json,
        json!({
            "interval": "hour",
            "group_by": "model",
            "from": "2026-11-25T00:00:00Z",
            "to": "2026-11-26T00:00:00Z",
            "totals": {
                "requests": 7, "errors": 2,
                "prompt_tokens": 10 * 4 + 100, "completion_tokens": 5 * 4 + 50,
                "cost_usd": 0.0055, "unpriced_requests": 1,
                // sorted: 5 10 20 30 40 50 700 -> ranks 4, 7, 7
                "latency_ms": {"p50": 30, "p95": 700, "p99": 700}
            },
            "series": [
                {"bucket": "2026-11-25T00:00:00Z", "group": "claude",
                 "requests": 1, "errors": 0, "prompt_tokens": 100, "completion_tokens": 50,
                 "cost_usd": 0.0025, "unpriced_requests": 0,
                 "latency_ms": {"p50": 700, "p95": 700, "p99": 700}},
                {"bucket": "2026-11-25T00:00:00Z", "group": "gpt-4o-mini",
                 "requests": 5, "errors": 1, "prompt_tokens": 40, "completion_tokens": 20,
                 "cost_usd": 0.003, "unpriced_requests": 1,
                 "latency_ms": {"p50": 30, "p95": 50, "p99": 50}},
                {"bucket": "2026-11-25T02:00:00Z", "group": "gpt-4o-mini",
                 "requests": 1, "errors": 1, "prompt_tokens": 0, "completion_tokens": 0,
                 "cost_usd": 0.0, "unpriced_requests": 0,
                 "latency_ms": {"p50": 5, "p95": 5, "p99": 5}}
            ]
        })
    );
}

#[tokio::test]
async fn analytics_by_metadata_per_day_with_a_filter() {
    let store = store_with(analytics_seed()).await;
    let mut q = analytics_query(Some(GroupBy::Metadata("team".into())), Interval::Day);
    q.filter.provider = Some("openai".into());
    let a = store.analytics(&q).await.unwrap();
    let rows: Vec<(Option<&str>, u64, Option<Percentiles>)> = a
        .series
        .iter()
        .map(|r| (r.group.as_deref(), r.stats.requests, r.stats.latency_ms))
        .collect();
    let p = |p50, p95, p99| Some(Percentiles { p50, p95, p99 });
    assert_eq!(
        rows,
        [
            (None, 1, p(5, 5, 5)),
            (Some("backend"), 3, p(20, 30, 30)),
            (Some("web"), 2, p(40, 50, 50)),
        ]
    );
    assert!(a.series.iter().all(|r| r.bucket == "2026-11-25T00:00:00Z"));
    assert_eq!(a.totals.requests, 6);
    assert_eq!(a.group_by.as_deref(), Some("metadata.team"));
}

#[tokio::test]
async fn analytics_of_nothing() {
    let store = store_with(Vec::new()).await;
    let a = store
        .analytics(&analytics_query(None, Interval::Hour))
        .await
        .unwrap();
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["series"], json!([]));
    assert_eq!(json["totals"]["requests"], 0);
    assert_eq!(json["totals"]["latency_ms"], json!(null));
    assert_eq!(json["group_by"], json!(null));
}

#[tokio::test]
async fn pruning_by_age_and_by_count_takes_side_rows_too() {
    let now = DAY0 + 40 * 24 * HOUR;
    let mut entries = Vec::new();
    for i in 0..2500 {
        // 1500 entries older than 30 days, 1000 younger.
        let at = if i < 1500 {
            DAY0 + i
        } else {
            now - 1000 + (i - 1500)
        };
        let mut e = entry(&format!("p{i}"), at);
        e.metadata = meta(&[("team", "x")]);
        e.request = Some(Payload::capped(Bytes::from_static(b"{}"), 10));
        entries.push(e);
    }
    let store = store_with(entries).await;
    let retention = Retention {
        max_age_days: Some(30),
        max_rows: None,
        every: std::time::Duration::from_secs(60),
    };
    assert_eq!(store.prune(&retention, now).await.unwrap(), 1500);
    assert_eq!(store.count().await.unwrap(), 1000);
    let by_count = Retention {
        max_age_days: None,
        max_rows: Some(10),
        ..retention
    };
    assert_eq!(store.prune(&by_count, now).await.unwrap(), 990);
    // The newest ten are kept.
    let kept = ids(&store, LogFilter::default()).await;
    let expected: Vec<String> = (2490..2500).rev().map(|i| format!("p{i}")).collect();
    assert_eq!(kept, expected);
    let side: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM log_metadata), (SELECT count(*) FROM log_payloads)",
    )
    .fetch_one(&store.pool)
    .await
    .unwrap();
    assert_eq!(side, (10, 10));
}

#[tokio::test]
async fn the_most_filters_a_query_may_carry_reach_sql_without_an_error() {
    let mut e = entry("a", DAY0 + 1);
    let pairs: Vec<(String, String)> = (0..crate::MAX_METADATA_FILTERS)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    e.metadata = Some(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
    let store = store_with(vec![e, entry("b", DAY0 + 2)]).await;
    let mut query: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (format!("metadata.{k}"), v.clone()))
        .collect();
    // The longest `q`, of 4-byte characters: its LIKE pattern is still within SQLite's limit.
    query.push(("q".into(), "🦀".repeat(crate::MAX_Q_CHARS)));
    let parsed = LogQuery::parse(query.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    assert!(store.search(&parsed).await.unwrap().data.is_empty());
    // Without `q`, all 20 filters match entry a only.
    let without_q = query[..query.len() - 1].to_vec();
    let parsed = LogQuery::parse(without_q.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    let page = store.search(&parsed).await.unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].id, "a");
    // Analytics grouped by metadata with every filter and the longest `q`.
    let mut analytics = query.clone();
    analytics.push(("group_by".into(), "metadata.k0".into()));
    analytics.push(("from".into(), "0".into()));
    let parsed = AnalyticsQuery::parse(
        analytics.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        DAY0,
    )
    .unwrap();
    assert_eq!(store.analytics(&parsed).await.unwrap().totals.requests, 0);
    let mut analytics = without_q;
    analytics.push(("group_by".into(), "metadata.k0".into()));
    analytics.push(("from".into(), "0".into()));
    let parsed = AnalyticsQuery::parse(
        analytics.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        DAY0,
    )
    .unwrap();
    let answer = store.analytics(&parsed).await.unwrap();
    assert_eq!(answer.totals.requests, 1);
    assert_eq!(answer.series[0].group.as_deref(), Some("v0"));
}

#[cfg(unix)]
#[tokio::test]
async fn the_log_database_and_its_wal_and_shm_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let store = store_with(vec![entry("a", DAY0)]).await;
    for name in ["logs.db", "logs.db-wal", "logs.db-shm"] {
        let path = store._dir.path().join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}
