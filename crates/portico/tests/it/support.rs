//! Starting the real binary against a mock upstream, with a catalog file in a tempdir; the
//! clients the tests drive it with (the Python SDK scripts, the recorded OpenClaw turns).

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::{Duration, Instant};

use portico_testkit::{MockUpstream, PorticoProcess, SseScript, SseStep};
use serde_json::Value;
use tempfile::TempDir;

/// The fixed service key the standard catalog declares.
pub(crate) const SERVICE_KEY: &str = "prt-test-service-key-0123456789";
/// The admin key passed in PORTICO_ADMIN_KEY.
pub(crate) const ADMIN_KEY: &str = "prt-test-admin-key-0123456789";
/// The provider API key the catalog gives the OpenAI-kind mock upstream.
pub(crate) const PROVIDER_KEY: &str = "sk-ptsecret-upstream-abc123";

/// The `portico` binary built for this test run.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portico"))
}

/// The OpenClaw fixtures' own gateway key, so their headers replay verbatim.
pub(crate) const OPENCLAW_KEY: &str = "pk-fake-capture-key";

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

/// One provider of every translating kind (`@oa` openai, `@az` azure-openai, `@an`
/// anthropic, `@ge` gemini, `@be` bedrock), all pointed at `upstream`, which answers each in
/// its own dialect: the `providers:` entries of a catalog, without the section header.
pub(crate) fn every_kind_providers(upstream: &MockUpstream) -> String {
    let addr = upstream.addr();
    format!(
        r#"
  - slug: oa
    kind: openai
    api_key: sk-ptsecret-kinds-openai-000
    base_url: http://{addr}/v1
  - slug: az
    kind: azure-openai
    api_key: ptsecret-kinds-azure-key-000
    base_url: http://{addr}
  - slug: an
    kind: anthropic
    api_key: sk-ant-ptsecret-kinds-000
    base_url: http://{addr}
  - slug: ge
    kind: gemini
    api_key: ptsecret-kinds-gemini-key-000
    base_url: http://{addr}
  - slug: be
    kind: bedrock
    base_url: http://{addr}
    aws_region: us-east-1
    aws_access_key_id: AKIDPTSECRETKINDS000
    aws_secret_access_key: ptsecret-kinds-access-key-000
"#
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
        Gateway::start_with_env(upstream, catalog, &[]).await
    }

    /// Starts the gateway with `catalog` and extra environment variables (flags).
    pub(crate) async fn start_with_env(
        upstream: MockUpstream,
        catalog: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let portico = start_in(dir.path(), catalog, env).await;
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

/// The bytes an SSE script sends, concatenated (its delays and aborts left out).
pub(crate) fn script_text(script: &SseScript) -> String {
    let mut body = String::new();
    for step in script.steps() {
        if let SseStep::Send(bytes) = step {
            body.push_str(std::str::from_utf8(bytes).unwrap());
        }
    }
    body
}

/// Runs `tests/python/<script>` with a Python that can import `module` (the venv of
/// `PORTICO_TEST_PYTHON`, set by scripts/test.sh, or `python3`), passing `env` and the
/// `checks` to run (none: all of them); returns the names of the checks that passed, from the
/// script's one JSON line per check. A missing SDK fails the test with the fix rather than
/// skipping it; a failed check fails it with the script's output.
pub(crate) async fn run_python_checks(
    module: &str,
    script: &str,
    env: &[(&str, String)],
    checks: &[&str],
) -> Vec<String> {
    let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "the `{module}` Python SDK is not importable with `{python}`; run the suite with scripts/test.sh, which installs tests/python/requirements.txt"
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(script);
    let mut command = tokio::process::Command::new(python);
    command.arg(path).args(checks);
    passed_checks(command, script, env).await
}

/// Runs `tests/node/<script>` with node, its packages from `tests/node/node_modules` (installed
/// by scripts/test.sh from tests/node/package-lock.json), passing `env` and the `checks` to run
/// (none: all of them); returns the names of the checks that passed, as
/// [`run_python_checks`] does. Missing packages fail the test with the fix.
pub(crate) async fn run_node_checks(
    script: &str,
    env: &[(&str, String)],
    checks: &[&str],
) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    assert!(
        dir.join("node_modules").is_dir(),
        "the Node SDKs are not installed in tests/node/node_modules; run the suite with scripts/test.sh, which runs `npm ci` there"
    );
    let mut command = tokio::process::Command::new("node");
    command.current_dir(&dir).arg(script).args(checks);
    passed_checks(command, script, env).await
}

/// Runs a check script with `env`; asserts it succeeded and returns the `check` field of each
/// JSON line it printed.
async fn passed_checks(
    mut command: tokio::process::Command,
    script: &str,
    env: &[(&str, String)],
) -> Vec<String> {
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["check"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A request OpenClaw really sent (tests/fixtures/openclaw/, recorded from openclaw 2026.9.6):
/// `path`, `headers` as `[name, value]` pairs, and `body_json`.
pub(crate) fn openclaw_fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/openclaw")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Sends a recorded request as OpenClaw did: same path, headers and body.
pub(crate) async fn replay(gw: &Gateway, recorded: &Value) -> reqwest::Response {
    let mut request = gw.http.post(gw.url(recorded["path"].as_str().unwrap()));
    for pair in recorded["headers"].as_array().unwrap() {
        let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        // Connection-level headers belong to the recording's connection, not this one.
        if !matches!(
            name,
            "host" | "content-length" | "connection" | "accept-encoding"
        ) {
            request = request.header(name, value);
        }
    }
    request.json(&recorded["body_json"]).send().await.unwrap()
}

/// Runs every check of tests/python/openai_sdk_e2e.py (the official OpenAI Python SDK) against
/// `model` through `gw`, with the service key, and asserts they all passed, in order.
pub(crate) async fn run_every_openai_sdk_check(gw: &Gateway, model: &str) {
    let passed = run_python_checks(
        "openai",
        "openai_sdk_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("/v1")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", model.to_owned()),
        ],
        &[],
    )
    .await;
    assert_eq!(
        passed,
        [
            "chat",
            "stream",
            "stream_tool_call",
            "image",
            "embeddings",
            "models",
            "401",
            "404"
        ]
    );
}

/// `GET` an admin API path with the admin key.
pub(crate) async fn admin_get(portico: &PorticoProcess, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(portico.url(path))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
}

/// Polls `GET /admin/v1/logs?<query>` until it lists `n` entries (records are written
/// asynchronously, a moment after the answer).
pub(crate) async fn wait_for_logs(portico: &PorticoProcess, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = admin_get(portico, &format!("/admin/v1/logs?limit=500&{query}"))
            .await
            .json()
            .await
            .unwrap();
        let data = body["data"].as_array().unwrap().clone();
        if data.len() >= n {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} log entries for {query}, have {}: {body}\n{}",
            data.len(),
            portico.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
