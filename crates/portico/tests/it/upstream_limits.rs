//! Upstream answers are bounded (spec §13), through the real binary: a whole body over
//! `--max-upstream-body-bytes` (declared or endless) is cut, answered 502 and logged, for
//! each adapter that reads whole bodies; a stream event over it ends the stream with an
//! in-band error, logged; an upstream that stalls past the read timeout is logged as
//! `upstream_timeout`, streamed or not. And the gateway's peak memory while an endless body
//! arrives, with the default 64 MiB limit.

use std::time::{Duration, Instant};

use portico_testkit::{MockReply, MockUpstream, PorticoProcess, SseScript};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{ADMIN_KEY, SERVICE_KEY, bin, chat};

/// The limit the tests set with the flag: 64 KiB.
const LIMIT: usize = 64 * 1024;

/// One provider of each kind that reads whole bodies, all on `upstream`.
fn catalog(upstream: &MockUpstream) -> String {
    let addr = upstream.addr();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: sk-ptsecret-limits-openai-0001
    base_url: http://{addr}/v1
  - slug: an
    kind: anthropic
    api_key: sk-ant-ptsecret-limits-0001
    base_url: http://{addr}
  - slug: ge
    kind: gemini
    api_key: ptsecret-limits-gemini-key-0001
    base_url: http://{addr}
  - slug: be
    kind: bedrock
    base_url: http://{addr}
    aws_region: us-east-1
    aws_access_key_id: AKIDLIMITS0001
    aws_secret_access_key: limits-secret-access-key
keys:
  - name: service
    key: {SERVICE_KEY}
"#
    )
}

struct Limited {
    upstream: MockUpstream,
    portico: PorticoProcess,
    _dir: TempDir,
    http: reqwest::Client,
}

