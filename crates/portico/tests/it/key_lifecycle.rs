//! Key states on the real binary: revoked, rotated and expired keys get 401s that say so, a
//! key of type gateway is refused on the data plane and the admin API, and the CLI and the
//! dashboard rotate and revoke keys.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{ADMIN_KEY, Gateway, bin, chat, standard_catalog};

const MODEL: &str = "@openai-mock/gpt-4o-mini";

/// A chat request with `key`: its status and body.
async fn chat_as(gw: &Gateway, key: &str) -> (u16, Value) {
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat(MODEL, "hello"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// An admin API call: its status and body.
async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = gw
        .http
        .request(method.parse().unwrap(), gw.url(&format!("/admin/v1{path}")))
        .bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates a key through the admin API; answers the key with its `secret`.
async fn create_key(gw: &Gateway, body: Value) -> Value {
    let (status, key) = admin(gw, "POST", "/keys", Some(body)).await;
    assert_eq!(status, 201, "{key}");
    key
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// An RFC 3339 time `secs` from now (negative: in the past).
fn in_secs(secs: i64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::seconds(secs);
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn revoked_and_rotated_keys_get_401s_that_say_so() {
    let gw = Gateway::start().await;
    let key = create_key(&gw, json!({"name": "rotating", "type": "service"})).await;
    let old = key["secret"].as_str().unwrap().to_owned();
    assert_eq!(chat_as(&gw, &old).await.0, 200);

    // Rotated: a new secret, the same key; the old secret is refused at once.
    let (status, rotated) = admin(&gw, "POST", "/keys/rotating/rotate", None).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with("prt-svc-"), "{new}");
    assert_eq!(rotated["id"], key["id"]);
    assert_eq!(rotated["name"], "rotating");
    assert_ne!(rotated["hint"], key["hint"]);
    let (status, body) = chat_as(&gw, &old).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(message(&body).contains("no key has this secret"), "{body}");
    assert_eq!(chat_as(&gw, &new).await.0, 200);
    let (_, listed) = admin(
        &gw,
        "GET",
        &format!("/keys/{}", key["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(listed["name"], "rotating");
    assert!(listed.get("secret").is_none(), "{listed}");

    // Revoked: refused, saying when.
    let (status, _) = admin(&gw, "DELETE", "/keys/rotating", None).await;
    assert_eq!(status, 204);
    let (status, body) = chat_as(&gw, &new).await;
    assert_eq!(status, 401, "{body}");
    let (_, listed) = admin(&gw, "GET", "/keys/rotating", None).await;
    let revoked_at = listed["revoked_at"].as_str().unwrap();
    assert!(
        message(&body).starts_with(&format!(
            "the key `rotating` was revoked at {}",
            &revoked_at[..19]
        )),
        "{body} / {revoked_at}"
    );
    // A revoked key stays revoked; a file key is rotated in its file.
    let (status, body) = admin(&gw, "POST", "/keys/rotating/rotate", None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin(&gw, "POST", "/keys/service/rotate", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("catalog file"), "{body}");
    let (status, _) = admin(&gw, "POST", "/keys/nobody/rotate", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn expired_keys_get_401_from_their_expiry_without_a_reload() {
    let upstream = portico_testkit::MockUpstream::start().await;
    let catalog = format!(
        "{}  - name: lapsed\n    key: prt-test-lapsed-key-0123456789\n    expires_at: \"{}\"\n",
        standard_catalog(&upstream),
        in_secs(-3600)
    );
    let gw = Gateway::start_with(upstream, &catalog).await;
    let (status, body) = chat_as(&gw, "prt-test-lapsed-key-0123456789").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        message(&body).starts_with("the key `lapsed` expired at "),
        "{body}"
    );
    let (_, listed) = admin(&gw, "GET", "/keys/lapsed", None).await;
    assert!(listed["expires_at"].is_string(), "{listed}");

    // An API key that expires in a moment: served until then, refused from then on, with no
    // change to the catalog in between.
    let expires_at = in_secs(2);
    let key = create_key(
        &gw,
        json!({"name": "brief", "type": "service", "expires_at": expires_at}),
    )
    .await;
    let secret = key["secret"].as_str().unwrap();
    assert_eq!(key["expires_at"].as_str().unwrap()[..19], expires_at[..19]);
    assert_eq!(chat_as(&gw, secret).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = chat_as(&gw, secret).await;
        if status == 401 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        message(&body).starts_with("the key `brief` expired at "),
        "{body}"
    );

    // Extended, it works again; a time in the past is refused (revoke instead).
    let (status, body) = admin(
        &gw,
        "PATCH",
        "/keys/brief",
        Some(json!({"expires_at": in_secs(3600)})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chat_as(&gw, secret).await.0, 200);
    let (status, body) = admin(
        &gw,
        "PATCH",
        "/keys/brief",
        Some(json!({"expires_at": in_secs(-10)})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "expires_at");
    let (status, body) = admin(
        &gw,
        "POST",
        "/keys",
        Some(json!({"name": "x", "type": "service", "expires_at": "tomorrow"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("RFC 3339"), "{body}");
    let (status, body) = admin(
        &gw,
        "PATCH",
        "/keys/brief",
        Some(json!({"expires_at": null})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_at"].is_null(), "{body}");
}

#[tokio::test]
async fn a_gateway_key_is_refused_on_the_data_plane_and_the_admin_api() {
    let gw = Gateway::start().await;
    let key = create_key(&gw, json!({"name": "edge-1", "type": "gateway"})).await;
    assert_eq!(key["type"], "gateway");
    let secret = key["secret"].as_str().unwrap();
    assert!(secret.starts_with("prt-gw-"), "{secret}");

    let (status, body) = chat_as(&gw, secret).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        message(&body).contains("`edge-1` is of type gateway"),
        "{body}"
    );
    let models = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 403);
    let listed = gw
        .http
        .get(gw.url("/admin/v1/keys"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 403);
    let body: Value = listed.json().await.unwrap();
    assert!(
        message(&body).contains("refused on the admin API"),
        "{body}"
    );

    // A user for a gateway key is refused, like for a service key.
    let (status, body) = admin(
        &gw,
        "POST",
        "/keys",
        Some(json!({"name": "edge-2", "type": "gateway", "user": "bob"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

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

/// The secret at the end of the line a `keys add` or `keys rotate` printed.
fn printed_secret(out: &Output) -> String {
    stdout(out).trim().rsplit(' ').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_cli_adds_rotates_expires_and_revokes_keys() {
    let gw = Gateway::start().await;
    let expiry = in_secs(86_400);
    let out = cli(&gw, &["keys", "add", "cli-key", "--expires-at", &expiry]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = printed_secret(&out);
    assert_eq!(chat_as(&gw, &first).await.0, 200);
    let (_, before) = admin(&gw, "GET", "/keys/cli-key", None).await;

    let out = cli(&gw, &["keys", "list"]).await;
    let text = stdout(&out);
    assert!(
        text.lines().next().unwrap().contains("EXPIRES_AT"),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with("cli-key")).unwrap();
    assert!(line.contains(&expiry[..16]), "{line}");

    let out = cli(&gw, &["keys", "rotate", "cli-key"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("rotated"), "{}", stdout(&out));
    assert!(stdout(&out).contains("shown once"), "{}", stdout(&out));
    let second = printed_secret(&out);
    assert_ne!(second, first);
    assert_eq!(chat_as(&gw, &first).await.0, 401);
    assert_eq!(chat_as(&gw, &second).await.0, 200);
    let (_, after) = admin(&gw, "GET", "/keys/cli-key", None).await;
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["expires_at"], before["expires_at"]);

    let out = cli(&gw, &["keys", "set-expiry", "cli-key", "--never"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "key cli-key does not expire");
    let out = cli(&gw, &["keys", "set-expiry", "cli-key", "not-a-time"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));

    let out = cli(&gw, &["keys", "add", "edge", "--type", "gateway"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(chat_as(&gw, &printed_secret(&out)).await.0, 403);

    let out = cli(&gw, &["keys", "revoke", "cli-key"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (status, body) = chat_as(&gw, &second).await;
    assert_eq!(status, 401);
    assert!(message(&body).contains("was revoked at"), "{body}");

    // A key of the catalog file is rotated in the file: one clear line, exit 1.
    let out = cli(&gw, &["keys", "rotate", "service"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("portico: error: 409"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

async fn sign_in(browser: &Browser, gw: &Gateway) {
    browser.open(&gw.url("/")).await;
    browser.fill("#admin-key", ADMIN_KEY).await;
    browser.click("form button[type=submit]").await;
    browser
        .until(
            "the signed-in navigation",
            "!document.getElementById('nav').hidden",
        )
        .await;
}

#[tokio::test]
async fn the_dashboard_rotates_and_revokes_keys_and_shows_expiry() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    let key = create_key(
        &gw,
        json!({"name": "dash-key", "type": "service", "expires_at": in_secs(86_400 * 30)}),
    )
    .await;
    let old = key["secret"].as_str().unwrap().to_owned();
    sign_in(&browser, &gw).await;
    browser.open(&gw.url("/#/keys")).await;
    let expires = browser
        .until(
            "the key's expiry",
            "document.querySelector('tr[data-key=dash-key] td.expires')?.textContent",
        )
        .await;
    assert_ne!(expires.as_str().unwrap(), "never", "{expires}");
    let never = browser.text("tr[data-key=service] td.expires").await;
    assert_eq!(never, "never");

    // Rotate: the new secret is shown once; the old one stops working, the new one works.
    browser.click("button[aria-label='Rotate dash-key']").await;
    browser.client.accept_alert().await.unwrap();
    let new = browser.text("#new-key-secret").await;
    assert_ne!(new, old);
    let title = browser.text("#secret-title").await;
    assert_eq!(title, "Key \"dash-key\" rotated");
    browser.screenshot("keys-rotated").await;
    assert_eq!(chat_as(&gw, &old).await.0, 401);
    assert_eq!(chat_as(&gw, &new).await.0, 200);
    let (_, after) = admin(&gw, "GET", "/keys/dash-key", None).await;
    assert_eq!(after["id"], key["id"]);
    browser.click(".secret-once button:last-child").await;
    browser
        .until(
            "the secret gone",
            "!document.getElementById('new-key-secret')",
        )
        .await;
    let page = browser.client.source().await.unwrap();
    assert!(!page.contains(&new), "the secret is still in the page");

    // Revoke: refused from now on, marked in the list, no more buttons.
    browser.click("button[aria-label='Revoke dash-key']").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until(
            "the key revoked",
            "document.querySelector('tr[data-key=dash-key].revoked')",
        )
        .await;
    let (status, body) = chat_as(&gw, &new).await;
    assert_eq!(status, 401);
    assert!(message(&body).contains("was revoked at"), "{body}");
    let buttons = browser
        .until(
            "the revoked row",
            "String(document.querySelectorAll('tr[data-key=dash-key] button').length)",
        )
        .await;
    assert_eq!(buttons, "0");

    // A gateway key created here; an expired key is marked.
    browser.click(".page-head button.primary").await;
    browser
        .fill(
            "form[aria-label='Create a key'] input[name=name]",
            "dash-edge",
        )
        .await;
    browser
        .client
        .execute(
            "document.querySelector(\"form[aria-label='Create a key'] select[name=type]\").value = 'gateway'",
            vec![],
        )
        .await
        .unwrap();
    browser
        .click("form[aria-label='Create a key'] button[type=submit]")
        .await;
    let secret = browser.text("#new-key-secret").await;
    assert!(secret.starts_with("prt-gw-"), "{secret}");
    assert_eq!(chat_as(&gw, &secret).await.0, 403);
    let brief = create_key(
        &gw,
        json!({"name": "dash-brief", "type": "service", "expires_at": in_secs(1)}),
    )
    .await;
    let brief_secret = brief["secret"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while chat_as(&gw, brief_secret).await.0 != 401 {
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.open(&gw.url("/#/logs")).await;
    browser.open(&gw.url("/#/keys")).await;
    let marked = browser
        .until(
            "the expired key marked",
            "document.querySelector('tr[data-key=dash-brief].expired td.expires')?.textContent",
        )
        .await;
    assert!(marked.as_str().unwrap().starts_with("expired"), "{marked}");
    browser.screenshot("keys-states").await;
}
