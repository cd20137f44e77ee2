//! The two requests the OpenClaw assistant really sends (tests/fixtures/openclaw/, recorded
//! from openclaw 2026.9.6), replayed through the gateway to an OpenAI-kind mock upstream.

use portico_testkit::sse::{chat_chunk, collect_chat_stream, parse_sse_data};
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

use crate::support::{Gateway, OPENCLAW_KEY, PROVIDER_KEY, openclaw_fixture, replay, script_text};

fn catalog(upstream: &MockUpstream) -> String {
    format!(
        "providers:\n  - slug: anthropic\n    kind: openai\n    api_key: {PROVIDER_KEY}\n    base_url: {}\nkeys:\n  - name: openclaw\n    key: {OPENCLAW_KEY}\n",
        upstream.base_url()
    )
}

fn script_payloads(script: &SseScript) -> Vec<String> {
    parse_sse_data(&script_text(script))
}

/// The upstream's streamed tool call, in OpenAI's chunk sequence, arguments in fragments.
fn tool_call_stream() -> SseScript {
    let call = |delta: Value| chat_chunk(json!({"tool_calls": [delta]}), None);
    SseScript::new()
        .data(&chat_chunk(json!({"role": "assistant", "content": null}), None))
        .data(&call(json!({"index": 0, "id": "call_f1d98e2c41b04f0c", "type": "function",
                           "function": {"name": "read", "arguments": ""}})))
        .data(&call(json!({"index": 0, "function": {"arguments": "{\"pa"}})))
        .data(&call(json!({"index": 0, "function": {"arguments": "th\":\"hello.txt\"}"}})))
        .data(&chat_chunk(json!({}), Some("tool_calls")))
        .data(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "claude-sonnet-4-5",
                      "choices": [], "usage": {"prompt_tokens": 9100, "completion_tokens": 21, "total_tokens": 9121}}))
        .done()
}

fn assert_forwarded_intact(recorded: &Value, sent: &portico_testkit::RecordedRequest) {
    let mut expected = recorded["body_json"].clone();
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(
        sent.json_body(),
        &expected,
        "the body changed on its way upstream"
    );
    assert_eq!(sent.bearer(), Some(PROVIDER_KEY));
    assert!(
        sent.headers
            .keys()
            .all(|h| !h.as_str().starts_with("x-portkey"))
    );
    assert!(!sent.body_text().contains(OPENCLAW_KEY));
}

#[tokio::test]
async fn openclaw_tool_round_trip_passes_through_intact() {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;

    // Turn 1: the first request, answered with a streamed tool call.
    let turn1 = openclaw_fixture("turn1-request.json");
    assert!(
        turn1["body_json"]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .len()
            > 25_000
    );
    assert_eq!(turn1["body_json"]["tools"].as_array().unwrap().len(), 11);
    let reply = tool_call_stream();
    let expected = script_payloads(&reply);
    gw.upstream.enqueue(MockReply::sse(reply));
    let resp = replay(&gw, &turn1).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-trace-id"], "trace-fake-0001");
    assert_eq!(resp.headers()["x-portkey-provider"], "@anthropic");
    let text = resp.text().await.unwrap();
    assert_eq!(
        parse_sse_data(&text),
        expected,
        "the stream changed on its way back"
    );
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(chat.tool_calls.len(), 1);
    assert_eq!(chat.tool_calls[0].name, "read");
    assert_eq!(chat.tool_calls[0].arguments, r#"{"path":"hello.txt"}"#);
    assert_forwarded_intact(&turn1, &gw.upstream.last_request().unwrap());

    // Turn 2: OpenClaw ran the tool and sends the result back, with the call id rewritten
    // (`call_...` became `call...`), which the gateway must pass on untouched.
    let turn2 = openclaw_fixture("turn2-tool-result-request.json");
    let messages = turn2["body_json"]["messages"].as_array().unwrap();
    let tool_msg = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert!(!tool_msg["tool_call_id"].as_str().unwrap().contains('_'));
    let reply = SseScript::chat_text(&["The secret word is ", "pineapple-42."]);
    let expected = script_payloads(&reply);
    gw.upstream.enqueue(MockReply::sse(reply));
    let resp = replay(&gw, &turn2).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert_eq!(parse_sse_data(&text), expected);
    assert_eq!(
        collect_chat_stream(&text).unwrap().content,
        "The secret word is pineapple-42."
    );
    assert_forwarded_intact(&turn2, &gw.upstream.last_request().unwrap());
    assert_eq!(gw.upstream.hits(), 2);
}
