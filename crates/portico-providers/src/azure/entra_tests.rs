//! Entra ID authentication against local token endpoints: client credentials, App Service's
//! identity endpoint and IMDS, each mocked by a real HTTP server, with a mock Azure OpenAI.

use std::time::Duration;

use bytes::Bytes;
use portico_core::{JsonBody, Secret};
use portico_testkit::token::MockTokenServer;
use portico_testkit::{MockReply, MockUpstream};
use serde_json::json;

use super::*;
use crate::settings::AzureIdentity;

const CLIENT_SECRET: &str = "entra-client-SECRET-0123456789";

fn answer() -> MockReply {
    MockReply::json(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
    )
}

fn chat() -> UpstreamRequest {
    let body = json!({"model": "dep", "messages": [{"role": "user", "content": "hi"}]});
    UpstreamRequest {
        endpoint: Endpoint::ChatCompletions,
        model: "dep".to_owned(),
        body: JsonBody::parse(Bytes::from(body.to_string())).unwrap(),
        stream: false,
    }
}

fn client_secret() -> AzureIdentity {
    AzureIdentity::ClientSecret {
        tenant_id: "tenant-1".to_owned(),
        client_id: "client-1".to_owned(),
        client_secret: Secret::new(CLIENT_SECRET),
    }
}

/// The adapter for `upstream` with `identity`, its environment `env`, guarded by the
/// redactor as the registry does (the client secret is a catalog credential).
fn provider(
    upstream: &MockUpstream,
    identity: AzureIdentity,
    env: &[(&str, String)],
) -> Arc<dyn Provider> {
    let client = crate::http::build_client(Default::default()).unwrap();
    let base = upstream.base_url();
    let settings = AzureSettings {
        api_version: "2024-10-21".to_owned(),
        identity,
    };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let adapter = AzureOpenAiProvider::with_env(
        ProviderSetup {
            slug: "az",
            base_url: Some(&base),
            api_key: None,
            client: &client,
        },
        &settings,
        move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
    )
    .unwrap();
    let secret = Secret::new(CLIENT_SECRET);
    crate::redact::guard(Arc::new(adapter), [&secret]).unwrap()
}

#[tokio::test]
async fn client_credentials_are_exchanged_once_for_many_requests() {
    let entra = MockTokenServer::oauth("entra-token", 3600).await;
    let upstream = MockUpstream::start().await;
    for _ in 0..8 {
        upstream.enqueue(answer());
    }
    let azure = provider(
        &upstream,
        client_secret(),
        &[("AZURE_AUTHORITY_HOST", entra.base_url())],
    );
    let answers = futures::future::join_all((0..8).map(|_| azure.send(chat()))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");

    assert_eq!(entra.hits(), 1, "one token for all eight requests");
    let token_request = &entra.requests()[0];
    assert_eq!(token_request.path, "/tenant-1/oauth2/v2.0/token");
    let form: Vec<(String, String)> = ::url::form_urlencoded::parse(&token_request.body)
        .into_owned()
        .collect();
    for (name, value) in [
        ("grant_type", "client_credentials"),
        ("client_id", "client-1"),
        ("client_secret", CLIENT_SECRET),
        ("scope", "https://cognitiveservices.azure.com/.default"),
    ] {
        assert!(
            form.contains(&(name.to_owned(), value.to_owned())),
            "{name} in {form:?}"
        );
    }
    for seen in upstream.requests() {
        assert_eq!(seen.bearer(), Some("entra-token-1"));
        assert_eq!(seen.header("api-key"), None);
    }
}

#[tokio::test]
async fn a_token_near_its_expiry_is_refreshed() {
    // Lives 2 s: refreshed in the background from 1 s on.
    let entra = MockTokenServer::oauth("short-token", 2).await;
    let upstream = MockUpstream::start().await;
    for _ in 0..3 {
        upstream.enqueue(answer());
    }
    let azure = provider(
        &upstream,
        client_secret(),
        &[("AZURE_AUTHORITY_HOST", entra.base_url())],
    );
    azure.send(chat()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    azure.send(chat()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while entra.hits() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server counts a request when it arrives; the cache stores the answer a moment later.
    tokio::time::sleep(Duration::from_millis(100)).await;
    azure.send(chat()).await.unwrap();
    let bearers: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.bearer().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        bearers,
        ["short-token-1", "short-token-1", "short-token-2"],
        "the valid token is used while the new one is fetched"
    );
    assert_eq!(entra.hits(), 2);
}

#[tokio::test]
async fn app_service_managed_identity() {
    let identity = MockTokenServer::start(|n, _| {
        json!({"access_token": format!("msi-token-{n}"), "expires_on": "4102444800",
               "resource": "https://cognitiveservices.azure.com", "token_type": "Bearer"})
    })
    .await;
    let upstream = MockUpstream::start().await;
    upstream.enqueue(answer());
    let azure = provider(
        &upstream,
        AzureIdentity::ManagedIdentity {
            client_id: Some("user-assigned-1".to_owned()),
        },
        &[
            ("IDENTITY_ENDPOINT", identity.url_for("/msi/token")),
            ("IDENTITY_HEADER", "identity-header-SECRET-1".to_owned()),
        ],
    );
    azure.send(chat()).await.unwrap();
    let asked = &identity.requests()[0];
    assert_eq!(asked.path, "/msi/token");
    assert_eq!(
        asked.header("x-identity-header"),
        Some("identity-header-SECRET-1")
    );
    let query = asked.query.clone().unwrap_or_default();
    assert!(query.contains("api-version=2019-08-01"), "{query}");
    assert!(
        query.contains("resource=https%3A%2F%2Fcognitiveservices.azure.com"),
        "{query}"
    );
    assert!(query.contains("client_id=user-assigned-1"), "{query}");
    assert_eq!(upstream.requests()[0].bearer(), Some("msi-token-1"));
}

#[tokio::test]
async fn imds_managed_identity_when_nothing_else_is_set() {
    let imds = MockTokenServer::start(|n, _| {
        json!({"access_token": format!("imds-token-{n}"), "expires_in": "86399",
               "token_type": "Bearer"})
    })
    .await;
    let upstream = MockUpstream::start().await;
    upstream.enqueue(answer());
    upstream.enqueue(answer());
    let azure = provider(
        &upstream,
        AzureIdentity::Default,
        &[(
            "PORTICO_AZURE_IMDS_ENDPOINT",
            imds.url_for("/metadata/identity/oauth2/token"),
        )],
    );
    azure.send(chat()).await.unwrap();
    azure.send(chat()).await.unwrap();
    assert_eq!(imds.hits(), 1);
    let asked = &imds.requests()[0];
    assert_eq!(asked.header("metadata"), Some("true"));
    let query = asked.query.clone().unwrap_or_default();
    assert!(query.contains("api-version=2018-02-01"), "{query}");
    assert!(!query.contains("client_id"), "{query}");
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.bearer() == Some("imds-token-1"))
    );
}

