//! The persistent request log through the real binary: found by trace id and metadata with
//! its payloads, guarded by the admin key, read by `portico logs`, free of secrets, and
//! complete after SIGTERM right behind a burst.

use std::path::Path;
use std::time::{Duration, Instant};

use portico_testkit::MockUpstream;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_KEY, Gateway, PROVIDER_KEY, SERVICE_KEY, admin_get, bin, chat, standard_catalog,
    start_in, wait_for_logs,
};

/// A key whose payloads are not logged, added to the standard catalog.
const QUIET_KEY: &str = "prt-test-quiet-key-0123456789";

fn catalog(upstream: &MockUpstream) -> String {
    format!(
        "{}  - name: quiet\n    key: {QUIET_KEY}\n    log_payloads: false\n",
        standard_catalog(upstream)
    )
}

async fn send_traced(gw: &Gateway, key: &str, trace: &str, text: &str) -> String {
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-portkey-trace-id", trace)
        .header(
            "x-portkey-metadata",
            r#"{"team":"backend","project":"api-v2"}"#,
        )
        .json(&chat("@openai-mock/gpt-4o-mini", text))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_request_is_found_by_trace_id_and_metadata_with_its_payloads() {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;
    let id = send_traced(&gw, SERVICE_KEY, "session-auth-refactor", "hello log").await;

    let found = wait_for_logs(&gw.portico, "trace_id=session-auth-refactor", 1).await;
    assert_eq!(found.len(), 1);
    let entry = &found[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["trace_id"], "session-auth-refactor");
    assert_eq!(
        entry["metadata"],
        json!({"team": "backend", "project": "api-v2"})
    );
    assert_eq!(entry["key_name"], "service");
    assert_eq!(entry["provider"], "openai-mock");
    assert_eq!(entry["model"], "gpt-4o-mini");
    assert_eq!(entry["endpoint"], "chat.completions");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["stream"], false);
    assert!(entry["latency_ms"].is_u64());
    assert!(entry["prompt_tokens"].is_u64(), "{entry}");
    assert!(
        entry.get("request").is_none(),
        "the list leaves payloads out"
    );

    // Metadata filters, alone and combined.
    let by_team = wait_for_logs(
        &gw.portico,
        "metadata.team=backend&metadata.project=api-v2",
        1,
    )
    .await;
    assert_eq!(by_team[0]["id"], id.as_str());
    let none: Value = admin_get(&gw.portico, "/admin/v1/logs?metadata.team=frontend")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["data"], json!([]));
    assert_eq!(none["next_cursor"], json!(null));

    // The record itself, with both payloads as JSON.
    let resp = admin_get(&gw.portico, &format!("/admin/v1/logs/{id}")).await;
    assert_eq!(resp.status(), 200);
    let detail: Value = resp.json().await.unwrap();
    assert_eq!(
        detail["request"]["messages"][0]["content"], "hello log",
        "{detail}"
    );
    assert_eq!(
        detail["response"]["choices"][0]["message"]["content"],
        "echo: hello log"
    );
    assert_eq!(detail["request_truncated"], false);

    // Analytics sees it.
    let analytics: Value = admin_get(
        &gw.portico,
        "/admin/v1/analytics?group_by=model&interval=hour",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(analytics["totals"]["requests"], 1, "{analytics}");
    assert_eq!(analytics["series"][0]["group"], "gpt-4o-mini");
}

