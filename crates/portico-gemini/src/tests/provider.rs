//! The HTTP side against the mock upstream: URLs, credentials, streams, errors, embeddings.

use std::time::Duration;

use futures::StreamExt;
use portico_core::{Endpoint, JsonBody, Secret};
use portico_providers::http::{HttpOptions, build_client};
use portico_providers::settings::GeminiSettings;
use portico_providers::{
    Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse,
};
use portico_testkit::sse::collect_chat_stream;
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

use crate::GeminiProvider;
use crate::ids::signature_from_id;

const KEY: &str = "gemini-test-key-123";
/// The signature the testkit's Gemini dialect puts on function calls.
const MOCK_SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

fn provider(
    base_url: Option<&str>,
    settings: Value,
    key: Option<&str>,
) -> Result<GeminiProvider, String> {
    let client = build_client(HttpOptions::default()).unwrap();
    let secret = key.map(Secret::new);
    let settings = GeminiSettings::parse("gemini", &settings).map_err(|e| e.to_string())?;
    GeminiProvider::new(
        ProviderSetup {
            slug: "gemini",
            base_url,
            api_key: secret.as_ref(),
            client: &client,
        },
        &settings,
    )
    .map_err(|e| e.to_string())
}

fn mock_provider(upstream: &MockUpstream, settings: Value) -> GeminiProvider {
    provider(
        Some(&format!("http://{}", upstream.addr())),
        settings,
        Some(KEY),
    )
    .unwrap()
}

fn request(endpoint: Endpoint, body: Value) -> UpstreamRequest {
    UpstreamRequest {
        endpoint,
        model: body["model"]
            .as_str()
            .unwrap_or("gemini-2.5-flash")
            .to_owned(),
        stream: body["stream"] == json!(true),
        body: JsonBody::parse(body.to_string().into()).unwrap(),
    }
}

fn chat(text: &str, stream: bool) -> UpstreamRequest {
    request(
        Endpoint::ChatCompletions,
        json!({"model": "gemini-2.5-flash", "stream": stream, "messages": [{"role": "user", "content": text}]}),
    )
}

async fn complete(
    provider: &GeminiProvider,
    req: UpstreamRequest,
) -> (Value, Option<portico_core::Usage>) {
    match provider.send(req).await.unwrap() {
        UpstreamResponse::Complete { body, usage, .. } => {
            (serde_json::from_slice(&body).unwrap(), usage)
        }
        other => panic!("expected a complete answer, got {other:?}"),
    }
}

/// The stream's events as one SSE body, or the error that ended it.
async fn streamed(
    provider: &GeminiProvider,
    req: UpstreamRequest,
) -> Result<String, ProviderError> {
    let UpstreamResponse::Stream { mut events, .. } = provider.send(req).await? else {
        panic!("expected a stream");
    };
    let mut body = String::new();
    while let Some(event) = events.next().await {
        body.push_str(std::str::from_utf8(&event?.encode()).unwrap());
    }
    Ok(body)
}

#[tokio::test]
async fn ai_studio_chat_uses_the_api_key_header() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(&upstream, json!({}));
    let (body, usage) = complete(&gemini, chat("hello there", false)).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(usage.unwrap().prompt_tokens, 2);
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json_body()["contents"][0],
        json!({"role": "user", "parts": [{"text": "hello there"}]})
    );
}

#[tokio::test]
async fn streams_use_alt_sse_and_end_with_usage() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(&upstream, json!({}));
    let body = streamed(&gemini, chat("stream this please", true))
        .await
        .unwrap();
    let chat = collect_chat_stream(&body).unwrap();
    assert_eq!(chat.content, "echo: stream this please");
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    assert_eq!(chat.usage.unwrap()["completion_tokens"], 4);
    assert!(body.ends_with("data: [DONE]\n\n"));
    let sent = upstream.last_request().unwrap();
    assert_eq!(
        sent.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
}

