//! Anthropic (`kind: anthropic`) behind the OpenAI API, through the real binary: the OpenAI
//! Python SDK as the client, the recorded OpenClaw turns, errors and usage with cache tokens.

use portico_testkit::sse::{collect_chat_stream, parse_sse_data};
use portico_testkit::{MockReply, MockUpstream, RecordedRequest, SseScript};
use serde_json::{Value, json};

use crate::support::{
    Gateway, OPENCLAW_KEY, SERVICE_KEY, chat, openclaw_fixture, replay, run_python_checks,
};

/// The key the catalog gives the Anthropic provider.
const ANTHROPIC_KEY: &str = "sk-ant-ptsecret-upstream-0123456789";

/// `@anthropic` (any model) and `@claude` (allow-list `claude-mock`, a beta header), both on
/// the mock upstream's address as Anthropic's host (no `/v1`: the adapter adds it).
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"
providers:
  - slug: anthropic
    kind: anthropic
    api_key: {ANTHROPIC_KEY}
    base_url: http://{addr}
  - slug: claude
    kind: anthropic
    api_key: {ANTHROPIC_KEY}
    base_url: http://{addr}
    anthropic_beta: prompt-caching-2024-07-31, output-128k-2025-02-19
    models: [claude-mock]
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: openclaw
    key: {OPENCLAW_KEY}
"#,
        addr = upstream.addr()
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    Gateway::start_with(upstream, &catalog).await
}

/// Asserts the request went to Anthropic's Messages endpoint with the provider's key only.
#[track_caller]
fn assert_anthropic(req: &RecordedRequest, model: &str) {
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("authorization"), None, "no bearer to Anthropic");
    assert!(
        req.headers
            .keys()
            .all(|h| !h.as_str().starts_with("x-portkey"))
    );
    assert!(!req.body_text().contains(SERVICE_KEY));
    assert!(!req.body_text().contains(OPENCLAW_KEY));
    assert_eq!(req.json_body()["model"], model);
    assert!(
        req.json_body()["max_tokens"].is_u64(),
        "max_tokens is required"
    );
}

#[tokio::test]
async fn openai_python_sdk_against_an_anthropic_provider() {
    let gw = start().await;
    let out = run_python_checks(
        "openai",
        "openai_sdk_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("/v1")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", "@claude/claude-mock".to_owned()),
        ],
        // Anthropic has no embeddings endpoint.
        &[
            "chat",
            "stream",
            "stream_tool_call",
            "image",
            "models",
            "401",
            "404",
        ],
    )
    .await;
    assert_eq!(
        out,
        [
            "chat",
            "stream",
            "stream_tool_call",
            "image",
            "models",
            "401",
            "404"
        ]
    );
    let requests = gw.upstream.requests();
    assert_eq!(requests.len(), 4, "chat, stream, tool stream, image");
    for req in &requests {
        assert_anthropic(req, "claude-mock");
        assert_eq!(
            req.header("anthropic-beta"),
            Some("prompt-caching-2024-07-31,output-128k-2025-02-19")
        );
    }
    assert_eq!(requests[1].json_body()["stream"], true);
    assert_eq!(requests[2].json_body()["tools"][0]["name"], "read");
    assert!(requests[2].json_body()["tools"][0]["input_schema"].is_object());
}

/// One Anthropic SSE event.
fn event(script: SseScript, data: Value) -> SseScript {
    let name = data["type"].as_str().unwrap().to_owned();
    script.bytes(format!("event: {name}\ndata: {data}\n\n"))
}

/// Anthropic's streamed tool call of `read` on hello.txt, the input in three fragments.
fn anthropic_tool_call_stream() -> SseScript {
    let mut s = event(
        SseScript::new(),
        json!({"type": "message_start", "message": {"id": "msg_01OpenClaw", "type": "message",
            "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 9000, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 100, "output_tokens": 1}}}),
    );
    s = event(
        s,
        json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "tool_use", "id": "toolu_01ReadHello", "name": "read", "input": {}}}),
    );
    for fragment in ["{\"pa", "th\": \"hello", ".txt\"}"] {
        s = event(
            s,
            json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": fragment}}),
        );
    }
    s = event(s, json!({"type": "content_block_stop", "index": 0}));
    s = event(
        s,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 21}}),
    );
    event(s, json!({"type": "message_stop"}))
}