#[tokio::test]
async fn payloads_are_not_stored_for_a_key_without_payload_logging() {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;
    let id = send_traced(&gw, QUIET_KEY, "quiet-trace", "do not keep me").await;
    wait_for_logs(&gw.portico, "trace_id=quiet-trace", 1).await;
    let detail: Value = admin_get(&gw.portico, &format!("/admin/v1/logs/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["key_name"], "quiet");
    assert_eq!(detail["request"], json!(null));
    assert_eq!(detail["response"], json!(null));
}

#[tokio::test]
async fn the_log_api_needs_the_admin_key_and_names_bad_parameters() {
    let gw = Gateway::start().await;
    let get = |key: Option<&'static str>, path: &'static str| {
        let mut req = gw.http.get(gw.url(path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
    };
    for path in ["/admin/v1/logs", "/admin/v1/logs/x", "/admin/v1/analytics"] {
        assert_eq!(get(None, path).await.unwrap().status(), 401, "{path}");
        assert_eq!(
            get(Some(SERVICE_KEY), path).await.unwrap().status(),
            403,
            "{path}"
        );
    }
    let resp = get(Some(ADMIN_KEY), "/admin/v1/logs/0193-no-such-id")
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "log_not_found");
    for (path, param) in [
        ("/admin/v1/logs?status=9xx", "status"),
        ("/admin/v1/logs?limit=0", "limit"),
        ("/admin/v1/logs?from=yesterday", "from"),
        ("/admin/v1/logs?colour=red", "colour"),
        ("/admin/v1/analytics?interval=week", "interval"),
        ("/admin/v1/analytics?group_by=colour", "group_by"),
    ] {
        let resp = get(Some(ADMIN_KEY), path).await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{path}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

/// Runs `portico logs` with `args`; answers (exit code, stdout, stderr).
async fn portico_logs(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(bin());
    command.arg("logs").args(args).env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn portico_logs_prints_a_request_by_trace_id() {
    let gw = Gateway::start().await;
    let id = send_traced(&gw, SERVICE_KEY, "cli-trace", "from the cli").await;
    send_traced(&gw, SERVICE_KEY, "other-trace", "not this one").await;
    wait_for_logs(&gw.portico, "trace_id=cli-trace", 1).await;
    let url = gw.portico.base_url();

    let (code, stdout, stderr) = portico_logs(
        &["--trace-id", "cli-trace", "--url", &url],
        &[("PORTICO_ADMIN_KEY", ADMIN_KEY)],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].contains(&format!("id={id}")), "{stdout}");
    assert!(lines[0].contains("trace=cli-trace"), "{stdout}");
    assert!(
        lines[0].contains(" 200 openai-mock/gpt-4o-mini "),
        "{stdout}"
    );

    let (code, stdout, _) = portico_logs(
        &[
            "--trace-id",
            "cli-trace",
            "--json",
            "--url",
            &url,
            "--admin-key",
            ADMIN_KEY,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    let entry: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(entry["id"], id.as_str());

    // A wrong key, nothing listening, no key at all.
    let (code, _, stderr) = portico_logs(&["--url", &url, "--admin-key", SERVICE_KEY], &[]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("403") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let (code, _, stderr) = portico_logs(&["--url", &closed, "--admin-key", ADMIN_KEY], &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let (code, _, stderr) = portico_logs(&["--url", &url], &[]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("PORTICO_ADMIN_KEY"), "{stderr}");
}

/// Every byte of the request log's files under `data`.
fn log_db_bytes(data: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("logs") {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn no_secret_reaches_the_request_log() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut portico = start_in(dir.path(), &standard_catalog(&upstream), &[]).await;
    let extra_secret = "sk-client-sent-this-0123456789";
    let resp = reqwest::Client::new()
        .post(portico.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-api-key", extra_secret)
        .header("x-portkey-trace-id", "secret-check")
        .json(&chat("@openai-mock/m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_for_logs(&portico, "trace_id=secret-check", 1).await;
    portico.sigterm().unwrap();
    portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    let stored = log_db_bytes(&dir.path().join("data"));
    assert!(
        stored.windows(12).any(|w| w == b"secret-check"),
        "the log files hold the request"
    );
    for secret in [SERVICE_KEY, ADMIN_KEY, PROVIDER_KEY, extra_secret] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in the request log"
        );
    }
}

#[tokio::test]
async fn sigterm_right_after_a_burst_keeps_every_record() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = standard_catalog(&upstream);
    let mut portico = start_in(dir.path(), &catalog, &[]).await;
    let client = reqwest::Client::new();
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..200 {
        let request = client
            .post(portico.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-trace-id", "burst")
            .json(&chat("@openai-mock/m", &format!("burst {i}")));
        burst.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    portico.sigterm().unwrap();
    let status = portico.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", portico.stderr_text());

    let again = start_in(dir.path(), &catalog, &[]).await;
    let logged = wait_for_logs(&again, "trace_id=burst", 200).await;
    assert_eq!(logged.len(), 200);
}

#[tokio::test]
async fn portico_logs_follow_prints_new_requests_as_they_come() {
    use tokio::io::AsyncBufReadExt as _;

    let gw = Gateway::start().await;
    let first = send_traced(&gw, SERVICE_KEY, "follow-trace", "before").await;
    wait_for_logs(&gw.portico, "trace_id=follow-trace", 1).await;
    let mut child = tokio::process::Command::new(bin())
        .args(["logs", "--follow", "--trace-id", "follow-trace", "--url"])
        .arg(gw.portico.base_url())
        .args(["--admin-key", ADMIN_KEY])
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(15), lines.next_line())
            .await
            .expect("portico logs --follow printed nothing in time")
            .unwrap()
            .expect("portico logs --follow exited")
    };
    assert!(next_line().await.contains(&format!("id={first}")));
    let second = send_traced(&gw, SERVICE_KEY, "follow-trace", "after").await;
    let third = send_traced(&gw, SERVICE_KEY, "follow-trace", "later").await;
    // Each new request once, oldest first.
    assert!(next_line().await.contains(&format!("id={second}")));
    assert!(next_line().await.contains(&format!("id={third}")));
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn the_row_limit_prunes_the_oldest_requests() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = standard_catalog(&upstream);
    let env = [("PORTICO_LOG_MAX_ROWS", "3")];
    let mut portico = start_in(dir.path(), &catalog, &env).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let resp = client
            .post(portico.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-trace-id", "retention")
            .json(&chat("@openai-mock/m", &format!("r{i}")))
            .send()
            .await
            .unwrap();
        ids.push(
            resp.headers()["x-portkey-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Pruning runs at start and every ten minutes: all five are there until the restart.
    wait_for_logs(&portico, "trace_id=retention", 5).await;
    portico.sigterm().unwrap();
    portico.wait_exit(Duration::from_secs(20)).await.unwrap();

    let again = start_in(dir.path(), &catalog, &env).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let kept = loop {
        let body: Value = admin_get(&again, "/admin/v1/logs?trace_id=retention")
            .await
            .json()
            .await
            .unwrap();
        let data = body["data"].as_array().unwrap().clone();
        if data.len() == 3 {
            break data;
        }
        assert!(Instant::now() < deadline, "not pruned to 3: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let kept: Vec<&str> = kept.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let newest: Vec<&str> = ids[2..].iter().rev().map(String::as_str).collect();
    assert_eq!(kept, newest);
}

#[tokio::test]
async fn a_streamed_answer_is_logged_as_its_event_stream_text() {
    let gw = Gateway::start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "stream-trace")
        .json(&json!({
            "model": "@openai-mock/gpt-4o-mini",
            "stream": true,
            "messages": [{"role": "user", "content": "flowing words"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let received = resp.text().await.unwrap();
    let listed = wait_for_logs(&gw.portico, "trace_id=stream-trace", 1).await;
    assert_eq!(listed[0]["stream"], true);
    let detail: Value = admin_get(&gw.portico, &format!("/admin/v1/logs/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["request"]["stream"], true);
    let text = detail["response"]
        .as_str()
        .unwrap_or_else(|| panic!("a stream is answered as text: {detail}"));
    assert!(text.contains("data: ") && text.contains("[DONE]"), "{text}");
    assert_eq!(text, received, "the log keeps what the client received");
}
