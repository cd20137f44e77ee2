//! The response cache through the real binary: a config with `cache` answers a repeated
//! request from memory (whole or streamed, byte for byte, in both API families) whatever
//! gateway key asks, with `x-portkey-cache-status`; the log and `/metrics` show hits and what
//! they saved; a stream the client left is not stored; force refresh and namespaces; the
//! semantic cache with the catalog's embedding model.

use std::time::Duration;

use futures::StreamExt as _;
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, admin_get, wait_for_logs};

const OTHER_KEY: &str = "prt-test-other-key-0123456789";

fn catalog(upstream: &MockUpstream) -> String {
    let addr = upstream.addr();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: sk-ptsecret-cache-openai-0001
    base_url: http://{addr}/v1
  - slug: an
    kind: anthropic
    api_key: sk-ant-ptsecret-cache-0001
    base_url: http://{addr}
configs:
  - id: cached
    config: {{ cache: {{ mode: simple, max_age: 60 }} }}
  - id: semantic
    config: {{ cache: {{ mode: semantic, max_age: 60 }} }}
keys:
  - name: service
    key: {SERVICE_KEY}
    config: cached
  - name: other
    key: {OTHER_KEY}
    config: cached
"#
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    Gateway::start_with_env(
        upstream,
        &catalog,
        &[(
            "PORTICO_CACHE_EMBEDDING_MODEL",
            "@oa/text-embedding-3-small",
        )],
    )
    .await
}

/// POSTs `body` to `path` with `key` and `headers`; the response.
async fn post(
    gw: &Gateway,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut request = gw
        .http
        .post(gw.url(path))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The cache status, the request id and the whole body of an answer.
async fn read(response: reqwest::Response) -> (String, String, String) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (cache, id) = (
        header("x-portkey-cache-status"),
        header("x-portkey-request-id"),
    );
    (cache, id, response.text().await.unwrap())
}

