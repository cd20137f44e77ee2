//! Vertex AI's application default credentials against local token endpoints: the catalog's
//! service account, `GOOGLE_APPLICATION_CREDENTIALS`, the metadata server; each mocked by a
//! real HTTP server, with the mock upstream as Vertex AI.

use std::sync::Arc;
use std::time::Duration;

use portico_core::{Endpoint, JsonBody, Secret};
use portico_providers::http::{HttpOptions, build_client};
use portico_providers::settings::{GeminiSettings, VertexSettings};
use portico_providers::{Provider, ProviderSetup, UpstreamRequest, redact};
use portico_testkit::MockUpstream;
use portico_testkit::idp::TestKey;
use portico_testkit::token::MockTokenServer;
use serde_json::{Value, json};

use crate::{Gemini, GeminiProvider};

/// The testkit's RSA test key (PKCS#8 PEM, as Google's key files hold).
const PRIVATE_KEY: &str = include_str!("../../../portico-testkit/fixtures/jwt/rsa-a.pem");

const VERTEX_PATH: &str = "/v1/projects/p-1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent";

fn service_account(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "p-1",
        "private_key_id": "key-1",
        "private_key": PRIVATE_KEY,
        "client_email": "portico@p-1.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": token_uri,
    })
    .to_string()
}