#[tokio::test]
async fn a_streamed_tool_call_carries_its_signature_in_the_id() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(&upstream, json!({}));
    let req = request(
        Endpoint::ChatCompletions,
        json!({"model": "gemini-3-flash-preview", "stream": true,
               "messages": [{"role": "user", "content": "read hello.txt"}],
               "tools": [{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]}),
    );
    let chat = collect_chat_stream(&streamed(&gemini, req).await.unwrap()).unwrap();
    assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(chat.tool_calls.len(), 1);
    assert_eq!(chat.tool_calls[0].name, "read");
    assert_eq!(chat.tool_calls[0].arguments, "{}");
    let id = chat.tool_calls[0].id.clone().unwrap();
    assert_eq!(signature_from_id(&id).as_deref(), Some(MOCK_SIGNATURE));
}

#[tokio::test]
async fn a_json_array_stream_is_read_too() {
    let upstream = MockUpstream::start().await;
    let chunk = |text: &str, finish: Option<&str>| {
        let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}}], "responseId": "arr"});
        if let Some(f) = finish {
            c["candidates"][0]["finishReason"] = json!(f);
            c["usageMetadata"] = json!({"promptTokenCount": 2, "candidatesTokenCount": 2});
        }
        c
    };
    upstream.enqueue(MockReply::json(
        200,
        json!([chunk("a ", None), chunk("b", Some("STOP"))]),
    ));
    let gemini = mock_provider(&upstream, json!({}));
    let chat = collect_chat_stream(&streamed(&gemini, chat("x", true)).await.unwrap()).unwrap();
    assert_eq!(chat.content, "a b");
    assert_eq!(chat.id.as_deref(), Some("chatcmpl-arr"));
}

#[tokio::test]
async fn a_stream_cut_before_its_last_chunk_is_an_error() {
    let upstream = MockUpstream::start().await;
    let first =
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}}]});
    upstream.enqueue(MockReply::sse(
        SseScript::new()
            .bytes(format!("data: {first}\r\n\r\n"))
            .abort(),
    ));
    let gemini = mock_provider(&upstream, json!({}));
    let err = streamed(&gemini, chat("x", true)).await.unwrap_err();
    assert!(matches!(err, ProviderError::StreamBroken(_)), "{err:?}");
    upstream.enqueue(MockReply::sse(
        SseScript::new().bytes(format!("data: {first}\r\n\r\n")),
    ));
    let err = streamed(&gemini, chat("x", true)).await.unwrap_err();
    assert!(err.to_string().contains("no finishReason"), "{err}");
}

#[tokio::test]
async fn vertex_ai_uses_its_path_and_a_bearer_token() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(
        &upstream,
        json!({"vertex_project_id": "my-project", "vertex_region": "europe-west4"}),
    );
    let (body, _) = complete(&gemini, chat("hi", false)).await;
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi");
    let sent = upstream.last_request().unwrap();
    assert_eq!(
        sent.path,
        "/v1/projects/my-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(sent.bearer(), Some(KEY));
    assert_eq!(sent.header("x-goog-api-key"), None);
}

#[test]
fn default_urls() {
    let studio = provider(None, json!({}), Some(KEY)).unwrap();
    assert_eq!(
        studio
            .dialect()
            .url("models/gemini-2.5-flash", "generateContent")
            .unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        studio
            .dialect()
            .url("tunedModels/my-tune", "generateContent")
            .unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune:generateContent"
    );
    let regional = provider(
        None,
        json!({"vertex_project_id": "p", "vertex_region": "us-central1"}),
        Some(KEY),
    )
    .unwrap();
    assert_eq!(
        regional
            .dialect()
            .url("gemini-2.5-pro", "streamGenerateContent")
            .unwrap(),
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent"
    );
    let global = provider(
        None,
        json!({"vertex_project_id": "p", "vertex_region": "global"}),
        Some(KEY),
    )
    .unwrap();
    assert!(global.dialect().url("text-embedding-004@001", "predict").unwrap().starts_with(
        "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/text-embedding-004@001:"
    ));
    for bad in ["../secrets", "gemini?x=1", "models/a/b", "tunedModels/", ""] {
        let err = studio.dialect().url(bad, "generateContent").unwrap_err();
        assert_eq!(err.status(), Some(400), "{bad}");
    }
}

