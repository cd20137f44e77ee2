//! Hybrid mode (spec section 9) on the real binary: a `portico gateway` fed by a `portico
//! serve` control plane. It routes by the control plane's catalog and follows its changes
//! within seconds; it keeps serving while the control plane is killed and restarted, and the
//! control plane then holds every one of its requests exactly once, with their spend; it
//! starts from its saved snapshot without the control plane, refuses a tampered one, and
//! without any snapshot is not ready and says why. It serves no admin API.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portico_testkit::{MockUpstream, PorticoProcess, ProcessError};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{ADMIN_KEY, PROVIDER_KEY, SERVICE_KEY, bin, chat};

const MODEL: &str = "@openai-mock/gpt-4o-mini";
const GATEWAY_NAME: &str = "edge-1";

/// The control plane's catalog: one priced provider, a second one with an allow-list, and
/// the service key with a (large) cost budget, so its spend is counted and delivered.
fn catalog(upstream: &MockUpstream) -> String {
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
    models: [gpt-allowed]
keys:
  - name: service
    key: {SERVICE_KEY}
    budget: {{ cost_usd: 1000, period: month }}
"#,
        base = upstream.base_url()
    )
}

/// A control plane (`portico serve`) in a directory of its own, on a fixed port so that a
/// restart comes back where its gateways look for it.
struct ControlPlane {
    dir: TempDir,
    port: u16,
    /// Variables beside the admin key (a shared database and Redis).
    env: Vec<(String, String)>,
    process: PorticoProcess,
}

impl ControlPlane {
    async fn start(upstream: &MockUpstream) -> ControlPlane {
        ControlPlane::start_with_env(upstream, Vec::new()).await
    }

    async fn start_with_env(upstream: &MockUpstream, env: Vec<(String, String)>) -> ControlPlane {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("portico.yaml"), catalog(upstream)).unwrap();
        let port = free_port();
        let process = ControlPlane::spawn(dir.path(), port, &env).await;
        ControlPlane {
            dir,
            port,
            env,
            process,
        }
    }

    async fn spawn(dir: &Path, port: u16, extra_env: &[(String, String)]) -> PorticoProcess {
        let config = dir.join("portico.yaml");
        let data = dir.join("data");
        let listen = format!("127.0.0.1:{port}");
        // Another test may have taken the port between two of our binds: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let started = PorticoProcess::start(
                &bin(),
                &[
                    "serve",
                    "--config",
                    config.to_str().unwrap(),
                    "--listen",
                    &listen,
                    "--data-dir",
                    data.to_str().unwrap(),
                ],
                &std::iter::once(("PORTICO_ADMIN_KEY", ADMIN_KEY))
                    .chain(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .collect::<Vec<_>>(),
            )
            .await;
            match started {
                Ok(process) => return process,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("control plane did not start, retrying: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("{err}"),
            }
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no drain, no last write.
    async fn kill(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.process.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.process
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap();
    }

    async fn restart(&mut self) {
        self.process = ControlPlane::spawn(self.dir.path(), self.port, &self.env).await;
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                format!("{}/admin/v1{path}", self.url()),
            )
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new key of type gateway: its secret.
    async fn gateway_key(&self, name: &str) -> String {
        let (status, key) = self
            .admin(
                "POST",
                "/keys",
                Some(json!({"name": name, "type": "gateway"})),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        key["secret"].as_str().unwrap().to_owned()
    }

    /// Every log entry, following the cursor.
    async fn all_logs(&self) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self
                .admin("GET", &format!("/logs?limit=500&cursor={cursor}"), None)
                .await;
            assert_eq!(status, 200, "{page}");
            entries.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return entries,
            }
        }
    }

    /// `cost_usd_spent` of the service key's budget.
    async fn service_spend(&self) -> f64 {
        let (status, list) = self.admin("GET", "/budgets", None).await;
        assert_eq!(status, 200, "{list}");
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subject"] == "key:service" && e["kind"] == "budget")
            .unwrap_or_else(|| panic!("{list}"))["cost_usd_spent"]
            .as_f64()
            .unwrap()
    }
}