fn provider(
    upstream: &MockUpstream,
    account: Option<&str>,
    env: &[(&str, String)],
) -> Result<Arc<dyn Provider>, String> {
    let client = build_client(HttpOptions::default()).unwrap();
    let account = account.map(Secret::new);
    let settings = GeminiSettings {
        vertex: Some(VertexSettings {
            project: "p-1".to_owned(),
            region: "us-central1".to_owned(),
            service_account: account.clone(),
        }),
    };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let base = upstream.base_url();
    let setup = ProviderSetup {
        slug: "vertex",
        base_url: Some(&base),
        api_key: None,
        client: &client,
    };
    let dialect = Gemini::with_env(setup, &settings, move |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .map_err(|e| e.to_string())?;
    let adapter: Arc<dyn Provider> = Arc::new(GeminiProvider::with_dialect(dialect, &client));
    // As the registry does: the catalog's secrets and what the adapter mints.
    Ok(redact::guard(adapter, account.iter()).unwrap())
}

fn chat() -> UpstreamRequest {
    let body =
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
    UpstreamRequest {
        endpoint: Endpoint::ChatCompletions,
        model: "gemini-2.5-flash".to_owned(),
        body: JsonBody::parse(body.to_string().into()).unwrap(),
        stream: false,
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field(form: &[(String, String)], name: &str) -> String {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_catalog_service_account_signs_a_jwt_and_its_token_is_used() {
    let google = MockTokenServer::oauth("sa-token", 3600).await;
    let upstream = MockUpstream::start().await;
    let token_uri = google.url_for("/token");
    let vertex = provider(&upstream, Some(&service_account(&token_uri)), &[]).unwrap();
    let answers = futures::future::join_all((0..6).map(|_| vertex.send(chat()))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(google.hits(), 1, "one token for six requests");

    let form = form(&google.requests()[0].body);
    assert_eq!(
        field(&form, "grant_type"),
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    // The assertion is signed with the service account's key: its public half verifies it.
    let assertion = field(&form, "assertion");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(TestKey::RsaA.jwk()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[token_uri.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(&assertion, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "portico@p-1.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    assert_eq!(
        jsonwebtoken::decode_header(&assertion)
            .unwrap()
            .kid
            .as_deref(),
        Some("key-1")
    );

    let seen = upstream.requests();
    assert_eq!(seen.len(), 6);
    for request in seen {
        assert_eq!(request.path, VERTEX_PATH);
        assert_eq!(request.bearer(), Some("sa-token-1"));
    }
}

#[tokio::test]
async fn google_application_credentials_names_an_authorized_user_file() {
    let google = MockTokenServer::oauth("user-token", 3600).await;
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adc.json");
    let file = json!({"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
                      "client_secret": "user-client-SECRET-1", "refresh_token": "refresh-SECRET-1",
                      "token_uri": google.url_for("/token")});
    std::fs::write(&path, file.to_string()).unwrap();
    let vertex = provider(
        &upstream,
        None,
        &[("GOOGLE_APPLICATION_CREDENTIALS", path.display().to_string())],
    )
    .unwrap();
    vertex.send(chat()).await.unwrap();
    let form = form(&google.requests()[0].body);
    assert_eq!(field(&form, "grant_type"), "refresh_token");
    assert_eq!(field(&form, "refresh_token"), "refresh-SECRET-1");
    assert_eq!(upstream.requests()[0].bearer(), Some("user-token-1"));
}

#[tokio::test]
async fn the_metadata_server_last_and_refreshed_before_expiry() {
    let metadata = MockTokenServer::oauth("gce-token", 2).await;
    let upstream = MockUpstream::start().await;
    let vertex = provider(
        &upstream,
        None,
        &[("GCE_METADATA_HOST", metadata.addr().to_string())],
    )
    .unwrap();
    vertex.send(chat()).await.unwrap();
    let asked = &metadata.requests()[0];
    assert_eq!(
        asked.path,
        "/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(asked.header("metadata-flavor"), Some("Google"));
    // Lives 2 s: a request after 1 s uses it and starts the refresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    vertex.send(chat()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while metadata.hits() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server counts a request when it arrives; the cache stores the answer a moment later.
    tokio::time::sleep(Duration::from_millis(100)).await;
    vertex.send(chat()).await.unwrap();
    let bearers: Vec<Option<String>> = upstream
        .requests()
        .iter()
        .map(|r| r.bearer().map(str::to_owned))
        .collect();
    assert_eq!(
        bearers,
        [
            Some("gce-token-1".to_owned()),
            Some("gce-token-1".to_owned()),
            Some("gce-token-2".to_owned())
        ]
    );
    assert_eq!(metadata.hits(), 2);
}

#[tokio::test]
async fn a_refusing_token_endpoint_is_a_clear_error_without_the_key() {
    let google = MockTokenServer::oauth("never", 3600).await;
    google.fail_with(Some((
        400,
        json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
    )));
    let upstream = MockUpstream::start().await;
    let vertex = provider(
        &upstream,
        Some(&service_account(&google.url_for("/token"))),
        &[],
    )
    .unwrap();
    let err = vertex.send(chat()).await.unwrap_err();
    let api = err.to_api_error("vertex");
    let shown = format!("{err:?} {api:?}");
    assert_eq!(api.status, 502);
    assert!(shown.contains("provider @vertex"), "{shown}");
    assert!(
        shown.contains(
            "Google's token endpoint refused with 400: invalid_grant: Invalid JWT Signature."
        ),
        "{shown}"
    );
    assert!(shown.contains("vertex_service_account_json"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_unusable_catalog_key_is_a_setup_error_naming_the_field() {
    let upstream = MockUpstream::start().await;
    let bad = json!({"type": "service_account", "client_email": "a@b",
                     "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key-SECRET\n-----END PRIVATE KEY-----\n"});
    let err = provider(&upstream, Some(&bad.to_string()), &[])
        .err()
        .unwrap();
    assert!(err.contains("@vertex"), "{err}");
    assert!(err.contains("vertex_service_account_json"), "{err}");
    assert!(err.contains("not an RSA key in PEM form"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");

    let err = provider(
        &upstream,
        None,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/adc.json".to_owned(),
        )],
    )
    .unwrap()
    .send(chat())
    .await
    .unwrap_err()
    .to_api_error("vertex");
    assert!(
        err.message.contains("/nonexistent/adc.json"),
        "{}",
        err.message
    );
    assert!(err.message.contains("could not be read"), "{}", err.message);
}
