//! Provider credentials never leave the gateway (spec §13), through the real binary: upstreams
//! of every kind echo the credentials they were sent (in a JSON error, a plain-text page
//! listing the request headers, a success body, a stream event, a stream's error), on both
//! APIs, streamed and not, through a fallback; the secret must then appear in none of the
//! client's answer, the request log (list and detail: error, attempts, payloads) and stderr
//! (the access log), and `[REDACTED]` must stand in its place. Also: a refused connection's
//! address is logged but not told to the client.

use std::time::{Duration, Instant};

use portico_testkit::{MockReply, MockUpstream, PorticoProcess, SseScript};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{ADMIN_KEY, SERVICE_KEY, chat, start_in};

/// `@oa`'s key; the `/` and `+` give it distinct JSON-escaped and percent-encoded forms.
const OA_KEY: &str = "sk-ptsecret-probe/openai+7f3a9c2e41b8d605";
/// `@oa2`'s key, the fallback target.
const OA2_KEY: &str = "sk-ptsecret-probe-backup-2b6e0d9a7c4f1358";
const AN_KEY: &str = "sk-ant-ptsecret-probe-5c8e1a3f9d7b2046";
const AZ_KEY: &str = "ptsecretazprobe0d4c7e9a1b3f5862";
const GE_KEY: &str = "AIzaPtsecretProbeGemini3e8c1a7f5d9b";
const BE_AKID: &str = "AKIAPTSECRETBEDROCK7Q2X";
const BE_SECRET: &str = "ptsecretProbeSecretAccessKey/with+slash=9a8b7c6d";
const BE_TOKEN: &str = "IQoJb3JpZ2luPtsecretProbeSessionToken/abc+def==";

const ALL_SECRETS: [&str; 8] = [
    OA_KEY, OA2_KEY, AN_KEY, AZ_KEY, GE_KEY, BE_AKID, BE_SECRET, BE_TOKEN,
];

/// Every provider kind on one mock upstream, each with its own credentials.
fn catalog(upstream: &MockUpstream) -> String {
    let addr = upstream.addr();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: "{OA_KEY}"
    base_url: http://{addr}/v1
  - slug: oa2
    kind: openai
    api_key: "{OA2_KEY}"
    base_url: http://{addr}/v1
  - slug: an
    kind: anthropic
    api_key: "{AN_KEY}"
    base_url: http://{addr}
  - slug: az
    kind: azure-openai
    api_key: "{AZ_KEY}"
    base_url: http://{addr}
  - slug: ge
    kind: gemini
    api_key: "{GE_KEY}"
    base_url: http://{addr}
  - slug: be
    kind: bedrock
    base_url: http://{addr}
    aws_region: us-east-1
    aws_access_key_id: "{BE_AKID}"
    aws_secret_access_key: "{BE_SECRET}"
    aws_session_token: "{BE_TOKEN}"
keys:
  - name: service
    key: {SERVICE_KEY}
"#
    )
}

/// The forms a secret could leak in: as it is, JSON-escaped with `\/`, percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let mut percent = String::new();
    for byte in secret.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            percent.push(char::from(byte));
        } else {
            percent.push_str(&format!("%{byte:02X}"));
        }
    }
    vec![secret.to_owned(), secret.replace('/', "\\/"), percent]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in ALL_SECRETS {
        for form in forms(secret) {
            assert!(!text.contains(&form), "{what} leaks {form}:\n{text}");
        }
    }
}

/// A gateway over one mock upstream, and every answer its client got.
struct Probe {
    upstream: MockUpstream,
    portico: PorticoProcess,
    _dir: TempDir,
    http: reqwest::Client,
    /// Request id and answer text of each request sent.
    answers: Vec<(String, String)>,
}

impl Probe {
    async fn start() -> Probe {
        Probe::start_with(MockUpstream::start().await, None).await
    }

    async fn start_with(upstream: MockUpstream, catalog_text: Option<String>) -> Probe {
        let dir = tempfile::tempdir().unwrap();
        let catalog_text = catalog_text.unwrap_or_else(|| catalog(&upstream));
        let portico = start_in(dir.path(), &catalog_text, &[]).await;
        Probe {
            upstream,
            portico,
            _dir: dir,
            http: reqwest::Client::new(),
            answers: Vec::new(),
        }
    }

