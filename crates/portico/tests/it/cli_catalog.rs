//! `portico configs|guardrails|keys|providers|models` against a running gateway: what they
//! print, the errors they pass on, and that their changes take effect on the data plane.

use std::process::Output;

use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, SERVICE_KEY, bin, chat, standard_catalog};

/// Runs the CLI against `gw` (off the async runtime: the command blocks).
async fn cli(gw: &Gateway, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let url = gw.portico.base_url();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORTICO_URL", url)
            .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn configs_are_added_listed_attached_and_refused_when_invalid_or_in_use() {
    let gw = Gateway::start().await;
    let config =
        json!({"provider": "@openai-mock", "retry": {"attempts": 1, "on_status_codes": [503]}});
    let out = cli(
        &gw,
        &[
            "configs",
            "add",
            "retry-once",
            "--json",
            &config.to_string(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("added config retry-once"));

    let out = cli(&gw, &["configs", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert!(text.contains("retry-once"), "{text}");

    let out = cli(&gw, &["configs", "get", "retry-once"]).await;
    let printed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed, config);

    // An invalid config: exit 1 and the API's message, naming the field path.
    let bad = json!({"provider": "@openai-mock", "retry": {"attempts": 9}});
    let out = cli(&gw, &["configs", "add", "bad", "--json", &bad.to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("portico: error: 400"), "{err}");
    assert!(err.contains("retry.attempts"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");

    // A key created with the config: its requests are retried by it.
    let out = cli(&gw, &["keys", "add", "cli-key", "--config", "retry-once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let secret = text.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(text.contains("shown once"), "{text}");
    gw.upstream.enqueue(MockReply::error(503, "busy"));
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat("gpt-4o-mini", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-retry-attempt-count"], "1");

    let out = cli(&gw, &["keys", "list"]).await;
    let text = stdout(&out);
    assert!(
        text.contains("cli-key") && text.contains("retry-once"),
        "{text}"
    );
    assert!(!text.contains(&secret), "a listing never shows a secret");

    // In use: refused with the key named; detached, it can go.
    let out = cli(&gw, &["configs", "remove", "retry-once"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cli-key"), "{}", stderr(&out));
    let out = cli(&gw, &["keys", "set-config", "cli-key", "--none"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&gw, &["configs", "remove", "retry-once"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = cli(&gw, &["keys", "revoke", "cli-key"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat("@openai-mock/gpt-4o-mini", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// The status of a chat request with an email address in it, through a config that names
/// `guardrail` as an input guardrail.
async fn guarded_status(gw: &Gateway, guardrail: &str) -> u16 {
    let config = json!({"input_guardrails": [guardrail]});
    gw.http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .json(&chat(
            "@openai-mock/gpt-4o-mini",
            "write to jane.doe@example.com",
        ))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn guardrails_are_added_listed_replaced_and_removed() {
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "{}guardrails:\n  - id: from-file\n    checks:\n      - id: default.wordCount\n        parameters: {{ maxWords: 50 }}\n",
        standard_catalog(&upstream)
    );
    let gw = Gateway::start_with(upstream, &catalog).await;
    assert_eq!(guarded_status(&gw, "no-emails").await, 400, "not yet added");

    let guardrail = json!({"checks": [{"id": "portico.pii", "parameters": {"categories": ["email"]}}], "deny": true});
    let out = cli(
        &gw,
        &[
            "guardrails",
            "add",
            "no-emails",
            "--json",
            &guardrail.to_string(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "added guardrail no-emails\n");
    assert_eq!(
        guarded_status(&gw, "no-emails").await,
        446,
        "in force at once"
    );

    // A table: the checks it runs, whether it denies, whose it is.
    let out = cli(&gw, &["guardrails", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    let line = |id: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no {id} in:\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        line("no-emails")[..4],
        ["no-emails", "portico.pii", "true", "api"]
    );
    assert_eq!(
        line("from-file")[..4],
        ["from-file", "default.wordCount", "false", "file"]
    );
    let out = cli(&gw, &["guardrails", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"no-emails") && ids.contains(&"from-file"),
        "{ids:?}"
    );

    let out = cli(&gw, &["guardrails", "get", "no-emails"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed["checks"], guardrail["checks"]);
    assert_eq!(printed["deny"], true);

    // Replaced from a file (a catalog entry's shape, with its id): it flags, 246.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-emails.json");
    let flagging = json!({"id": "no-emails", "checks": guardrail["checks"], "deny": false});
    std::fs::write(&file, flagging.to_string()).unwrap();
    let path = file.to_str().unwrap();
    let out = cli(&gw, &["guardrails", "replace", "no-emails", "-f", path]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "replaced guardrail no-emails\n");
    assert_eq!(guarded_status(&gw, "no-emails").await, 246);

    // Refusals: one line, exit 1 for what the API refuses, 2 for what the command gets wrong.
    let bad = json!({"checks": [{"id": "default.regexMatch", "parameters": {"rule": "("}}]});
    let out = cli(
        &gw,
        &["guardrails", "add", "bad", "--json", &bad.to_string()],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("portico: error: 400 invalid guardrail `bad`: checks[0].parameters.rule: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    let out = cli(
        &gw,
        &[
            "guardrails",
            "add",
            "no-emails",
            "--json",
            &guardrail.to_string(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("portico: error: 409 "),
        "{}",
        stderr(&out)
    );
    let out = cli(&gw, &["guardrails", "remove", "from-file"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("catalog file"), "{}", stderr(&out));
    let out = cli(&gw, &["guardrails", "replace", "other", "-f", path]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`no-emails`"), "{}", stderr(&out));
    let out = cli(&gw, &["guardrails", "add", "x", "--json", "{not json"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    let out = cli(&gw, &["guardrails", "add", "x"]).await;
    assert_eq!(out.status.code(), Some(2), "neither --json nor --file");

    let out = cli(&gw, &["guardrails", "remove", "no-emails"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "removed guardrail no-emails\n");
    assert_eq!(guarded_status(&gw, "no-emails").await, 400);
    let out = cli(&gw, &["guardrails", "get", "no-emails"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("portico: error: 404 no guardrail `no-emails`"),
        "{err}"
    );
}

#[tokio::test]
async fn providers_and_models_are_listed_without_secrets() {
    let gw = Gateway::start().await;
    let out = cli(&gw, &["providers", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("openai-mock") && text.contains("restricted"),
        "{text}"
    );
    assert!(!text.contains(crate::support::PROVIDER_KEY), "{text}");

    let out = cli(&gw, &["models", "list"]).await;
    let text = stdout(&out);
    assert!(text.contains("@restricted/gpt-priced"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("gpt-priced"))
        .unwrap()
        .to_owned();
    assert!(
        line.contains('1') && line.contains('2'),
        "the catalog's prices: {line}"
    );

    // Providers of the catalog file are changed in the file; one added here can go here.
    let out = cli(&gw, &["providers", "remove", "@restricted"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("catalog file"), "{}", stderr(&out));
    let added = json!({"slug": "extra", "kind": "openai", "api_key": "sk-ptsecret-extra-000",
        "base_url": gw.upstream.base_url()});
    let out = cli(&gw, &["providers", "add", "--json", &added.to_string()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("added provider @extra"));
    let resp = gw
        .post("/v1/chat/completions", chat("@extra/gpt-4o-mini", "hi"))
        .await;
    assert_eq!(resp.status(), 200, "the new provider serves at once");
    let out = cli(&gw, &["providers", "list"]).await;
    assert!(!stdout(&out).contains("sk-ptsecret-extra-000"));
    let out = cli(&gw, &["providers", "remove", "@extra"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&gw, &["providers", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let slugs: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["slug"].as_str())
        .collect();
    assert!(!slugs.contains(&"extra"), "{slugs:?}");
    assert!(slugs.contains(&"restricted"), "{slugs:?}");
}

#[tokio::test]
async fn the_cli_says_what_to_fix_without_a_key_or_a_gateway() {
    let gw = Gateway::start().await;
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(bin())
            .args(["configs", "list", "--url", "http://127.0.0.1:9"])
            .env_clear()
            .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach Portico"),
        "{}",
        stderr(&out)
    );

    let url = gw.portico.base_url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args(["keys", "list", "--url", &url])
            .env_clear()
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("PORTICO_ADMIN_KEY"),
        "{}",
        stderr(&out)
    );

    let url = gw.portico.base_url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args([
                "keys",
                "list",
                "--url",
                &url,
                "--admin-key",
                crate::support::SERVICE_KEY,
            ])
            .env_clear()
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
}
