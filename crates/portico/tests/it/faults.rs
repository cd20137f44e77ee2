//! Fault injection through the real binary: upstreams that refuse, reset, half-open, stall,
//! send bytes that are not UTF-8 or not JSON, or answer 200 with an error object; on
//! `/v1/chat/completions`, whole and streamed, through an OpenAI-kind provider (whose answers
//! are forwarded) and an Anthropic-kind one (whose answers are translated).
//!
//! Each fault gets a gateway of its own, so its peak memory (`VmHWM`) is the fault's. For each
//! request the test asserts: an OpenAI-style error with its status and code (for a stream
//! already started: the events before it, one in-band error event, and a body that ends
//! properly, without `[DONE]`); exactly one log record, complete (status, outcome, error code
//! and message, attempts, latency); and, where the fault comes before the answer started, that
//! a fallback config moves on to the next target. Oversized and endless bodies are in
//! `upstream_limits.rs`; an endless but well-formed stream is here.

use std::time::{Duration, Instant};

use portico_testkit::{MockUpstream, PorticoProcess, RawScript, RawUpstream};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{ADMIN_KEY, SERVICE_KEY, bin};

/// The upstream read timeout the gateways run with: a half-open or stalled upstream is given
/// up on after this long.
const READ_TIMEOUT_MS: &str = "400";

/// A pause in a script that lets the gateway read (and forward) what was sent before the
/// fault that follows.
const SETTLE: Duration = Duration::from_millis(150);

/// A gateway whose `@oa` (openai) and `@an` (anthropic) providers are a [`RawUpstream`], whose
/// `@gone` and `@gone-an` point at a port nothing listens on, and whose `@good` (openai) and
/// `@good-an` (anthropic) are a normal mock upstream (`@good` is the fallback target).
struct Faulty {
    raw: RawUpstream,
    good: MockUpstream,
    portico: PorticoProcess,
    http: reqwest::Client,
    /// Requests sent, each of which must leave exactly one record.
    sent: std::sync::atomic::AtomicUsize,
    _dir: TempDir,
}

/// One answer as the client saw it.
struct Answer {
    status: u16,
    id: String,
    trace: String,
    text: String,
}

/// The kind of provider a case goes through.
#[derive(Clone, Copy, Debug)]
enum Kind {
    OpenAi,
    Anthropic,
}

impl Kind {
    fn slug(self) -> &'static str {
        match self {
            Kind::OpenAi => "@oa",
            Kind::Anthropic => "@an",
        }
    }
}

