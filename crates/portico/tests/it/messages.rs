//! `POST /v1/messages` through the real binary: passed through untouched to an Anthropic
//! provider, translated for an OpenAI-kind one, errors in Anthropic's shape, and the official
//! Anthropic Python SDK as the client (tests/python/anthropic_sdk_e2e.py).

use portico_testkit::sse::parse_sse_data;
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, run_python_checks, script_text};

/// The key the catalog gives both providers.
const UPSTREAM_KEY: &str = "sk-ptsecret-upstream-for-messages-42";

/// `@anthropic-mock` (kind anthropic) and `@openai-mock` (kind openai), both on the mock.
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"
providers:
  - slug: anthropic-mock
    kind: anthropic
    api_key: {UPSTREAM_KEY}
    base_url: http://{addr}
  - slug: openai-mock
    kind: openai
    api_key: {UPSTREAM_KEY}
    base_url: http://{addr}/v1
keys:
  - name: service
    key: {SERVICE_KEY}
"#,
        addr = upstream.addr()
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    Gateway::start_with(upstream, &catalog).await
}

async fn anthropic_sdk(model: &str) -> Gateway {
    let gw = start().await;
    let passed = run_python_checks(
        "anthropic",
        "anthropic_sdk_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", model.to_owned()),
        ],
        &[],
    )
    .await;
    assert_eq!(
        passed,
        ["message", "stream", "tool_round_trip", "401", "404"],
        "{model}"
    );
    gw
}

#[tokio::test]
async fn anthropic_python_sdk_passed_through_to_anthropic() {
    let gw = anthropic_sdk("@anthropic-mock/claude-mock").await;
    let requests = gw.upstream.requests();
    // message, stream (raw events and helper), tool turn 1 and turn 2.
    assert_eq!(requests.len(), 5);
    for req in &requests {
        assert_eq!(req.path, "/v1/messages");
        assert_eq!(req.header("x-api-key"), Some(UPSTREAM_KEY));
        assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(req.json_body()["model"], "claude-mock");
        assert!(!req.body_text().contains(SERVICE_KEY));
    }
    // The tool result went back with the tool_use id the mock gave.
    let last = requests.last().unwrap().json_body();
    let id = &last["messages"][1]["content"][0]["id"];
    assert_eq!(last["messages"][2]["content"][0]["tool_use_id"], *id);
}

#[tokio::test]
async fn anthropic_python_sdk_translated_to_an_openai_provider() {
    let gw = anthropic_sdk("@openai-mock/gpt-mock").await;
    let requests = gw.upstream.requests();
    assert_eq!(requests.len(), 5);
    for req in &requests {
        assert_eq!(req.path, "/v1/chat/completions");
        assert_eq!(req.bearer(), Some(UPSTREAM_KEY));
        assert_eq!(req.json_body()["model"], "gpt-mock");
        assert_eq!(req.json_body()["max_completion_tokens"], 256);
    }
    let last = requests.last().unwrap().json_body();
    let messages = last["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["function"]["name"], "read");
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(
        messages[2]["tool_call_id"],
        messages[1]["tool_calls"][0]["id"]
    );
    assert_eq!(messages[2]["content"], "SECRET-42");
}

#[tokio::test]
async fn pass_through_keeps_the_request_and_the_answer_untouched() {
    let gw = start().await;
    let request = json!({
        "model": "@anthropic-mock/claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Search the web"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
        ]}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
        "top_k": 5,
        "container": "c-1"
    });
    let answer = json!({"id": "msg_01Native", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "text", "text": "Found it.", "citations": null}],
        "stop_reason": "end_turn", "stop_sequence": null, "container": null,
        "usage": {"input_tokens": 10, "output_tokens": 3, "server_tool_use": {"web_search_requests": 1}}});
    gw.upstream.enqueue(MockReply::json(200, answer.clone()));
    let resp = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("x-portkey-trace-id", "messages-trace")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-trace-id"], "messages-trace");
    assert_eq!(resp.headers()["x-portkey-provider"], "@anthropic-mock");
    assert!(resp.headers().contains_key("x-portkey-request-id"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, answer, "the answer came back as Anthropic sent it");
    let sent = gw.upstream.last_request().unwrap();
    let mut expected = request.clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(sent.json_body(), &expected, "only `model` changed");
    assert_eq!(sent.header("x-api-key"), Some(UPSTREAM_KEY));

    // Streamed: the events come back as they were sent.
    let reply = SseScript::new()
        .bytes("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n")
        .bytes("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
        .bytes("event: ping\ndata: {\"type\":\"ping\"}\n\n")
        .bytes("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi ✓\"}}\n\n")
        .bytes("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
        .bytes("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n")
        .bytes("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    let expected = script_text(&reply);
    gw.upstream.enqueue(MockReply::sse(reply));
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let resp = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), expected, "byte for byte");
}

#[tokio::test]
async fn translated_stream_has_anthropics_event_order() {
    let gw = start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .json(&json!({
            "model": "@openai-mock/gpt-4o", "max_tokens": 100, "stream": true,
            "tools": [{"name": "read", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "read it"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    let data: Vec<Value> = parse_sse_data(&text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(data[1]["content_block"]["type"], "tool_use");
    assert_eq!(data[1]["content_block"]["name"], "read");
    assert_eq!(data[5]["delta"]["stop_reason"], "tool_use");
    assert!(data[5]["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(sent.json_body()["stream_options"]["include_usage"], true);
    assert_eq!(sent.json_body()["tools"][0]["function"]["name"], "read");
}

#[tokio::test]
async fn errors_are_anthropic_shaped() {
    let gw = start().await;
    let post = |body: Value, key: Option<&'static str>| {
        let mut req = gw.http.post(gw.url("/v1/messages")).json(&body);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        req.send()
    };
    let minimal = json!({"model": "@openai-mock/gpt-4o", "max_tokens": 10,
        "messages": [{"role": "user", "content": "x"}]});

    let resp = post(minimal.clone(), None).await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-api-key")
    );

    let mut no_max = minimal.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let resp = post(no_max, Some(SERVICE_KEY)).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );

    gw.upstream.enqueue(
        MockReply::json(
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        )
        .header("retry-after", "12"),
    );
    let mut native = minimal.clone();
    native["model"] = json!("@anthropic-mock/claude-x");
    let resp = post(native, Some(SERVICE_KEY)).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "12");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per-minute")
    );

    // An upstream stream that breaks after it started ends with Anthropic's error event.
    gw.upstream.enqueue(MockReply::sse(
        SseScript::new()
            .bytes("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n")
            .abort(),
    ));
    let mut broken = minimal.clone();
    broken["model"] = json!("@anthropic-mock/claude-x");
    broken["stream"] = json!(true);
    let resp = post(broken, Some(SERVICE_KEY)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\n"), "{text}");
    let data: Value =
        serde_json::from_str(last.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
}

#[tokio::test]
async fn the_clients_anthropic_beta_header_reaches_an_anthropic_upstream() {
    let gw = start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .header(
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        )
        .json(
            &json!({"model": "@anthropic-mock/claude-sonnet-4-5", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14")
    );
}
