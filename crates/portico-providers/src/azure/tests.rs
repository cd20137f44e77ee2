//! The adapter against a one-shot HTTP server on loopback: what it sends (URL, headers, body)
//! and what it makes of Azure's answers.

use bytes::Bytes;
use futures::StreamExt as _;
use portico_core::{JsonBody, Secret};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

const KEY: &str = "azure-key-SECRET-0123";

/// One request as the server read it.
struct Seen {
    head: String,
    body: serde_json::Value,
}

impl Seen {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Serves one request with `status`, `content_type` and `body`; returns the base URL and a
/// handle yielding what was received.
#[expect(
    clippy::disallowed_methods,
    reason = "a test server task, not gateway background work"
)]
async fn serve_once(
    status: u16,
    content_type: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0_u8; 4096];
        let (head, received) = loop {
            let n = socket.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if rest.len() >= len {
                    break (head.to_owned(), rest.to_owned());
                }
            }
        };
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nretry-after-ms: 1500\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(reply.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        Seen {
            head,
            body: serde_json::from_str(&received).unwrap_or(serde_json::Value::Null),
        }
    });
    (base, handle)
}

fn provider(base: &str, settings: serde_json::Value) -> AzureOpenAiProvider {
    let key = Secret::new(KEY);
    let client = crate::http::build_client(Default::default()).unwrap();
    let settings = AzureSettings::parse("azure", &settings, &Default::default()).unwrap();
    AzureOpenAiProvider::new(
        ProviderSetup {
            slug: "azure",
            base_url: Some(base),
            api_key: Some(&key),
            client: &client,
        },
        &settings,
    )
    .unwrap()
}

fn request(endpoint: Endpoint, body: serde_json::Value, stream: bool) -> UpstreamRequest {
    UpstreamRequest {
        endpoint,
        model: "my-deployment".to_owned(),
        body: JsonBody::parse(Bytes::from(body.to_string())).unwrap(),
        stream,
    }
}

const CHAT_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}],"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop","content_filter_results":{}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

#[tokio::test]
async fn classic_chat_goes_to_the_deployment_with_the_api_key_header() {
    let (base, seen) = serve_once(200, "application/json", CHAT_ANSWER).await;
    let azure = provider(&base, json!({"azure_api_version": "2024-10-21"}));
    let body = json!({"model": "my-deployment", "messages": [{"role": "user", "content": "hi"}]});
    let answer = azure
        .send(request(Endpoint::ChatCompletions, body.clone(), false))
        .await
        .unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(
        seen.request_line(),
        "POST /openai/deployments/my-deployment/chat/completions?api-version=2024-10-21 HTTP/1.1"
    );
    assert_eq!(seen.header("api-key"), Some(KEY));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        seen.body, body,
        "the body, model included, is sent as it is"
    );
    let UpstreamResponse::Complete {
        status,
        body,
        usage,
    } = answer
    else {
        panic!("expected a complete answer");
    };
    assert_eq!(status, 200);
    assert_eq!(
        &body[..],
        CHAT_ANSWER.as_bytes(),
        "filter results pass through"
    );
    assert_eq!(usage.map(|u| u.total_tokens()), Some(4));
}

#[tokio::test]
async fn v1_embeddings_use_openai_paths_without_a_version() {
    let (base, seen) = serve_once(
        200,
        "application/json",
        r#"{"object":"list","data":[],"usage":{"prompt_tokens":2,"total_tokens":2}}"#,
    )
    .await;
    let azure = provider(&format!("{base}/"), json!({"azure_api_version": "v1"}));
    azure
        .send(request(
            Endpoint::Embeddings,
            json!({"model": "my-deployment", "input": "x"}),
            false,
        ))
        .await
        .unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(seen.request_line(), "POST /openai/v1/embeddings HTTP/1.1");
    assert_eq!(seen.header("api-key"), Some(KEY));
    assert_eq!(seen.body["model"], "my-deployment");
}

