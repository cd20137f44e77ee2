//! The SSRF guard on the real binary (`--upstream-allowlist`, docs/security.md): a base URL
//! that the list refuses is a 400 from the admin API (providers and apply) and a load error
//! for the catalog file; a host name whose addresses the list refuses is never connected to.

use portico_testkit::MockUpstream;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, SERVICE_KEY, bin, chat, standard_catalog};

const METADATA_URL: &str = "http://169.254.169.254/latest";

#[tokio::test]
async fn a_metadata_base_url_is_refused_by_the_admin_api() {
    let gw = Gateway::start().await;
    let provider = json!({"slug": "meta", "kind": "openai", "api_key": "sk-ptsecret-ssrf-test-0123456789",
        "base_url": METADATA_URL});
    let resp = gw
        .http
        .post(gw.url("/admin/v1/providers"))
        .bearer_auth(ADMIN_KEY)
        .json(&provider)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "base_url", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("cloud metadata service"), "{message}");
    assert!(message.contains("--upstream-allowlist"), "{message}");

    // Replacing an existing provider's base URL with it: refused too, the provider unchanged.
    let resp = gw
        .http
        .put(gw.url("/admin/v1/providers/openai-mock"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"kind": "openai", "base_url": "http://[fd00:ec2::254]/v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = gw
        .post(
            "/v1/chat/completions",
            chat("@openai-mock/gpt-4o-mini", "hi"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // `portico apply` (POST /admin/v1/apply) with such a provider: 400 naming the field.
    let resp = gw
        .http
        .post(gw.url("/admin/v1/apply"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"providers": [provider]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "providers[0].base_url", "{body}");
}

#[tokio::test]
async fn a_catalog_file_with_a_refused_base_url_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portico.yaml");
    std::fs::write(
        &config,
        "providers:\n  - slug: ok\n    kind: openai\n    api_key: sk-ptsecret-ssrf-ok-0123456789\n    base_url: https://api.example.com/v1\n  - slug: meta\n    kind: openai\n    api_key: sk-ptsecret-ssrf-test-0123456789\n    base_url: http://metadata.google.internal/v1\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("providers[1].base_url"), "{stderr}");
    assert!(stderr.contains("metadata.google.internal"), "{stderr}");
    assert!(stderr.contains("cloud metadata service"), "{stderr}");
    assert!(!stderr.contains("sk-ssrf-test"), "{stderr}");

    // A malformed list is a usage error too.
    let out = std::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--upstream-allowlist",
            "http://x",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a host name"), "{stderr}");
}

/// A catalog whose `@local` provider is the mock upstream reached by the name `localhost`,
/// and the service key.
fn localhost_catalog(upstream: &MockUpstream) -> String {
    format!(
        "providers:\n  - slug: local\n    kind: openai\n    api_key: sk-ptsecret-ssrf-local-0123456789\n    base_url: http://localhost:{}/v1\nkeys:\n  - name: service\n    key: {SERVICE_KEY}\n",
        upstream.addr().port()
    )
}

#[tokio::test]
async fn a_name_resolving_to_a_refused_address_is_never_connected_to() {
    // 127.0.0.0/8 not listed: `localhost` passes the configuration check (the list has
    // networks, so names are judged by their addresses), and is refused when it resolves to
    // 127.0.0.1 (and ::1).
    let upstream = MockUpstream::start().await;
    let catalog = localhost_catalog(&upstream);
    let gw = Gateway::start_with_env(
        upstream,
        &catalog,
        &[("PORTICO_UPSTREAM_ALLOWLIST", "10.0.0.0/8")],
    )
    .await;
    let resp = gw
        .post("/v1/chat/completions", chat("@local/gpt-4o-mini", "hi"))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("@local"), "{message}");
    assert!(
        message.contains("not allowed by --upstream-allowlist"),
        "{message}"
    );
    assert!(!message.contains("127.0.0.1"), "{message}");
    assert_eq!(gw.upstream.hits(), 0, "the upstream was reached");
    // The log (stderr's access record) says why.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw
        .portico
        .stderr_text()
        .contains("is not allowed by --upstream-allowlist")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            gw.portico.stderr_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // With loopback listed, the same provider is reached.
    let upstream = MockUpstream::start().await;
    let catalog = localhost_catalog(&upstream);
    let gw = Gateway::start_with_env(
        upstream,
        &catalog,
        &[("PORTICO_UPSTREAM_ALLOWLIST", "127.0.0.0/8,::1")],
    )
    .await;
    let resp = gw
        .post("/v1/chat/completions", chat("@local/gpt-4o-mini", "hi"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(gw.upstream.hits(), 1);

    // The default list: the standard catalog's 127.0.0.1 upstream is reached as before.
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;
    let resp = gw
        .post(
            "/v1/chat/completions",
            chat("@openai-mock/gpt-4o-mini", "hi"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}
