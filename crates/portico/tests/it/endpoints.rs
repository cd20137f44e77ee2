//! OpenAI's pass-through operations through the real binary: moderations, image generation,
//! audio transcription (a multipart upload, forwarded intact but for `model`) and speech (the
//! upstream's audio bytes, exactly), each logged; refused with a 400 for a provider kind that
//! has none; failed over by a routing config; and a wrong key refused before an upload is
//! read.

use std::time::Duration;

use portico_testkit::MockReply;
use portico_testkit::{MockUpstream, RecordedRequest};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{
    Gateway, SERVICE_KEY, admin_get, every_kind_providers, run_python_checks, wait_for_logs,
};

/// The upstream key of `@oa` in [`every_kind_providers`].
const OA_KEY: &str = "sk-ptsecret-kinds-openai-000";
/// The upstream key of `@az`.
const AZ_KEY: &str = "ptsecret-kinds-azure-key-000";
/// A gateway key allowed one request a minute.
const LIMITED_KEY: &str = "prt-test-limited-key-0123456789";

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "providers:{}keys:\n  - name: service\n    key: {SERVICE_KEY}\n  - name: limited\n    key: {LIMITED_KEY}\n    rate_limit: {{ requests_per_minute: 1 }}\n",
        every_kind_providers(&upstream)
    );
    Gateway::start_with(upstream, &catalog).await
}

/// Asserts the upstream got the provider's key and none of the gateway's headers.
fn assert_clean_headers(req: &RecordedRequest) {
    assert_eq!(req.bearer(), Some(OA_KEY), "{:?}", req.headers);
    for (name, _) in &req.headers {
        assert!(
            !name.as_str().starts_with("x-portkey-"),
            "the gateway header {name} reached the upstream"
        );
    }
    assert!(!format!("{:?}", req.headers).contains(SERVICE_KEY));
}