impl Faulty {
    async fn start() -> Faulty {
        let raw = RawUpstream::start().await;
        let good = MockUpstream::start().await;
        let gone = RawUpstream::refused_addr();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("portico.yaml");
        std::fs::write(
            &config,
            format!(
                r#"
providers:
  - slug: oa
    kind: openai
    api_key: sk-ptsecret-faults-openai-0001
    base_url: http://{raw}/v1
  - slug: an
    kind: anthropic
    api_key: sk-ant-ptsecret-faults-0001
    base_url: http://{raw}
  - slug: gone
    kind: openai
    api_key: sk-ptsecret-faults-gone-0001
    base_url: http://{gone}/v1
  - slug: gone-an
    kind: anthropic
    api_key: sk-ant-ptsecret-faults-gone-0001
    base_url: http://{gone}
  - slug: good
    kind: openai
    api_key: sk-ptsecret-faults-good-0001
    base_url: {good}
  - slug: good-an
    kind: anthropic
    api_key: sk-ant-ptsecret-faults-good-0001
    base_url: http://{good_addr}
keys:
  - name: service
    key: {SERVICE_KEY}
"#,
                raw = raw.addr(),
                good = good.base_url(),
                good_addr = good.addr(),
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        let portico = PorticoProcess::start(
            &bin(),
            &[
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[
                ("PORTICO_ADMIN_KEY", ADMIN_KEY),
                ("PORTICO_UPSTREAM_READ_TIMEOUT_MS", READ_TIMEOUT_MS),
            ],
        )
        .await
        .unwrap();
        let gw = Faulty {
            raw,
            good,
            portico,
            http: reqwest::Client::new(),
            sent: std::sync::atomic::AtomicUsize::new(0),
            _dir: dir,
        };
        // Warm up, so the memory baseline includes the request path.
        let warm = gw.chat("@good/gpt-x", false, None).await;
        assert_eq!(warm.status, 200, "{}", warm.text);
        gw
    }

    /// A chat request for `model`, streamed or not, with `config` in `x-portkey-config`.
    async fn chat(&self, model: &str, stream: bool, config: Option<&Value>) -> Answer {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trace = format!("fault-{}-{n}", std::process::id());
        // A model name of its own: the circuit breaker keeps state per provider and model,
        // and would otherwise eject a provider these faults fail over and over.
        let model = format!("{model}-{n}");
        let mut body = json!({"model": model, "max_tokens": 32,
            "messages": [{"role": "user", "content": "hello faults"}]});
        if stream {
            body["stream"] = json!(true);
        }
        let mut request = self
            .http
            .post(self.portico.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-trace-id", &trace)
            .timeout(Duration::from_secs(60))
            .json(&body);
        if let Some(config) = config {
            request = request.header("x-portkey-config", config.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["x-portkey-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        // `text()` fails if the gateway broke the connection instead of ending the body.
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{model}: the answer's body did not end properly: {e}"));
        Answer {
            status,
            id,
            trace,
            text,
        }
    }

    /// The one log record of `answer`: waits for it, and checks that its trace id has no
    /// other.
    async fn record(&self, answer: &Answer) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        let record = loop {
            let response = self
                .http
                .get(self.portico.url(&format!("/admin/v1/logs/{}", answer.id)))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                break response.json::<Value>().await.unwrap();
            }
            assert!(Instant::now() < deadline, "no log record {}", answer.id);
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let listed: Value = self
            .http
            .get(self.portico.url(&format!(
                "/admin/v1/logs?trace_id={}&limit=10",
                answer.trace
            )))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            listed["data"].as_array().unwrap().len(),
            1,
            "one record per request: {listed}"
        );
        assert!(record["latency_ms"].is_u64(), "{record}");
        assert!(record["created_at"].is_string(), "{record}");
        record
    }

    /// Every request sent so far was counted exactly once by the sinks (`/metrics` counts
    /// each record the gateway finishes); returns the gateway's peak RSS in KiB.
    async fn settle(&self, what: &str) -> u64 {
        let sent = self.sent.load(std::sync::atomic::Ordering::Relaxed) as u64;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let counted = requests_counted(&self.portico).await;
            if counted == sent {
                break;
            }
            assert!(
                counted < sent && Instant::now() < deadline,
                "{what}: {sent} requests sent, {counted} records finished"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let peak = peak_rss_kib(self.portico.pid());
        eprintln!("{what}: {sent} requests, peak RSS {peak} KiB");
        peak
    }

    /// A fallback config: `first`, then `@good`.
    /// Plays `script` to one request for `model` (streamed or not) that must fail before
    /// anything was answered: `status` and `code` to the client, one `failed` record (one
    /// attempt) whose error says `says`; then the same fault behind a fallback config must be
    /// answered by `@good`. Returns the client's error message.
    #[expect(
        clippy::too_many_arguments,
        reason = "a fault, the request and what it must give: one line per case reads best"
    )]
    async fn fails_then_falls_back(
        &self,
        kind: Kind,
        model: &str,
        stream: bool,
        script: RawScript,
        status: u16,
        code: &str,
        says: &str,
    ) -> String {
        self.raw.enqueue(script.clone());
        let answer = self.chat(model, stream, None).await;
        let message = answer.is_error(status, code);
        failed(&self.record(&answer).await, "failed", status, code, says, 1);
        self.falls_back(kind.slug(), stream, Some(script)).await;
        message
    }

    fn fallback(first: &str) -> Value {
        json!({"strategy": {"mode": "fallback"},
            "targets": [{"provider": first}, {"provider": "@good"}]})
    }

    /// Sends a request (whole or streamed) to `first` with `@good` as its fallback, the
    /// upstream of `first` scripted by `script` (if any); asserts it was answered by `@good`
    /// after two attempts, the first failed.
    async fn falls_back(&self, first: &str, stream: bool, script: Option<RawScript>) {
        let good_hits = self.good.hits();
        if let Some(script) = script {
            self.raw.enqueue(script);
        }
        let config = Faulty::fallback(first);
        let answer = self.chat("gpt-x", stream, Some(&config)).await;
        assert_eq!(answer.status, 200, "{first}: {}", answer.text);
        let content = if stream {
            assert!(answer.text.trim_end().ends_with("data: [DONE]"));
            portico_testkit::sse::collect_chat_stream(&answer.text)
                .unwrap()
                .content
        } else {
            let body: Value = serde_json::from_str(&answer.text).unwrap();
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(content, "echo: hello faults", "{}", answer.text);
        assert_eq!(self.good.hits(), good_hits + 1);
        let record = self.record(&answer).await;
        assert_eq!(record["status"], 200, "{record}");
        assert_eq!(record["outcome"], "completed", "{record}");
        assert_eq!(record["provider"], "good", "{record}");
        let attempts = record["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{record}");
        assert_eq!(attempts[0]["provider"], first.trim_start_matches('@'));
        assert!(
            attempts[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{record}"
        );
        assert_eq!(attempts[1]["provider"], "good");
        assert!(attempts[1]["error"].is_null(), "{record}");
    }
}

/// Asserts `body` is an OpenAI-style error whose code is `code`; returns its message.
fn openai_error(body: &Value, code: &str) -> String {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}

impl Answer {
    /// The answer is a whole OpenAI-style error with `status` and `code`; its message.
    fn is_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let body: Value = serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text));
        openai_error(&body, code)
    }

    /// Every `data:` payload of a streamed answer, each of which must be JSON (the client
    /// never gets bytes it cannot parse).
    fn events(&self) -> Vec<Value> {
        portico_testkit::sse::parse_sse_data(&self.text)
            .iter()
            .map(|d| {
                serde_json::from_str(d)
                    .unwrap_or_else(|e| panic!("an event the client cannot parse ({e}): {d:?}"))
            })
            .collect()
    }

    /// The answer is a stream that started (200), carried `content` and ended with one
    /// in-band error event whose code is `code` and no `[DONE]`; the error's message.
    fn is_broken_stream(&self, content: &str, code: &str) -> String {
        assert_eq!(self.status, 200, "{}", self.text);
        assert!(
            !self.text.contains("[DONE]"),
            "the stream ends at the error: {}",
            self.text
        );
        let events = self.events();
        let (last, before) = events.split_last().expect("events");
        assert!(
            before.iter().all(|e| e.get("error").is_none()),
            "one error event, last: {}",
            self.text
        );
        let text: String = before
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, content, "{}", self.text);
        openai_error(last, code)
    }
}

/// Asserts `record` holds a failed request answered `status` with `code`, its message
/// containing `says`, after `attempts` attempts.
fn failed(record: &Value, outcome: &str, status: u16, code: &str, says: &str, attempts: usize) {
    assert_eq!(record["outcome"], outcome, "{record}");
    assert_eq!(record["status"], status, "{record}");
    assert_eq!(record["error_code"], code, "{record}");
    let error = record["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "the log says {says:?}: {record}");
    let tried = record["attempts"].as_array().unwrap();
    assert_eq!(tried.len(), attempts, "{record}");
    assert!(
        tried
            .last()
            .is_some_and(|a| a["error"].as_str().is_some_and(|e| !e.is_empty())
                || outcome == "stream_broken"),
        "{record}"
    );
}

/// Sum of `portico_requests_total`: the records the gateway finished.
async fn requests_counted(portico: &PorticoProcess) -> u64 {
    let text = reqwest::get(portico.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("portico_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The peak memory every fault here stays under (generous: a gateway at rest is 20-30 MiB).
const PEAK_KIB: u64 = 160 * 1024;

// ---- Upstream answers, as scripts ----

/// An OpenAI stream's response head (chunked).
fn sse_head() -> RawScript {
    RawScript::new().head(200, "text/event-stream", None)
}

/// One OpenAI chunk carrying `content`, as an SSE event.
fn openai_event(content: &str) -> String {
    let chunk = json!({"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-x", "choices": [{"index": 0, "delta": {"content": content},
        "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

/// Anthropic's first events: `message_start` and the text block's start and one delta.
fn anthropic_start(content: &str) -> String {
    let start = json!({"type": "message_start", "message": {"id": "msg_f", "type": "message",
        "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
        "usage": {"input_tokens": 3, "output_tokens": 0}}});
    let block = json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}});
    format!(
        "event: message_start\ndata: {start}\n\nevent: content_block_start\ndata: {block}\n\n{}",
        anthropic_delta(content)
    )
}

/// One Anthropic text delta.
fn anthropic_delta(content: &str) -> String {
    let delta = json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": content}});
    format!("event: content_block_delta\ndata: {delta}\n\n")
}

/// The first event of a stream in `kind`'s dialect, carrying `content`.
fn first_event(kind: Kind, content: &str) -> String {
    match kind {
        Kind::OpenAi => openai_event(content),
        Kind::Anthropic => anthropic_start(content),
    }
}

/// A whole, valid answer body's beginning in `kind`'s dialect (for cutting short).
fn whole_body(kind: Kind) -> String {
    match kind {
        Kind::OpenAi => json!({"id": "chatcmpl-f", "object": "chat.completion", "created": 1,
            "model": "gpt-x", "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "a whole answer"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}})
        .to_string(),
        Kind::Anthropic => json!({"id": "msg_f", "type": "message", "role": "assistant",
            "model": "claude-x", "content": [{"type": "text", "text": "a whole answer"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 3}})
        .to_string(),
    }
}

/// The model a case asks for.
fn model(kind: Kind) -> String {
    format!("{}/gpt-x", kind.slug())
}

const KINDS: [Kind; 2] = [Kind::OpenAi, Kind::Anthropic];

// ---- The faults ----

#[tokio::test]
async fn connection_refused_is_a_502_logged_and_falls_back() {
    let gw = Faulty::start().await;
    for (slug, stream) in [
        ("@gone", false),
        ("@gone", true),
        ("@gone-an", false),
        ("@gone-an", true),
    ] {
        let answer = gw.chat(&format!("{slug}/gpt-x"), stream, None).await;
        let message = answer.is_error(502, "upstream_unreachable");
        assert!(message.contains("connection refused"), "{message}");
        assert!(
            !message.contains("127.0.0.1"),
            "no address to the client: {message}"
        );
        let record = gw.record(&answer).await;
        failed(
            &record,
            "failed",
            502,
            "upstream_unreachable",
            "Connection refused",
            1,
        );
        gw.falls_back(slug, stream, None).await;
    }
    // A retry of the same target tries it again: refused twice, two attempts logged.
    let retry = json!({"retry": {"attempts": 1}});
    let answer = gw.chat("@gone/gpt-x", false, Some(&retry)).await;
    answer.is_error(502, "upstream_unreachable");
    let record = gw.record(&answer).await;
    failed(
        &record,
        "failed",
        502,
        "upstream_unreachable",
        "Connection refused",
        2,
    );
    assert!(gw.settle("connection refused").await < PEAK_KIB);
}

#[tokio::test]
async fn a_reset_mid_body_or_mid_stream_is_reported_and_logged() {
    let gw = Faulty::start().await;
    for kind in KINDS {
        let m = model(kind);
        // Reset before any answer: the request read, then RST.
        gw.raw.enqueue(RawScript::new().reset());
        let answer = gw.chat(&m, false, None).await;
        let message = answer.is_error(502, "upstream_unreachable");
        assert!(message.contains("reset"), "{kind:?}: {message}");
        failed(
            &gw.record(&answer).await,
            "failed",
            502,
            "upstream_unreachable",
            "reset",
            1,
        );

        // A whole answer cut by a reset: its head promised more than came.
        let body = whole_body(kind);
        let cut = RawScript::new()
            .head(200, "application/json", Some(body.len()))
            .bytes(body[..20].to_owned())
            .wait(SETTLE)
            .reset();
        gw.fails_then_falls_back(kind, &m, false, cut, 502, "upstream_unreachable", "broke")
            .await;

        // A stream reset before its first event: nothing sent yet, so a 502 (and fallback).
        let early = sse_head().wait(SETTLE).reset();
        gw.fails_then_falls_back(kind, &m, true, early, 502, "upstream_unreachable", "broke")
            .await;

        // A stream reset after its first event: the event, then an in-band error.
        gw.raw.enqueue(
            sse_head()
                .chunk(first_event(kind, "Hel"))
                .wait(SETTLE)
                .reset(),
        );
        let answer = gw.chat(&m, true, None).await;
        answer.is_broken_stream("Hel", "upstream_unreachable");
        failed(
            &gw.record(&answer).await,
            "stream_broken",
            200,
            "upstream_unreachable",
            "broke",
            1,
        );
    }
    assert_eq!(gw.raw.pending_scripts(), 0);
    assert!(gw.settle("resets").await < PEAK_KIB);
}

#[tokio::test]
async fn a_half_open_upstream_times_out_is_logged_and_falls_back() {
    let gw = Faulty::start().await;
    let mut hanging = 0;
    for kind in KINDS {
        let m = model(kind);
        for stream in [false, true] {
            // Accepted, never read, never answered.
            gw.raw.enqueue(RawScript::never_read());
            let answer = gw.chat(&m, stream, None).await;
            answer.is_error(504, "upstream_timeout");
            failed(
                &gw.record(&answer).await,
                "failed",
                504,
                "upstream_timeout",
                "read timeout",
                1,
            );
            // Read, answered with a head, then silence.
            let head = if stream {
                sse_head()
            } else {
                RawScript::new().head(200, "application/json", Some(500))
            };
            let silent = head.hang();
            gw.fails_then_falls_back(
                kind,
                &m,
                stream,
                silent,
                504,
                "upstream_timeout",
                "read timeout",
            )
            .await;
            // Both connections (the failed request's and its fallback's first attempt) hang.
            hanging += 2;
        }
        gw.falls_back(kind.slug(), false, Some(RawScript::never_read()))
            .await;
    }
    // The gateway closed every connection it gave up on (those it read a request on).
    assert!(
        gw.raw
            .wait_for_peer_closes(hanging, Duration::from_secs(15))
            .await,
        "{} of {hanging} closed",
        gw.raw.peer_closes()
    );
    assert!(gw.settle("half-open").await < PEAK_KIB);
}

#[tokio::test]
async fn a_stream_that_stalls_after_its_first_byte_times_out() {
    let gw = Faulty::start().await;
    for kind in KINDS {
        let m = model(kind);
        // A whole answer: its head and one byte.
        let whole = RawScript::new()
            .head(200, "application/json", Some(500))
            .bytes("{")
            .hang();
        gw.fails_then_falls_back(
            kind,
            &m,
            false,
            whole,
            504,
            "upstream_timeout",
            "read timeout",
        )
        .await;
        // A stream: one byte of its first event.
        let stream = sse_head().chunk("d").hang();
        gw.fails_then_falls_back(
            kind,
            &m,
            true,
            stream,
            504,
            "upstream_timeout",
            "read timeout",
        )
        .await;
        // A stream: its first event, then silence.
        gw.raw
            .enqueue(sse_head().chunk(first_event(kind, "Hel")).hang());
        let answer = gw.chat(&m, true, None).await;
        answer.is_broken_stream("Hel", "upstream_timeout");
        failed(
            &gw.record(&answer).await,
            "stream_broken",
            200,
            "upstream_timeout",
            "read timeout",
            1,
        );
    }
    assert!(gw.settle("stalls").await < PEAK_KIB);
}

/// How a bad answer must be reported: whole, as a stream's first event, and after it.
struct Expected {
    /// The error code of a whole answer (always 502).
    whole: &'static str,
    /// The status and code when the bad event is the stream's first.
    first: fn(Kind) -> (u16, &'static str),
    /// The code of the in-band error when it comes after the first event.
    later: fn(Kind) -> &'static str,
    /// What the message says.
    says: &'static str,
}

/// Runs one bad answer through both kinds: whole (`whole(kind)` as the body), as a stream's
/// first event and after a good first event (`event(kind)`); each must be answered as
/// `expected` says, logged, and (before the stream started) fall back.
async fn bad_answers(
    what: &str,
    expected: Expected,
    whole: fn(Kind) -> Vec<u8>,
    event: fn(Kind) -> Vec<u8>,
) {
    let says = expected.says;
    let gw = Faulty::start().await;
    for kind in KINDS {
        let m = model(kind);
        let body = whole(kind);
        let answer_whole = RawScript::new()
            .head(200, "application/json", Some(body.len()))
            .bytes(body);
        let message = gw
            .fails_then_falls_back(kind, &m, false, answer_whole, 502, expected.whole, says)
            .await;
        assert!(message.contains(says), "{what}, {kind:?}: {message}");

        let first = sse_head().chunk(event(kind)).last_chunk();
        let (status, code) = (expected.first)(kind);
        let message = gw
            .fails_then_falls_back(kind, &m, true, first, status, code, says)
            .await;
        assert!(message.contains(says), "{what}, {kind:?}: {message}");

        gw.raw.enqueue(
            sse_head()
                .chunk(first_event(kind, "Hel"))
                .wait(SETTLE)
                .chunk(event(kind))
                .last_chunk(),
        );
        let answer = gw.chat(&m, true, None).await;
        let code = (expected.later)(kind);
        let message = answer.is_broken_stream("Hel", code);
        assert!(message.contains(says), "{what}, {kind:?}: {message}");
        failed(
            &gw.record(&answer).await,
            "stream_broken",
            200,
            code,
            says,
            1,
        );
    }
    assert!(gw.settle(what).await < PEAK_KIB);
}

impl Expected {
    /// A malformed answer: 502 `upstream_malformed_response` wherever it comes.
    fn malformed(says: &'static str) -> Expected {
        Expected {
            whole: "upstream_malformed_response",
            first: |_| (502, "upstream_malformed_response"),
            later: |_| "upstream_malformed_response",
            says,
        }
    }
}

/// `text` with a byte that is never valid UTF-8 in the middle.
fn with_bad_byte(text: &str) -> Vec<u8> {
    let (a, b) = text.split_at(text.len() / 2);
    let mut out = a.as_bytes().to_vec();
    out.push(0xff);
    out.extend_from_slice(b.as_bytes());
    out
}

#[tokio::test]
async fn invalid_utf8_from_the_upstream_never_reaches_the_client() {
    bad_answers(
        "invalid UTF-8",
        Expected::malformed("UTF-8"),
        |kind| {
            let body = whole_body(kind);
            // Inside the answer's text.
            let at = body.find("a whole answer").unwrap() + 2;
            let mut out = body.as_bytes()[..at].to_vec();
            out.push(0xff);
            out.extend_from_slice(&body.as_bytes()[at..]);
            out
        },
        |kind| match kind {
            Kind::OpenAi => with_bad_byte(&openai_event("some text here")),
            Kind::Anthropic => with_bad_byte(&anthropic_delta("some text here")),
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_json_from_the_upstream_is_a_malformed_answer() {
    bad_answers(
        "invalid JSON",
        Expected::malformed("JSON"),
        |kind| whole_body(kind).as_bytes()[..40].to_vec(),
        |kind| match kind {
            Kind::OpenAi => b"data: {\"choices\": [{\"delta\": \n\n".to_vec(),
            Kind::Anthropic => {
                b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \n\n"
                    .to_vec()
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_200_whose_body_is_an_error_is_the_upstreams_error() {
    bad_answers(
        "200 with an error body",
        Expected {
            whole: "upstream_error",
            // Anthropic's in-band error carries a type, which gives its status (api_error:
            // 500); OpenAI's does not say, so a 502.
            first: |kind| match kind {
                Kind::OpenAi => (502, "upstream_error"),
                Kind::Anthropic => (500, "upstream_error"),
            },
            // Anthropic's error event after the message started is reported as a broken
            // stream (portico-anthropic's choice), its message quoting the upstream's.
            later: |kind| match kind {
                Kind::OpenAi => "upstream_error",
                Kind::Anthropic => "upstream_unreachable",
            },
            says: "The server is overloaded",
        },
        |kind| match kind {
            Kind::OpenAi => json!({"error": {"message": "The server is overloaded", "type":
                "server_error", "param": null, "code": null}})
            .to_string()
            .into_bytes(),
            Kind::Anthropic => json!({"type": "error", "error": {"type": "api_error",
                "message": "The server is overloaded"}})
            .to_string()
            .into_bytes(),
        },
        |kind| match kind {
            Kind::OpenAi => format!(
                "data: {}\n\n",
                json!({"error": {"message": "The server is overloaded", "type": "server_error",
                    "param": null, "code": null}})
            )
            .into_bytes(),
            Kind::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                json!({"type": "error", "error": {"type": "api_error",
                    "message": "The server is overloaded"}})
            )
            .into_bytes(),
        },
    )
    .await;
}

/// Reads about `limit` bytes of a streamed answer from `model`, then leaves; the answer
/// (its text left empty) and the bytes read.
async fn read_then_leave(gw: &Faulty, model: &str, limit: usize) -> (Answer, usize) {
    let n = gw.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let trace = format!("fault-{}-{n}", std::process::id());
    let mut response = gw
        .http
        .post(gw.portico.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", &trace)
        .json(&json!({"model": model, "stream": true, "max_tokens": 32,
            "messages": [{"role": "user", "content": "endless"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut read = 0;
    while read < limit {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on");
        read += chunk.len();
    }
    let answer = Answer {
        status: 200,
        id,
        trace,
        text: String::new(),
    };
    (answer, read)
}

#[tokio::test]
async fn an_endless_well_formed_stream_keeps_memory_bounded_until_the_client_leaves() {
    let gw = Faulty::start().await;
    let before = peak_rss_kib(gw.portico.pid());
    const READ: usize = 96 * 1024 * 1024;
    let cases = [
        ("@good/gpt-x", String::new(), openai_event("endless ")),
        (
            "@good-an/claude-x",
            anthropic_start("endless "),
            anthropic_delta("endless "),
        ),
    ];
    for (n, (model, opening, event)) in cases.into_iter().enumerate() {
        gw.good.enqueue(portico_testkit::MockReply::endless_after(
            200,
            "text/event-stream",
            opening,
            event.repeat(200),
        ));
        let (answer, read) = read_then_leave(&gw, model, READ).await;
        let record = gw.record(&answer).await;
        assert_eq!(record["outcome"], "client_disconnected", "{record}");
        assert_eq!(record["status"], 200, "{record}");
        // The gateway dropped the upstream when the client left.
        assert!(
            gw.good
                .wait_for_disconnects(n + 1, Duration::from_secs(15))
                .await
        );
        let after = peak_rss_kib(gw.portico.pid());
        eprintln!(
            "endless stream {model}: read {} MiB; peak RSS before {before} KiB, after {after} KiB",
            read >> 20
        );
        assert!(after < before + 64 * 1024, "{before} -> {after} KiB");
    }
    gw.settle("endless streams").await;
}
