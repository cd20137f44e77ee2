//! The store cases: writing, every filter, paging, payloads, analytics math, pruning, the
//! gateway field. Each runs on both stores (`on_both_stores!` at the end).

use bytes::Bytes;
use serde_json::json;

use super::{DAY0, HOUR, TestStore, entry, ids, meta, on_both_stores};
use crate::{
    AnalyticsQuery, GroupBy, Interval, LogEntry, LogFilter, LogQuery, Payload, Percentiles,
    Retention, StatusFilter,
};

async fn an_entry_round_trips_with_every_field(store: TestStore) {
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
    let store = store.with(vec![e]).await;
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

async fn payloads_absent_or_cut_are_answered_as_such(store: TestStore) {
    let mut cut = entry("cut", DAY0);
    cut.request = Some(Payload::capped(
        Bytes::from_static(br#"{"model":"abcdef"}"#),
        8,
    ));
    let store = store.with(vec![cut, entry("none", DAY0)]).await;
    let d = store.get("cut").await.unwrap().unwrap();
    assert_eq!(d.request, Some(json!(r#"{"model""#)));
    assert!(d.request_truncated);
    let d = store.get("none").await.unwrap().unwrap();
    assert_eq!((d.request, d.response), (None, None));
}

async fn inserting_an_id_twice_keeps_one(store: TestStore) {
    let store = store.with(vec![entry("a", DAY0)]).await;
    assert_eq!(
        store
            .insert(vec![entry("a", DAY0), entry("b", DAY0)].into())
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.count().await.unwrap(), 2);
}

async fn an_id_twice_in_one_batch_is_stored_once_with_its_side_rows(store: TestStore) {
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
    let side = store.side_rows().await;
    assert_eq!(side, (1, 1));
}

async fn each_filter_selects_its_entries(store: TestStore) {
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
    let store = store.with(vec![a, b, c, d]).await;

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

async fn pages_walk_newest_first_without_gaps_or_repeats(store: TestStore) {
    // Several entries share a millisecond: the cursor breaks the tie.
    let entries: Vec<LogEntry> = (0..23)
        .map(|i| entry(&format!("e{i:02}"), DAY0 + i / 3))
        .collect();
    let store = store.with(entries).await;
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
        "newest first; ties (inserted in id order here) newest first"
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

async fn analytics_math_on_a_seeded_set(store: TestStore) {
    let store = store.with(analytics_seed()).await;
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

async fn analytics_by_metadata_per_day_with_a_filter(store: TestStore) {
    let store = store.with(analytics_seed()).await;
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

async fn analytics_of_nothing(store: TestStore) {
    let store = store.with(Vec::new()).await;
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

async fn pruning_by_age_and_by_count_takes_side_rows_too(store: TestStore) {
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
    let store = store.with(entries).await;
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
    let side = store.side_rows().await;
    assert_eq!(side, (10, 10));
}

async fn the_most_filters_a_query_may_carry_reach_sql_without_an_error(store: TestStore) {
    let mut e = entry("a", DAY0 + 1);
    let pairs: Vec<(String, String)> = (0..crate::MAX_METADATA_FILTERS)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    e.metadata = Some(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
    let store = store.with(vec![e, entry("b", DAY0 + 2)]).await;
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

async fn the_gateway_field_is_stored_answered_and_filtered(store: TestStore) {
    let mut entries = Vec::new();
    for i in 0..7 {
        let mut e = entry(&format!("eu{i}"), DAY0 + i);
        e.gateway = Some("edge-eu".into());
        entries.push(e);
    }
    let mut us = entry("us", DAY0 + 3);
    us.gateway = Some("edge-us".into());
    entries.push(us);
    entries.push(entry("local", DAY0 + 4));
    let store = store.with(entries).await;

    // Answered as a string, or as null for a request the deployment served itself.
    let page = store.search(&LogQuery::default()).await.unwrap();
    let listed = serde_json::to_value(&page.data).unwrap();
    let gateways: Vec<(&str, &serde_json::Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), &e["gateway"]))
        .filter(|(id, _)| ["local", "us", "eu0"].contains(id))
        .collect();
    assert_eq!(
        gateways,
        [
            ("local", &json!(null)),
            ("us", &json!("edge-us")),
            ("eu0", &json!("edge-eu"))
        ]
    );
    let detail = serde_json::to_value(store.get("us").await.unwrap().unwrap()).unwrap();
    assert_eq!(detail["gateway"], "edge-us");

    // `gateway=<name>` selects exactly, pages through its own entries, and combines.
    let parse = |pairs: &[(&str, &str)]| LogQuery::parse(pairs.iter().copied()).unwrap();
    let mut query = parse(&[("gateway", "edge-eu"), ("limit", "3")]);
    let mut seen = Vec::new();
    loop {
        let page = store.search(&query).await.unwrap();
        seen.extend(page.data.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(next) => query.cursor = crate::Cursor::decode(&next),
            None => break,
        }
    }
    assert_eq!(seen, ["eu6", "eu5", "eu4", "eu3", "eu2", "eu1", "eu0"]);
    let us_only = store
        .search(&parse(&[("gateway", "edge-us")]))
        .await
        .unwrap();
    assert_eq!(us_only.data.len(), 1);
    assert_eq!(us_only.data[0].id, "us");
    let none = parse(&[("gateway", "edge-eu"), ("status", "5xx")]);
    assert!(store.search(&none).await.unwrap().data.is_empty());
    let unknown = parse(&[("gateway", "edge-ap")]);
    assert!(store.search(&unknown).await.unwrap().data.is_empty());

    // Analytics reads the same filter.
    let analytics = AnalyticsQuery::parse(
        [("gateway", "edge-eu"), ("from", "0"), ("interval", "day")],
        DAY0,
    )
    .unwrap();
    assert_eq!(
        store.analytics(&analytics).await.unwrap().totals.requests,
        7
    );
}

async fn entries_delivered_as_json_are_stored_with_their_gateway_and_old_lines_still_read(
    store: TestStore,
) {
    // A gateway's delivery: a batch of entries as JSON, each with payloads and metadata.
    let mut e = entry("delivered", DAY0);
    e.metadata = meta(&[("team", "backend")]);
    e.request = Some(Payload::capped(Bytes::from_static(&[0xff, 0x00]), 10));
    e.gateway = Some("edge-eu".into());
    let batch = serde_json::to_string(&vec![e.clone()]).unwrap();
    let received: Vec<LogEntry> = serde_json::from_str(&batch).unwrap();
    assert_eq!(received, [e]);
    // A line spilled by a version without the field.
    let mut old = serde_json::to_value(entry("old", DAY0 + 1)).unwrap();
    old.as_object_mut().unwrap().remove("gateway");
    let old: LogEntry = serde_json::from_value(old).unwrap();
    assert_eq!(old.gateway, None);

    let mut all = received;
    all.push(old);
    let store = store.with(all).await;
    let delivered = store.get("delivered").await.unwrap().unwrap();
    assert_eq!(delivered.summary.gateway.as_deref(), Some("edge-eu"));
    assert_eq!(delivered.request, Some(json!("\u{fffd}\0")));
    assert_eq!(
        store.get("old").await.unwrap().unwrap().summary.gateway,
        None
    );
}

async fn a_batch_delivered_twice_is_stored_once(store: TestStore) {
    let batch: Vec<LogEntry> = (0..300)
        .map(|i| {
            let mut e = entry(&format!("d{i:03}"), DAY0 + i);
            e.metadata = meta(&[("team", "backend")]);
            e.request = Some(Payload::capped(Bytes::from_static(b"{}"), 10));
            e
        })
        .collect();
    let store = store.with(batch.clone()).await;
    assert_eq!(store.insert(batch.clone().into()).await.unwrap(), 0);
    // Overlapping halves, in another order: only the new ones count.
    let mut overlapping: Vec<LogEntry> = batch[150..].iter().rev().cloned().collect();
    overlapping.push(entry("d300", DAY0 + 300));
    assert_eq!(store.insert(overlapping.into()).await.unwrap(), 1);
    assert_eq!(store.insert(Vec::new().into()).await.unwrap(), 0);
    assert_eq!(store.count().await.unwrap(), 301);
    assert_eq!(store.side_rows().await, (300, 300));
}

async fn what_one_store_inserts_another_on_the_same_database_lists(store: TestStore) {
    let other = store.open_again().await;
    let mut e = entry("from-a", DAY0);
    e.request = Some(Payload::capped(Bytes::from_static(br#"{"a":1}"#), 100));
    assert_eq!(store.insert(vec![e].into()).await.unwrap(), 1);
    let seen = other.get("from-a").await.unwrap().unwrap();
    assert_eq!(seen.request, Some(json!({"a": 1})));
    assert_eq!(ids(&other, LogFilter::default()).await, ["from-a"]);
    // And the other way round, with the same id delivered to both: stored once.
    let both = vec![entry("from-b", DAY0 + 1), entry("from-a", DAY0)];
    assert_eq!(other.insert(both.into()).await.unwrap(), 1);
    assert_eq!(
        ids(&store, LogFilter::default()).await,
        ["from-b", "from-a"]
    );
    assert_eq!(store.count().await.unwrap(), 2);
    other.close().await;
}

async fn a_nul_character_in_stored_text_does_not_fail_the_batch(store: TestStore) {
    let mut e = entry("nul", DAY0);
    e.error = Some("upstream said \0 here".into());
    e.user = Some("ada\0".into());
    e.metadata = meta(&[("team", "back\0end")]);
    e.guardrails = Some(json!({"note": "\0"}));
    let store = store.with(vec![e, entry("plain", DAY0 + 1)]).await;
    let stored = store.get("nul").await.unwrap().unwrap().summary;
    // SQLite keeps the NUL; PostgreSQL text cannot hold it and stores U+FFFD instead.
    let error = stored.error.unwrap();
    assert!(
        ["upstream said \0 here", "upstream said \u{fffd} here"].contains(&error.as_str()),
        "{error:?}"
    );
    assert_eq!(stored.guardrails, Some(json!({"note": "\0"})));
    assert_eq!(store.count().await.unwrap(), 2);
}

on_both_stores!(
    an_entry_round_trips_with_every_field,
    payloads_absent_or_cut_are_answered_as_such,
    inserting_an_id_twice_keeps_one,
    an_id_twice_in_one_batch_is_stored_once_with_its_side_rows,
    each_filter_selects_its_entries,
    pages_walk_newest_first_without_gaps_or_repeats,
    analytics_math_on_a_seeded_set,
    analytics_by_metadata_per_day_with_a_filter,
    analytics_of_nothing,
    pruning_by_age_and_by_count_takes_side_rows_too,
    the_most_filters_a_query_may_carry_reach_sql_without_an_error,
    the_gateway_field_is_stored_answered_and_filtered,
    entries_delivered_as_json_are_stored_with_their_gateway_and_old_lines_still_read,
    a_batch_delivered_twice_is_stored_once,
    what_one_store_inserts_another_on_the_same_database_lists,
    a_nul_character_in_stored_text_does_not_fail_the_batch,
);
