//! The Gemini adapter end to end: the real binary with `kind: gemini` providers pointed at the
//! mock upstream, which answers in Gemini's dialect on Gemini's paths (AI Studio and Vertex
//! AI). Clients: the OpenAI Python SDK, the recorded OpenClaw turns, plain HTTP.

use portico_testkit::sse::{collect_chat_stream, parse_sse_data};
use portico_testkit::{MockReply, MockUpstream, RecordedRequest, SseScript};
use serde_json::{Value, json};

use crate::support::{
    Gateway, OPENCLAW_KEY, SERVICE_KEY, openclaw_fixture, replay, run_every_openai_sdk_check,
};

/// The AI Studio key the catalog gives `@gemini`.
const GEMINI_KEY: &str = "gemini-ptsecret-upstream-key-3f9a";
/// The access token the catalog gives `@vertex`.
const VERTEX_TOKEN: &str = "ya29.ptsecret-vertex-access-token";
/// The placeholder Gemini documents for a function call whose signature is lost.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

fn catalog(upstream: &MockUpstream) -> String {
    let base = format!("http://{}", upstream.addr());
    format!(
        r#"
providers:
  - slug: gemini
    kind: gemini
    api_key: {GEMINI_KEY}
    base_url: {base}
    models: [gemini-2.5-flash, gemini-3-flash-preview, gemini-embedding-001]
  - slug: vertex
    kind: gemini
    api_key: {VERTEX_TOKEN}
    base_url: {base}
    vertex_project_id: my-project
    vertex_region: us-central1
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: openclaw
    key: {OPENCLAW_KEY}
"#
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    Gateway::start_with(upstream, &catalog).await
}

/// Every request reached Gemini with the catalog's key, and nothing of the gateway's.
fn assert_gemini_credentials(sent: &RecordedRequest) {
    assert_eq!(sent.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert_eq!(sent.header("authorization"), None);
    assert!(
        sent.headers
            .keys()
            .all(|h| !h.as_str().starts_with("x-portkey"))
    );
    assert!(!sent.body_text().contains(SERVICE_KEY));
    assert!(!sent.body_text().contains(OPENCLAW_KEY));
}

#[tokio::test]
async fn openai_python_sdk_against_gemini() {
    let gw = start().await;
    run_every_openai_sdk_check(&gw, "@gemini/gemini-2.5-flash").await;
    let paths: Vec<(String, Option<String>)> = gw
        .upstream
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.query.clone()))
        .collect();
    let model = "/v1beta/models/gemini-2.5-flash";
    assert_eq!(
        paths,
        [
            (format!("{model}:generateContent"), None),
            (
                format!("{model}:streamGenerateContent"),
                Some("alt=sse".to_owned())
            ),
            (
                format!("{model}:streamGenerateContent"),
                Some("alt=sse".to_owned())
            ),
            (format!("{model}:generateContent"), None),
            (format!("{model}:batchEmbedContents"), None),
        ]
    );
    gw.upstream
        .requests()
        .iter()
        .for_each(assert_gemini_credentials);
    let tool_stream = &gw.upstream.requests()[2];
    assert_eq!(
        tool_stream.json_body()["tools"][0]["functionDeclarations"][0]["name"],
        "read"
    );
}

/// An OpenClaw turn, routed to Gemini 3 (the model that validates thought signatures).
fn fixture(name: &str) -> Value {
    let mut recorded = openclaw_fixture(name);
    recorded["body_json"]["model"] = json!("@gemini/gemini-3-flash-preview");
    recorded
}

/// Gemini's streamed answer to turn 1: a sentence, then the `read` call with a signature.
fn gemini_tool_call_stream(signature: &str) -> SseScript {
    let chunk = |parts: Value, last: bool| {
        let mut c = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                           "modelVersion": "gemini-3-flash-preview", "responseId": "oc-turn-1"});
        if last {
            c["candidates"][0]["finishReason"] = json!("STOP");
            c["usageMetadata"] = json!({"promptTokenCount": 9100, "candidatesTokenCount": 21,
                                        "thoughtsTokenCount": 40, "totalTokenCount": 9161});
        }
        format!("data: {c}\r\n\r\n")
    };
    SseScript::new()
        .bytes(chunk(json!([{"text": "Reading the file."}]), false))
        .bytes(chunk(
            json!([{"functionCall": {"name": "read", "args": {"path": "hello.txt"}}, "thoughtSignature": signature}]),
            true,
        ))
}

/// Turn 2 with the assistant's call id (and the tool result's) replaced by `id`.
fn turn2_with_id(id: &str) -> Value {
    let mut turn2 = fixture("turn2-tool-result-request.json");
    for message in turn2["body_json"]["messages"].as_array_mut().unwrap() {
        if let Some(calls) = message.get_mut("tool_calls") {
            calls[0]["id"] = json!(id);
        }
        if message.get("tool_call_id").is_some() {
            message["tool_call_id"] = json!(id);
        }
    }
    turn2
}

