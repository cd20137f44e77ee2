use std::time::{Duration, Instant};

use futures::StreamExt;
use portico_testkit::sse::{collect_chat_stream, parse_sse_data};
use portico_testkit::{MOCK_MODELS, MockReply, MockUpstream, SseScript, mock_embedding};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::{LIMIT, client};

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here fails the test"
)]
async fn post(upstream: &MockUpstream, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(upstream.url(path))
        .bearer_auth("sk-test")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here fails the test"
)]
async fn post_json(upstream: &MockUpstream, path: &str, body: &Value) -> (u16, Value) {
    let response = post(upstream, path, body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ])
}

#[tokio::test]
async fn default_chat_echoes_last_user_message() {
    let upstream = MockUpstream::start().await;
    assert!(upstream.base_url().starts_with("http://127.0.0.1:"));
    assert!(upstream.base_url().ends_with("/v1"));
    let body = json!({
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]},
        ],
    });
    let (status, reply) = post_json(&upstream, "/chat/completions", &body).await;
    assert_eq!(status, 200);
    assert_eq!(reply["id"], "chatcmpl-mock-1");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "gpt-x");
    let choice = &reply["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "echo: hello world");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(reply["usage"]["prompt_tokens"], 4);
    assert_eq!(reply["usage"]["completion_tokens"], 3);
    assert_eq!(reply["usage"]["total_tokens"], 7);
}

#[tokio::test]
async fn default_chat_stream_and_include_usage() {
    let upstream = MockUpstream::start().await;
    let mut body = json!({
        "model": "gpt-x",
        "stream": true,
        "messages": [{"role": "user", "content": "hello world"}],
    });

    let response = post(&upstream, "/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.role.as_deref(), Some("assistant"));
    assert_eq!(chat.content, "echo: hello world");
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    assert_eq!(chat.id.as_deref(), Some("chatcmpl-mock-1"));
    assert!(chat.done);
    assert_eq!(chat.usage, None);
    let payloads = parse_sse_data(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    // role, 3 pieces, finish; no usage field at all without include_usage.
    assert_eq!(payloads.len(), 6);
    for data in &payloads[..payloads.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk.get("usage").is_none(), "{chunk}");
    }

    body["stream_options"] = json!({"include_usage": true});
    let text = post(&upstream, "/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    let payloads = parse_sse_data(&text);
    assert_eq!(payloads.len(), 7);
    let chunks: Vec<Value> = payloads[..6]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let (usage_chunk, others) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 2);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 3);
    assert!(others.iter().all(|c| c["usage"].is_null()));
    assert_eq!(
        others.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.usage.unwrap()["total_tokens"], 5);
}

#[tokio::test]
async fn default_chat_calls_first_tool_then_answers_tool_result() {
    let upstream = MockUpstream::start().await;
    let mut body = json!({
        "model": "gpt-x",
        "tools": weather_tools(),
        "messages": [{"role": "user", "content": "weather?"}],
    });
    let (_, reply) = post_json(&upstream, "/chat/completions", &body).await;
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_mock_1");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");

    body["stream"] = json!(true);
    let text = post(&upstream, "/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(chat.content, "");
    assert_eq!(chat.tool_calls.len(), 1);
    let call = &chat.tool_calls[0];
    assert_eq!(call.id.as_deref(), Some("call_mock_2"));
    assert_eq!(call.name, "get_weather");
    assert_eq!(call.arguments, "{}");
    // The arguments really arrive in several deltas.
    let argument_deltas = parse_sse_data(&text)
        .iter()
        .filter(|d| d.contains("\"arguments\""))
        .count();
    assert_eq!(argument_deltas, 3);

    body["stream"] = json!(false);
    body["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_mock_1", "content": "sunny"},
    ]);
    let (_, reply) = post_json(&upstream, "/chat/completions", &body).await;
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "tool result: sunny"
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");

    body["messages"] = json!([{"role": "user", "content": "time?"}]);
    body["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
    let (_, reply) = post_json(&upstream, "/chat/completions", &body).await;
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    body["tool_choice"] = json!("none");
    let (_, reply) = post_json(&upstream, "/chat/completions", &body).await;
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: time?");
}