#[tokio::test]
async fn the_default_version_is_the_ga_one() {
    let (base, seen) = serve_once(200, "application/json", CHAT_ANSWER).await;
    let azure = provider(&base, json!({}));
    azure
        .send(request(
            Endpoint::Completions,
            json!({"prompt": "x"}),
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        seen.await.unwrap().request_line(),
        "POST /openai/deployments/my-deployment/completions?api-version=2024-10-21 HTTP/1.1"
    );
}

const PROMPT_FILTER_STREAM: &str = concat!(
    "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",",
    "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,",
    "\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn a_stream_starting_with_prompt_filter_results_passes_through() {
    let (base, seen) = serve_once(200, "text/event-stream", PROMPT_FILTER_STREAM).await;
    let azure = provider(&base, json!({"azure_api_version": "2024-10-21"}));
    let body = json!({"messages": [], "stream": true, "stream_options": {"include_usage": true}});
    let answer = azure
        .send(request(Endpoint::ChatCompletions, body, true))
        .await
        .unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
    assert_eq!(seen.body["stream_options"], json!({"include_usage": true}));
    let UpstreamResponse::Stream { events, .. } = answer else {
        panic!("expected a stream");
    };
    let events: Vec<_> = events.collect().await;
    let data: Vec<String> = events
        .into_iter()
        .map(|e| e.unwrap().data_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(data.len(), 3, "{data:?}");
    let first: serde_json::Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["choices"], json!([]));
    assert!(first["prompt_filter_results"].is_array());
    assert!(
        portico_core::Usage::from_openai(&first).is_none(),
        "not a usage chunk"
    );
    assert_eq!(data[2], "[DONE]");
}

#[tokio::test]
async fn old_versions_get_no_stream_options() {
    let (base, seen) = serve_once(200, "text/event-stream", PROMPT_FILTER_STREAM).await;
    let azure = provider(&base, json!({"azure_api_version": "2024-06-01"}));
    let body = json!({"messages": [], "stream": true, "stream_options": {"include_usage": true}});
    azure
        .send(request(Endpoint::ChatCompletions, body, true))
        .await
        .unwrap();
    let seen = seen.await.unwrap();
    assert_eq!(seen.body.get("stream_options"), None);
    assert_eq!(seen.body["stream"], true);
}

#[tokio::test]
async fn a_blocked_prompt_is_passed_on() {
    let (base, _seen) = serve_once(
        400,
        "application/json",
        r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#,
    )
    .await;
    let azure = provider(&base, json!({}));
    let err = azure
        .send(request(
            Endpoint::ChatCompletions,
            json!({"messages": []}),
            false,
        ))
        .await
        .unwrap_err();
    let ProviderError::Status {
        status,
        message,
        code,
        param,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 400);
    assert_eq!(code.as_deref(), Some("content_filter"));
    assert_eq!(param.as_deref(), Some("prompt"));
    assert!(message.contains("content management policy"), "{message}");
    assert_eq!(err.fault(), crate::Fault::Client);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_missing_deployment_names_the_model_used() {
    let (base, _seen) = serve_once(
        404,
        "application/json",
        r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
    )
    .await;
    let azure = provider(&base, json!({}));
    let err = azure
        .send(request(
            Endpoint::ChatCompletions,
            json!({"messages": []}),
            false,
        ))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("The API deployment for this resource does not exist."),
        "{msg}"
    );
    assert!(msg.contains("`@azure/my-deployment`"), "{msg}");
    assert_eq!(err.status(), Some(404));
    assert!(!msg.contains(KEY));
}

#[tokio::test]
async fn other_404s_point_at_the_endpoint_and_version() {
    let (base, _seen) = serve_once(
        404,
        "application/json",
        r#"{"error":{"code":"404","message":"Resource not found"}}"#,
    )
    .await;
    let azure = provider(&base, json!({"azure_api_version": "2099-01-01"}));
    let err = azure
        .send(request(
            Endpoint::ChatCompletions,
            json!({"messages": []}),
            false,
        ))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Resource not found"), "{msg}");
    assert!(msg.contains("azure_api_version `2099-01-01`"), "{msg}");
}

#[tokio::test]
async fn a_429_keeps_azures_retry_after_ms() {
    let (base, _seen) = serve_once(
        429,
        "application/json",
        r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded the token rate limit."}}"#,
    )
    .await;
    let azure = provider(&base, json!({}));
    let err = azure
        .send(request(
            Endpoint::ChatCompletions,
            json!({"messages": []}),
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(std::time::Duration::from_millis(1500))
    );
    assert!(err.is_retryable());
}

#[test]
fn setup_errors_name_the_provider_and_the_fix() {
    let client = crate::http::build_client(Default::default()).unwrap();
    let key = Secret::new(KEY);
    let bad_key = Secret::new("line\nbreak-SECRET");
    let empty = json!({});
    let number = json!({"azure_api_version": 5});
    // The settings are parsed first, as the registry does; the adapter is built from them.
    let setup = |base_url, api_key, settings: &serde_json::Value| {
        let setup = ProviderSetup {
            slug: "az",
            base_url,
            api_key,
            client: &client,
        };
        (
            setup,
            AzureSettings::parse("az", settings, &Default::default()),
        )
    };
    let build = |(setup, settings): (ProviderSetup<'_>, Result<AzureSettings, SetupError>)| {
        settings.and_then(|settings| AzureOpenAiProvider::new(setup, &settings))
    };
    let cases = [
        (setup(None, Some(&key), &empty), "has no base_url"),
        (
            setup(Some("not a url"), Some(&key), &empty),
            "not an absolute http(s) URL",
        ),
        (
            setup(Some("https://r.openai.azure.com"), Some(&bad_key), &empty),
            "cannot be sent in a header",
        ),
        (
            setup(Some("https://r.openai.azure.com"), Some(&key), &number),
            "azure_api_version must be a text",
        ),
    ];
    for (setup, needle) in cases {
        let err = build(setup).unwrap_err().to_string();
        assert!(err.starts_with("provider @az"), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
    let ok = build(setup(
        Some("https://r.openai.azure.com"),
        Some(&key),
        &empty,
    ))
    .unwrap();
    assert_eq!(ok.kind(), ProviderKind::AzureOpenAi);
    assert!(!format!("{ok:?}").contains(KEY), "Debug hides the key");
}