#[tokio::test]
async fn openclaw_tool_round_trip_through_anthropic() {
    let gw = start().await;

    // Turn 1: 26k-character system prompt, 11 tools, streaming with usage.
    let turn1 = openclaw_fixture("turn1-request.json");
    gw.upstream
        .enqueue_for("/v1/messages", MockReply::sse(anthropic_tool_call_stream()));
    let resp = replay(&gw, &turn1).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-trace-id"], "trace-fake-0001");
    assert_eq!(resp.headers()["x-portkey-provider"], "@anthropic");
    let text = resp.text().await.unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.role.as_deref(), Some("assistant"));
    assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(chat.tool_calls.len(), 1);
    assert_eq!(chat.tool_calls[0].id.as_deref(), Some("toolu_01ReadHello"));
    assert_eq!(chat.tool_calls[0].name, "read");
    assert_eq!(chat.tool_calls[0].arguments, r#"{"path": "hello.txt"}"#);
    assert!(chat.done, "the stream ends with [DONE]");
    let usage = chat.usage.expect("OpenClaw asked for the usage chunk");
    assert_eq!(usage["prompt_tokens"], 9100);
    assert_eq!(usage["completion_tokens"], 21);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 100);

    let sent = gw.upstream.last_request().unwrap();
    assert_anthropic(&sent, "claude-sonnet-4-5");
    let body = sent.json_body();
    let recorded_system = turn1["body_json"]["messages"][0]["content"]
        .as_str()
        .unwrap();
    assert!(recorded_system.len() > 25_000);
    assert_eq!(body["system"][0]["type"], "text");
    assert_eq!(body["system"][0]["text"], recorded_system);
    assert!(
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "user" || m["role"] == "assistant"),
        "no system message left in messages"
    );
    assert_eq!(body["max_tokens"], 8192);
    assert_eq!(body["stream"], true);
    assert_eq!(body["tools"].as_array().unwrap().len(), 11);
    assert!(
        body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"].is_string() && t["input_schema"]["type"] == "object")
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    assert!(
        body.get("stream_options").is_none(),
        "OpenAI-only field dropped"
    );
    assert!(body.get("max_completion_tokens").is_none());

    // Turn 2: the tool result comes back with the call id OpenClaw rewrote (`call...`).
    let turn2 = openclaw_fixture("turn2-tool-result-request.json");
    let messages = turn2["body_json"]["messages"].as_array().unwrap();
    let tool_msg = messages.iter().find(|m| m["role"] == "tool").unwrap();
    let rewritten_id = tool_msg["tool_call_id"].as_str().unwrap();
    let resp = replay(&gw, &turn2).await;
    assert_eq!(resp.status(), 200);
    let chat = collect_chat_stream(&resp.text().await.unwrap()).unwrap();
    assert_eq!(chat.content, "tool result: SECRET-WORD: pineapple-42\n");
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    assert!(chat.usage.is_some());

    let sent = gw.upstream.last_request().unwrap();
    assert_anthropic(&sent, "claude-sonnet-4-5");
    let turns = sent.json_body()["messages"].as_array().unwrap().clone();
    let assistant = turns.iter().find(|m| m["role"] == "assistant").unwrap();
    let tool_use = assistant["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool_use["id"], rewritten_id);
    assert_eq!(tool_use["name"], "read");
    assert_eq!(tool_use["input"], json!({"path": "hello.txt"}));
    // The tool result and OpenClaw's next user text form one user turn, result first.
    let last = turns.last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], rewritten_id);
    assert_eq!(last["content"][0]["content"], "SECRET-WORD: pineapple-42\n");
    assert_eq!(last["content"][1]["type"], "text");
    assert_eq!(sent.json_body()["max_tokens"], 8192);
    assert_eq!(gw.upstream.hits(), 2);
}

#[tokio::test]
async fn anthropic_errors_keep_their_status_type_and_message() {
    let gw = start().await;
    gw.upstream.enqueue(
        MockReply::json(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
        .header("retry-after", "3"),
    );
    let resp = gw
        .post("/v1/chat/completions", chat("@anthropic/claude-x", "hi"))
        .await;
    assert_eq!(resp.status(), 529);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Overloaded");
    assert_eq!(body["error"]["type"], "overloaded_error");

    // A request Anthropic cannot take is refused before it leaves, saying why.
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@anthropic/claude-x", "response_format": {"type": "json_object"},
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("json_schema")
    );
    assert_eq!(
        gw.upstream.hits(),
        1,
        "the refused request never went upstream"
    );

    // Embeddings do not exist on Anthropic.
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "@anthropic/claude-x", "input": "x"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_operation");
}

#[tokio::test]
async fn a_mid_stream_error_event_ends_the_stream_with_an_error() {
    let gw = start().await;
    let mut s = event(
        SseScript::new(),
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
    );
    s = event(
        s,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    s = event(
        s,
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Once"}}),
    );
    s = event(
        s,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    gw.upstream.enqueue(MockReply::sse(s));
    let mut body = chat("@anthropic/claude-x", "tell me a story");
    body["stream"] = json!(true);
    let resp = gw.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "Once");
    let error = chat.error.expect("an in-band error event");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("overloaded_error"),
        "{error}"
    );
    assert!(!chat.done);
    assert!(
        parse_sse_data(&text)
            .iter()
            .all(|d| !d.contains("\"usage\":{")),
        "no usage chunk for a client that did not ask"
    );
}

#[tokio::test]
async fn usage_counts_cache_reads_and_writes_as_prompt_tokens() {
    let gw = start().await;
    gw.upstream.enqueue(MockReply::json(
        200,
        json!({"id": "msg_01Cached", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Cached."}], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": {"input_tokens": 21, "output_tokens": 7,
            "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2048}}),
    ));
    let resp = gw
        .post("/v1/chat/completions", chat("@anthropic/claude-x", "hi"))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "msg_01Cached");
    assert_eq!(body["choices"][0]["message"]["content"], "Cached.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 21 + 1000 + 2048);
    assert_eq!(body["usage"]["completion_tokens"], 7);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        2048
    );
    assert_eq!(
        gw.upstream.last_request().unwrap().json_body()["max_tokens"],
        4096,
        "the documented default"
    );
}
