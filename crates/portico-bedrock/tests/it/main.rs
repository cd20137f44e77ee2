//! The Bedrock adapter over HTTP, against the testkit's mock upstream speaking Bedrock's
//! dialect (Converse, binary ConverseStream frames, InvokeModel).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a panic is how a test reports failure"
)]

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use portico_bedrock::BedrockProvider;
use portico_core::{Endpoint, JsonBody, Secret};
use portico_providers::settings::BedrockSettings;
use portico_providers::{
    Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse,
};
use portico_testkit::sse::{AssembledChat, collect_chat_stream};
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const MODEL_PATH: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";

fn provider(upstream: &MockUpstream, api_key: Option<&str>) -> BedrockProvider {
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let settings = json!({"aws_region": "eu-central-1"});
    let mut credentials = BTreeMap::new();
    if api_key.is_none() {
        credentials.insert("aws_access_key_id".to_owned(), Secret::new("AKIDTEST"));
        credentials.insert(
            "aws_secret_access_key".to_owned(),
            Secret::new("test-secret-key-never-sent"),
        );
        credentials.insert("aws_session_token".to_owned(), Secret::new("session-tok"));
    }
    let api_key = api_key.map(Secret::new);
    let base = format!("http://{}", upstream.addr());
    let settings = BedrockSettings::parse("bedrock-test", &settings, &credentials).unwrap();
    portico_bedrock::with_env(
        ProviderSetup {
            slug: "bedrock-test",
            base_url: Some(&base),
            api_key: api_key.as_ref(),
            client: &client,
        },
        &settings,
        |_| None,
    )
    .unwrap()
}

fn request(endpoint: Endpoint, model: &str, body: Value) -> UpstreamRequest {
    let stream = body["stream"] == json!(true);
    UpstreamRequest {
        endpoint,
        model: model.to_owned(),
        body: JsonBody::parse(Bytes::from(body.to_string())).unwrap(),
        stream,
    }
}

async fn complete(p: &BedrockProvider, req: UpstreamRequest) -> Value {
    match p.send(req).await.unwrap() {
        UpstreamResponse::Complete { status, body, .. } => {
            assert_eq!(status, 200);
            serde_json::from_slice(&body).unwrap()
        }
        other => panic!("expected a whole answer, got {other:?}"),
    }
}

/// The stream as SSE text, and the error that ended it, if any.
async fn stream(
    p: &BedrockProvider,
    req: UpstreamRequest,
) -> (AssembledChat, Option<ProviderError>) {
    let UpstreamResponse::Stream { mut events, .. } = p.send(req).await.unwrap() else {
        panic!("expected a stream");
    };
    let mut text = String::new();
    let mut error = None;
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => text.push_str(std::str::from_utf8(&event.encode()).unwrap()),
            Err(err) => {
                error = Some(err);
                break;
            }
        }
    }
    (collect_chat_stream(&text).unwrap(), error)
}

fn chat(text: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn chat_is_signed_and_translated() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let answer = complete(
        &p,
        request(Endpoint::ChatCompletions, MODEL, chat("hello bedrock")),
    )
    .await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello bedrock"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], 2);
    assert_eq!(answer["id"], "chatcmpl-mock-request-1");

    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path, format!("/model/{MODEL_PATH}/converse"));
    let auth = sent.header("authorization").unwrap();
    let date = sent.header("x-amz-date").unwrap();
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/{}/eu-central-1/bedrock/aws4_request, SignedHeaders=",
            &date[..8]
        )),
        "{auth}"
    );
    assert!(
        auth.contains("host")
            && auth.contains("x-amz-date")
            && auth.contains("x-amz-security-token")
    );
    assert_eq!(sent.header("x-amz-security-token"), Some("session-tok"));
    assert!(!format!("{:?}", sent.headers).contains("test-secret-key-never-sent"));
    assert_eq!(
        sent.json_body()["messages"][0]["content"][0]["text"],
        "hello bedrock"
    );
    assert!(
        sent.json_body().get("model").is_none(),
        "the model is in the path only"
    );
}

#[tokio::test]
async fn api_keys_are_sent_as_bearer_tokens() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, Some("bedrock-api-key-1"));
    complete(
        &p,
        request(
            Endpoint::ChatCompletions,
            "amazon.nova-lite-v1:0",
            chat("hi"),
        ),
    )
    .await;
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.bearer(), Some("bedrock-api-key-1"));
    assert_eq!(sent.header("x-amz-date"), None);
}

#[tokio::test]
async fn streams_text_with_usage() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let mut body = chat("stream this please");
    body["stream"] = json!(true);
    let (chat, error) = stream(&p, request(Endpoint::ChatCompletions, MODEL, body)).await;
    assert_eq!(error, None);
    assert_eq!(chat.content, "echo: stream this please");
    assert_eq!(chat.role.as_deref(), Some("assistant"));
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    assert_eq!(chat.usage.unwrap()["completion_tokens"], 4);
    assert!(chat.done);
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path, format!("/model/{MODEL_PATH}/converse-stream"));
    assert_eq!(
        sent.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
}

