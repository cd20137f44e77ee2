//! The cache policy in the real pipeline against the HTTP mock upstream, on a manual clock:
//! what hits and what must not, expiry, force refresh, errors and partial streams never
//! stored, streams replayed byte for byte in both API families, a hit charged to no budget,
//! and the semantic cache's hits and near misses.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue};
use portico_cache::MemoryStore;
use portico_core::{
    BudgetSpec, Clock, Endpoint, KeyHash, Limits, ManualClock, ModelRef, Period, ProviderKind,
    RequestRecord, RequestSink, Secret,
};
use portico_limits::Ledger;
use portico_store::{KeyRecord, KeyType, ProviderRecord, RecordSource};
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{CachePolicy, SemanticSettings};
use crate::pipeline::policy::Policy;
use crate::pipeline::{Family, Reply};
use crate::policies::limits::{LimitsPolicy, StatusKind};
use crate::{Gateway, Snapshot};

const NOON: i64 = 1_796_558_400_000;
const CHAT: Family = Family::OpenAi(Endpoint::ChatCompletions);
const CACHED: &str = r#"{"cache":{"mode":"simple","max_age":60}}"#;
const SEMANTIC: &str = r#"{"cache":{"mode":"semantic","max_age":60}}"#;

/// Keeps every finished record.
#[derive(Default)]
struct Records(Mutex<Vec<RequestRecord>>);

impl RequestSink for Records {
    fn observe(&self, record: &RequestRecord) {
        self.0.lock().unwrap().push(record.clone());
    }
}

struct Setup {
    gateway: Arc<Gateway>,
    upstream: Arc<MockUpstream>,
    clock: Arc<ManualClock>,
    records: Arc<Records>,
    limits: Arc<LimitsPolicy>,
}

fn provider(slug: &str, kind: ProviderKind, base_url: String) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind,
        base_url: Some(base_url),
        api_key: Some(Secret::new("sk-cache-upstream-000")),
        settings: json!({}),
        credentials: Default::default(),
        models: None,
        source: RecordSource::File,
        limits: Default::default(),
    }
}

fn key(name: &str, limits: Limits) -> KeyRecord {
    KeyRecord {
        id: format!("id-{name}"),
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(&secret(name)),
        hint: String::new(),
        allowed_models: None,
        log_payloads: false,
        config: None,
        source: RecordSource::File,
        created_at_ms: 0,
        revoked_at_ms: None,
        expires_at_ms: None,
        limits,
    }
}

fn secret(name: &str) -> String {
    format!("prt-cache-test-{name}-0000")
}

