//! Graceful shutdown: in-flight requests finish while `/readyz` answers 503, then the process
//! exits 0; at the deadline what is left is answered (503, a stream error event) and logged.
//! And a client that leaves early still leaves its record.

use std::time::Duration;

use portico_testkit::sse::{chat_chunk, collect_chat_stream};
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::json;

use crate::support::{Gateway, SERVICE_KEY, chat, standard_catalog, start_in, wait_for_logs};

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

#[tokio::test]
async fn readyz_answers_503_during_the_drain_instead_of_refusing_connections() {
    let mut gw = Gateway::start().await;
    gw.upstream.enqueue_for(
        "/v1/chat/completions",
        MockReply::echo().delay(Duration::from_millis(1500)),
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
    // A fresh client (a new connection), as a load balancer's health check would be.
    let probe = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let ready = loop {
        let resp = probe
            .get(gw.url("/readyz"))
            .send()
            .await
            .expect("the listener refused a connection during the drain");
        if resp.status() == 503 || std::time::Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "shutting_down");
    let resp = slow.await.unwrap();
    assert_eq!(resp.status(), 200, "the in-flight request was cut");
    let status = gw.portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", gw.portico.stderr_text());
}

#[tokio::test]
async fn at_the_deadline_pending_answers_get_503_and_streams_an_error_event_all_logged() {
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    let dir = tempfile::tempdir().unwrap();
    let mut portico = start_in(
        dir.path(),
        &catalog,
        &[("PORTICO_SHUTDOWN_TIMEOUT_SECS", "1")],
    )
    .await;
    let http = reqwest::Client::new();
    // A whole answer that never comes, and a stream that goes quiet after its first event.
    upstream.enqueue_for("/v1/chat/completions", MockReply::hang());
    let whole = http
        .post(portico.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "cut-whole")
        .json(&chat("@openai-mock/m", "never"))
        .send();
    tokio::pin!(whole);
    tokio::select! {
        _ = &mut whole => panic!("the hanging upstream answered"),
        arrived = upstream.wait_for_hits(1, Duration::from_secs(10)) => assert!(arrived),
    }
    let script = SseScript::new()
        .data(&chat_chunk(
            json!({"role": "assistant", "content": "begun"}),
            None,
        ))
        .hang();
    upstream.enqueue_for("/v1/chat/completions", MockReply::sse(script));
    let mut stream = http
        .post(portico.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "cut-stream")
        .json(&json!({"model": "@openai-mock/m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("begun"));

    portico.sigterm().unwrap();
    let whole = whole.await.unwrap();
    assert_eq!(whole.status(), 503);
    let body: serde_json::Value = whole.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(says_shutting_down(&body));
    let mut rest = String::new();
    while let Ok(Some(chunk)) = stream.chunk().await {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("\"code\":\"unavailable\""), "{rest}");
    let status = portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", portico.stderr_text());

    // Both requests are in the log: read it back from a restarted gateway.
    let portico = start_in(dir.path(), &catalog, &[]).await;
    let whole = &wait_for_logs(&portico, "trace_id=cut-whole", 1).await[0];
    assert_eq!(whole["status"], 503);
    assert_eq!(whole["error_code"], "unavailable");
    let stream = &wait_for_logs(&portico, "trace_id=cut-stream", 1).await[0];
    assert_eq!(stream["outcome"], "stream_broken");
    assert_eq!(stream["error_code"], "unavailable");
}

fn says_shutting_down(body: &serde_json::Value) -> bool {
    body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("shutting down"))
}

#[tokio::test]
async fn a_client_that_leaves_before_a_whole_answer_still_leaves_one_record() {
    let gw = Gateway::start().await;
    gw.upstream.enqueue_for(
        "/v1/chat/completions",
        MockReply::echo().delay(Duration::from_secs(5)),
    );
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let err = impatient
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "left-early")
        .json(&chat("@openai-mock/m", "bye"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    drop(impatient);
    let logged = wait_for_logs(&gw.portico, "trace_id=left-early", 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["status"], 499);
    assert_eq!(logged[0]["outcome"], "client_disconnected");
    assert_eq!(logged[0]["provider"], "openai-mock");
    // The upstream call was dropped with the request.
    assert!(
        gw.upstream
            .wait_for_disconnects(1, Duration::from_secs(5))
            .await
    );
    // Still exactly one record once everything settled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        wait_for_logs(&gw.portico, "trace_id=left-early", 1)
            .await
            .len(),
        1
    );
}
