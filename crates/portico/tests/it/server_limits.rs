//! The gateway's protective limits beyond spec section 13 (issue 20), through the real
//! binary: request headers (431), JSON depth, message and tool counts (400), open connections
//! and streams (503, `Retry-After`, nothing leaks), and a client that stops reading (its
//! connection closed at the write timeout, its stream logged once). Raw TCP where an HTTP
//! client would not send the bad input, or would read what the test must not.

use std::time::{Duration, Instant};

use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::client_limits::read_answer;
use crate::support::{Gateway, SERVICE_KEY, chat, standard_catalog, wait_for_logs};

async fn gateway(env: &[(&str, &str)]) -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    Gateway::start_with_env(upstream, &catalog, env).await
}

/// `GET /metrics` on a connection of its own, closed after the answer (so that it does not
/// stay among the open connections the test counts).
async fn metrics(gw: &Gateway) -> String {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the metric line that starts with `series` (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn hits(text: &str, limit: &str) -> f64 {
    metric(
        text,
        &format!("portico_server_limit_hits_total{{limit=\"{limit}\"}}"),
    )
}

/// Polls `/metrics` until `check` holds (a must-happen-eventually deadline of 20 s).
async fn wait_for_metrics(gw: &Gateway, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(gw).await;
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what} in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a POST with `extra` header lines (each ending in CRLF) and a small JSON body.
async fn post_with_headers(gw: &Gateway, path: &str, extra: &str) -> TcpStream {
    let body = chat("@openai-mock/m", "hi").to_string();
    let mut tcp = TcpStream::connect(gw.portico.addr()).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: portico\r\nAuthorization: Bearer {SERVICE_KEY}\r\nx-api-key: {SERVICE_KEY}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes()).await.unwrap();
    tcp
}

fn many_headers(count: usize, value_len: usize) -> String {
    (0..count)
        .map(|i| format!("x-extra-{i}: {}\r\n", "v".repeat(value_len)))
        .collect()
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_a_json_431() {
    let gw = gateway(&[
        ("PORTICO_MAX_HEADER_COUNT", "20"),
        ("PORTICO_MAX_HEADER_BYTES", "4096"),
    ])
    .await;
    // 5 headers of the request itself plus 20: over the count.
    let mut tcp = post_with_headers(&gw, "/v1/chat/completions", &many_headers(20, 4)).await;
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 431, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "request_header_fields_too_large");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("has 25 headers"), "{message}");
    assert!(message.contains("at most 20"), "{message}");
    assert!(message.contains("PORTICO_MAX_HEADER_COUNT"), "{message}");

    // Few headers, but one of 5,000 bytes: over the size, in Anthropic's shape on /v1/messages.
    let mut tcp = post_with_headers(&gw, "/v1/messages", &many_headers(1, 5000)).await;
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 431, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["type"], "error", "Anthropic's shape: {body}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("at most 4096"), "{message}");
    assert!(message.contains("--max-header-bytes"), "{message}");

    // Past hyper's own backstop (100 headers here), hyper answers a bare 431 and closes.
    let mut tcp = post_with_headers(&gw, "/v1/chat/completions", &many_headers(150, 2)).await;
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 431);
    assert_eq!(body, "", "hyper's backstop has no body");

    let text = metrics(&gw).await;
    assert_eq!(hits(&text, "max_header_count"), 1.0, "{text}");
    assert_eq!(hits(&text, "max_header_bytes"), 1.0, "{text}");
    assert_eq!(gw.upstream.hits(), 0);
    // Under the limits, requests pass.
    let mut tcp = post_with_headers(&gw, "/v1/chat/completions", &many_headers(14, 100)).await;
    let (status, body) = read_answer(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_body_nested_too_deep_is_a_400_naming_the_depth_and_the_limit() {
    let gw = gateway(&[("PORTICO_MAX_JSON_DEPTH", "10")]).await;
    let mut body = chat("@openai-mock/m", "deep");
    // The body (1) > metadata (2) > 9 arrays: 11 levels.
    body["metadata"] = json!({"a": [[[[[[[[["x"]]]]]]]]]});
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "too-deep")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["code"], "json_too_deep");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("11 levels deep"), "{message}");
    assert!(message.contains("at most 10"), "{message}");
    assert!(message.contains("--max-json-depth"), "{message}");
    // Brackets inside strings are text, not nesting.
    let mut text = chat("@openai-mock/m", &"[{".repeat(1000));
    text["metadata"] = json!({"a": [[[[[[[["x"]]]]]]]]});
    assert_eq!(gw.post("/v1/chat/completions", text).await.status(), 200);

    let logged = wait_for_logs(&gw.portico, "trace_id=too-deep", 1).await;
    assert_eq!(logged[0]["status"], 400);
    assert_eq!(logged[0]["error_code"], "json_too_deep");
    assert_eq!(
        gw.upstream.hits(),
        1,
        "only the accepted request went upstream"
    );
    let text = metrics(&gw).await;
    assert_eq!(hits(&text, "max_json_depth"), 1.0, "{text}");
}