#[tokio::test]
async fn openclaw_tool_round_trip_through_gemini() {
    let gw = start().await;
    let signature = "Q2lRQmNzamFmQjBtK1kvOXF6";

    // Turn 1: the 26k-character system prompt and 11 tools; Gemini answers with a call.
    let turn1 = fixture("turn1-request.json");
    gw.upstream
        .enqueue(MockReply::sse(gemini_tool_call_stream(signature)));
    let resp = replay(&gw, &turn1).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@gemini");
    let text = resp.text().await.unwrap();
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.role.as_deref(), Some("assistant"));
    assert_eq!(chat.content, "Reading the file.");
    assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(chat.tool_calls.len(), 1);
    assert_eq!(chat.tool_calls[0].name, "read");
    assert_eq!(chat.tool_calls[0].arguments, r#"{"path":"hello.txt"}"#);
    let usage = chat.usage.expect("OpenClaw asked for usage");
    assert_eq!(usage["prompt_tokens"], 9100);
    assert_eq!(usage["completion_tokens"], 61);
    assert!(chat.done);
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-3-flash-preview:streamGenerateContent"
    );
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
    assert_gemini_credentials(&sent);
    let body = sent.json_body();
    let system = turn1["body_json"]["messages"][0]["content"]
        .as_str()
        .unwrap();
    assert!(system.len() > 25_000);
    assert_eq!(
        body["systemInstruction"]["parts"],
        json!([{"text": system}])
    );
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 8192);
    assert_eq!(
        body["tools"][0]["functionDeclarations"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
    assert_eq!(
        body["contents"].as_array().unwrap().len(),
        1,
        "one user turn"
    );

    // Turn 2 as recorded: OpenClaw's rewritten id `calla7c7...` (no signature in it). The
    // result is named `read` from the assistant's call; the signature placeholder is sent.
    let turn2 = fixture("turn2-tool-result-request.json");
    let resp = replay(&gw, &turn2).await;
    assert_eq!(resp.status(), 200);
    let chat = collect_chat_stream(&resp.text().await.unwrap()).unwrap();
    assert_eq!(chat.content, "tool result: SECRET-WORD: pineapple-42\n");
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    let sent = gw.upstream.last_request().unwrap();
    let contents = &sent.json_body()["contents"];
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"],
        json!([{"functionCall": {"name": "read", "args": {"path": "hello.txt"}}, "thoughtSignature": SKIP_SIGNATURE}])
    );
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(
        contents[2]["parts"][0],
        json!({"functionResponse": {"name": "read", "response": {"output": "SECRET-WORD: pineapple-42\n"}}})
    );
    assert!(
        contents[2]["parts"][1]["text"]
            .as_str()
            .unwrap()
            .contains("OPENCLAW_INTERNAL_CONTEXT")
    );
    assert_eq!(
        sent.json_body()["generationConfig"]["maxOutputTokens"],
        8192
    );

    // Turn 2 with the id the gateway really issued in turn 1, rewritten as OpenClaw does
    // (underscores removed): Gemini gets its own signature back on the call.
    let issued = collect_chat_stream(&text).unwrap().tool_calls[0]
        .id
        .clone()
        .unwrap();
    let rewritten = issued.replace('_', "");
    assert_ne!(issued, rewritten);
    let resp = replay(&gw, &turn2_with_id(&rewritten)).await;
    assert_eq!(resp.status(), 200);
    let sent = gw.upstream.last_request().unwrap();
    let call = &sent.json_body()["contents"][1]["parts"][0];
    assert_eq!(call["thoughtSignature"], signature);
    assert_eq!(call["functionCall"]["name"], "read");
    assert_eq!(
        sent.json_body()["contents"][2]["parts"][0]["functionResponse"]["name"],
        "read"
    );
    assert_eq!(gw.upstream.hits(), 3);
}

#[tokio::test]
async fn images_reach_gemini_inline_or_by_uri() {
    let gw = start().await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is in these images"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}}
            ]}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: what is in these images"
    );
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(
        sent.json_body()["contents"][0]["parts"],
        json!([
            {"text": "what is in these images"},
            {"inlineData": {"mimeType": "image/png", "data": png}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}}
        ])
    );
}

#[tokio::test]
async fn a_streamed_tool_call_in_openais_chunk_order() {
    let gw = start().await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@gemini/gemini-2.5-flash", "stream": true,
                   "messages": [{"role": "user", "content": "list the files"}],
                   "tools": [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}],
                   "tool_choice": "required"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = parse_sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!(deltas[1]["tool_calls"][0]["index"], 0);
    assert_eq!(deltas[1]["tool_calls"][0]["function"]["name"], "ls");
    assert!(
        deltas[1]["tool_calls"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("call_")
    );
    assert_eq!(deltas[2]["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chunks.len(),
        4,
        "no usage chunk: the client did not ask for it"
    );
    assert_eq!(
        gw.upstream.last_request().unwrap().json_body()["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
}

#[tokio::test]
async fn vertex_ai_from_the_catalog() {
    let gw = start().await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@vertex/gemini-2.5-pro", "messages": [{"role": "user", "content": "hello vertex"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@vertex");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello vertex"
    );
    let sent = gw.upstream.last_request().unwrap();
    assert_eq!(
        sent.path,
        "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"
    );
    assert_eq!(sent.bearer(), Some(VERTEX_TOKEN));
    assert_eq!(sent.header("x-goog-api-key"), None);
}

#[tokio::test]
async fn errors_reach_the_client_in_openais_shape() {
    let gw = start().await;
    let chat = |text: &str| json!({"model": "@gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": text}]});

    // Gemini's own error: status, message and retry-after kept.
    gw.upstream.enqueue(
        MockReply::json(429, json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}))
            .header("retry-after", "3"),
    );
    let resp = gw.post("/v1/chat/completions", chat("x")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Resource has been exhausted (e.g. check quota)."
    );
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");

    // What Gemini cannot take is refused before it is sent, naming the field.
    let before = gw.upstream.hits();
    let resp = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc123"}}]}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("file_id cannot be read by Gemini")
    );
    assert_eq!(body["error"]["param"], "messages[0].content[0]");

    // Legacy completions are not translated.
    let resp = gw
        .post(
            "/v1/completions",
            json!({"model": "@gemini/gemini-2.5-flash", "prompt": "x"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kind gemini"),
        "{body}"
    );
    assert_eq!(gw.upstream.hits(), before);
}
