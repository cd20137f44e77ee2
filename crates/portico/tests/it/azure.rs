//! Azure OpenAI (`kind: azure-openai`) through the real binary: deployment URLs with an
//! `api-version`, the `api-key` header, the v1 API, Azure's prompt-filter-only first stream
//! chunk, a blocked prompt, and the official OpenAI Python SDK as the client.

use portico_testkit::sse::{collect_chat_stream, parse_sse_data};
use portico_testkit::{MockReply, MockUpstream, RecordedRequest};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, access_record, chat, run_every_openai_sdk_check};

/// The key the catalog gives the Azure resource.
const AZURE_KEY: &str = "ptsecret-azure-resource-key-0123456789abcdef";

/// `@azure` (classic API, default version, allow-list of two deployments) and `@azure-v1`
/// (v1 API, any deployment), both on the mock upstream's address as the resource endpoint.
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"
providers:
  - slug: azure
    kind: azure-openai
    api_key: {AZURE_KEY}
    base_url: http://{addr}
    models: [chat-deployment, embed-deployment]
  - slug: azure-v1
    kind: azure-openai
    api_key: {AZURE_KEY}
    base_url: http://{addr}
    azure_api_version: v1
keys:
  - name: service
    key: {SERVICE_KEY}
"#,
        addr = upstream.addr()
    )
}

async fn start() -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    Gateway::start_with(upstream, &catalog).await
}

/// Asserts the request went to the classic deployment URL of `deployment` for `operation`,
/// with the default api-version and the resource key in `api-key` only.
#[track_caller]
fn assert_classic(req: &RecordedRequest, deployment: &str, operation: &str) {
    assert_eq!(
        req.path,
        format!("/openai/deployments/{deployment}/{operation}")
    );
    assert_eq!(req.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(req.header("api-key"), Some(AZURE_KEY));
    assert_eq!(req.header("authorization"), None, "no bearer to Azure");
    assert_eq!(req.json_body()["model"], deployment);
}

fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn chat_goes_to_the_deployment_with_the_api_key_header() {
    let gw = start().await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            chat("@azure/chat-deployment", "hello azure"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@azure");
    let id = request_id(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello azure"
    );
    // Azure's additions reach the client untouched.
    assert!(body["prompt_filter_results"].is_array(), "{body}");
    assert!(body["choices"][0]["content_filter_results"].is_object());
    assert_classic(
        &gw.upstream.last_request().unwrap(),
        "chat-deployment",
        "chat/completions",
    );
    let record = access_record(&gw, &id).await;
    assert_eq!(record["provider"], "azure");
    assert_eq!(record["model"], "chat-deployment");
    assert_eq!(record["prompt_tokens"], body["usage"]["prompt_tokens"]);

    // The allow-list holds: another deployment is not in the catalog.
    let resp = gw
        .post("/v1/chat/completions", chat("@azure/other", "x"))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(gw.upstream.hits(), 1);
    assert!(
        !gw.portico.stderr_text().contains(AZURE_KEY),
        "the Azure key is in the log"
    );
}

#[tokio::test]
async fn a_stream_keeps_the_prompt_filter_only_first_chunk() {
    let gw = start().await;
    let mut body = chat("@azure/chat-deployment", "stream from azure");
    body["stream"] = json!(true);

    // Without include_usage: the filter chunk (choices: [], no usage) is not mistaken for the
    // usage chunk and dropped; the real usage chunk is.
    let resp = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(resp.status(), 200);
    let id = request_id(&resp);
    let text = resp.text().await.unwrap();
    let data = parse_sse_data(&text);
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["choices"], json!([]), "{text}");
    assert!(first["prompt_filter_results"].is_array(), "{text}");
    let chat = collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "echo: stream from azure");
    assert_eq!(chat.finish_reason.as_deref(), Some("stop"));
    assert!(
        chat.usage.is_none(),
        "usage chunk sent without include_usage"
    );
    assert!(chat.done);
    let req = gw.upstream.last_request().unwrap();
    assert_classic(&req, "chat-deployment", "chat/completions");
    assert_eq!(req.json_body()["stream_options"]["include_usage"], true);
    let record = access_record(&gw, &id).await;
    assert_eq!(record["outcome"], "completed");
    assert!(
        record["completion_tokens"].as_u64().unwrap() > 0,
        "the usage chunk was counted, not the filter chunk: {record}"
    );

    // With it, the usage chunk arrives too, after the filter chunk.
    body["stream_options"] = json!({"include_usage": true});
    let text = gw
        .post("/v1/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let data = parse_sse_data(&text);
    assert!(data[0].contains("prompt_filter_results"), "{text}");
    let chat = collect_chat_stream(&text).unwrap();
    assert!(chat.usage.unwrap()["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn embeddings_and_the_v1_api() {
    let gw = start().await;
    let resp = gw
        .post(
            "/v1/embeddings",
            json!({"model": "@azure/embed-deployment", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_classic(
        &gw.upstream.last_request().unwrap(),
        "embed-deployment",
        "embeddings",
    );

    // v1: OpenAI's paths under /openai/v1, no api-version, the deployment as `model`.
    let resp = gw
        .post(
            "/v1/chat/completions",
            chat("@azure-v1/my-gpt", "v1 please"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: v1 please");
    let req = gw.upstream.last_request().unwrap();
    assert_eq!(req.path, "/openai/v1/chat/completions");
    assert_eq!(req.query, None);
    assert_eq!(req.header("api-key"), Some(AZURE_KEY));
    assert_eq!(req.header("authorization"), None);
    assert_eq!(req.json_body()["model"], "my-gpt");
}

#[tokio::test]
async fn a_blocked_prompt_is_passed_on_as_azure_said() {
    let gw = start().await;
    gw.upstream.enqueue(MockReply::json(
        400,
        json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"violence": {"filtered": true, "severity": "high"}}}
        }}),
    ));
    let resp = gw
        .post("/v1/chat/completions", chat("@azure/chat-deployment", "x"))
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["param"], "prompt");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content management policy"),
        "{body}"
    );
    assert_eq!(gw.upstream.hits(), 1, "a client error is not retried");
}

#[tokio::test]
async fn openai_python_sdk_through_azure() {
    let gw = start().await;
    run_every_openai_sdk_check(&gw, "@azure/chat-deployment").await;
    let requests = gw.upstream.requests();
    assert_eq!(
        requests.len(),
        5,
        "chat, stream, tool stream, image, embeddings"
    );
    let operations: Vec<&str> = requests
        .iter()
        .map(|r| r.path.rsplit_once("chat-deployment/").unwrap().1)
        .collect();
    assert_eq!(
        operations,
        [
            "chat/completions",
            "chat/completions",
            "chat/completions",
            "chat/completions",
            "embeddings"
        ]
    );
    for req in &requests {
        assert_classic(
            req,
            "chat-deployment",
            req.path.rsplit_once("chat-deployment/").unwrap().1,
        );
    }
}