/// A log entry's detail (payloads included).
async fn log_detail(gw: &Gateway, trace: &str) -> Value {
    let found = wait_for_logs(&gw.portico, &format!("trace_id={trace}"), 1).await;
    let id = found[0]["id"].as_str().unwrap().to_owned();
    admin_get(&gw.portico, &format!("/admin/v1/logs/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn moderations_and_images_pass_through_with_the_providers_key() {
    let gw = start().await;
    let moderation = json!({"id": "modr-1", "model": "omni-moderation-latest",
        "results": [{"flagged": false, "categories": {"violence": false}}]});
    gw.upstream
        .enqueue_for("/v1/moderations", MockReply::json(200, moderation.clone()));
    let resp = gw
        .http
        .post(gw.url("/v1/moderations"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "ep-moderation")
        .header("x-portkey-metadata", r#"{"team":"safety"}"#)
        .json(&json!({"model": "@oa/omni-moderation-latest", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@oa");
    assert_eq!(resp.json::<Value>().await.unwrap(), moderation);
    let req = gw.upstream.last_request().unwrap();
    assert_eq!(req.path, "/v1/moderations");
    assert_eq!(
        req.json_body(),
        &json!({"model": "omni-moderation-latest", "input": "hello"})
    );
    assert_clean_headers(&req);

    let image = json!({"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}]});
    gw.upstream.enqueue_for(
        "/v1/images/generations",
        MockReply::json(200, image.clone()),
    );
    let resp = gw
        .http
        .post(gw.url("/v1/images/generations"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "ep-image")
        .json(
            &json!({"model": "@oa/gpt-image-1", "prompt": "a lighthouse",
            "n": 1, "size": "1024x1024", "response_format": "b64_json"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), image);
    let req = gw.upstream.last_request().unwrap();
    assert_eq!(req.path, "/v1/images/generations");
    assert_eq!(req.json_body()["model"], "gpt-image-1");
    assert_eq!(req.json_body()["response_format"], "b64_json");
    assert_eq!(req.json_body()["size"], "1024x1024");
    assert_clean_headers(&req);

    for (trace, endpoint, model) in [
        ("ep-moderation", "moderations", "omni-moderation-latest"),
        ("ep-image", "images.generations", "gpt-image-1"),
    ] {
        let entry = log_detail(&gw, trace).await;
        assert_eq!(entry["endpoint"], endpoint, "{entry}");
        assert_eq!(entry["provider"], "oa");
        assert_eq!(entry["model"], model);
        assert_eq!(entry["status"], 200);
        assert_eq!(entry["key_name"], "service");
    }
}

/// A multipart body with `fields` (name, value) and a file, under `boundary`.
fn form(boundary: &str, fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Binary "audio" with bytes a careless parser would trip on: CRLFs, `--`, NULs, non-UTF-8.
fn audio(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
    bytes[10..16].copy_from_slice(b"\r\n--b\r");
    bytes
}

#[tokio::test]
async fn a_transcription_upload_reaches_the_upstream_intact_but_for_model() {
    let gw = start().await;
    let boundary = "----porticoBoundary7MA4YWxk";
    let file = audio(300_000);
    let fields = [
        ("model", "@oa/whisper-1"),
        ("language", "en"),
        ("response_format", "srt"),
        ("temperature", "0.2"),
    ];
    let body = form(boundary, &fields, &file);
    let srt = "1\n00:00:00,000 --> 00:00:01,500\nhello there\n";
    gw.upstream.enqueue_for(
        "/v1/audio/transcriptions",
        MockReply::raw(200, "text/plain; charset=utf-8", srt),
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let resp = gw
        .http
        .post(gw.url("/v1/audio/transcriptions"))
        .bearer_auth(SERVICE_KEY)
        .header("content-type", &content_type)
        .header("x-portkey-trace-id", "ep-transcription")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.text().await.unwrap(), srt);

    let req = gw.upstream.last_request().unwrap();
    assert_eq!(req.path, "/v1/audio/transcriptions");
    assert_eq!(req.header("content-type"), Some(content_type.as_str()));
    let mut upstream_fields = fields;
    upstream_fields[0].1 = "whisper-1";
    assert!(
        req.body[..] == form(boundary, &upstream_fields, &file)[..],
        "the upload was not forwarded byte for byte (but for model)"
    );
    assert_clean_headers(&req);

    let entry = log_detail(&gw, "ep-transcription").await;
    assert_eq!(entry["endpoint"], "audio.transcriptions", "{entry}");
    assert_eq!(entry["provider"], "oa");
    assert_eq!(entry["model"], "whisper-1");
    assert_eq!(entry["status"], 200);
    // The log keeps the fields and the file's size, not the audio.
    assert_eq!(entry["request"]["language"], "en", "{entry}");
    assert_eq!(entry["request"]["_files"][0]["bytes"], 300_000);
    assert_eq!(entry["request"]["_files"][0]["filename"], "talk.wav");
    assert_eq!(entry["response"], srt);

    // Azure OpenAI: the deployment's URL, the `api-key` header.
    gw.upstream
        .enqueue(MockReply::json(200, json!({"text": "hello there"})));
    let resp = gw
        .http
        .post(gw.url("/v1/audio/transcriptions"))
        .bearer_auth(SERVICE_KEY)
        .header("content-type", &content_type)
        .body(form(boundary, &[("model", "@az/my-whisper")], &file))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.json::<Value>().await.unwrap()["text"], "hello there");
    let req = gw.upstream.last_request().unwrap();
    assert_eq!(
        req.path,
        "/openai/deployments/my-whisper/audio/transcriptions"
    );
    assert!(req.query.as_deref().unwrap().starts_with("api-version="));
    assert_eq!(req.header("api-key"), Some(AZ_KEY));
    assert_eq!(req.header("authorization"), None);
    assert!(req.body[..] == form(boundary, &[("model", "my-whisper")], &file)[..]);
}

#[tokio::test]
async fn speech_answers_with_the_upstreams_audio_bytes_exactly() {
    let gw = start().await;
    let mp3 = audio(200_000);
    gw.upstream.enqueue_for(
        "/v1/audio/speech",
        MockReply::raw(200, "audio/mpeg", mp3.clone()),
    );
    let resp = gw
        .http
        .post(gw.url("/v1/audio/speech"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "ep-speech")
        .json(
            &json!({"model": "@oa/tts-1", "input": "hello", "voice": "alloy",
            "response_format": "mp3"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    assert!(resp.headers().contains_key("x-portkey-request-id"));
    assert!(
        resp.bytes().await.unwrap()[..] == mp3[..],
        "the audio changed"
    );
    let req = gw.upstream.last_request().unwrap();
    assert_eq!(req.path, "/v1/audio/speech");
    assert_eq!(
        req.json_body(),
        &json!({"model": "tts-1", "input": "hello", "voice": "alloy", "response_format": "mp3"})
    );
    assert_clean_headers(&req);

    let entry = log_detail(&gw, "ep-speech").await;
    assert_eq!(entry["endpoint"], "audio.speech", "{entry}");
    assert_eq!(entry["provider"], "oa");
    assert_eq!(entry["model"], "tts-1");
    assert_eq!(entry["status"], 200);
    // The audio is logged as its type and size, not as megabytes of text.
    assert_eq!(
        entry["response"],
        json!({"_binary": {"content_type": "audio/mpeg", "bytes": 200_000}})
    );
    // The metrics count it under its endpoint.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = gw
            .http
            .get(gw.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.lines().any(|l| {
            l.starts_with("portico_requests_total{")
                && l.contains(r#"endpoint="audio.speech""#)
                && l.contains(r#"provider="oa""#)
                && l.contains(r#"status="200""#)
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audio.speech count:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_keys_rate_limit_applies_to_uploads() {
    let gw = start().await;
    let content_type = "multipart/form-data; boundary=b";
    let mut statuses = Vec::new();
    for _ in 0..2 {
        gw.upstream
            .enqueue(MockReply::json(200, json!({"text": "ok"})));
        let resp = gw
            .http
            .post(gw.url("/v1/audio/transcriptions"))
            .bearer_auth(LIMITED_KEY)
            .header("content-type", content_type)
            .body(form("b", &[("model", "@oa/whisper-1")], b"RIFF"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 429]);
    assert_eq!(gw.upstream.hits(), 1);
}

#[tokio::test]
async fn a_kind_without_the_endpoint_gets_a_400_that_says_where_to_send_it() {
    let gw = start().await;
    let cases = [
        ("/v1/audio/speech", "@an/claude-voice", "an", "anthropic"),
        ("/v1/moderations", "@ge/gemini-2.0-flash", "ge", "gemini"),
        ("/v1/images/generations", "@be/titan-image", "be", "bedrock"),
        ("/v1/moderations", "@az/moderation", "az", "azure-openai"),
    ];
    for (path, model, slug, kind) in cases {
        let resp = gw
            .post(
                path,
                json!({"model": model, "input": "x", "voice": "alloy", "prompt": "x"}),
            )
            .await;
        assert_eq!(resp.status(), 400, "{path} {model}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(body["error"]["code"], "unsupported_operation", "{body}");
        for part in [path, &format!("@{slug}"), kind, "OpenAI"] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
    }
    let content_type = "multipart/form-data; boundary=b";
    let resp = gw
        .http
        .post(gw.url("/v1/audio/transcriptions"))
        .bearer_auth(SERVICE_KEY)
        .header("content-type", content_type)
        .body(form("b", &[("model", "@an/whisper")], b"RIFF"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(gw.upstream.hits(), 0, "no upstream was called");

    let entries = wait_for_logs(&gw.portico, "status=400", 5).await;
    assert!(
        entries
            .iter()
            .any(|e| e["endpoint"] == "audio.speech" && e["provider"] == "an"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_fallback_config_moves_speech_to_an_openai_style_target() {
    let gw = start().await;
    let config = json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@an"}, {"provider": "@oa"}]});
    gw.upstream.enqueue_for(
        "/v1/audio/speech",
        MockReply::raw(200, "audio/wav", b"RIFF-wav-bytes".to_vec()),
    );
    let resp = gw
        .http
        .post(gw.url("/v1/audio/speech"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .header("x-portkey-trace-id", "ep-fallback")
        .json(&json!({"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "wav"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@oa");
    assert_eq!(
        resp.headers()["x-portkey-last-used-option-index"],
        "config.targets[1]"
    );
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    assert_eq!(&resp.bytes().await.unwrap()[..], b"RIFF-wav-bytes");

    // An upstream failure fails over too: a 503 from the first OpenAI-style target, then
    // Azure's deployment URL.
    let config = json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@oa"}, {"provider": "@az"}]});
    gw.upstream.enqueue_for(
        "/v1/images/generations",
        MockReply::error(503, "overloaded"),
    );
    gw.upstream
        .enqueue(MockReply::json(200, json!({"created": 2, "data": []})));
    let resp = gw
        .http
        .post(gw.url("/v1/images/generations"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .json(&json!({"model": "dall-e-3", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@az");
    assert_eq!(resp.json::<Value>().await.unwrap()["created"], 2);
    assert_eq!(
        gw.upstream.last_request().unwrap().path,
        "/openai/deployments/dall-e-3/images/generations"
    );

    let entry = log_detail(&gw, "ep-fallback").await;
    assert_eq!(entry["provider"], "oa", "{entry}");
    assert_eq!(entry["attempts"].as_array().unwrap().len(), 2, "{entry}");
}

#[tokio::test]
async fn a_wrong_key_gets_401_before_the_upload_is_read() {
    let gw = start().await;
    let mut stream = tokio::net::TcpStream::connect(gw.portico.addr())
        .await
        .unwrap();
    // A head announcing 10 MB that never arrive: a gateway that read the body first would
    // wait for them (until its body timeout), not answer at once.
    let head = "POST /v1/audio/transcriptions HTTP/1.1\r\nhost: portico\r\nauthorization: Bearer prt-wrong-key-000000000000\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: 10000000\r\n\r\n--b\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("no answer while the body was unsent")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("invalid_api_key"), "{text}");
    assert_eq!(gw.upstream.hits(), 0);
}

#[tokio::test]
async fn the_openai_python_sdk_calls_all_four_through_portico() {
    let gw = start().await;
    gw.upstream.enqueue_for(
        "/v1/moderations",
        MockReply::json(
            200,
            json!({"id": "modr-sdk", "model": "omni-moderation-latest",
            "results": [{"flagged": true, "categories": {}, "category_scores": {}}]}),
        ),
    );
    gw.upstream.enqueue_for(
        "/v1/images/generations",
        MockReply::json(
            200,
            json!({"created": 1, "data": [{"url": "https://img.example/1.png"}]}),
        ),
    );
    gw.upstream.enqueue_for(
        "/v1/audio/transcriptions",
        MockReply::json(200, json!({"text": "hello from the sdk"})),
    );
    gw.upstream.enqueue_for(
        "/v1/audio/speech",
        MockReply::raw(200, "audio/mpeg", b"ID3-sdk-audio".to_vec()),
    );
    let passed = run_python_checks(
        "openai",
        "openai_sdk_endpoints_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("/v1")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_PROVIDER", "@oa".to_owned()),
        ],
        &[],
    )
    .await;
    assert_eq!(
        passed,
        ["moderations", "images", "transcriptions", "speech"]
    );
    let requests = gw.upstream.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1/moderations",
            "/v1/images/generations",
            "/v1/audio/transcriptions",
            "/v1/audio/speech"
        ]
    );
    // The SDK's own upload, with the file's bytes, reached the upstream with `model` bare.
    let upload = &requests[2];
    assert!(
        upload
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let text = upload.body_text();
    assert!(
        text.contains("name=\"model\"\r\n\r\nwhisper-1\r\n"),
        "{text}"
    );
    assert!(text.contains("RIFF-sdk-audio-bytes"), "{text}");
    for request in &requests {
        assert_clean_headers(request);
    }
}

#[tokio::test]
async fn an_upload_over_the_body_limit_is_refused_with_413() {
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "providers:{}keys:\n  - name: service\n    key: {SERVICE_KEY}\n",
        every_kind_providers(&upstream)
    );
    let gw =
        Gateway::start_with_env(upstream, &catalog, &[("PORTICO_MAX_BODY_BYTES", "4096")]).await;
    let resp = gw
        .http
        .post(gw.url("/v1/audio/transcriptions"))
        .bearer_auth(SERVICE_KEY)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(form("b", &[("model", "@oa/whisper-1")], &audio(8192)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 4096 bytes"),
        "{body}"
    );
    assert_eq!(gw.upstream.hits(), 0);
}