#[test]
fn setup_errors_name_the_setting() {
    let err = provider(None, json!({"vertex_project_id": "p"}), Some(KEY)).unwrap_err();
    assert!(
        err.contains("@gemini") && err.contains("vertex_region"),
        "{err}"
    );
    let err = provider(None, json!({"vertex_region": "us-central1"}), Some(KEY)).unwrap_err();
    assert!(err.contains("vertex_project_id"), "{err}");
    let err = provider(None, json!({}), None).unwrap_err();
    assert!(err.contains("no api_key"), "{err}");
    let err = provider(
        None,
        json!({"vertex_project_id": "p/../x", "vertex_region": "r"}),
        Some(KEY),
    )
    .unwrap_err();
    assert!(err.contains("vertex_project_id must be"), "{err}");
    assert!(!err.contains(KEY));
}

#[tokio::test]
async fn google_errors_keep_their_message_status_and_retry_after() {
    let upstream = MockUpstream::start().await;
    upstream.enqueue(
        MockReply::json(429, json!({"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com.", "status": "RESOURCE_EXHAUSTED"}}))
            .header("retry-after", "7"),
    );
    let gemini = mock_provider(&upstream, json!({}));
    let err = gemini.send(chat("x", false)).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    match err {
        ProviderError::Status { message, code, .. } => {
            assert_eq!(message, "Quota exceeded for aiplatform.googleapis.com.");
            assert_eq!(code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        }
        other => panic!("{other:?}"),
    }
    // A refused request never reaches Gemini.
    let before = upstream.hits();
    let bad = request(
        Endpoint::ChatCompletions,
        json!({"model": "gemini-2.5-flash", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}),
    );
    assert_eq!(gemini.send(bad).await.unwrap_err().status(), Some(400));
    assert_eq!(upstream.hits(), before);
}

#[tokio::test]
async fn legacy_completions_are_unsupported() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(&upstream, json!({}));
    let req = request(
        Endpoint::Completions,
        json!({"model": "gemini-2.5-flash", "prompt": "x"}),
    );
    assert!(matches!(
        gemini.send(req).await.unwrap_err(),
        ProviderError::Unsupported { kind: "gemini", .. }
    ));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn embeddings_are_batched_by_100() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(&upstream, json!({}));
    let inputs: Vec<String> = (0..150).map(|i| format!("text {i}")).collect();
    let req = request(
        Endpoint::Embeddings,
        json!({"model": "gemini-embedding-001", "input": inputs, "dimensions": 4, "task_type": "SEMANTIC_SIMILARITY"}),
    );
    let (body, usage) = complete(&gemini, req).await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 150);
    assert!(
        data.iter()
            .enumerate()
            .all(|(i, d)| d["index"] == i && d["embedding"].as_array().unwrap().len() == 4)
    );
    assert_eq!(
        data[120]["embedding"],
        json!(portico_testkit::mock_embedding("text 120", 4))
    );
    assert_eq!(usage, None, "AI Studio reports no embedding usage");
    let sent = upstream.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        sent[0].json_body()["requests"].as_array().unwrap().len(),
        100
    );
    assert_eq!(
        sent[1].json_body()["requests"][0],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "text 100"}]},
               "taskType": "SEMANTIC_SIMILARITY", "outputDimensionality": 4})
    );
}

#[tokio::test]
async fn vertex_embeddings_use_predict_with_token_counts() {
    let upstream = MockUpstream::start().await;
    let gemini = mock_provider(
        &upstream,
        json!({"vertex_project_id": "p", "vertex_region": "us-central1"}),
    );
    let req = request(
        Endpoint::Embeddings,
        json!({"model": "gemini-embedding-001", "input": ["one two", "three", "four five six"], "encoding_format": "base64"}),
    );
    let (body, usage) = complete(&gemini, req).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert!(body["data"][0]["embedding"].is_string());
    assert_eq!(usage.unwrap().prompt_tokens, 6);
    assert_eq!(body["usage"]["prompt_tokens"], 6);
    // gemini-embedding models take one input per Vertex AI call.
    assert_eq!(upstream.hits(), 3);
    assert!(
        upstream
            .last_request()
            .unwrap()
            .path
            .ends_with("/publishers/google/models/gemini-embedding-001:predict")
    );
}