#[tokio::test]
async fn a_nesting_bomb_is_refused_with_bounded_memory() {
    // The default limit (100 levels) against 8 million open brackets.
    let gw = gateway(&[]).await;
    let warm = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "warm"))
        .await;
    assert_eq!(warm.status(), 200);
    let before = crate::upstream_limits::peak_rss_kib(gw.portico.pid());
    let mut bomb = br#"{"model":"@openai-mock/m","messages":"#.to_vec();
    bomb.extend(std::iter::repeat_n(b'[', 8_000_000));
    let started = Instant::now();
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("content-type", "application/json")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 400);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["code"], "json_too_deep");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("8000001 levels deep"), "{message}");
    let after = crate::upstream_limits::peak_rss_kib(gw.portico.pid());
    println!(
        "nesting bomb (8 MB of `[`): answered in {took:?}; peak RSS {before} KiB -> {after} KiB"
    );
    // The body itself (8 MB) and its reading buffers; no tree of it.
    assert!(after - before < 64 * 1024, "{before} -> {after} KiB");
    assert_eq!(gw.upstream.hits(), 1);
}

#[tokio::test]
async fn too_many_messages_or_tools_is_a_400_naming_the_field_and_the_limit() {
    let gw = gateway(&[("PORTICO_MAX_MESSAGES", "5"), ("PORTICO_MAX_TOOLS", "3")]).await;
    let messages = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"role": "user", "content": format!("message {i}, with [brackets], \"quotes\"")}))
            .collect()
    };
    let tools = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"type": "function", "function": {"name": format!("f{i}"), "parameters": {"type": "object", "properties": {}}}}))
            .collect()
    };
    let send = |path: &'static str, body: Value, trace: &'static str| {
        gw.http
            .post(gw.url(path))
            .bearer_auth(SERVICE_KEY)
            .header("x-api-key", SERVICE_KEY)
            .header("x-portkey-trace-id", trace)
            .json(&body)
            .send()
    };
    // At the limits: accepted.
    let ok = send(
        "/v1/chat/completions",
        json!({"model": "@openai-mock/m", "messages": messages(5), "tools": tools(3)}),
        "at-limits",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);

    for (path, body, param, count, trace) in [
        (
            "/v1/chat/completions",
            json!({"model": "@openai-mock/m", "messages": messages(6)}),
            "messages",
            6,
            "too-many-messages",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "@openai-mock/m", "messages": messages(1), "tools": tools(4)}),
            "tools",
            4,
            "too-many-tools",
        ),
        (
            "/v1/responses",
            json!({"model": "@openai-mock/m", "input": messages(7)}),
            "input",
            7,
            "too-many-input-items",
        ),
        (
            "/v1/messages",
            json!({"model": "@openai-mock/m", "max_tokens": 8, "messages": messages(6)}),
            "messages",
            6,
            "too-many-anthropic-messages",
        ),
    ] {
        let resp = send(path, body, trace).await.unwrap();
        assert_eq!(resp.status(), 400, "{path} {param}");
        let error: Value = resp.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("`{param}` has {count} items")),
            "{message}"
        );
        let flag = if param == "tools" {
            "--max-tools"
        } else {
            "--max-messages"
        };
        assert!(message.contains(flag), "{message}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        if path != "/v1/messages" {
            assert_eq!(error["error"]["code"], "array_above_max_length");
            assert_eq!(error["error"]["param"], param);
        }
        let logged = wait_for_logs(&gw.portico, &format!("trace_id={trace}"), 1).await;
        assert_eq!(logged[0]["status"], 400);
        assert_eq!(logged[0]["error_code"], "array_above_max_length");
    }
    assert_eq!(
        gw.upstream.hits(),
        1,
        "refused requests never went upstream"
    );
    let text = metrics(&gw).await;
    assert_eq!(hits(&text, "max_messages"), 3.0, "{text}");
    assert_eq!(hits(&text, "max_tools"), 1.0, "{text}");
}

