//! Starting the real binary against a mock upstream, with a catalog file in a tempdir.

use std::path::{Path, PathBuf};

use portico_testkit::{MockUpstream, PorticoProcess};
use tempfile::TempDir;

/// The fixed service key the standard catalog declares.
pub(crate) const SERVICE_KEY: &str = "prt-test-service-key-0123456789";
/// The admin key passed in PORTICO_ADMIN_KEY.
pub(crate) const ADMIN_KEY: &str = "prt-test-admin-key-0123456789";
/// The provider API key the catalog gives the OpenAI-kind mock upstream.
pub(crate) const PROVIDER_KEY: &str = "sk-upstream-secret-abc123";

/// The `portico` binary built for this test run.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portico"))
}

/// A running gateway with its upstream and data directory.
pub(crate) struct Gateway {
    pub(crate) upstream: MockUpstream,
    pub(crate) portico: PorticoProcess,
    _dir: TempDir,
    pub(crate) http: reqwest::Client,
}

/// The standard catalog: `@openai-mock` (kind openai, pointed at the mock upstream, any
/// model), `@restricted` (same upstream, allow-list `gpt-allowed`), a fixed service key and a
/// key limited to `@restricted`.
pub(crate) fn standard_catalog(upstream: &MockUpstream) -> String {
    format!(
        r#"
providers:
  - slug: openai-mock
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
  - slug: restricted
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
    models:
      - gpt-allowed
      - id: gpt-priced
        name: Priced
        pricing: {{ input_per_mtok: 1.0, output_per_mtok: 2.0 }}
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: narrow
    key: prt-test-narrow-key-0123456789
    allowed_models: ["@restricted"]
"#,
        base = upstream.base_url()
    )
}

impl Gateway {
    /// Starts a mock upstream and the gateway with the standard catalog.
    pub(crate) async fn start() -> Gateway {
        let upstream = MockUpstream::start().await;
        let catalog = standard_catalog(&upstream);
        Gateway::start_with(upstream, &catalog).await
    }

    /// Starts the gateway with `catalog` (YAML) against `upstream`.
    pub(crate) async fn start_with(upstream: MockUpstream, catalog: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let portico = start_in(dir.path(), catalog, &[]).await;
        Gateway {
            upstream,
            portico,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// `http://ADDR/v1/...`
    pub(crate) fn url(&self, path: &str) -> String {
        self.portico.url(path)
    }

    /// POSTs JSON with the service key.
    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(SERVICE_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Writes `catalog` into `dir` and starts `portico serve` on it, with a fixed admin key.
pub(crate) async fn start_in(
    dir: &Path,
    catalog: &str,
    extra_env: &[(&str, &str)],
) -> PorticoProcess {
    let config = dir.join("portico.yaml");
    std::fs::write(&config, catalog).unwrap();
    let data = dir.join("data");
    let mut env = vec![("PORTICO_ADMIN_KEY", ADMIN_KEY)];
    env.extend_from_slice(extra_env);
    PorticoProcess::start(
        &bin(),
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &env,
    )
    .await
    .unwrap()
}

/// A minimal chat request body.
pub(crate) fn chat(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The access-log record with this request id, once the log writer has written it: the
/// access log is one JSON object per line on stderr.
pub(crate) async fn access_record(gw: &Gateway, request_id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stderr = gw.portico.stderr_text();
        let found = stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .find(|record| record["id"] == request_id);
        if let Some(record) = found {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access record for {request_id}:\n{stderr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