#[tokio::test]
async fn streams_tool_calls_and_sends_results_back() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let tools = json!([{"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}]);
    let body = json!({"model": MODEL, "stream": true, "tools": tools,
                      "messages": [{"role": "user", "content": "read hello.txt"}]});
    let (chat, error) = stream(&p, request(Endpoint::ChatCompletions, MODEL, body)).await;
    assert_eq!(error, None);
    assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(chat.tool_calls.len(), 1);
    let call = &chat.tool_calls[0];
    assert_eq!(
        (call.name.as_str(), call.arguments.as_str()),
        ("read", "{}")
    );
    let id = call.id.clone().unwrap();

    let body = json!({"model": MODEL, "tools": tools, "messages": [
        {"role": "user", "content": "read hello.txt"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": id, "content": "SECRET-WORD: pineapple"}]});
    let answer = complete(&p, request(Endpoint::ChatCompletions, MODEL, body)).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "tool result: SECRET-WORD: pineapple"
    );
    let sent = upstream.last_request().unwrap();
    assert_eq!(
        sent.json_body()["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        json!(id)
    );
}

#[tokio::test]
async fn errors_keep_bedrocks_message_and_throttling_is_retryable() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    upstream.enqueue(
        MockReply::json(
            429,
            json!({"message": "Too many requests, please wait before trying again."}),
        )
        .header(
            "x-amzn-ErrorType",
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        )
        .header("retry-after", "3"),
    );
    let err = p
        .send(request(Endpoint::ChatCompletions, MODEL, chat("x")))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(3)));
    let api = err.to_api_error("bedrock-test");
    assert_eq!(api.status, 429);
    assert_eq!(
        api.message,
        "Too many requests, please wait before trying again."
    );
    assert_eq!(api.code_string(), "ThrottlingException");

    upstream.enqueue(
        MockReply::json(
            400,
            json!({"message": "The provided model identifier is invalid."}),
        )
        .header("x-amzn-ErrorType", "ValidationException"),
    );
    let err = p
        .send(request(Endpoint::ChatCompletions, MODEL, chat("x")))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_throttled_stream_is_a_429_before_any_chunk() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    upstream.enqueue(MockReply::stream(
        portico_bedrock::EVENT_STREAM_CONTENT_TYPE,
        SseScript::new().aws_exception("throttlingException", "slow down"),
    ));
    let mut body = chat("x");
    body["stream"] = json!(true);
    let (chat, error) = stream(&p, request(Endpoint::ChatCompletions, MODEL, body)).await;
    assert_eq!(chat.chunks, 0);
    assert_eq!(error.and_then(|e| e.status()), Some(429));
}

#[tokio::test]
async fn a_cut_connection_breaks_the_stream() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let script = SseScript::new()
        .aws_event("messageStart", &json!({"role": "assistant"}))
        .aws_event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": "partial"}}),
        )
        .abort();
    upstream.enqueue(MockReply::stream(
        portico_bedrock::EVENT_STREAM_CONTENT_TYPE,
        script,
    ));
    let mut body = chat("x");
    body["stream"] = json!(true);
    let (chat, error) = stream(&p, request(Endpoint::ChatCompletions, MODEL, body)).await;
    assert_eq!(chat.content, "partial");
    assert!(
        matches!(error, Some(ProviderError::StreamBroken(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn remote_images_are_refused_before_any_call() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let err = p
        .send(request(Endpoint::ChatCompletions, MODEL, body))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn titan_embeddings_one_call_per_input_in_order() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let model = "amazon.titan-embed-text-v2:0";
    let inputs: Vec<String> = (0..6).map(|i| format!("text number {i}")).collect();
    let body = json!({"model": model, "input": inputs, "dimensions": 4});
    let answer = complete(&p, request(Endpoint::Embeddings, model, body)).await;
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 6);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["index"], i);
        let expected = portico_testkit::mock_embedding(&inputs[i], 4);
        assert_eq!(
            item["embedding"],
            json!(expected),
            "input {i} kept its place"
        );
    }
    assert_eq!(answer["usage"]["prompt_tokens"], 18);
    assert_eq!(
        upstream.hits_for("/model/amazon.titan-embed-text-v2%3A0/invoke"),
        6
    );
    assert_eq!(
        upstream.last_request().unwrap().json_body()["dimensions"],
        4
    );
}

#[tokio::test]
async fn cohere_embeddings_in_base64() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let model = "cohere.embed-english-v3";
    let body = json!({"model": model, "input": ["alpha", "beta"], "encoding_format": "base64"});
    let answer = complete(&p, request(Endpoint::Embeddings, model, body)).await;
    let first = answer["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(first)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected: Vec<f32> = portico_testkit::mock_embedding("alpha", 8)
        .into_iter()
        .map(|x| x as f32)
        .collect();
    assert_eq!(floats, expected);
    assert_eq!(
        answer["usage"]["prompt_tokens"], 2,
        "from the token-count header"
    );
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.json_body()["input_type"], "search_document");
    assert_eq!(upstream.hits(), 1, "one call for both texts");
}

#[tokio::test]
async fn chat_models_cannot_embed_and_completions_are_unsupported() {
    let upstream = MockUpstream::start().await;
    let p = provider(&upstream, None);
    let err = p
        .send(request(Endpoint::Embeddings, MODEL, json!({"input": "x"})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("titan-embed"), "{err}");
    let err = p
        .send(request(
            Endpoint::Completions,
            MODEL,
            json!({"prompt": "x"}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }));
    assert_eq!(upstream.hits(), 0);
}