async fn log(gw: &Gateway, id: &str) -> Value {
    for _ in 0..600 {
        let response = admin_get(&gw.portico, &format!("/admin/v1/logs/{id}")).await;
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no log record {id}");
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache_whatever_key_asks() {
    let gw = start().await;
    let body = json!({"model": "@oa/gpt-4o-mini", "temperature": 0,
        "messages": [{"role": "user", "content": "What is a cache?"}]});
    let (cache, miss_id, first) =
        read(post(&gw, "/v1/chat/completions", SERVICE_KEY, &[], &body).await).await;
    assert_eq!(cache, "MISS");
    let response = post(
        &gw,
        "/v1/chat/completions",
        OTHER_KEY,
        &[("x-portkey-trace-id", "another-trace")],
        &body,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-portkey-provider"], "@oa");
    let (cache, hit_id, again) = read(response).await;
    assert_eq!(cache, "HIT");
    assert_eq!(again, first);
    assert_eq!(gw.upstream.hits(), 1, "one upstream call");

    // A different parameter, metadata or namespace is another request.
    let mut warmer = body.clone();
    warmer["temperature"] = json!(0.7);
    let (cache, _, _) =
        read(post(&gw, "/v1/chat/completions", SERVICE_KEY, &[], &warmer).await).await;
    assert_eq!(cache, "MISS");
    for header in [
        ("x-portkey-metadata", r#"{"team":"backend"}"#),
        ("x-portkey-cache-namespace", "tenant-a"),
    ] {
        let (cache, _, _) =
            read(post(&gw, "/v1/chat/completions", SERVICE_KEY, &[header], &body).await).await;
        assert_eq!(cache, "MISS", "{header:?}");
        let (cache, _, _) =
            read(post(&gw, "/v1/chat/completions", OTHER_KEY, &[header], &body).await).await;
        assert_eq!(cache, "HIT", "{header:?}");
    }
    // Force refresh goes upstream.
    let (cache, _, _) = read(
        post(
            &gw,
            "/v1/chat/completions",
            SERVICE_KEY,
            &[("x-portkey-cache-force-refresh", "true")],
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(cache, "REFRESH");
    assert_eq!(gw.upstream.hits(), 5);

    // The log: the hit cost nothing and says what it saved.
    let miss = log(&gw, &miss_id).await;
    let hit = log(&gw, &hit_id).await;
    assert_eq!(miss["cache_status"], "miss");
    assert!(miss["cost_usd"].as_f64().unwrap() > 0.0, "{miss}");
    assert_eq!(hit["cache_status"], "hit");
    assert_eq!(hit["cost_usd"], 0.0);
    assert_eq!(hit["cache_saved_usd"], miss["cost_usd"]);
    assert_eq!(hit["key_name"], "other");
    assert_eq!(hit["config_id"], "cached");
    assert_eq!(hit["provider"], "oa");
    // And /metrics counts it.
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("portico_cache_requests_total{status=\"hit\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portico_cache_saved_usd_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_is_replayed_byte_for_byte_in_both_families() {
    let gw = start().await;
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "@oa/gpt-4o-mini", "stream": true,
                "messages": [{"role": "user", "content": "count to five"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "@an/claude-sonnet-4-5", "stream": true, "max_tokens": 64,
                "messages": [{"role": "user", "content": "count to five"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "@oa/gpt-4o-mini", "stream": true, "max_tokens": 64,
                "messages": [{"role": "user", "content": "count to five"}]}),
        ),
    ];
    for (i, (path, body)) in cases.iter().enumerate() {
        let (cache, _, first) = read(post(&gw, path, SERVICE_KEY, &[], body).await).await;
        assert_eq!(cache, "MISS", "{path}");
        assert!(first.contains("data: "), "{first}");
        let response = post(&gw, path, OTHER_KEY, &[], body).await;
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        let (cache, _, again) = read(response).await;
        assert_eq!(cache, "HIT", "{path}");
        assert_eq!(again, first, "byte for byte: {path}");
        assert_eq!(gw.upstream.hits(), i + 1);
    }
}

#[tokio::test]
async fn errors_and_a_stream_the_client_left_are_not_stored() {
    let gw = start().await;
    let body = json!({"model": "@oa/gpt-4o-mini", "stream": true,
        "messages": [{"role": "user", "content": "a long story"}]});
    let script = SseScript::new()
        .data(&portico_testkit::sse::chat_chunk(
            json!({"role": "assistant", "content": "Once"}),
            None,
        ))
        .hang();
    gw.upstream.enqueue(MockReply::sse(script));
    let response = post(&gw, "/v1/chat/completions", SERVICE_KEY, &[], &body).await;
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Once"));
    drop(chunks);
    // Its record is written when the gateway has seen the client go.
    let left = wait_for_logs(&gw.portico, "status=200", 1).await;
    assert_eq!(left[0]["outcome"], "client_disconnected", "{left:?}");

    gw.upstream.enqueue(MockReply::error(503, "overloaded"));
    let whole = json!({"model": "@oa/gpt-4o-mini",
        "messages": [{"role": "user", "content": "a long story"}]});
    let response = post(&gw, "/v1/chat/completions", SERVICE_KEY, &[], &whole).await;
    assert_eq!(response.status(), 503);
    wait_for_logs(&gw.portico, "status=503", 1).await;

    // Neither was stored.
    let (cache, _, text) =
        read(post(&gw, "/v1/chat/completions", SERVICE_KEY, &[], &body).await).await;
    assert_eq!(cache, "MISS", "{text}");
    let (cache, _, _) =
        read(post(&gw, "/v1/chat/completions", SERVICE_KEY, &[], &whole).await).await;
    assert_eq!(cache, "MISS");
    assert_eq!(gw.upstream.hits(), 4);
}

fn embedding(values: &[f64]) -> MockReply {
    MockReply::json(
        200,
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": values}],
               "model": "text-embedding-3-small", "usage": {"prompt_tokens": 3, "total_tokens": 3}}),
    )
}

#[tokio::test]
async fn the_semantic_cache_answers_a_close_question_with_the_catalogs_embedding_model() {
    let gw = start().await;
    let semantic = [("x-portkey-config", "semantic")];
    let ask = |text: &str| json!({"model": "@oa/gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    gw.upstream
        .enqueue_for("/v1/embeddings", embedding(&[0.6, 0.8, 0.0]));
    let (cache, _, first) = read(
        post(
            &gw,
            "/v1/chat/completions",
            SERVICE_KEY,
            &semantic,
            &ask("How tall is Everest?"),
        )
        .await,
    )
    .await;
    assert_eq!(cache, "SEMANTIC MISS");
    // cos = 0.24 + 0.73 = 0.97
    gw.upstream
        .enqueue_for("/v1/embeddings", embedding(&[0.4, 0.916_515, 0.0]));
    let (cache, id, again) = read(
        post(
            &gw,
            "/v1/chat/completions",
            OTHER_KEY,
            &semantic,
            &ask("Everest's height?"),
        )
        .await,
    )
    .await;
    assert_eq!(
        (cache.as_str(), again.as_str()),
        ("SEMANTIC HIT", first.as_str())
    );
    // cos = 0: another question
    gw.upstream
        .enqueue_for("/v1/embeddings", embedding(&[0.0, 0.0, 1.0]));
    let (cache, _, _) = read(
        post(
            &gw,
            "/v1/chat/completions",
            SERVICE_KEY,
            &semantic,
            &ask("How deep is the sea?"),
        )
        .await,
    )
    .await;
    assert_eq!(cache, "SEMANTIC MISS");
    assert_eq!(gw.upstream.hits_for("/v1/embeddings"), 3);
    assert_eq!(gw.upstream.hits_for("/v1/chat/completions"), 2);
    let hit = log(&gw, &id).await;
    assert_eq!(hit["cache_status"], "semantic_hit");
    assert!(
        (hit["cache_similarity"].as_f64().unwrap() - 0.9732).abs() < 0.001,
        "{hit}"
    );
}