    /// POSTs `body` to `path` with the service key (and `config` as `x-portkey-config`);
    /// returns the status and the whole answer, streamed or not, as text.
    async fn send(&mut self, path: &str, body: Value, config: Option<&Value>) -> (u16, String) {
        let mut request = self
            .http
            .post(self.portico.url(path))
            .bearer_auth(SERVICE_KEY)
            .header("anthropic-version", "2023-06-01")
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
        let text = response.text().await.unwrap();
        self.answers.push((id, text.clone()));
        (status, text)
    }

    async fn admin(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(self.portico.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The request log's detail of request `id`, once written.
    async fn log_detail(&self, id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, text) = self.admin(&format!("/admin/v1/logs/{id}")).await;
            if status == 200 {
                return text;
            }
            assert!(Instant::now() < deadline, "no log record {id}: {text}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stderr once the access log has a line for every request sent.
    async fn stderr_with_every_request(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let stderr = self.portico.stderr_text();
            if self.answers.iter().all(|(id, _)| stderr.contains(id)) {
                return stderr;
            }
            assert!(
                Instant::now() < deadline,
                "access log incomplete:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// No secret in any answer, log detail, log list or stderr; `[REDACTED]` in each answer
    /// and its log record.
    async fn assert_nothing_leaked(&self) {
        for (id, answer) in &self.answers {
            assert_no_secret(&format!("the answer to {id}"), answer);
            assert!(answer.contains("[REDACTED]"), "answer {id}: {answer}");
            let detail = self.log_detail(id).await;
            assert_no_secret(&format!("log record {id}"), &detail);
            assert!(detail.contains("[REDACTED]"), "log record {id}: {detail}");
        }
        let (status, list) = self.admin("/admin/v1/logs?limit=500").await;
        assert_eq!(status, 200);
        assert_no_secret("the log list", &list);
        let stderr = self.stderr_with_every_request().await;
        assert_no_secret("stderr", &stderr);
        assert!(stderr.contains("[REDACTED]"), "{stderr}");
    }
}

fn chunk(content: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

fn messages_body(model: &str) -> Value {
    json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn an_openai_upstream_echoing_its_key_leaks_it_nowhere() {
    let mut probe = Probe::start().await;
    let up = &probe.upstream;

    // 401 whose JSON message echoes `Authorization: Bearer <key>`.
    up.enqueue(MockReply::echo_headers_error(401));
    // A plain-text 500 listing every request header.
    up.enqueue(MockReply::echo_headers_text(500));
    // A 200 body holding the key as it is, JSON-escaped (`\/`) and percent-encoded.
    let escaped = OA_KEY.replace('/', "\\/");
    let body = format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":"raw {OA_KEY} escaped {escaped} url ?key=sk-ptsecret-probe%2Fopenai%2B7f3a9c2e41b8d605"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}}}"#
    );
    up.enqueue(MockReply::raw(200, "application/json", body));
    // A stream with the key in a chunk, then an in-band error event echoing it.
    up.enqueue(MockReply::from_request(|req| {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        MockReply::sse(
            SseScript::new()
                .data(&chunk(&format!("you sent {auth}")))
                .data(&json!({"error": {"message": format!("bad key {auth}"), "type": "server_error"}}))
                .done(),
        )
    }));
    // The Anthropic API translated to this provider: its 401 echo.
    up.enqueue(MockReply::echo_headers_error(401));
    // A stream that fails before its first event with an echoing 503.
    up.enqueue(MockReply::echo_headers_error(503));

    let (status, text) = probe
        .send("/v1/chat/completions", chat("@oa/gpt-x", "a"), None)
        .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Incorrect API key provided"), "{text}");
    let (status, _) = probe
        .send("/v1/chat/completions", chat("@oa/gpt-x", "b"), None)
        .await;
    assert_eq!(status, 500);
    let (status, text) = probe
        .send("/v1/chat/completions", chat("@oa/gpt-x", "c"), None)
        .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "raw [REDACTED] escaped [REDACTED] url ?key=[REDACTED]"
    );
    let (status, text) = probe
        .send(
            "/v1/chat/completions",
            streamed(chat("@oa/gpt-x", "d")),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(text.contains("you sent Bearer [REDACTED]"), "{text}");
    assert!(text.contains("bad key Bearer [REDACTED]"), "{text}");
    let (status, text) = probe
        .send("/v1/messages", messages_body("@oa/gpt-x"), None)
        .await;
    assert_eq!(status, 401, "{text}");
    let (status, _) = probe
        .send(
            "/v1/chat/completions",
            streamed(chat("@oa/gpt-x", "e")),
            None,
        )
        .await;
    assert_eq!(status, 503);

    assert_eq!(probe.upstream.hits(), 6);
    probe.assert_nothing_leaked().await;
}

#[tokio::test]
async fn native_dialects_echoing_their_credentials_leak_them_nowhere() {
    let mut probe = Probe::start().await;
    let up = &probe.upstream;

    // Anthropic, passed through: a 401 echoing `x-api-key`, then a stream whose text and
    // in-band error event echo it.
    up.enqueue(MockReply::echo_headers_error(401));
    up.enqueue(MockReply::from_request(|req| {
        let key = req.header("x-api-key").unwrap_or_default().to_owned();
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        MockReply::sse(
            SseScript::new()
                .bytes(event(
                    "message_start",
                    json!({"type": "message_start", "message": {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                    "content": [], "stop_reason": null,
                    "usage": {"input_tokens": 1, "output_tokens": 0}}}),
                ))
                .bytes(event(
                    "content_block_start",
                    json!({"type": "content_block_start",
                    "index": 0, "content_block": {"type": "text", "text": ""}}),
                ))
                .bytes(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta",
                    "index": 0, "delta": {"type": "text_delta", "text": format!("key {key}")}}),
                ))
                .bytes(event(
                    "error",
                    json!({"type": "error", "error": {
                    "type": "overloaded_error", "message": format!("overloaded for {key}")}}),
                )),
        )
    }));
    // Anthropic, translated from chat completions: a plain-text page of the headers.
    up.enqueue(MockReply::echo_headers_text(500));
    // Azure (`api-key`) and Gemini (`x-goog-api-key`): JSON errors echoing the headers.
    up.enqueue(MockReply::echo_headers_error(401));
    up.enqueue(MockReply::echo_headers_error(400));
    // Bedrock: a plain-text 403 listing the SigV4 headers (access key id, session token),
    // then a Converse answer quoting the secret access key, then a stream whose text and
    // exception echo the session token.
    up.enqueue(MockReply::echo_headers_text(403));
    up.enqueue(MockReply::json(
        200,
        json!({"output": {"message": {"role": "assistant", "content": [
            {"text": format!("secret {BE_SECRET}")}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}),
    ));
    up.enqueue(MockReply::from_request(|req| {
        let token = req
            .header("x-amz-security-token")
            .unwrap_or_default()
            .to_owned();
        MockReply::stream(
            "application/vnd.amazon.eventstream",
            SseScript::new()
                .aws_event("messageStart", &json!({"role": "assistant"}))
                .aws_event(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": 0, "delta": {"text": format!("token {token}")}}),
                )
                .aws_exception("modelStreamErrorException", &format!("failed for {token}")),
        )
    }));

    let (status, text) = probe
        .send("/v1/messages", messages_body("@an/claude-x"), None)
        .await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = probe
        .send(
            "/v1/messages",
            streamed(messages_body("@an/claude-x")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("key [REDACTED]"), "{text}");
    assert!(text.contains("overloaded for [REDACTED]"), "{text}");
    for (model, expected) in [
        ("@an/claude-x", 500),
        ("@az/deployment", 401),
        ("@ge/gemini-2.5-flash", 400),
        ("@be/anthropic.claude-x", 403),
        ("@be/anthropic.claude-x", 200),
    ] {
        let (status, text) = probe
            .send("/v1/chat/completions", chat(model, "x"), None)
            .await;
        assert_eq!(status, expected, "{model}: {text}");
    }
    let (status, text) = probe
        .send(
            "/v1/chat/completions",
            streamed(chat("@be/anthropic.claude-x", "y")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("token [REDACTED]"), "{text}");

    // Each upstream was really sent its credentials, and echoed them.
    let requests = probe.upstream.requests();
    assert_eq!(requests.len(), 8);
    assert_eq!(requests[0].header("x-api-key"), Some(AN_KEY));
    assert_eq!(requests[3].header("api-key"), Some(AZ_KEY));
    assert_eq!(requests[4].header("x-goog-api-key"), Some(GE_KEY));
    assert_eq!(requests[5].header("x-amz-security-token"), Some(BE_TOKEN));
    assert!(
        requests[5]
            .header("authorization")
            .unwrap()
            .contains(BE_AKID)
    );
    probe.assert_nothing_leaked().await;
}

#[tokio::test]
async fn every_attempt_of_a_fallback_is_redacted() {
    let mut probe = Probe::start().await;
    let up = &probe.upstream;
    let config = json!({"strategy": {"mode": "fallback", "on_status_codes": [500, 401]},
        "targets": [{"provider": "@oa"}, {"provider": "@oa2"}]});

    // Whole answers: the first target's header page, the second's JSON echo.
    up.enqueue(MockReply::echo_headers_text(500));
    up.enqueue(MockReply::echo_headers_error(401));
    // Streams: the first target fails with an echo, the second streams its key.
    up.enqueue(MockReply::echo_headers_error(500));
    up.enqueue(MockReply::from_request(|req| {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        MockReply::sse(SseScript::chat_text(&[&format!("hello {auth}")]))
    }));

    let (status, text) = probe
        .send("/v1/chat/completions", chat("gpt-x", "a"), Some(&config))
        .await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = probe
        .send(
            "/v1/chat/completions",
            streamed(chat("gpt-x", "b")),
            Some(&config),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("hello Bearer [REDACTED]"), "{text}");

    // Both attempts of the first request are in its record, both redacted.
    let id = probe.answers[0].0.clone();
    let detail: Value = serde_json::from_str(&probe.log_detail(&id).await).unwrap();
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{detail}");
    for attempt in attempts {
        let error = attempt["error"].as_str().unwrap();
        assert!(error.contains("[REDACTED]"), "{detail}");
    }
    assert_eq!(probe.upstream.hits(), 4);
    probe.assert_nothing_leaked().await;
}

#[tokio::test]
async fn a_refused_connection_hides_the_address_from_the_client_but_logs_it() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "providers:\n  - slug: dead\n    kind: openai\n    api_key: {OA2_KEY}\n    base_url: http://{dead}/internal/v1\nkeys:\n  - name: service\n    key: {SERVICE_KEY}\n"
    );
    let mut probe = Probe::start_with(upstream, Some(catalog)).await;
    let port = dead.port().to_string();
    for body in [
        chat("@dead/m", "x"),
        streamed(chat("@dead/m", "y")),
        messages_body("@dead/m"),
    ] {
        let path = if body.get("max_tokens").is_some() {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        let (status, text) = probe.send(path, body, None).await;
        assert_eq!(status, 502, "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(text.contains("@dead"), "{text}");
        for address in [port.as_str(), "127.0.0.1", "/internal/v1"] {
            assert!(
                !text.contains(address),
                "the client learns {address}: {text}"
            );
        }
    }
    for (id, _) in &probe.answers {
        let detail: Value = serde_json::from_str(&probe.log_detail(id).await).unwrap();
        assert_eq!(detail["error_code"], "upstream_unreachable", "{detail}");
        let error = detail["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("http://{dead}/internal/v1")),
            "the log keeps the address: {detail}"
        );
        assert!(
            detail["attempts"][0]["error"]
                .as_str()
                .unwrap()
                .contains(&port),
            "{detail}"
        );
    }
}

/// Every provider secret of these tests, and of the shared catalogs, carries the marker
/// scripts/grep-secrets.sh looks for in the suite's output.
#[tokio::test]
async fn the_provider_test_secrets_carry_the_marker() {
    let upstream = MockUpstream::start().await;
    let every_kind = crate::support::every_kind_providers(&upstream);
    let mut secrets: Vec<&str> = ALL_SECRETS.to_vec();
    secrets.push(crate::support::PROVIDER_KEY);
    for line in every_kind.lines() {
        if let Some((field, value)) = line.trim().split_once(": ")
            && (field.contains("key") || field.contains("secret"))
        {
            secrets.push(value.trim());
        }
    }
    assert!(secrets.len() >= 15, "{secrets:?}");
    for secret in secrets {
        assert!(
            secret
                .to_ascii_lowercase()
                .contains(portico_testkit::TEST_SECRET_MARKER),
            "{secret}"
        );
    }
}