impl Limited {
    /// The gateway with `flags` after the usual ones, and `env`.
    async fn start(flags: &[&str], env: &[(&str, &str)]) -> Limited {
        let upstream = MockUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("portico.yaml");
        std::fs::write(&config, catalog(&upstream)).unwrap();
        let data = dir.path().join("data");
        let mut args = vec![
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let mut all_env = vec![("PORTICO_ADMIN_KEY", ADMIN_KEY)];
        all_env.extend_from_slice(env);
        let portico = PorticoProcess::start(&bin(), &args, &all_env)
            .await
            .unwrap();
        Limited {
            upstream,
            portico,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// The gateway with a 64 KiB limit set by the flag.
    async fn small() -> Limited {
        let limit = LIMIT.to_string();
        Limited::start(&["--max-upstream-body-bytes", &limit], &[]).await
    }

    /// POSTs `body` to `path`; the status, the request id and the whole answer as text.
    async fn send(&self, path: &str, body: Value) -> (u16, String, String) {
        let response = self
            .http
            .post(self.portico.url(path))
            .bearer_auth(SERVICE_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["x-portkey-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        (status, id, response.text().await.unwrap())
    }

    /// The request log's record of `id`, once written.
    async fn record(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let response = self
                .http
                .get(self.portico.url(&format!("/admin/v1/logs/{id}")))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                return response.json().await.unwrap();
            }
            assert!(Instant::now() < deadline, "no log record {id}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// Asserts that `text` names the limit and the flag that raises it.
fn names_the_limit(what: &str, text: &str) {
    assert!(
        text.contains(&format!("{LIMIT}-byte limit")) && text.contains("--max-upstream-body-bytes"),
        "{what}: {text}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_cut_answered_502_and_logged_by_every_adapter() {
    let gw = Limited::small().await;
    let chunk = vec![b' '; 16 * 1024];
    let messages = json!({"model": "@an/claude-x", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}]});
    let cases = [
        // An endless chunked body, and one whose Content-Length is over the limit.
        (
            MockReply::endless(200, "application/json", chunk.clone()),
            "/v1/chat/completions",
            chat("@oa/gpt-x", "endless"),
        ),
        (
            MockReply::raw(200, "application/json", vec![b' '; LIMIT + 1]),
            "/v1/chat/completions",
            chat("@oa/gpt-x", "declared"),
        ),
        // Anthropic, passed through and translated.
        (
            MockReply::endless(200, "application/json", chunk.clone()),
            "/v1/messages",
            messages,
        ),
        (
            MockReply::endless(200, "application/json", chunk.clone()),
            "/v1/chat/completions",
            chat("@an/claude-x", "translated"),
        ),
        // Gemini, whole and as its JSON-array stream (read whole).
        (
            MockReply::endless(200, "application/json", chunk.clone()),
            "/v1/chat/completions",
            chat("@ge/gemini-2.5-flash", "whole"),
        ),
        (
            MockReply::endless(200, "application/json", chunk.clone()),
            "/v1/chat/completions",
            streamed(chat("@ge/gemini-2.5-flash", "array stream")),
        ),
        // Bedrock's Converse.
        (
            MockReply::endless(200, "application/json", chunk),
            "/v1/chat/completions",
            chat("@be/anthropic.claude-x", "converse"),
        ),
    ];
    let count = cases.len();
    for (reply, path, body) in cases {
        gw.upstream.enqueue(reply);
        let started = Instant::now();
        let (status, id, text) = gw.send(path, body.clone()).await;
        // Generous: the cut comes after 64 KiB, in milliseconds.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{body}: took {:?}",
            started.elapsed()
        );
        assert_eq!(status, 502, "{body}: {text}");
        names_the_limit("the answer", &text);
        let record = gw.record(&id).await;
        assert_eq!(record["outcome"], "failed", "{record}");
        assert_eq!(record["status"], 502, "{record}");
        assert_eq!(
            record["error_code"], "upstream_malformed_response",
            "{record}"
        );
        names_the_limit("the log", record["error"].as_str().unwrap());
    }
    assert_eq!(gw.upstream.hits(), count);
    // Each endless body's connection was dropped, not drained (the declared one was sent
    // whole by the mock before the gateway refused it).
    assert!(
        gw.upstream
            .wait_for_disconnects(count - 1, Duration::from_secs(15))
            .await,
        "{} disconnects",
        gw.upstream.disconnects()
    );
}

#[tokio::test]
async fn a_stream_event_over_the_limit_ends_the_stream_in_band_and_is_logged() {
    let gw = Limited::small().await;
    let oversized = |script: SseScript| {
        script
            .bytes("data: {\"pad\":\"")
            .bytes(vec![b'x'; LIMIT])
            .bytes("\"}\n\n")
    };
    let first = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": null}]});
    // After a first event: an in-band error event, and the stream ends.
    gw.upstream.enqueue(MockReply::sse(
        oversized(SseScript::new().data(&first)).done(),
    ));
    let (status, id, text) = gw
        .send("/v1/chat/completions", streamed(chat("@oa/gpt-x", "a")))
        .await;
    assert_eq!(status, 200);
    assert!(text.contains("\"content\":\"ok\""), "{text}");
    let error_event = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("error").is_some())
        .unwrap_or_else(|| panic!("no in-band error: {text}"));
    names_the_limit("the error event", &error_event.to_string());
    assert!(
        !text.contains("[DONE]"),
        "the stream ended at the error: {text}"
    );
    let record = gw.record(&id).await;
    assert_eq!(record["outcome"], "stream_broken", "{record}");
    names_the_limit("the log", record["error"].as_str().unwrap());

    // As the very first event: nothing was sent yet, so a 502.
    gw.upstream
        .enqueue(MockReply::sse(oversized(SseScript::new())));
    let (status, id, text) = gw
        .send("/v1/chat/completions", streamed(chat("@oa/gpt-x", "b")))
        .await;
    assert_eq!(status, 502, "{text}");
    names_the_limit("the answer", &text);
    assert_eq!(gw.record(&id).await["outcome"], "failed");

    // Bedrock's binary frames are held to the same limit.
    let big = "y".repeat(LIMIT);
    gw.upstream.enqueue(MockReply::stream(
        "application/vnd.amazon.eventstream",
        SseScript::new()
            .aws_event("messageStart", &json!({"role": "assistant"}))
            .aws_event(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": "ok"}}),
            )
            .aws_event(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": big}}),
            ),
    ));
    let (status, id, text) = gw
        .send(
            "/v1/chat/completions",
            streamed(chat("@be/anthropic.claude-x", "c")),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    names_the_limit("the Bedrock stream", &text);
    let record = gw.record(&id).await;
    assert_eq!(record["outcome"], "stream_broken", "{record}");
    names_the_limit("the log", record["error"].as_str().unwrap());
}

#[tokio::test]
async fn a_stalled_upstream_is_logged_as_a_timeout_streamed_or_not() {
    let gw = Limited::start(&[], &[("PORTICO_UPSTREAM_READ_TIMEOUT_MS", "300")]).await;
    // The head and part of the body, then silence.
    gw.upstream.enqueue(MockReply::stream(
        "application/json",
        SseScript::new().bytes("{\"id\":").hang(),
    ));
    let (status, id, text) = gw
        .send("/v1/chat/completions", chat("@oa/gpt-x", "a"))
        .await;
    assert_eq!(status, 504, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    let record = gw.record(&id).await;
    assert_eq!(record["error_code"], "upstream_timeout", "{record}");
    assert!(
        record["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("read timeout"),
        "{record}"
    );

    // A stream that sent an event, then nothing.
    gw.upstream.enqueue(MockReply::sse(
        SseScript::new()
            .data(
                &json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
                "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}}]}),
            )
            .hang(),
    ));
    let (status, id, text) = gw
        .send("/v1/chat/completions", streamed(chat("@oa/gpt-x", "b")))
        .await;
    assert_eq!(status, 200);
    assert!(text.contains("\"code\":\"upstream_timeout\""), "{text}");
    let record = gw.record(&id).await;
    assert_eq!(record["outcome"], "stream_broken", "{record}");
    assert_eq!(record["error_code"], "upstream_timeout", "{record}");
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends `body` to `@oa`, which answers `reply`, through a gateway with the default limit;
/// checks the answer with `check`, and returns the gateway's peak RSS before and after, in
/// KiB (printed, for the record).
async fn peak_rss_around(reply: MockReply, body: Value, check: fn(u16, &str)) -> (u64, u64) {
    let gw = Limited::start(&[], &[]).await;
    // Warm up: a normal request, so the baseline includes the request path.
    let (status, _, _) = gw
        .send("/v1/chat/completions", chat("@oa/gpt-x", "warm"))
        .await;
    assert_eq!(status, 200);
    let before = peak_rss_kib(gw.portico.pid());
    gw.upstream.enqueue(reply);
    let started = Instant::now();
    let (status, id, text) = gw.send("/v1/chat/completions", body).await;
    let took = started.elapsed();
    check(status, &text);
    assert!(
        text.contains("67108864-byte limit"),
        "the default limit is 64 MiB: {text}"
    );
    let record = gw.record(&id).await;
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("67108864-byte limit"),
        "{record}"
    );
    let after = peak_rss_kib(gw.portico.pid());
    eprintln!(
        "peak RSS before {before} KiB, after {after} KiB (+{} KiB), cut after {took:?}",
        after.saturating_sub(before)
    );
    // Generous sanity bounds: without the limit the gateway grew by gigabytes.
    assert!(
        after < before + 512 * 1024,
        "peak RSS {before} -> {after} KiB"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    (before, after)
}

#[tokio::test]
async fn an_endless_body_at_the_default_limit_leaves_memory_bounded() {
    let endless = MockReply::endless(200, "application/json", vec![b' '; 64 * 1024]);
    peak_rss_around(endless, chat("@oa/gpt-x", "endless"), |status, text| {
        assert_eq!(status, 502, "{text}");
    })
    .await;
}

#[tokio::test]
async fn an_endless_stream_event_at_the_default_limit_leaves_memory_bounded() {
    // One event that never ends: `data: xxxx...` without a line break.
    let endless = MockReply::endless(200, "text/event-stream", vec![b'x'; 64 * 1024]);
    let body = json!({"model": "@oa/gpt-x", "stream": true,
        "messages": [{"role": "user", "content": "endless event"}]});
    peak_rss_around(endless, body, |status, text| {
        assert_eq!(status, 502, "the first event never completed: {text}");
    })
    .await;
}