#[tokio::test]
async fn a_refusing_token_endpoint_is_a_clear_error_without_secrets() {
    let entra = MockTokenServer::oauth("never", 3600).await;
    // A careless endpoint that quotes the secret it was sent.
    entra.fail_with(Some((
        401,
        json!({"error": "invalid_client",
               "error_description": format!("AADSTS7000215: Invalid client secret provided: {CLIENT_SECRET}")}),
    )));
    let upstream = MockUpstream::start().await;
    let azure = provider(
        &upstream,
        client_secret(),
        &[("AZURE_AUTHORITY_HOST", entra.base_url())],
    );
    let err = azure.send(chat()).await.unwrap_err();
    let shown = format!("{err} / {err:?} / {:?}", err.to_api_error("az"));
    assert!(shown.contains("provider @az"), "{shown}");
    assert!(
        shown.contains("Entra ID refused with 401: invalid_client"),
        "{shown}"
    );
    assert!(shown.contains("check azure_tenant_id"), "{shown}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert_eq!(err.to_api_error("az").status, 502);
    assert_eq!(upstream.hits(), 0, "nothing is sent without a token");

    // The endpoint recovers: the failure was not cached.
    entra.fail_with(None);
    upstream.enqueue(answer());
    azure.send(chat()).await.unwrap();
    assert_eq!(upstream.requests()[0].bearer(), Some("never-2"));
}

#[tokio::test]
async fn an_unreachable_imds_names_what_was_tried() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/metadata/identity/oauth2/token",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let upstream = MockUpstream::start().await;
    let azure = provider(
        &upstream,
        AzureIdentity::Default,
        &[("PORTICO_AZURE_IMDS_ENDPOINT", url)],
    );
    let err = azure.send(chat()).await.unwrap_err().to_api_error("az");
    assert!(
        err.message
            .contains("no api_key and no Entra ID client credentials"),
        "{}",
        err.message
    );
    assert!(err.message.contains("(IMDS)"), "{}", err.message);
    assert!(
        err.message.contains("IMDS could not be reached"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn minted_tokens_echoed_by_the_upstream_are_redacted() {
    let entra = MockTokenServer::oauth("echoed-token", 3600).await;
    let upstream = MockUpstream::start().await;
    upstream.enqueue(MockReply::echo_headers_error(401));
    let azure = provider(
        &upstream,
        client_secret(),
        &[("AZURE_AUTHORITY_HOST", entra.base_url())],
    );
    let err = azure.send(chat()).await.unwrap_err();
    let shown = format!("{err:?}");
    assert!(shown.contains("Bearer [REDACTED]"), "{shown}");
    assert!(!shown.contains("echoed-token-1"), "{shown}");
}
