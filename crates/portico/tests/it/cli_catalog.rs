//! `portico configs|keys|providers|models` against a running gateway: what they print, the
//! errors they pass on, and that their changes take effect on the data plane.

use std::process::Output;

use portico_testkit::MockReply;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, bin, chat};

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
    let added = json!({"slug": "extra", "kind": "openai", "api_key": "sk-extra-secret-000",
        "base_url": gw.upstream.base_url()});
    let out = cli(&gw, &["providers", "add", "--json", &added.to_string()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("added provider @extra"));
    let resp = gw
        .post("/v1/chat/completions", chat("@extra/gpt-4o-mini", "hi"))
        .await;
    assert_eq!(resp.status(), 200, "the new provider serves at once");
    let out = cli(&gw, &["providers", "list"]).await;
    assert!(!stdout(&out).contains("sk-extra-secret-000"));
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