#[tokio::test]
async fn connections_past_the_limit_get_a_503_and_their_places_come_back() {
    let gw = gateway(&[("PORTICO_MAX_CONNECTIONS", "3")]).await;
    // Three idle connections fill the gateway (accepted in order, before the fourth).
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(gw.portico.addr()).await.unwrap());
    }
    // The fourth gets a complete answer rather than a hang or a reset.
    let mut tcp = post_with_headers(&gw, "/v1/chat/completions", "").await;
    let started = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .expect("the refused connection was closed")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 503 "),
        "after {:?}: {text}",
        started.elapsed()
    );
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1\r\n"), "{text}");
    assert!(lower.contains("connection: close\r\n"), "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let error: Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"]["code"], "overloaded");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("limit of 3 open connections"), "{message}");
    assert!(message.contains("--max-connections"), "{message}");
    assert_eq!(gw.upstream.hits(), 0);

    // The idle ones close: their places come back, and a request is served again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = metrics(&gw).await;
        // The scrape's own connection is the only one open.
        if metric(&text, "portico_open_connections") == 1.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "connections still counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(hits(&text, "max_connections") >= 1.0, "{text}");
    let resp = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "again"))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn streams_past_the_limit_get_a_503_and_their_slots_come_back() {
    let gw = gateway(&[("PORTICO_MAX_STREAMS", "1")]).await;
    // The first stream sends one event, then waits 3 s before the rest.
    gw.upstream.enqueue_for(
        "/v1/chat/completions",
        MockReply::sse(
            SseScript::new()
                .data(&portico_testkit::sse::chat_chunk(
                    json!({"role": "assistant", "content": "a"}),
                    None,
                ))
                .wait(Duration::from_secs(3))
                .data(&portico_testkit::sse::chat_chunk(json!({}), Some("stop")))
                .done(),
        ),
    );
    let stream_request = |trace: &'static str| {
        let mut body = chat("@openai-mock/m", trace);
        body["stream"] = json!(true);
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-trace-id", trace)
            .json(&body)
            .send()
    };
    let mut first = stream_request("stream-1").await.unwrap();
    assert_eq!(first.status(), 200);
    // The first event is here: the stream is open.
    assert!(first.chunk().await.unwrap().is_some());

    let refused = stream_request("stream-refused").await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "overloaded");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("limit of 1 open streams"), "{message}");
    assert!(message.contains("--max-streams"), "{message}");
    // A whole answer is not a stream: still served.
    let whole = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "whole"))
        .await;
    assert_eq!(whole.status(), 200);

    // Once the first stream ends, its slot comes back.
    while first.chunk().await.unwrap().is_some() {}
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = stream_request("stream-again").await.unwrap();
        if again.status() == 200 {
            let text = again.text().await.unwrap();
            assert!(text.contains("[DONE]"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged = wait_for_logs(&gw.portico, "trace_id=stream-refused", 1).await;
    assert_eq!(logged[0]["status"], 503);
    assert_eq!(logged[0]["error_code"], "overloaded");
    let text = metrics(&gw).await;
    assert!(hits(&text, "max_streams") >= 1.0, "{text}");
    // The refused stream never reached the upstream: the first, the whole one, the last.
    assert_eq!(gw.upstream.hits(), 3);
}

/// A connection whose receive buffer is small, so that a client that does not read
/// stalls the gateway's writes quickly.
async fn tiny_window_connection(gw: &Gateway) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(gw.portico.addr()).await.unwrap()
}

async fn send_json(tcp: &mut TcpStream, body: &Value, trace: &str) {
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: portico\r\nAuthorization: Bearer {SERVICE_KEY}\r\nx-portkey-trace-id: {trace}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes()).await.unwrap();
}

