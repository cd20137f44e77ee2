//! Graceful shutdown: in-flight requests finish, then the process exits 0.

use std::time::Duration;

use portico_testkit::sse::{chat_chunk, collect_chat_stream};
use portico_testkit::{MockReply, SseScript};
use serde_json::json;

use crate::support::{Gateway, SERVICE_KEY, chat};

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let mut gw = Gateway::start().await;
    // One slow non-streaming answer and one stream that is still sending when SIGTERM comes.
    gw.upstream.enqueue_for(
        "/v1/chat/completions",
        MockReply::echo().delay(Duration::from_millis(800)),
    );
    let slow = gw
        .http
        .clone()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&chat("@openai-mock/m", "slow"))
        .send();
    tokio::pin!(slow);
    tokio::select! {
        _ = &mut slow => panic!("the delayed answer came before SIGTERM"),
        arrived = gw.upstream.wait_for_hits(1, Duration::from_secs(10)) => assert!(arrived),
    }
    gw.portico.sigterm().unwrap();
    let resp = slow.await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the in-flight request was cut by shutdown"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: slow");
    let status = gw.portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "stderr: {}",
        gw.portico.stderr_text()
    );
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish() {
    let mut gw = Gateway::start().await;
    let script = SseScript::new()
        .data(&chat_chunk(
            json!({"role": "assistant", "content": "before "}),
            None,
        ))
        .wait(Duration::from_millis(800))
        .data(&chat_chunk(json!({"content": "after"}), Some("stop")))
        .done();
    gw.upstream.enqueue(MockReply::sse(script));
    let mut resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@openai-mock/m", "stream": true, "messages": []}),
        )
        .await;
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("before"));
    gw.portico.sigterm().unwrap();
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => rest.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(None) => break,
            Err(err) => panic!(
                "the stream was cut after SIGTERM: {err}\nreceived: {rest}\ngateway stderr:\n{}",
                gw.portico.stderr_text()
            ),
        }
    }
    let chat = collect_chat_stream(&rest).unwrap();
    assert_eq!(chat.content, "before after");
    let status = gw.portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.code(), Some(0));
}
