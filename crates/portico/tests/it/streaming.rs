//! Streams: forwarded event by event, intact, cancelled upstream when the client leaves.

use std::time::Duration;

use portico_testkit::sse::{chat_chunk, collect_chat_stream, parse_sse_data};
use portico_testkit::{MockReply, SseScript};
use serde_json::json;

use crate::support::{Gateway, SERVICE_KEY};

fn stream_body(model: &str, text: &str) -> serde_json::Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// Reads from a streaming response until `needle` has arrived, with an upper bound.
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = Duration::from_secs(10);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(deadline, resp.chunk())
            .await
            .expect("the gateway held back a chunk the upstream had sent")
            .unwrap()
            .expect("the stream ended early");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

#[tokio::test]
async fn a_stream_arrives_intact_and_in_order() {
    let gw = Gateway::start().await;
    let script = SseScript::chat_text(&["Hel", "lo, ", "wörld ", "✓"]);
    let expected: Vec<String> = {
        let mut body = String::new();
        for step in script.steps() {
            if let portico_testkit::SseStep::Send(b) = step {
                body.push_str(std::str::from_utf8(b).unwrap());
            }
        }
        parse_sse_data(&body)
    };
    gw.upstream.enqueue(MockReply::sse(script));
    let resp = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(resp.headers()["x-portkey-provider"], "@openai-mock");
    let text = resp.text().await.unwrap();
    assert_eq!(parse_sse_data(&text), expected);
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "Hello, wörld ✓");
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        gw.upstream.last_request().unwrap().header("accept"),
        Some("text/event-stream")
    );
}

#[tokio::test]
async fn events_split_across_reads_and_inside_utf8_are_reassembled() {
    let gw = Gateway::start().await;
    let event = format!(
        "data: {}\n\n",
        chat_chunk(json!({"content": "naïve café ✓"}), None)
    );
    let bytes = event.as_bytes();
    // Split inside "ï" (2 bytes) and inside "✓" (3 bytes), and between the two final newlines.
    let i = event.find('ï').unwrap() + 1;
    let j = event.find('✓').unwrap() + 2;
    let k = bytes.len() - 1;
    let script = SseScript::new()
        .data(&chat_chunk(
            json!({"role": "assistant", "content": ""}),
            None,
        ))
        .bytes(bytes[..i].to_vec())
        .bytes(bytes[i..j].to_vec())
        .bytes(bytes[j..k].to_vec())
        .bytes(bytes[k..].to_vec())
        .data(&chat_chunk(json!({}), Some("stop")))
        .bytes("data: [DONE]\r\n\r\n");
    gw.upstream.enqueue(MockReply::sse(script));
    let text = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await
        .text()
        .await
        .unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "naïve café ✓");
    assert_eq!(
        parse_sse_data(&text).last().map(String::as_str),
        Some("[DONE]")
    );
}

#[tokio::test]
async fn chunks_are_forwarded_before_the_upstream_finishes() {
    let gw = Gateway::start().await;
    // The upstream sends one chunk and then waits forever: a gateway that buffers would
    // send the client nothing.
    let script = SseScript::new()
        .data(&chat_chunk(
            json!({"role": "assistant", "content": "first"}),
            None,
        ))
        .hang();
    gw.upstream.enqueue(MockReply::sse(script));
    let mut resp = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen = read_until(&mut resp, "first").await;
    assert!(seen.starts_with("data: "), "{seen}");
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_request() {
    let gw = Gateway::start().await;
    let script = SseScript::new()
        .data(&chat_chunk(
            json!({"role": "assistant", "content": "partial"}),
            None,
        ))
        .hang();
    gw.upstream.enqueue(MockReply::sse(script));
    let mut resp = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await;
    read_until(&mut resp, "partial").await;
    drop(resp);
    assert!(
        gw.upstream
            .wait_for_disconnects(1, Duration::from_secs(10))
            .await,
        "the upstream connection stayed open after the client left"
    );
}

#[tokio::test]
async fn a_client_disconnect_cancels_a_non_streaming_upstream_request() {
    let gw = Gateway::start().await;
    gw.upstream.enqueue(MockReply::hang());
    {
        let pending = gw
            .http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .json(&json!({"model": "@openai-mock/gpt-4o", "messages": []}))
            .send();
        tokio::pin!(pending);
        tokio::select! {
            _ = &mut pending => panic!("the hanging upstream answered"),
            arrived = gw.upstream.wait_for_hits(1, Duration::from_secs(10)) => assert!(arrived),
        }
    } // dropping the request future is the client going away
    assert!(
        gw.upstream
            .wait_for_disconnects(1, Duration::from_secs(10))
            .await,
        "the upstream request outlived the client"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_an_error_event() {
    let gw = Gateway::start().await;
    let script = SseScript::new()
        .data(&chat_chunk(
            json!({"role": "assistant", "content": "par"}),
            None,
        ))
        .bytes("data: {\"choices\":[{\"index\":0,\"del")
        .abort();
    gw.upstream.enqueue(MockReply::sse(script));
    let resp = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("a broken upstream stream left the client hanging")
        .unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "par");
    let error = chat.error.expect("no in-band error event");
    assert!(
        error["message"].as_str().unwrap().contains("@openai-mock"),
        "{error}"
    );
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_gets_a_real_status() {
    let gw = Gateway::start().await;
    gw.upstream
        .enqueue(MockReply::error(500, "the model crashed"));
    let resp = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await;
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "the model crashed");

    gw.upstream
        .enqueue(MockReply::sse(SseScript::new().abort()));
    let resp = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "x"),
        )
        .await;
    assert_eq!(resp.status(), 502);
}

#[tokio::test]
async fn the_mock_provider_streams_with_usage_only_when_asked() {
    let gw = Gateway::start().await;
    let mut body = stream_body("@mock/echo", "hello stream");
    let text = gw
        .post("/v1/chat/completions", body.clone())
        .await
        .text()
        .await
        .unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert!(chat.content.contains("hello stream"), "{}", chat.content);
    assert_eq!(chat.role.as_deref(), Some("assistant"));
    assert!(
        chat.usage.is_none(),
        "usage chunk sent without include_usage"
    );

    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert!(chat.usage.is_some(), "no usage chunk despite include_usage");
}

#[tokio::test]
async fn usage_is_always_asked_upstream_and_stripped_when_the_client_did_not_ask() {
    let gw = Gateway::start().await;
    // The client does not ask for usage.
    let text = gw
        .post(
            "/v1/chat/completions",
            stream_body("@openai-mock/gpt-4o", "count me"),
        )
        .await
        .text()
        .await
        .unwrap();
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(
        sent.json_body()["stream_options"],
        json!({"include_usage": true})
    );
    let chat = collect_chat_stream(&text).unwrap();
    assert!(
        chat.usage.is_none(),
        "the usage chunk reached a client that did not ask"
    );
    assert_eq!(chat.content, "echo: count me");
    assert!(chat.done);

    // The client asks: the chunk is passed on.
    let mut body = stream_body("@openai-mock/gpt-4o", "count me");
    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert!(chat.usage.unwrap()["completion_tokens"].as_u64().unwrap() > 0);
}