#[tokio::test]
async fn default_completions_embeddings_and_models() {
    let upstream = MockUpstream::start().await;
    let (status, reply) = post_json(
        &upstream,
        "/completions",
        &json!({"model": "m", "prompt": ["a b", "c"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["object"], "text_completion");
    assert_eq!(reply["choices"][0]["text"], "echo: a b");
    assert_eq!(reply["choices"][1]["text"], "echo: c");
    assert_eq!(reply["usage"]["prompt_tokens"], 3);

    let text = post(
        &upstream,
        "/completions",
        &json!({"model": "m", "prompt": "a b", "stream": true}),
    )
    .await
    .text()
    .await
    .unwrap();
    let payloads = parse_sse_data(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let streamed: String = payloads[..payloads.len() - 1]
        .iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(streamed, "echo: a b");

    let (_, one) = post_json(
        &upstream,
        "/embeddings",
        &json!({"model": "e", "input": "hello"}),
    )
    .await;
    let (_, many) = post_json(
        &upstream,
        "/embeddings",
        &json!({"model": "e", "input": ["x", "hello"], "dimensions": 4}),
    )
    .await;
    assert_eq!(one["object"], "list");
    assert_eq!(
        one["data"][0]["embedding"],
        json!(mock_embedding("hello", 8))
    );
    assert_eq!(many["data"][1]["index"], 1);
    assert_eq!(
        many["data"][1]["embedding"],
        json!(mock_embedding("hello", 4))
    );
    assert_ne!(mock_embedding("x", 4), mock_embedding("hello", 4));
    assert!(
        mock_embedding("hello", 8)
            .iter()
            .all(|v| (-1.0..1.0).contains(v))
    );

    let models: Value = client()
        .get(upstream.url("/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, MOCK_MODELS);
}

#[tokio::test]
async fn records_requests_and_404s_unknown_paths() {
    let upstream = MockUpstream::start().await;
    assert!(upstream.last_request().is_none());
    let response = client()
        .post(upstream.url("/chat/completions?api-version=1"))
        .bearer_auth("sk-abc")
        .header("x-trace", "t1")
        .header("content-type", "application/json")
        .body(r#"{"model":"m","messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .put(upstream.url("/nope"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "unknown_url");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PUT /v1/nope")
    );
    let bad = post(&upstream, "/embeddings", &json!("just a string")).await;
    assert_eq!(bad.status(), 400);

    assert_eq!(upstream.hits(), 3);
    assert_eq!(upstream.hits_for("/v1/chat/completions"), 1);
    let requests = upstream.requests();
    let first = &requests[0];
    assert_eq!(first.seq, 1);
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.query.as_deref(), Some("api-version=1"));
    assert_eq!(first.bearer(), Some("sk-abc"));
    assert_eq!(first.header("x-trace"), Some("t1"));
    assert_eq!(first.json_body()["model"], "m");
    assert_eq!(first.body_text(), r#"{"model":"m","messages":[]}"#);
    let second = &requests[1];
    assert_eq!(second.method, "PUT");
    assert_eq!(&second.body[..], b"not json");
    assert_eq!(second.json, None);
    assert_eq!(second.json_body(), &Value::Null);
    assert_eq!(upstream.last_request().unwrap().path, "/v1/embeddings");
}

#[tokio::test]
async fn scripted_replies_are_fifo_then_defaults() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::error(429, "Rate limit reached").header("retry-after", "7"));
    upstream.enqueue_for("/v1/embeddings", MockReply::json(201, json!({"ok": true})));
    upstream.enqueue(MockReply::error(503, "overloaded"));
    assert_eq!(upstream.pending_replies(), 3);
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});

    let response = post(&upstream, "/chat/completions", &chat).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["content-type"], "application/json");
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null,
            "code": "rate_limit_exceeded"}})
    );
    // The path-bound reply waits for its path; the next global one is taken instead.
    let (status, error) = post_json(&upstream, "/chat/completions", &chat).await;
    assert_eq!(
        (status, error["error"]["type"].as_str()),
        (503, Some("server_error"))
    );
    let (status, reply) = post_json(&upstream, "/embeddings", &json!({"input": "x"})).await;
    assert_eq!((status, reply), (201, json!({"ok": true})));
    assert_eq!(upstream.pending_replies(), 0);
    let (status, reply) = post_json(&upstream, "/chat/completions", &chat).await;
    assert_eq!(status, 200);
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: hi");

    // A delayed default reply (slow first byte) with an extra header.
    upstream.enqueue(
        MockReply::echo()
            .delay(Duration::from_millis(50))
            .header("x-mock", "1"),
    );
    let started = Instant::now();
    let response = post(&upstream, "/chat/completions", &chat).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(response.headers()["x-mock"], "1");
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["id"], "chatcmpl-mock-5");
}