/// Reads what is left on `tcp` until the gateway's close, within `within`; the bytes read.
async fn drain_until_closed(tcp: &mut TcpStream, within: Duration) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await
    .expect("the gateway closed the connection");
    total
}

#[tokio::test]
async fn a_client_that_stops_reading_a_stream_loses_it_at_the_write_timeout() {
    let gw = gateway(&[("PORTICO_WRITE_TIMEOUT_SECS", "1")]).await;
    // An endless stream of chat chunks.
    let chunk = format!(
        "data: {}\n\n",
        portico_testkit::sse::chat_chunk(json!({"content": "x".repeat(1000)}), None)
    );
    let warm = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "warm"))
        .await;
    assert_eq!(warm.status(), 200);
    gw.upstream.enqueue_for(
        "/v1/chat/completions",
        MockReply::endless(200, "text/event-stream", chunk),
    );
    let before = crate::upstream_limits::peak_rss_kib(gw.portico.pid());
    let mut tcp = tiny_window_connection(&gw).await;
    let mut body = chat("@openai-mock/m", "never read");
    body["stream"] = json!(true);
    send_json(&mut tcp, &body, "stops-reading").await;

    // The gateway closes the connection, drops the upstream, and logs the stream once.
    let logged = wait_for_logs(&gw.portico, "trace_id=stops-reading", 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["outcome"], "client_disconnected", "{}", logged[0]);
    let text = wait_for_metrics(&gw, "a write timeout", |t| hits(t, "write_timeout") >= 1.0).await;
    assert_eq!(hits(&text, "write_timeout"), 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.upstream.disconnects() == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let received = drain_until_closed(&mut tcp, Duration::from_secs(10)).await;
    let after = crate::upstream_limits::peak_rss_kib(gw.portico.pid());
    println!(
        "stream never read: {received} bytes reached the client before the close; peak RSS {before} KiB -> {after} KiB"
    );
    assert!(after - before < 32 * 1024, "{before} -> {after} KiB");
    // Exactly one record, even after the close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        wait_for_logs(&gw.portico, "trace_id=stops-reading", 1)
            .await
            .len(),
        1
    );
    // The gateway still serves.
    let resp = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "still here"))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_client_that_stops_reading_a_whole_answer_loses_it_at_the_write_timeout() {
    let gw = gateway(&[("PORTICO_WRITE_TIMEOUT_SECS", "1")]).await;
    // A 16 MB answer: far more than the sockets between the two hold.
    let content = "y".repeat(16 * 1024 * 1024);
    gw.upstream.enqueue_for(
        "/v1/chat/completions",
        MockReply::json(
            200,
            json!({
                "id": "chatcmpl-big", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            }),
        ),
    );
    let mut tcp = tiny_window_connection(&gw).await;
    send_json(
        &mut tcp,
        &chat("@openai-mock/m", "never read"),
        "whole-unread",
    )
    .await;
    wait_for_metrics(&gw, "a write timeout", |t| hits(t, "write_timeout") >= 1.0).await;
    let received = drain_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(
        received < content.len(),
        "the whole answer arrived ({received} bytes): nothing was cut"
    );
    // The record was written when the answer was ready: one record, the answer's status.
    let logged = wait_for_logs(&gw.portico, "trace_id=whole-unread", 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["status"], 200);
}
