//! AWS Bedrock (`kind: bedrock`) behind the OpenAI API, through the real binary: the OpenAI
//! Python SDK as the client, the recorded OpenClaw turns, SigV4 on every upstream request,
//! and Bedrock's errors passed on.

use portico_testkit::sse::collect_chat_stream;
use portico_testkit::{MockReply, MockUpstream, RecordedRequest, SseScript};
use serde_json::{Value, json};

use crate::support::{
    Gateway, OPENCLAW_KEY, SERVICE_KEY, chat, openclaw_fixture, replay, run_python_checks,
};

/// The fake AWS access key id the catalog gives the Bedrock providers.
const ACCESS_KEY_ID: &str = "AKIDPORTICOTEST";
/// The fake AWS secret: it signs, and must never be sent.
const SECRET_KEY: &str = "portico-ptsecret-access-key-0123";
/// The region of the catalog's Bedrock providers.
const REGION: &str = "eu-west-3";
/// The chat model of the `@bedrock` allow-list (an inference profile: `:` in the path).
const CHAT_MODEL: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
/// The embedding model of the allow-list.
const EMBED_MODEL: &str = "amazon.titan-embed-text-v2:0";
/// The content type of Bedrock's streamed answers.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// `@bedrock` (an allow-list of one chat and one embedding model) and `@anthropic` (any
/// model, the slug the OpenClaw recording addresses), both kind bedrock on the mock upstream.
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"
providers:
  - slug: bedrock
    kind: bedrock
    base_url: http://{addr}
    aws_region: {REGION}
    aws_access_key_id: {ACCESS_KEY_ID}
    aws_secret_access_key: {SECRET_KEY}
    models: ["{CHAT_MODEL}", "{EMBED_MODEL}"]
  - slug: anthropic
    kind: bedrock
    base_url: http://{addr}
    aws_region: {REGION}
    aws_access_key_id: {ACCESS_KEY_ID}
    aws_secret_access_key: {SECRET_KEY}
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: openclaw
    key: {OPENCLAW_KEY}
"#,
        addr = upstream.addr()
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    Gateway::start_with(upstream, &catalog).await
}

/// Asserts a request reached Bedrock SigV4-signed with the catalog's key, for `operation` on
/// the URL-encoded `model`, and carried nothing of the gateway's.
#[track_caller]
fn assert_signed(req: &RecordedRequest, model_path: &str, operation: &str) {
    assert_eq!(req.path, format!("/model/{model_path}/{operation}"));
    let date = req.header("x-amz-date").expect("x-amz-date is sent");
    assert_eq!(date.len(), 16, "{date}");
    let auth = req.header("authorization").unwrap();
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/{REGION}/bedrock/aws4_request, SignedHeaders=",
        &date[..8]
    );
    assert!(auth.starts_with(&prefix), "{auth}");
    let signed = auth[prefix.len()..].split(',').next().unwrap();
    for header in ["host", "x-amz-date", "content-type"] {
        assert!(signed.split(';').any(|h| h == header), "{signed}");
    }
    assert!(auth.contains(", Signature="), "{auth}");
    let everything = format!("{:?} {}", req.headers, req.body_text());
    assert!(!everything.contains(SECRET_KEY), "the secret is never sent");
    assert!(!everything.contains(SERVICE_KEY) && !everything.contains(OPENCLAW_KEY));
    assert!(
        req.headers
            .keys()
            .all(|h| !h.as_str().starts_with("x-portkey"))
    );
}

