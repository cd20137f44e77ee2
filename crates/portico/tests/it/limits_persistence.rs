//! The ledger across a restart and a client that leaves: spend and rate windows are written
//! to the data directory and read back at start (SIGTERM, then a new process on the same
//! directory still refuses), and a stream the client leaves is charged what it consumed.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, PROVIDER_KEY, SERVICE_KEY, start_in};

const RATE_KEY: &str = "prt-test-rate-key-0123456789";

fn catalog(upstream: &MockUpstream, budget_tokens: u64) -> String {
    let base = upstream.base_url();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
keys:
  - name: service
    key: {SERVICE_KEY}
    budget: {{ tokens: {budget_tokens}, period: month }}
  - name: rate
    key: {RATE_KEY}
    rate_limit: {{ requests_per_minute: 2 }}
"#
    )
}

/// 40 one-letter words with max_tokens 1: estimated at about 40 tokens, charged 81.
fn body() -> Value {
    let text = vec!["a"; 40].join(" ");
    json!({"model": "@oa/m", "max_tokens": 1, "messages": [{"role": "user", "content": text}]})
}

fn estimate(body: &Value) -> u64 {
    (serde_json::to_vec(body).unwrap().len() as u64).div_ceil(4)
        + body["max_tokens"].as_u64().unwrap_or(0)
}

async fn status(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `tokens_spent` of the key `service`'s budget, as `GET /admin/v1/budgets` lists it.
async fn spent(client: &reqwest::Client, base: &str) -> u64 {
    let list: Value = client
        .get(format!("{base}/admin/v1/budgets"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "key:service" && e["kind"] == "budget")
        .unwrap_or_else(|| panic!("{list}"))["tokens_spent"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn spend_and_rate_windows_survive_a_restart() {
    let upstream = MockUpstream::start().await;
    let body = body();
    let text = catalog(&upstream, estimate(&body) + 2);
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut first = start_in(dir.path(), &text, &[]).await;
    let chat = first.url("/v1/chat/completions");
    assert_eq!(status(&client, &chat, SERVICE_KEY, &body).await.0, 200);
    assert_eq!(status(&client, &chat, SERVICE_KEY, &body).await.0, 412);
    for _ in 0..2 {
        assert_eq!(status(&client, &chat, RATE_KEY, &body).await.0, 200);
    }
    assert_eq!(status(&client, &chat, RATE_KEY, &body).await.0, 429);
    first.sigterm().unwrap();
    let exit = first.wait_exit(Duration::from_secs(20)).await.unwrap();
    assert!(exit.success(), "{exit:?}");

    let second = start_in(dir.path(), &text, &[]).await;
    let chat = second.url("/v1/chat/completions");
    let (code, refused) = status(&client, &chat, SERVICE_KEY, &body).await;
    assert_eq!(code, 412, "the spend came back: {refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget `key:service` is exhausted: 81 tokens"),
        "{refused}"
    );
    assert_eq!(spent(&client, &second.base_url()).await, 81);
    let (code, refused) = status(&client, &chat, RATE_KEY, &body).await;
    assert_eq!(code, 429, "the window came back: {refused}");
    assert_eq!(upstream.hits(), 3);
}

/// Polls `spent` until it is `want` (the stream's end is recorded when the gateway notices
/// the client left).
async fn wait_spent(gw: &Gateway, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = spent(&gw.http, &gw.portico.base_url()).await;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "spent {now}, expected {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chunk(delta: Value) -> Value {
    portico_testkit::sse::chat_chunk(delta, None)
}

#[tokio::test]
async fn a_stream_the_client_leaves_is_charged_for_what_it_consumed() {
    let upstream = MockUpstream::start().await;
    // Content, then the usage, then nothing more: the client leaves.
    upstream.enqueue(MockReply::sse(
        SseScript::new()
            .data(&chunk(json!({"role": "assistant", "content": "hello"})))
            .data(&json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": [],
                          "usage": {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}}))
            .hang(),
    ));
    // Content and nothing more: the client leaves before any usage.
    upstream.enqueue(MockReply::sse(
        SseScript::new()
            .data(&chunk(json!({"role": "assistant", "content": "hel"})))
            .hang(),
    ));
    let text = catalog(&upstream, 1_000_000);
    let gw = Gateway::start_with(upstream, &text).await;
    let stream = json!({"model": "@oa/m", "stream": true, "max_tokens": 300,
                        "stream_options": {"include_usage": true},
                        "messages": [{"role": "user", "content": "hi"}]});

    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&stream)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"usage\"") {
        let chunk = chunks.next().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(chunks);
    wait_spent(&gw, 18).await;

    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&stream)
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    drop(chunks);
    // No usage came: the estimate is charged, not nothing.
    wait_spent(&gw, 18 + estimate(&stream)).await;
    assert!(
        gw.upstream
            .wait_for_disconnects(2, Duration::from_secs(10))
            .await,
        "both upstream streams were closed when the client left"
    );
}