/// Sends a raw HTTP/1.1 request and returns the raw response bytes (until close).
#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here fails the test"
)]
async fn raw_http(upstream: &MockUpstream, path: &str) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(upstream.addr())
        .await
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: mock\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    response
}

#[tokio::test]
async fn sse_steps_are_exact_chunks_and_utf8_split_reassembles() {
    let upstream = MockUpstream::start().await;
    // "é" is C3 A9; split it (and the event) across two body chunks.
    let script = SseScript::new()
        .bytes(&b"data: caf\xC3"[..])
        .wait(Duration::from_millis(5))
        .bytes(&b"\xA9\n\n"[..])
        .done();
    upstream.enqueue(MockReply::sse(script.clone()));
    upstream.enqueue(MockReply::sse(script));

    let raw = raw_http(&upstream, "/v1/chat/completions").await;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(
        &raw[head_end..],
        &b"A\r\ndata: caf\xC3\r\n3\r\n\xA9\n\n\r\nE\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"[..]
    );

    let response = client()
        .post(upstream.url("/chat/completions"))
        .send()
        .await
        .unwrap();
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(body).unwrap();
    assert_eq!(parse_sse_data(&text), ["café", "[DONE]"]);
    assert_eq!(upstream.disconnects(), 0);
}

#[tokio::test]
async fn scripted_abort_is_a_client_side_error() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::sse(
        SseScript::new()
            .data(&json!({"choices": [{"index": 0, "delta": {"content": "par"}}]}))
            .abort(),
    ));
    let response = client()
        .post(upstream.url("/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    let mut failed = false;
    while let Some(chunk) = chunks.next().await {
        if chunk.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "an aborted stream must not end cleanly");
    // The mock did that on purpose: not a client disconnect.
    assert_eq!(upstream.disconnects(), 0);
}

#[tokio::test]
async fn client_dropping_a_slow_stream_is_counted() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::sse(SseScript::chat_text(&["never"]).hang()));
    let response = client()
        .post(upstream.url("/chat/completions"))
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(upstream.disconnects(), 0);
    drop(chunks);
    assert!(upstream.wait_for_disconnects(1, LIMIT).await);
    assert_eq!(upstream.disconnects(), 1);
}

#[tokio::test]
async fn client_leaving_a_hanging_or_delayed_reply_is_counted() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::hang());
    upstream.enqueue(MockReply::echo().delay(Duration::from_secs(3600)));
    for expected in 1..=2 {
        let url = upstream.url("/chat/completions");
        let mut request = JoinSet::new();
        request.spawn(async move { client().post(url).send().await });
        assert!(upstream.wait_for_hits(expected, LIMIT).await);
        request.abort_all();
        assert!(upstream.wait_for_disconnects(expected, LIMIT).await);
    }
    assert!(
        !upstream
            .wait_for_disconnects(3, Duration::from_millis(1))
            .await
    );
}

#[tokio::test]
async fn echoed_headers_come_back_in_an_error_or_a_plain_text_page() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::echo_headers_error(401));
    upstream.enqueue(MockReply::echo_headers_text(500).header("x-extra", "1"));
    let response = client()
        .post(upstream.url("/chat/completions"))
        .bearer_auth("sk-echo-me-0123")
        .header("x-api-key", "ant-echo-me")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Incorrect API key provided: "),
        "{message}"
    );
    assert!(
        message.contains("authorization: Bearer sk-echo-me-0123"),
        "{message}"
    );
    assert!(message.contains("x-api-key: ant-echo-me"), "{message}");
    assert_eq!(body["error"]["code"], "invalid_api_key");

    let response = client()
        .post(upstream.url("/chat/completions"))
        .header("api-key", "azure-echo-me")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.headers()["x-extra"], "1");
    let text = response.text().await.unwrap();
    assert!(
        text.lines().any(|l| l == "api-key: azure-echo-me"),
        "{text}"
    );
}

#[tokio::test]
async fn an_endless_body_keeps_coming_until_the_client_leaves() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::endless(
        200,
        "application/json",
        vec![b'x'; 4096],
    ));
    let response = client()
        .post(upstream.url("/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), None, "chunked, no length");
    let mut chunks = response.bytes_stream();
    let mut read = 0;
    while read < 4 * 1024 * 1024 {
        read += chunks.next().await.unwrap().unwrap().len();
    }
    assert_eq!(upstream.disconnects(), 0);
    drop(chunks);
    assert!(upstream.wait_for_disconnects(1, LIMIT).await);
}