/// A gateway with `@oa` (OpenAI kind) and `@an` (Anthropic kind) on one mock upstream, the
/// cache policy (in a store of `max_bytes`, semantic with `@oa/emb` when asked) and then the
/// limits policy, keys `a` and `b` (`b` with a daily token budget).
async fn setup_with(max_bytes: usize, semantic: bool) -> Setup {
    let upstream = Arc::new(MockUpstream::start().await);
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let budget = Limits {
        budget: Some(BudgetSpec {
            cost_usd: None,
            tokens: Some(1_000_000),
            period: Period::Day,
        }),
        rate_limit: None,
    };
    let snapshot = Snapshot::build(
        vec![
            provider("oa", ProviderKind::OpenAi, upstream.base_url()),
            provider(
                "an",
                ProviderKind::Anthropic,
                format!("http://{}", upstream.addr()),
            ),
        ],
        vec![key("a", Limits::default()), key("b", budget)],
        Vec::new(),
        &client,
    )
    .unwrap();
    let clock = Arc::new(ManualClock::at(NOON));
    let mut cache = CachePolicy::new(
        Arc::new(MemoryStore::new(max_bytes)),
        Arc::clone(&clock) as Arc<dyn Clock>,
    );
    if semantic {
        cache = cache.with_semantic(SemanticSettings {
            embedding_model: ModelRef::parse("@oa/emb").unwrap(),
            threshold: 0.95,
            max_entries: 1000,
        });
    }
    let limits = Arc::new(LimitsPolicy::new(
        Arc::new(Ledger::new()),
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    let records = Arc::new(Records::default());
    let gateway = Arc::new(
        Gateway::new(
            snapshot,
            client,
            Arc::clone(&records) as Arc<dyn RequestSink>,
        )
        .with_clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .with_policy(Arc::new(cache) as Arc<dyn Policy>)
        .with_policy(Arc::clone(&limits) as Arc<dyn Policy>),
    );
    Setup {
        gateway,
        upstream,
        clock,
        records,
        limits,
    }
}

async fn setup() -> Setup {
    setup_with(64 * 1024 * 1024, false).await
}

fn headers(key: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", secret(key))).unwrap(),
    );
    h.insert("x-portkey-config", HeaderValue::from_static(CACHED));
    for (name, value) in extra {
        h.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    h
}

async fn send(s: &Setup, family: Family, headers: &HeaderMap, body: &Value) -> Reply {
    let body = Bytes::from(body.to_string());
    s.gateway
        .handle(
            family,
            headers,
            async { Ok(body) },
            &CancellationToken::new(),
        )
        .await
}

/// The `x-portkey-cache-status` of a reply, and its body (a stream read to its end).
async fn answer(reply: Reply) -> (String, u16, String) {
    let mut out = HeaderMap::new();
    let (status, text) = match reply {
        Reply::Whole {
            status,
            body,
            headers,
            ..
        } => {
            headers.apply(&mut out);
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
        Reply::Stream {
            status,
            mut body,
            headers,
        } => {
            headers.apply(&mut out);
            let mut text = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
            (status, text)
        }
        Reply::Error { error, headers } => {
            headers.apply(&mut out);
            (error.status, error.message)
        }
    };
    let cache = out["x-portkey-cache-status"].to_str().unwrap().to_owned();
    (cache, status, text)
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "temperature": 0, "messages": [{"role": "user", "content": text}]})
}

/// The records, once `n` have been finished (a stream's record is finished when its body is
/// dropped).
fn records(s: &Setup) -> Vec<RequestRecord> {
    s.records.0.lock().unwrap().clone()
}

#[tokio::test]
async fn the_same_request_hits_and_every_keyed_difference_misses() {
    let s = setup().await;
    let body = chat("@oa/m", "hello");
    let (cache, status, first) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!((cache.as_str(), status), ("MISS", 200));
    assert_eq!(s.upstream.hits(), 1);
    // The same request, from another gateway key and with another trace id: a hit.
    let (cache, status, again) = answer(
        send(
            &s,
            CHAT,
            &headers("b", &[("x-portkey-trace-id", "other-trace")]),
            &body,
        )
        .await,
    )
    .await;
    assert_eq!((cache.as_str(), status), ("HIT", 200));
    assert_eq!(again, first, "the same bytes");
    assert_eq!(s.upstream.hits(), 1, "no upstream call");

    // Every keyed difference is a miss (and each is then stored: its repeat hits).
    let mut other_param = body.clone();
    other_param["temperature"] = json!(0.5);
    let cases: Vec<(Value, Vec<(&'static str, &str)>)> = vec![
        (other_param, vec![]),
        (chat("@oa/other-model", "hello"), vec![]),
        (chat("@an/m", "hello"), vec![]),
        (chat("@oa/m", "hello!"), vec![]),
        (
            body.clone(),
            vec![("x-portkey-metadata", r#"{"team":"x"}"#)],
        ),
        (body.clone(), vec![("x-portkey-cache-namespace", "ns-1")]),
        // A bare model's provider, by either header, is part of the key: the same body
        // through another virtual key is another provider's answer.
        (chat("m", "hello"), vec![("x-portkey-virtual-key", "an")]),
        (chat("m", "hello"), vec![("x-portkey-virtual-key", "oa")]),
        (chat("m", "hello"), vec![("x-portkey-provider", "@oa")]),
        (
            json!({"model": "@oa/m", "temperature": 0, "tools": [{"type": "function", "function": {"name": "f"}}],
                   "messages": [{"role": "user", "content": "hello"}]}),
            vec![],
        ),
    ];
    for (i, (body, extra)) in cases.iter().enumerate() {
        let hits = s.upstream.hits();
        let (cache, _, _) = answer(send(&s, CHAT, &headers("a", extra), body).await).await;
        assert_eq!(cache, "MISS", "case {i}: {body} {extra:?}");
        assert_eq!(s.upstream.hits(), hits + 1, "case {i}");
        let (cache, _, _) = answer(send(&s, CHAT, &headers("b", extra), body).await).await;
        assert_eq!(cache, "HIT", "case {i} repeated");
    }

    // The log: a hit costs nothing, says what it saved and which provider's answer it was.
    let records = records(&s);
    let hit = &records[1];
    assert_eq!(hit.cache_status, Some("hit"));
    assert_eq!(hit.cost_usd, Some(0.0));
    assert_eq!(hit.provider.as_deref(), Some("oa"));
    assert_eq!(hit.upstream_latency_ms, None);
    assert_eq!(records[0].cache_status, Some("miss"));
    assert_eq!(hit.cache_saved_usd, records[0].cost_usd);
}

#[tokio::test]
async fn a_request_without_a_cache_config_is_not_cached_and_says_disabled() {
    let s = setup().await;
    let mut h = headers("a", &[]);
    h.remove("x-portkey-config");
    for _ in 0..2 {
        let (cache, status, _) = answer(send(&s, CHAT, &h, &chat("@oa/m", "hi")).await).await;
        assert_eq!((cache.as_str(), status), ("DISABLED", 200));
    }
    assert_eq!(s.upstream.hits(), 2);
    assert_eq!(records(&s)[0].cache_status, None);
}

#[tokio::test]
async fn an_answer_expires_after_max_age() {
    let s = setup().await;
    let body = chat("@oa/m", "hello");
    let h = headers("a", &[]);
    answer(send(&s, CHAT, &h, &body).await).await;
    s.clock.advance(59_999);
    assert_eq!(answer(send(&s, CHAT, &h, &body).await).await.0, "HIT");
    s.clock.advance(1);
    assert_eq!(answer(send(&s, CHAT, &h, &body).await).await.0, "MISS");
    assert_eq!(s.upstream.hits(), 2);
    // A request with a shorter max_age does not take an answer older than its own.
    s.clock.advance(5_000);
    let short = headers("a", &[]);
    let mut short = short;
    short.insert(
        "x-portkey-config",
        HeaderValue::from_static(r#"{"cache":{"mode":"simple","max_age":60}}"#),
    );
    assert_eq!(answer(send(&s, CHAT, &short, &body).await).await.0, "HIT");
}

#[tokio::test]
async fn force_refresh_goes_upstream_and_stores_the_fresh_answer() {
    let s = setup().await;
    let body = chat("@oa/m", "hello");
    answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    s.upstream
        .enqueue(MockReply::json(200, json!({"id": "fresh", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fresh"}, "finish_reason": "stop"}]})));
    let (cache, _, text) = answer(
        send(
            &s,
            CHAT,
            &headers("a", &[("x-portkey-cache-force-refresh", "true")]),
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(cache, "REFRESH");
    assert!(text.contains("fresh"), "{text}");
    assert_eq!(s.upstream.hits(), 2);
    let (cache, _, text) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!(cache, "HIT");
    assert!(text.contains("fresh"), "the refreshed answer: {text}");
    assert_eq!(records(&s)[1].cache_status, Some("refresh"));
}

#[tokio::test]
async fn errors_are_never_stored() {
    let s = setup().await;
    let body = chat("@oa/m", "hello");
    s.upstream.enqueue(MockReply::error(500, "boom"));
    let (cache, status, _) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!((cache.as_str(), status), ("MISS", 500));
    s.upstream.enqueue(MockReply::error(400, "bad"));
    let (cache, status, _) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!((cache.as_str(), status), ("MISS", 400));
    let (cache, status, _) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!((cache.as_str(), status), ("MISS", 200));
    assert_eq!(s.upstream.hits(), 3);
}

#[tokio::test]
async fn a_stream_is_replayed_byte_for_byte_in_both_families() {
    let s = setup().await;
    let openai = json!({"model": "@oa/m", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "tell me a story"}]});
    let messages = |model: &str| {
        json!({"model": model, "stream": true, "max_tokens": 50,
            "messages": [{"role": "user", "content": "tell me a story"}]})
    };
    for (family, body) in [
        (CHAT, openai),
        (Family::Messages, messages("@an/claude")),
        (Family::Messages, messages("@oa/m")),
    ] {
        let hits = s.upstream.hits();
        let (cache, status, first) =
            answer(send(&s, family, &headers("a", &[]), &body).await).await;
        assert_eq!((cache.as_str(), status), ("MISS", 200), "{body}");
        assert!(first.contains("data: "), "{first}");
        let (cache, status, again) =
            answer(send(&s, family, &headers("b", &[]), &body).await).await;
        assert_eq!((cache.as_str(), status), ("HIT", 200), "{body}");
        assert_eq!(again, first, "byte for byte: {body}");
        assert_eq!(s.upstream.hits(), hits + 1);
        // The same request unstreamed is another request.
        let mut whole = body.clone();
        whole["stream"] = json!(false);
        let (cache, _, text) = answer(send(&s, family, &headers("a", &[]), &whole).await).await;
        assert_eq!(cache, "MISS");
        let (cache, _, again) = answer(send(&s, family, &headers("a", &[]), &whole).await).await;
        assert_eq!((cache.as_str(), again), ("HIT", text));
    }
    // The replayed stream's record carries the usage it replayed, at no cost.
    let records = records(&s);
    let hit = records
        .iter()
        .find(|r| r.cache_status == Some("hit") && r.stream)
        .unwrap();
    assert_eq!(hit.cost_usd, Some(0.0));
    assert!(hit.completion_tokens.is_some());
}

#[tokio::test]
async fn a_stream_the_client_left_or_the_upstream_broke_is_not_stored() {
    let s = setup().await;
    let body = json!({"model": "@oa/m", "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    // The client leaves after the first chunk.
    let script = SseScript::new()
        .data(&portico_testkit::sse::chat_chunk(
            json!({"role": "assistant", "content": "first"}),
            None,
        ))
        .hang();
    s.upstream.enqueue(MockReply::sse(script));
    let Reply::Stream {
        body: mut body_stream,
        ..
    } = send(&s, CHAT, &headers("a", &[]), &body).await
    else {
        panic!("not a stream");
    };
    let first = body_stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    drop(body_stream);
    // The upstream breaks after the first chunk.
    let script = SseScript::new()
        .data(&portico_testkit::sse::chat_chunk(
            json!({"role": "assistant", "content": "first"}),
            None,
        ))
        .abort();
    s.upstream.enqueue(MockReply::sse(script));
    let (cache, _, text) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!(cache, "MISS");
    assert!(text.contains("error"), "{text}");
    // Neither was stored: the next request goes upstream.
    let (cache, _, text) = answer(send(&s, CHAT, &headers("a", &[]), &body).await).await;
    assert_eq!(cache, "MISS", "{text}");
    assert_eq!(s.upstream.hits(), 3);
    assert_eq!(
        answer(send(&s, CHAT, &headers("a", &[]), &body).await)
            .await
            .0,
        "HIT"
    );
}

#[tokio::test]
async fn every_endpoint_is_cached() {
    let s = setup().await;
    let cases = [
        (
            Endpoint::Completions,
            json!({"model": "@oa/m", "prompt": "hi"}),
        ),
        (
            Endpoint::Embeddings,
            json!({"model": "@oa/e", "input": "hi"}),
        ),
        (Endpoint::ChatCompletions, chat("@oa/m", "hi")),
    ];
    for (endpoint, body) in cases {
        let family = Family::OpenAi(endpoint);
        let (cache, status, first) =
            answer(send(&s, family, &headers("a", &[]), &body).await).await;
        assert_eq!((cache.as_str(), status), ("MISS", 200), "{endpoint}");
        let (cache, _, again) = answer(send(&s, family, &headers("a", &[]), &body).await).await;
        assert_eq!((cache.as_str(), again), ("HIT", first), "{endpoint}");
    }
    // The same body on another endpoint is another request.
    let body = json!({"model": "@oa/m", "prompt": "hi", "input": "hi"});
    answer(
        send(
            &s,
            Family::OpenAi(Endpoint::Completions),
            &headers("a", &[]),
            &body,
        )
        .await,
    )
    .await;
    let (cache, _, _) = answer(
        send(
            &s,
            Family::OpenAi(Endpoint::Embeddings),
            &headers("a", &[]),
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(cache, "MISS");
    assert_eq!(s.upstream.hits(), 5);
}

#[tokio::test]
async fn a_hit_is_charged_to_no_budget() {
    let s = setup().await;
    let body = chat("@oa/m", "hello there");
    let spent = |s: &Setup| {
        s.limits
            .status()
            .into_iter()
            .find(|e| e.subject == "key:b" && e.kind == StatusKind::Budget)
            .map(|e| (e.tokens_spent, e.tokens_reserved))
            .unwrap()
    };
    answer(send(&s, CHAT, &headers("b", &[]), &body).await).await;
    let after_miss = spent(&s);
    assert!(after_miss.0 > 0, "the miss was charged: {after_miss:?}");
    for _ in 0..3 {
        assert_eq!(
            answer(send(&s, CHAT, &headers("b", &[]), &body).await)
                .await
                .0,
            "HIT"
        );
    }
    assert_eq!(spent(&s), after_miss, "hits charge and reserve nothing");
}

#[tokio::test]
async fn the_byte_bound_evicts_the_least_recently_used_answer() {
    // Room for about a dozen answers of the mock's size (each under an eighth of it).
    let s = setup_with(8 * 1200, false).await;
    let h = headers("a", &[]);
    let ask = |n: usize| chat("@oa/m", &format!("question {n}"));
    answer(send(&s, CHAT, &h, &ask(0)).await).await;
    for n in 1..40 {
        answer(send(&s, CHAT, &h, &ask(n)).await).await;
        // Question 0 is used after every other: it stays the most recently used.
        assert_eq!(
            answer(send(&s, CHAT, &h, &ask(0)).await).await.0,
            "HIT",
            "{n}"
        );
    }
    assert_eq!(answer(send(&s, CHAT, &h, &ask(39)).await).await.0, "HIT");
    // The oldest of the others were evicted.
    assert_eq!(answer(send(&s, CHAT, &h, &ask(1)).await).await.0, "MISS");
    assert_eq!(s.upstream.hits(), 41);
}

fn embedding(values: &[f64]) -> MockReply {
    MockReply::json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": values}],
               "model": "emb", "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    )
}

#[tokio::test]
async fn a_close_question_is_a_semantic_hit_and_a_near_miss_is_not() {
    let s = setup_with(64 * 1024 * 1024, true).await;
    let h = {
        let mut h = headers("a", &[]);
        h.insert("x-portkey-config", HeaderValue::from_static(SEMANTIC));
        h
    };
    let ask = |text: &str| chat("@oa/m", text);
    s.upstream
        .enqueue_for("/v1/embeddings", embedding(&[1.0, 0.0, 0.0]));
    let (cache, _, first) =
        answer(send(&s, CHAT, &h, &ask("What is the capital of France?")).await).await;
    assert_eq!(cache, "SEMANTIC MISS");
    // cos = 0.995
    s.upstream
        .enqueue_for("/v1/embeddings", embedding(&[0.995, 0.0998, 0.0]));
    let (cache, _, again) =
        answer(send(&s, CHAT, &h, &ask("what's the capital of France")).await).await;
    assert_eq!(
        (cache.as_str(), again.as_str()),
        ("SEMANTIC HIT", first.as_str())
    );
    // cos = 0.94: below the threshold.
    s.upstream
        .enqueue_for("/v1/embeddings", embedding(&[0.94, 0.3412, 0.0]));
    let (cache, _, _) = answer(send(&s, CHAT, &h, &ask("capital of Spain?")).await).await;
    assert_eq!(cache, "SEMANTIC MISS");
    // The exact question again is a simple hit, with no embedding call.
    let (cache, _, _) =
        answer(send(&s, CHAT, &h, &ask("What is the capital of France?")).await).await;
    assert_eq!(cache, "HIT");
    // Other parameters are another scope, however close the question.
    s.upstream
        .enqueue_for("/v1/embeddings", embedding(&[1.0, 0.0, 0.0]));
    let mut hotter = ask("What is the capital of France, really?");
    hotter["temperature"] = json!(1);
    assert_eq!(
        answer(send(&s, CHAT, &h, &hotter).await).await.0,
        "SEMANTIC MISS"
    );
    // A long conversation is not semantic at all.
    let long =
        json!({"model": "@oa/m", "messages": vec![json!({"role": "user", "content": "hi"}); 5]});
    assert_eq!(answer(send(&s, CHAT, &h, &long).await).await.0, "MISS");
    assert_eq!(
        s.upstream.pending_replies(),
        0,
        "every embedding was asked for"
    );
    assert_eq!(s.upstream.hits_for("/v1/embeddings"), 4);
    assert_eq!(s.upstream.hits_for("/v1/chat/completions"), 4);
    let records = records(&s);
    let hit = &records[1];
    assert_eq!(hit.cache_status, Some("semantic_hit"));
    assert!((hit.cache_similarity.unwrap() - 0.995).abs() < 0.001);
    assert_eq!(hit.cost_usd, Some(0.0));
}