#[tokio::test]
async fn openai_python_sdk_against_a_bedrock_provider() {
    let gw = start().await;
    let model_path = CHAT_MODEL.replace(':', "%3A");
    let env = |model: &str| {
        [
            ("PORTICO_BASE_URL", gw.url("/v1")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", format!("@bedrock/{model}")),
        ]
    };
    let chat_checks = [
        "chat",
        "stream",
        "stream_tool_call",
        "image",
        "models",
        "401",
        "404",
    ];
    let passed = run_python_checks(
        "openai",
        "openai_sdk_e2e.py",
        &env(CHAT_MODEL),
        &chat_checks,
    )
    .await;
    assert_eq!(passed, chat_checks);
    // Embeddings need an embedding model; the SDK asks for base64 vectors.
    let passed = run_python_checks(
        "openai",
        "openai_sdk_e2e.py",
        &env(EMBED_MODEL),
        &["embeddings"],
    )
    .await;
    assert_eq!(passed, ["embeddings"]);

    let requests = gw.upstream.requests();
    assert_eq!(
        requests.len(),
        6,
        "chat, stream, tool stream, image, two embeddings"
    );
    assert_signed(&requests[0], &model_path, "converse");
    assert_signed(&requests[1], &model_path, "converse-stream");
    assert_signed(&requests[2], &model_path, "converse-stream");
    assert_signed(&requests[3], &model_path, "converse");
    let image = &requests[3].json_body()["messages"][0]["content"][1]["image"];
    assert_eq!(image["format"], "png", "the data URL became an image block");
    let tool = &requests[2].json_body()["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(tool["name"], "read");
    assert!(tool["inputSchema"]["json"].is_object());
    for req in &requests[4..] {
        assert_signed(req, "amazon.titan-embed-text-v2%3A0", "invoke");
    }
    let texts: Vec<&Value> = requests[4..]
        .iter()
        .map(|r| &r.json_body()["inputText"])
        .collect();
    assert!(texts.contains(&&json!("alpha")) && texts.contains(&&json!("beta")));
}

/// Anthropic's SDK on `/v1/messages`, translated by the gateway to chat completions and by
/// the adapter to Converse: a route other gateways have broken.
#[tokio::test]
async fn anthropic_python_sdk_on_messages_against_a_bedrock_provider() {
    let gw = start().await;
    let checks = ["message", "stream", "tool_round_trip", "401", "404"];
    let passed = run_python_checks(
        "anthropic",
        "anthropic_sdk_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", format!("@bedrock/{CHAT_MODEL}")),
        ],
        &checks,
    )
    .await;
    assert_eq!(passed, checks);
    let model_path = CHAT_MODEL.replace(':', "%3A");
    let requests = gw.upstream.requests();
    assert!(!requests.is_empty());
    for req in &requests {
        let operation = if req.path.ends_with("/converse-stream") {
            "converse-stream"
        } else {
            "converse"
        };
        assert_signed(req, &model_path, operation);
        assert_eq!(req.json_body()["inferenceConfig"]["maxTokens"], 256);
    }
    // The tool result went back under the id of the streamed toolUse.
    let last = requests.last().unwrap().json_body();
    let call_id = &last["messages"][1]["content"][0]["toolUse"]["toolUseId"];
    assert!(call_id.is_string(), "{last}");
    assert_eq!(
        last["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        *call_id
    );
}

/// Bedrock's streamed tool call, as binary frames: the input JSON arrives in pieces.
fn tool_call_stream() -> MockReply {
    let delta =
        |input: &str| json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": input}}});
    let script = SseScript::new()
        .aws_event("messageStart", &json!({"role": "assistant"}))
        .aws_event(
            "contentBlockStart",
            &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_f1d98e2c41b04f0c", "name": "read"}}}),
        )
        .aws_event("contentBlockDelta", &delta("{\"pa"))
        .aws_event("contentBlockDelta", &delta("th\": \"hello.txt\"}"))
        .aws_event("contentBlockStop", &json!({"contentBlockIndex": 0}))
        .aws_event("messageStop", &json!({"stopReason": "tool_use"}))
        .aws_event(
            "metadata",
            &json!({"usage": {"inputTokens": 100, "outputTokens": 21, "totalTokens": 9121,
                               "cacheReadInputTokens": 9000, "cacheWriteInputTokens": 0},
                    "metrics": {"latencyMs": 900}}),
        );
    MockReply::stream(EVENT_STREAM, script)
}

#[tokio::test]
async fn openclaw_tool_round_trip_through_bedrock() {
    let gw = start().await;

    // Turn 1: a 26,000-character system prompt, 11 tools, a streamed tool call back.
    let turn1 = openclaw_fixture("turn1-request.json");
    gw.upstream.enqueue(tool_call_stream());
    let resp = replay(&gw, &turn1).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@anthropic");
    let text = resp.text().await.unwrap();
    let streamed = collect_chat_stream(&text).unwrap();
    assert_eq!(streamed.role.as_deref(), Some("assistant"));
    assert_eq!(streamed.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(streamed.tool_calls.len(), 1);
    assert_eq!(streamed.tool_calls[0].name, "read");
    assert_eq!(
        streamed.tool_calls[0].id.as_deref(),
        Some("tooluse_f1d98e2c41b04f0c")
    );
    assert_eq!(streamed.tool_calls[0].arguments, r#"{"path": "hello.txt"}"#);
    let usage = streamed.usage.expect("OpenClaw asked for usage");
    assert_eq!(usage["prompt_tokens"], 9100);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 9000);
    assert!(streamed.done);

    let sent = gw.upstream.last_request().unwrap();
    assert_signed(&sent, "claude-sonnet-4-5", "converse-stream");
    let body = sent.json_body();
    let system = body["system"][0]["text"].as_str().unwrap();
    assert!(system.len() > 25_000, "the system prompt moved to `system`");
    assert!(
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] == "user" || m["role"] == "assistant")
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 8192);
    assert_eq!(body["toolConfig"]["tools"].as_array().unwrap().len(), 11);
    assert_eq!(body["toolConfig"]["toolChoice"], json!({"auto": {}}));
    assert!(body.get("model").is_none() && body.get("stream").is_none());

    // Turn 2: OpenClaw sends the result back under a rewritten id (`call_...` → `call...`);
    // the gateway passes it on as a toolResult, merged with the user text that follows.
    let turn2 = openclaw_fixture("turn2-tool-result-request.json");
    let tool_msg = turn2["body_json"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    let rewritten = tool_msg["tool_call_id"].as_str().unwrap();
    let resp = replay(&gw, &turn2).await;
    assert_eq!(resp.status(), 200);
    let streamed = collect_chat_stream(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        streamed.content.trim_end(),
        "tool result: SECRET-WORD: pineapple-42"
    );
    assert_eq!(streamed.finish_reason.as_deref(), Some("stop"));
    assert!(streamed.usage.is_some());

    let sent = gw.upstream.last_request().unwrap();
    assert_signed(&sent, "claude-sonnet-4-5", "converse-stream");
    let messages = sent.json_body()["messages"].as_array().unwrap().clone();
    let assistant = messages.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(
        assistant["content"][0]["toolUse"],
        json!({"toolUseId": rewritten, "name": "read", "input": {"path": "hello.txt"}})
    );
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["toolResult"]["toolUseId"], rewritten);
    assert_eq!(
        last["content"][0]["toolResult"]["content"][0]["text"],
        "SECRET-WORD: pineapple-42\n"
    );
    assert!(
        last["content"][1]["text"]
            .as_str()
            .unwrap()
            .contains("OPENCLAW_INTERNAL_CONTEXT"),
        "the user text after the result joins the same user turn"
    );
    for pair in messages.windows(2) {
        assert_ne!(pair[0]["role"], pair[1]["role"], "turns alternate");
    }
    assert_eq!(gw.upstream.hits(), 2);
}

#[tokio::test]
async fn bedrock_errors_reach_the_client_with_their_status_and_message() {
    let gw = start().await;
    gw.upstream.enqueue(
        MockReply::json(
            400,
            json!({"message": "The provided model identifier is invalid."}),
        )
        .header("x-amzn-ErrorType", "ValidationException"),
    );
    let resp = gw
        .post(
            "/v1/chat/completions",
            chat(&format!("@bedrock/{CHAT_MODEL}"), "hi"),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "The provided model identifier is invalid."
    );
    assert_eq!(body["error"]["code"], "ValidationException");

    // A stream throttled before its first event is a real 429, not a broken 200.
    gw.upstream.enqueue(MockReply::stream(
        EVENT_STREAM,
        SseScript::new().aws_exception("throttlingException", "Too many requests"),
    ));
    let mut body = chat(&format!("@bedrock/{CHAT_MODEL}"), "hi");
    body["stream"] = json!(true);
    let resp = gw.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Too many requests");

    // An image URL Bedrock cannot fetch: refused with the fix, no upstream call.
    let hits = gw.upstream.hits();
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": format!("@bedrock/{CHAT_MODEL}"), "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data:image/png;base64"),
        "{body}"
    );
    assert_eq!(gw.upstream.hits(), hits);
}
