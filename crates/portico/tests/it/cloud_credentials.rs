//! Cloud credential chains through the real binary: Azure OpenAI with Entra ID tokens,
//! Vertex AI with a service account and the metadata server, Bedrock through AWS's default
//! chain (ECS container credentials, web identity with STS, the shared files, instance
//! metadata). Every token endpoint is a real HTTP server on loopback, pointed at through the
//! environment variables the clouds' SDKs read; the upstream is the mock.

use std::time::Duration;

use portico_testkit::token::MockTokenServer;
use portico_testkit::{MockUpstream, RecordedRequest};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, chat};

const ENTRA_SECRET: &str = "entra-ptsecret-client-E2E-0123456789";

fn keys() -> String {
    format!("keys:\n  - name: service\n    key: {SERVICE_KEY}\n")
}

async fn text_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Waits (up to 2 s) until `server` has had `n` requests, and a moment more: the server
/// counts a request when it arrives, the gateway stores the answer a little later.
async fn wait_for_hits(server: &MockTokenServer, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while server.hits() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn azure_openai_with_entra_id_client_credentials_and_managed_identity() {
    let entra = MockTokenServer::oauth("entra-e2e-token", 3600).await;
    // A managed identity endpoint that refuses: the client must learn what to fix.
    let imds = MockTokenServer::oauth("never", 3600).await;
    imds.fail_with(Some((
        400,
        json!({"error": "invalid_request", "error_description": "Identity not found"}),
    )));
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        r#"
providers:
  - slug: az
    kind: azure-openai
    base_url: {base}
    azure_tenant_id: contoso.onmicrosoft.com
    azure_client_id: 11111111-2222-3333-4444-555555555555
    azure_client_secret: {ENTRA_SECRET}
  - slug: az-mi
    kind: azure-openai
    base_url: {base}
{keys}"#,
        base = format!("http://{}", upstream.addr()),
        keys = keys()
    );
    let authority = entra.base_url();
    let imds_url = imds.url_for("/metadata/identity/oauth2/token");
    let gw = Gateway::start_with_env(
        upstream,
        &catalog,
        &[
            ("AZURE_AUTHORITY_HOST", &authority),
            ("PORTICO_AZURE_IMDS_ENDPOINT", &imds_url),
        ],
    )
    .await;

    for i in 0..4 {
        let (status, body) = text_of(
            gw.post(
                "/v1/chat/completions",
                chat("@az/gpt-dep", &format!("hi {i}")),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("echo: hi {i}")
        );
    }
    assert_eq!(entra.hits(), 1, "one token for four requests");
    assert_eq!(
        entra.requests()[0].path,
        "/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    for seen in gw.upstream.requests() {
        assert_eq!(seen.path, "/openai/deployments/gpt-dep/chat/completions");
        assert_eq!(seen.bearer(), Some("entra-e2e-token-1"));
        assert_eq!(seen.header("api-key"), None);
    }

    let (status, body) = text_of(
        gw.post("/v1/chat/completions", chat("@az-mi/gpt-dep", "x"))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("provider @az-mi"), "{message}");
    assert!(message.contains("managed identity"), "{message}");
    assert!(
        message.contains("IMDS refused with 400: invalid_request: Identity not found"),
        "{message}"
    );
    assert!(
        message.contains("azure_tenant_id"),
        "how to fix it: {message}"
    );
    assert_eq!(imds.requests()[0].header("metadata"), Some("true"));
    assert_eq!(gw.upstream.hits(), 4, "nothing sent without a token");

    let logs = gw.portico.stderr_text();
    assert!(
        !logs.contains(ENTRA_SECRET),
        "the client secret is never logged"
    );
    assert!(!logs.contains("entra-e2e-token-1"), "nor the token");
}

/// The testkit's RSA test key, as a service account's private key.
const PRIVATE_KEY: &str = include_str!("../../../portico-testkit/fixtures/jwt/rsa-a.pem");

#[tokio::test]
async fn vertex_ai_with_a_service_account_and_the_metadata_server() {
    let google = MockTokenServer::oauth("vertex-e2e-token", 3600).await;
    // Lives 2 s: refreshed in the background from 1 s on.
    let metadata = MockTokenServer::oauth("gce-e2e-token", 2).await;
    let upstream = MockUpstream::start().await;
    let account = json!({
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "kid-1",
        "private_key": PRIVATE_KEY,
        "client_email": "portico@proj-1.iam.gserviceaccount.com",
        "token_uri": google.url_for("/token"),
    })
    .to_string();
    let catalog = format!(
        r#"
providers:
  - slug: vx
    kind: gemini
    base_url: {base}
    vertex_project_id: proj-1
    vertex_region: us-central1
    vertex_service_account_json: ${{SA_JSON}}
  - slug: vx-gce
    kind: gemini
    base_url: {base}
    vertex_project_id: proj-1
    vertex_region: europe-west4
{keys}"#,
        base = upstream.base_url(),
        keys = keys()
    );
    let metadata_host = metadata.addr().to_string();
    let gw = Gateway::start_with_env(
        upstream,
        &catalog,
        &[("SA_JSON", &account), ("GCE_METADATA_HOST", &metadata_host)],
    )
    .await;

    for _ in 0..3 {
        let (status, body) = text_of(
            gw.post(
                "/v1/chat/completions",
                chat("@vx/gemini-2.5-flash", "hello vertex"),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "echo: hello vertex"
        );
    }
    assert_eq!(google.hits(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&google.requests()[0].body)
        .into_owned()
        .collect();
    assert!(form.contains(&(
        "grant_type".to_owned(),
        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()
    )));
    for seen in gw.upstream.requests() {
        assert_eq!(
            seen.path,
            "/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(seen.bearer(), Some("vertex-e2e-token-1"));
    }

    // The metadata server, refreshed before the token expires.
    let ask = || {
        gw.post(
            "/v1/chat/completions",
            chat("@vx-gce/gemini-2.5-flash", "gce"),
        )
    };
    assert_eq!(ask().await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask().await.status(), 200);
    wait_for_hits(&metadata, 2).await;
    assert_eq!(ask().await.status(), 200);
    let bearers: Vec<String> = gw.upstream.requests()[3..]
        .iter()
        .map(|r| r.bearer().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        bearers,
        ["gce-e2e-token-1", "gce-e2e-token-1", "gce-e2e-token-2"]
    );
    assert_eq!(
        metadata.requests()[0].header("metadata-flavor"),
        Some("Google")
    );

    // The metadata server goes down and the token expires: a clear error.
    metadata.fail_with(Some((503, json!({"error": "metadata unavailable"}))));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (status, body) = text_of(ask().await).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("provider @vx-gce"), "{message}");
    assert!(
        message.contains("metadata server refused with 503"),
        "{message}"
    );
    assert!(
        message.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{message}"
    );
    assert!(!gw.portico.stderr_text().contains("BEGIN PRIVATE KEY"));
}

/// AWS's RFC 3339 time, `seconds` from now.
fn aws_time(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The access key id a request to Bedrock was signed with, and its region.
fn signer(req: &RecordedRequest) -> (String, String) {
    let auth = req.header("authorization").unwrap_or_default();
    let credential = auth
        .split("Credential=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    let parts: Vec<&str> = credential.split('/').collect();
    (
        parts.first().copied().unwrap_or_default().to_owned(),
        parts.get(2).copied().unwrap_or_default().to_owned(),
    )
}

/// A bedrock provider without credentials (and, without `region`, without `aws_region`) on
/// the upstream `start_bedrock` puts in for `UPSTREAM`.
fn bedrock_catalog(region: Option<&str>) -> String {
    let region = region
        .map(|r| format!("    aws_region: {r}\n"))
        .unwrap_or_default();
    format!(
        "providers:\n  - slug: aws\n    kind: bedrock\n    base_url: UPSTREAM\n{region}{}",
        keys()
    )
}

const CHAT_MODEL: &str = "@aws/anthropic.claude-3-haiku-20240307-v1:0";

/// The environment that keeps the host's own AWS setup out of a test.
fn isolated(dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "AWS_CONFIG_FILE".to_owned(),
            dir.join("no-config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
            dir.join("no-credentials").display().to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ]
}

async fn start_bedrock(catalog: &str, env: &[(String, String)]) -> Gateway {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let upstream = MockUpstream::start().await;
    let catalog = catalog.replace("UPSTREAM", &format!("http://{}", upstream.addr()));
    Gateway::start_with_env(upstream, &catalog, &env).await
}

#[tokio::test]
async fn bedrock_with_ecs_container_credentials_refreshed_before_expiry() {
    let ecs = MockTokenServer::start(|n, _| {
        json!({"AccessKeyId": format!("ASIAECS{n}"), "SecretAccessKey": format!("ecs-secret-{n}-0123456789"),
               "Token": format!("ecs-session-token-{n}"), "Expiration": aws_time(2)})
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = isolated(dir.path());
    env.push((
        "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
        ecs.url_for("/v2/credentials/task"),
    ));
    env.push((
        "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_owned(),
        "ecs-auth-0123456789".to_owned(),
    ));
    let catalog = bedrock_catalog(Some("us-west-2"));
    let gw = start_bedrock(&catalog, &env).await;

    let ask = || gw.post("/v1/chat/completions", chat(CHAT_MODEL, "hello bedrock"));
    for _ in 0..3 {
        let (status, body) = text_of(ask().await).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(ecs.hits(), 1, "credentials fetched once for three requests");
    assert_eq!(
        ecs.requests()[0].header("authorization"),
        Some("ecs-auth-0123456789")
    );
    for seen in gw.upstream.requests() {
        assert_eq!(
            signer(&seen),
            ("ASIAECS1".to_owned(), "us-west-2".to_owned())
        );
        assert_eq!(
            seen.header("x-amz-security-token"),
            Some("ecs-session-token-1")
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask().await.status(), 200);
    wait_for_hits(&ecs, 2).await;
    assert_eq!(ask().await.status(), 200);
    let keys: Vec<String> = gw.upstream.requests()[3..]
        .iter()
        .map(|r| signer(r).0)
        .collect();
    // Whether the request straight after the sleep still had the first credentials or
    // already the second depends on how much of their two seconds the machine let pass (the
    // expiry is written in whole seconds); what holds is that both succeeded and the
    // refreshed credentials are in use by the last.
    assert!(
        keys.iter().all(|k| k == "ASIAECS1" || k == "ASIAECS2"),
        "{keys:?}"
    );
    assert_eq!(
        keys.last().map(String::as_str),
        Some("ASIAECS2"),
        "refreshed before expiry"
    );
    let logs = gw.portico.stderr_text();
    assert!(!logs.contains("ecs-secret-1"), "{logs}");
}

#[tokio::test]
async fn bedrock_with_web_identity_and_the_profile_region() {
    let sts = MockTokenServer::start(|n, _| {
        Value::String(format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAWEBID{n}</AccessKeyId>
      <SecretAccessKey>web-identity-secret-{n}-0123456789</SecretAccessKey>
      <SessionToken>web-identity-session-{n}</SessionToken>
      <Expiration>{}</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:portico</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/portico/s</Arn>
      <AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
            aws_time(3600)
        ))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "eks-projected-jwt-0123456789").unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "[default]\nregion = eu-north-1\n").unwrap();
    let mut env = isolated(dir.path());
    env[0].1 = config.display().to_string();
    env.extend([
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned(),
            token_file.display().to_string(),
        ),
        (
            "AWS_ROLE_ARN".to_owned(),
            "arn:aws:iam::123456789012:role/portico".to_owned(),
        ),
        ("AWS_ROLE_SESSION_NAME".to_owned(), "portico-e2e".to_owned()),
        ("AWS_ENDPOINT_URL_STS".to_owned(), sts.base_url()),
    ]);
    let catalog = bedrock_catalog(None);
    let gw = start_bedrock(&catalog, &env).await;
    for _ in 0..2 {
        let (status, body) = text_of(
            gw.post("/v1/chat/completions", chat(CHAT_MODEL, "hi"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(sts.hits(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&sts.requests()[0].body)
        .into_owned()
        .collect();
    for (name, value) in [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("RoleArn", "arn:aws:iam::123456789012:role/portico"),
        ("WebIdentityToken", "eks-projected-jwt-0123456789"),
        ("RoleSessionName", "portico-e2e"),
    ] {
        assert!(
            form.contains(&(name.to_owned(), value.to_owned())),
            "{name}: {form:?}"
        );
    }
    for seen in gw.upstream.requests() {
        assert_eq!(
            signer(&seen),
            ("ASIAWEBID1".to_owned(), "eu-north-1".to_owned()),
            "the STS credentials, and the profile's region"
        );
        assert_eq!(
            seen.header("x-amz-security-token"),
            Some("web-identity-session-1")
        );
    }
}

#[tokio::test]
async fn bedrock_with_a_named_profile_of_the_shared_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret-0123456789\n\n\
         [prod]\naws_access_key_id = AKIAPRODPROFILE\naws_secret_access_key = prod-secret-0123456789\n",
    )
    .unwrap();
    let mut env = isolated(dir.path());
    env[1].1 = credentials.display().to_string();
    env.push(("AWS_PROFILE".to_owned(), "prod".to_owned()));
    env.push(("AWS_REGION".to_owned(), "ap-southeast-2".to_owned()));
    let catalog = bedrock_catalog(None);
    let gw = start_bedrock(&catalog, &env).await;
    let (status, body) = text_of(
        gw.post("/v1/chat/completions", chat(CHAT_MODEL, "hi"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = gw.upstream.last_request().unwrap();
    assert_eq!(
        signer(&seen),
        ("AKIAPRODPROFILE".to_owned(), "ap-southeast-2".to_owned())
    );
    assert_eq!(seen.header("x-amz-security-token"), None);
}

#[tokio::test]
async fn bedrock_with_ec2_instance_metadata() {
    let imds = MockTokenServer::start(|n, req| match (req.method.as_str(), req.path.as_str()) {
        ("PUT", "/latest/api/token") => Value::String("imds-session-0123456789".to_owned()),
        (_, "/latest/meta-data/iam/security-credentials/") => {
            Value::String("portico-role".to_owned())
        }
        (_, "/latest/meta-data/iam/security-credentials/portico-role") => json!({
            "Code": "Success", "LastUpdated": aws_time(0), "Type": "AWS-HMAC",
            "AccessKeyId": format!("ASIAIMDS{n}"), "SecretAccessKey": "imds-secret-0123456789",
            "Token": "imds-session-token", "Expiration": aws_time(3600)
        }),
        _ => json!({"unexpected": req.path}),
    })
    .await;
    imds.add_header("x-aws-ec2-metadata-token-ttl-seconds", "21600");
    let dir = tempfile::tempdir().unwrap();
    let mut env = isolated(dir.path());
    env.retain(|(k, _)| k != "AWS_EC2_METADATA_DISABLED");
    env.push((
        "AWS_EC2_METADATA_SERVICE_ENDPOINT".to_owned(),
        imds.base_url(),
    ));
    let catalog = bedrock_catalog(Some("us-east-1"));
    let gw = start_bedrock(&catalog, &env).await;
    let (status, body) = text_of(
        gw.post("/v1/chat/completions", chat(CHAT_MODEL, "hi"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (key, region) = signer(&gw.upstream.last_request().unwrap());
    assert!(key.starts_with("ASIAIMDS"), "{key}");
    assert_eq!(region, "us-east-1");
    let token_put = imds
        .requests()
        .into_iter()
        .find(|r| r.path == "/latest/api/token")
        .expect("IMDSv2: a session token first");
    assert_eq!(token_put.method, "PUT");
    let get = imds
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/portico-role"))
        .unwrap();
    assert_eq!(
        get.header("x-aws-ec2-metadata-token"),
        Some("imds-session-0123456789")
    );
}

#[tokio::test]
async fn bedrock_without_any_credentials_says_what_was_tried() {
    let dir = tempfile::tempdir().unwrap();
    let env = isolated(dir.path());
    let catalog = bedrock_catalog(Some("us-east-1"));
    let gw = start_bedrock(&catalog, &env).await;
    let (status, body) = text_of(
        gw.post("/v1/chat/completions", chat(CHAT_MODEL, "hi"))
            .await,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for needle in [
        "provider @aws (bedrock) has no AWS credentials",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "ECS container credentials",
        "EC2 instance metadata",
        "found no credentials anywhere",
        "set aws_access_key_id and aws_secret_access_key",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(gw.upstream.hits(), 0);
}