/// A port nothing listens on at the moment.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `portico gateway` on `data_dir`, the token in the environment.
async fn start_gateway(
    data_dir: &Path,
    control_plane: &str,
    token: &str,
) -> Result<PorticoProcess, ProcessError> {
    PorticoProcess::start(
        &bin(),
        &[
            "gateway",
            "--control-plane",
            control_plane,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[("PORTICO_GATEWAY_TOKEN", token)],
    )
    .await
}

/// `GET path` on `process`: status and JSON body.
async fn get(process: &PorticoProcess, path: &str) -> (u16, Value) {
    let response = reqwest::get(process.url(path)).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until the gateway's `/readyz` answers 200.
async fn wait_ready(gateway: &PorticoProcess) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(gateway, "/readyz").await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway is not ready: {body}\n{}",
            gateway.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A chat request through `gateway` with the service key and extra headers.
async fn chat_via(
    client: &reqwest::Client,
    gateway: &PorticoProcess,
    model: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&chat(model, "hello"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn provider_header(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-portkey-provider")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Polls `check` until it holds, at most `limit`; answers how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_gateway_routes_by_the_control_planes_catalog_and_follows_its_changes() {
    let upstream = MockUpstream::start().await;
    let cp = ControlPlane::start(&upstream).await;
    let token = cp.gateway_key(GATEWAY_NAME).await;
    let data = tempfile::tempdir().unwrap();
    let gateway = start_gateway(data.path(), &cp.url(), &token).await.unwrap();
    wait_ready(&gateway).await;
    let client = reqwest::Client::new();

    let response = chat_via(&client, &gateway, MODEL, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(provider_header(&response), "@openai-mock");
    // The upstream got the provider's key from the snapshot, never the gateway's.
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.bearer(), Some(PROVIDER_KEY));

    // A config created on the control plane is usable on the gateway within 5 s; a change
    // to it is in force within 5 s too.
    let (status, body) = cp
        .admin(
            "POST",
            "/configs",
            Some(json!({"id": "pin", "config": {"provider": "@openai-mock"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let took = within(
        Duration::from_secs(5),
        "the new config on the gateway",
        || {
            let (client, gateway) = (&client, &gateway);
            async move {
                let response = chat_via(
                    client,
                    gateway,
                    "gpt-allowed",
                    &[("x-portkey-config", "pin")],
                )
                .await;
                response.status() == 200 && provider_header(&response) == "@openai-mock"
            }
        },
    )
    .await;
    eprintln!("a new config reached the gateway in {took:?}");
    let (status, body) = cp
        .admin(
            "PUT",
            "/configs/pin",
            Some(json!({"config": {"provider": "@restricted"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let took = within(
        Duration::from_secs(5),
        "the changed config on the gateway",
        || {
            let (client, gateway) = (&client, &gateway);
            async move {
                let response = chat_via(
                    client,
                    gateway,
                    "gpt-allowed",
                    &[("x-portkey-config", "pin")],
                )
                .await;
                response.status() == 200 && provider_header(&response) == "@restricted"
            }
        },
    )
    .await;
    eprintln!("a changed config reached the gateway in {took:?}");

    // No admin API, no dashboard, no control-plane routes on a gateway.
    for path in [
        "/admin/v1/keys",
        "/admin/v1/logs",
        "/",
        "/gateway/v1/snapshot",
    ] {
        let response = client
            .get(gateway.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(get(&gateway, "/healthz").await.0, 200);
    assert_eq!(get(&gateway, "/metrics").await.0, 200);
    // Writes to the gateway's catalog do not exist; the token is no data-plane key.
    let response = client
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&chat(MODEL, "x"))
        .send()
        .await
        .unwrap();
    assert!(
        response.status() == 401 || response.status() == 403,
        "{}",
        response.status()
    );

    // The control plane's log lists the gateway's requests, marked with its name.
    let ok = within(
        Duration::from_secs(15),
        "the gateway's logs on the control plane",
        || {
            let cp = &cp;
            async move {
                let logs = cp.all_logs().await;
                logs.iter().filter(|e| e["status"] == 200).count() >= 3
                    && logs.iter().all(|e| e["gateway"] == GATEWAY_NAME)
            }
        },
    )
    .await;
    eprintln!("logs delivered in {ok:?}");
}

#[tokio::test]
async fn the_control_plane_endpoints_take_gateway_keys_only_and_sign_the_snapshot() {
    let upstream = MockUpstream::start().await;
    let cp = ControlPlane::start(&upstream).await;
    let token = cp.gateway_key(GATEWAY_NAME).await;
    let client = reqwest::Client::new();
    let snapshot = |key: Option<&str>| {
        let mut request = client.get(format!("{}/gateway/v1/snapshot", cp.url()));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let refused = snapshot(Some(SERVICE_KEY)).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("takes a key of type gateway"),
        "{body}"
    );
    assert_eq!(snapshot(None).await.unwrap().status(), 401);
    assert_eq!(
        snapshot(Some("prt-no-such-key")).await.unwrap().status(),
        401
    );
    let answered = snapshot(Some(&token)).await.unwrap();
    assert_eq!(answered.status(), 200);
    let signature = answered.headers()["x-portico-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = answered.bytes().await.unwrap();
    portico_hybrid::verify(&portico_core::KeyHash::of(&token), &body, Some(&signature)).unwrap();
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert!(document["version"].as_i64().is_some(), "{document}");
    assert!(document["created_at"].as_str().is_some());
    assert_eq!(document["gateway"], GATEWAY_NAME);
    let provider = document["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == "openai-mock")
        .unwrap();
    assert_eq!(
        provider["api_key"], PROVIDER_KEY,
        "the gateway calls providers"
    );
    let keys = document["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["name"] == "service"));
    assert!(
        keys.iter().all(|k| k["type"] != "gateway"),
        "no gateway key hashes: {document}"
    );

    // A revoked token is 401 from then on.
    let (status, _) = cp
        .admin("DELETE", &format!("/keys/{GATEWAY_NAME}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(snapshot(Some(&token)).await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_control_plane_killed_mid_load_loses_no_request_log_and_no_spend() {
    let upstream = MockUpstream::start().await;
    let mut cp = ControlPlane::start(&upstream).await;
    let token = cp.gateway_key(GATEWAY_NAME).await;
    let data = tempfile::tempdir().unwrap();
    let gateway = Arc::new(start_gateway(data.path(), &cp.url(), &token).await.unwrap());
    wait_ready(&gateway).await;

    // A steady stream of requests from four clients, each tallying its own answers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (gateway, stop) = (Arc::clone(&gateway), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut failed) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let response = chat_via(&client, &gateway, MODEL, &[]).await;
                if response.status() == 200 {
                    ok += 1;
                } else {
                    failed.push(response.text().await.unwrap_or_default());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cp.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cp.restart().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for client in clients {
        let (ok, failed) = client.await.unwrap();
        assert!(failed.is_empty(), "requests failed: {failed:?}");
        sent += ok;
    }
    assert!(sent > 20, "only {sent} requests were sent");

    // Every request is in the control plane's log once, marked with the gateway's name; the
    // spend delivered is what the logged requests cost.
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let logs = cp.all_logs().await;
        if logs.len() as u64 >= sent || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: HashSet<&str> = logs.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), logs.len(), "an entry is listed twice");
    assert_eq!(
        logs.len() as u64,
        sent,
        "the client had {sent} answers; the control plane lists {}\n{}",
        logs.len(),
        gateway.stderr_text()
    );
    assert!(logs.iter().all(|e| e["gateway"] == GATEWAY_NAME));
    let logged_cost: f64 = logs.iter().map(|e| e["cost_usd"].as_f64().unwrap()).sum();
    assert!(logged_cost > 0.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spent = cp.service_spend().await;
        if (spent - logged_cost).abs() < 1e-9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the control plane counts {spent} USD for key:service, the logged requests cost {logged_cost}\n{}",
            gateway.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_gateway_restarts_from_its_saved_snapshot_and_refuses_a_tampered_one() {
    let upstream = MockUpstream::start().await;
    let mut cp = ControlPlane::start(&upstream).await;
    let token = cp.gateway_key(GATEWAY_NAME).await;
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut gateway = start_gateway(data.path(), &cp.url(), &token).await.unwrap();
    wait_ready(&gateway).await;
    assert_eq!(chat_via(&client, &gateway, MODEL, &[]).await.status(), 200);
    gateway.sigterm().unwrap();
    assert!(
        gateway
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap()
            .success()
    );
    let snapshot_file: PathBuf = data.path().join(portico_hybrid::SNAPSHOT_FILE);
    let sealed = std::fs::read(&snapshot_file).unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains(PROVIDER_KEY),
        "the provider's key is encrypted at rest"
    );

    // Restarted while the control plane is down: it serves from the saved snapshot.
    cp.kill().await;
    let mut gateway = start_gateway(data.path(), &cp.url(), &token).await.unwrap();
    wait_ready(&gateway).await;
    assert_eq!(chat_via(&client, &gateway, MODEL, &[]).await.status(), 200);
    gateway.sigterm().unwrap();
    assert!(
        gateway
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap()
            .success()
    );

    // A changed file is refused, saying so; with no control plane there is nothing to serve.
    let mut tampered = sealed.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    std::fs::write(&snapshot_file, &tampered).unwrap();
    let gateway = start_gateway(data.path(), &cp.url(), &token).await.unwrap();
    let (status, body) = get(&gateway, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    within(
        Duration::from_secs(5),
        "a log line that refuses the file",
        || {
            let stderr = gateway.stderr_text();
            async move {
                stderr.contains("refusing the saved snapshot")
                    && stderr.contains("was changed or is damaged")
            }
        },
    )
    .await;
    assert_eq!(chat_via(&client, &gateway, MODEL, &[]).await.status(), 503);
    drop(gateway);

    // Once the control plane is back, both requests made while it was away are in its log.
    cp.restart().await;
    let gateway = start_gateway(data.path(), &cp.url(), &token).await.unwrap();
    wait_ready(&gateway).await;
    within(Duration::from_secs(20), "both requests in the log", || {
        let cp = &cp;
        async move { cp.all_logs().await.len() == 2 }
    })
    .await;
}

#[tokio::test]
async fn a_fresh_gateway_without_a_control_plane_is_not_ready_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let gateway = start_gateway(data.path(), &nowhere, "prt-gw-some-token-000")
        .await
        .unwrap();
    let expected = format!("no snapshot yet: the control plane at {nowhere} is unreachable");
    within(Duration::from_secs(5), "a /readyz that says why", || {
        let (gateway, expected) = (&gateway, &expected);
        async move {
            let (status, body) = get(gateway, "/readyz").await;
            assert_eq!(status, 503, "{body}");
            body["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(expected.as_str()))
        }
    })
    .await;
    let response = reqwest::Client::new()
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&chat(MODEL, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("x-portkey-request-id"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&expected),
        "{body}"
    );
    assert_eq!(body["error"]["type"], "service_unavailable", "{body}");
    // Still alive, and still no admin API.
    assert_eq!(get(&gateway, "/healthz").await.0, 200);
    assert_eq!(get(&gateway, "/admin/v1/keys").await.0, 404);
}

#[tokio::test]
async fn a_control_plane_on_postgres_and_redis_keeps_its_gateways_spend() {
    // Scaled out, the control plane's ledger mirrors Redis every second: a gateway's
    // delivered spend must go to Redis too, or the mirror would undo it.
    let upstream = MockUpstream::start().await;
    let db = portico_testkit::TestPostgres::database().await;
    let redis = portico_testkit::TestRedis::start();
    let env = vec![
        ("PORTICO_DATABASE_URL".to_owned(), db.url().to_owned()),
        ("PORTICO_REDIS_URL".to_owned(), redis.url()),
        (
            "PORTICO_MASTER_KEY".to_owned(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
        ),
    ];
    let cp = ControlPlane::start_with_env(&upstream, env).await;
    let token = cp.gateway_key(GATEWAY_NAME).await;
    let data = tempfile::tempdir().unwrap();
    let gateway = start_gateway(data.path(), &cp.url(), &token).await.unwrap();
    wait_ready(&gateway).await;
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let response = chat_via(&client, &gateway, MODEL, &[]).await;
        assert_eq!(response.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let logged_cost = loop {
        let logs = cp.all_logs().await;
        if logs.len() >= 10 || Instant::now() > deadline {
            assert_eq!(logs.len(), 10, "{logs:?}");
            break logs
                .iter()
                .map(|e| e["cost_usd"].as_f64().unwrap())
                .sum::<f64>();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(logged_cost > 0.0);
    within(Duration::from_secs(15), "the spend to arrive", || async {
        (cp.service_spend().await - logged_cost).abs() < 1e-9
    })
    .await;
    // Three more mirror rounds: the figure stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cp.service_spend().await;
    assert!(
        (spent - logged_cost).abs() < 1e-9,
        "the control plane counts {spent} USD after the mirror, the requests cost {logged_cost}"
    );
}
