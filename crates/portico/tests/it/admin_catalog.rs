//! The admin API's catalog through the real binary: auth, providers, keys and configs CRUD,
//! each change reaching the data plane at once, and no secret in any answer. Also the
//! catalog file's `configs:` (validation errors, idempotent applies) as the admin API shows it.

use std::time::Duration;

use portico_testkit::MockUpstream;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_KEY, Gateway, PROVIDER_KEY, SERVICE_KEY, bin, chat, standard_catalog, start_in,
};

/// A provider secret given through the admin API; it must never come back.
const ADDED_KEY: &str = "sk-ptsecret-added-through-admin-api-7f3e";

/// One answer of the admin API: status and body (JSON, or null when empty).
struct Answer {
    status: u16,
    body: Value,
    text: String,
}

/// Every answer body the test saw, to check that no secret was ever answered.
#[derive(Default)]
struct Seen(std::sync::Mutex<String>);

struct AdminClient<'a> {
    gw: &'a Gateway,
    seen: Seen,
}

impl AdminClient<'_> {
    fn new(gw: &Gateway) -> AdminClient<'_> {
        AdminClient {
            gw,
            seen: Seen::default(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_as(ADMIN_KEY, method, path, body).await
    }

    async fn call_as(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .gw
            .http
            .request(method, self.gw.url(&format!("/admin/v1{path}")));
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.seen.0.lock().unwrap().push_str(&text);
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        Answer { status, body, text }
    }

    /// Asserts no answer so far contained any of `secrets`.
    fn assert_never_answered(&self, secrets: &[&str]) {
        let seen = self.seen.0.lock().unwrap();
        assert!(!seen.is_empty());
        for secret in secrets {
            assert!(!seen.contains(secret), "an answer contained {secret}");
        }
    }
}

#[track_caller]
fn expect(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.text);
}

/// The status of a chat request with `key`.
async fn chat_as(gw: &Gateway, key: &str, model: &str) -> (u16, Value) {
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat(model, "hello"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_routes_need_the_admin_key() {
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);
    let none = admin.call_as("", "GET", "/providers", None).await;
    expect(&none, 401);
    assert_eq!(none.body["error"]["code"], "missing_api_key");
    let unknown = admin
        .call_as("prt-not-a-key-0000000000", "GET", "/keys", None)
        .await;
    expect(&unknown, 401);
    let service = admin.call_as(SERVICE_KEY, "GET", "/configs", None).await;
    expect(&service, 403);
    assert_eq!(service.body["error"]["type"], "permission_error");
    // Every catalog route checks the key, writes included.
    let write = admin
        .call_as(SERVICE_KEY, "DELETE", "/providers/openai-mock", None)
        .await;
    expect(&write, 403);
    expect(&admin.call("GET", "/providers", None).await, 200);
    // x-portkey-api-key works as on the data plane.
    let response = gw
        .http
        .get(gw.url("/admin/v1/models"))
        .header("x-portkey-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn providers_added_changed_and_removed_take_effect_at_once() {
    let gw = Gateway::start().await;
    let added = MockUpstream::start().await;
    let admin = AdminClient::new(&gw);

    let (status, body) = chat_as(&gw, SERVICE_KEY, "@added/gpt-x").await;
    assert_eq!(status, 404, "{body}");

    let created = admin
        .call(
            "POST",
            "/providers",
            Some(
                json!({"slug": "added", "kind": "openai", "api_key": ADDED_KEY,
                        "base_url": added.base_url()}),
            ),
        )
        .await;
    expect(&created, 201);
    assert_eq!(created.body["slug"], "added");
    assert_eq!(created.body["kind"], "openai");
    assert_eq!(created.body["api_key_set"], true);
    assert_eq!(created.body["source"], "api");
    assert_eq!(created.body["models"], Value::Null);
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, body) = chat_as(&gw, SERVICE_KEY, "@added/gpt-x").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(added.last_request().unwrap().bearer(), Some(ADDED_KEY));

    expect(
        &admin
            .call(
                "POST",
                "/providers",
                Some(json!({"slug": "added", "kind": "mock"})),
            )
            .await,
        409,
    );
    let typo = admin
        .call(
            "POST",
            "/providers",
            Some(json!({"slug": "other", "kind": "openai", "api_key": "k", "base_ur": "x"})),
        )
        .await;
    expect(&typo, 400);
    assert_eq!(typo.body["error"]["param"], "base_ur");
    assert!(
        typo.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `base_url`?"),
        "{}",
        typo.text
    );
    let bad_url = admin
        .call(
            "POST",
            "/providers",
            Some(json!({"slug": "other", "kind": "openai-compatible", "base_url": "nope"})),
        )
        .await;
    expect(&bad_url, 400);
    assert_eq!(bad_url.body["error"]["param"], "base_url");

    // Replace without api_key: the stored key is kept; the new allow-list applies at once.
    let replaced = admin
        .call(
            "PUT",
            "/providers/added",
            Some(json!({"kind": "openai", "base_url": added.base_url(),
                        "models": [{"id": "gpt-x", "pricing": {"input_per_mtok": 0.5}}]})),
        )
        .await;
    expect(&replaced, 200);
    assert_eq!(replaced.body["api_key_set"], true);
    assert_eq!(replaced.body["models"][0]["id"], "gpt-x");
    let (status, _) = chat_as(&gw, SERVICE_KEY, "@added/gpt-x").await;
    assert_eq!(status, 200);
    assert_eq!(added.last_request().unwrap().bearer(), Some(ADDED_KEY));
    let (status, body) = chat_as(&gw, SERVICE_KEY, "@added/gpt-other").await;
    assert_eq!(status, 404, "{body}");
    let renamed = admin
        .call(
            "PUT",
            "/providers/added",
            Some(json!({"slug": "renamed", "kind": "mock"})),
        )
        .await;
    expect(&renamed, 400);
    assert_eq!(renamed.body["error"]["param"], "slug");

    let one = admin.call("GET", "/providers/added", None).await;
    expect(&one, 200);
    assert_eq!(one.body["models"][0]["pricing"]["input_per_mtok"], 0.5);
    let list = admin.call("GET", "/providers", None).await;
    expect(&list, 200);
    let slugs: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    for slug in ["added", "openai-mock", "restricted", "mock"] {
        assert!(slugs.contains(&slug), "{slugs:?}");
    }
    assert_eq!(list.body["next_cursor"], Value::Null);

    // The catalog file's providers are the file's to change.
    let file_owned = admin.call("DELETE", "/providers/openai-mock", None).await;
    expect(&file_owned, 409);
    assert!(
        file_owned.text.contains("catalog file"),
        "{}",
        file_owned.text
    );

    expect(&admin.call("DELETE", "/providers/added", None).await, 204);
    let (status, body) = chat_as(&gw, SERVICE_KEY, "@added/gpt-x").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "provider_not_found");
    expect(&admin.call("GET", "/providers/added", None).await, 404);
    expect(&admin.call("DELETE", "/providers/added", None).await, 404);

    admin.assert_never_answered(&[ADDED_KEY, PROVIDER_KEY, ADMIN_KEY, SERVICE_KEY]);
}

#[tokio::test]
async fn kind_credentials_are_kept_when_a_replacement_leaves_them_out() {
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);
    let aws_secret = "aws-secret-through-admin-api-0042";
    let created = admin
        .call(
            "POST",
            "/providers",
            Some(json!({"slug": "aws", "kind": "bedrock", "aws_region": "eu-west-1",
                        "aws_access_key_id": "AKIAADMINAPITEST", "aws_secret_access_key": aws_secret})),
        )
        .await;
    expect(&created, 201);
    assert_eq!(
        created.body["credentials_set"],
        json!(["aws_access_key_id", "aws_secret_access_key"])
    );
    assert_eq!(created.body["settings"]["aws_region"], "eu-west-1");
    assert_eq!(created.body["api_key_set"], false);

    let replaced = admin
        .call(
            "PUT",
            "/providers/aws",
            Some(json!({"kind": "bedrock", "aws_region": "us-east-1"})),
        )
        .await;
    expect(&replaced, 200);
    assert_eq!(replaced.body["settings"]["aws_region"], "us-east-1");
    assert_eq!(
        replaced.body["credentials_set"],
        created.body["credentials_set"]
    );

    // A half pair is checked like in the file, the stored half notwithstanding.
    let half = admin
        .call(
            "PUT",
            "/providers/aws",
            Some(json!({"kind": "bedrock", "aws_region": "us-east-1",
                        "aws_access_key_id": "AKIAOTHER"})),
        )
        .await;
    expect(&half, 400);
    assert_eq!(half.body["error"]["param"], "aws_secret_access_key");

    admin.assert_never_answered(&[aws_secret, "AKIAADMINAPITEST", PROVIDER_KEY]);
}

#[tokio::test]
async fn a_created_key_works_until_it_is_revoked() {
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);

    let created = admin
        .call(
            "POST",
            "/keys",
            Some(json!({"name": "made", "type": "service"})),
        )
        .await;
    expect(&created, 201);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("prt-svc-"), "{secret}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["source"], "api");
    assert_eq!(created.body["log_payloads"], true);
    assert_eq!(created.body["revoked_at"], Value::Null);
    let hint = created.body["hint"].as_str().unwrap();
    assert!(secret.ends_with(&hint[hint.len() - 4..]), "{hint}");

    let (status, body) = chat_as(&gw, &secret, "@mock/echo").await;
    assert_eq!(status, 200, "{body}");

    // The secret is answered once: not by the list or by a read.
    let list = admin.call("GET", "/keys", None).await;
    expect(&list, 200);
    assert!(!list.text.contains(&secret));
    assert_eq!(list.body["data"][0]["name"], "made", "newest first");
    let by_name = admin.call("GET", "/keys/made", None).await;
    expect(&by_name, 200);
    assert_eq!(by_name.body["id"], id.as_str());
    assert_eq!(by_name.body.get("secret"), None);
    expect(&admin.call("GET", &format!("/keys/{id}"), None).await, 200);

    // Restricting the key applies at once; null lifts the restriction.
    let narrowed = admin
        .call(
            "PATCH",
            &format!("/keys/{id}"),
            Some(json!({"allowed_models": ["@restricted"], "log_payloads": false})),
        )
        .await;
    expect(&narrowed, 200);
    assert_eq!(narrowed.body["allowed_models"], json!(["@restricted"]));
    assert_eq!(narrowed.body["log_payloads"], false);
    let (status, _) = chat_as(&gw, &secret, "@mock/echo").await;
    assert_eq!(status, 403);
    let widened = admin
        .call("PATCH", "/keys/made", Some(json!({"allowed_models": null})))
        .await;
    expect(&widened, 200);
    assert_eq!(widened.body["allowed_models"], Value::Null);
    assert_eq!(widened.body["log_payloads"], false, "absent fields stay");
    let (status, _) = chat_as(&gw, &secret, "@mock/echo").await;
    assert_eq!(status, 200);

    // Bad bodies name the field.
    let cases = [
        (json!({"name": "made", "type": "service"}), 409, None),
        (json!({"name": "x", "type": "admin"}), 400, Some("type")),
        (
            json!({"name": "x", "type": "service", "colour": 1}),
            400,
            Some("colour"),
        ),
        (json!({"name": "x", "type": "user"}), 400, None),
        (
            json!({"name": "x", "type": "service", "allowed_models": ["openai"]}),
            400,
            Some("allowed_models[0]"),
        ),
        (
            json!({"name": "x", "type": "service", "config": "no-such"}),
            400,
            None,
        ),
        (json!({"name": "x", "type": 5}), 400, Some("type")),
    ];
    for (body, status, param) in cases {
        let answer = admin.call("POST", "/keys", Some(body.clone())).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        if let Some(param) = param {
            assert_eq!(answer.body["error"]["param"], param, "{}", answer.text);
        }
    }
    let patch_typo = admin
        .call("PATCH", "/keys/made", Some(json!({"allowed_modles": null})))
        .await;
    expect(&patch_typo, 400);
    assert_eq!(patch_typo.body["error"]["param"], "allowed_modles");

    // File keys and the admin key are not the API's to change.
    expect(
        &admin
            .call(
                "PATCH",
                "/keys/service",
                Some(json!({"log_payloads": false})),
            )
            .await,
        409,
    );
    expect(&admin.call("DELETE", "/keys/admin", None).await, 409);

    expect(
        &admin.call("DELETE", &format!("/keys/{id}"), None).await,
        204,
    );
    let (status, body) = chat_as(&gw, &secret, "@mock/echo").await;
    assert_eq!(status, 401, "{body}");
    let revoked = admin.call("GET", "/keys/made", None).await;
    assert!(revoked.body["revoked_at"].as_str().unwrap().ends_with('Z'));
    expect(&admin.call("GET", "/keys/nobody", None).await, 404);

    admin.assert_never_answered(&[PROVIDER_KEY, ADMIN_KEY, SERVICE_KEY]);
}

#[tokio::test]
async fn configs_are_validated_used_by_keys_and_reach_the_data_plane() {
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);

    let invalid = admin
        .call(
            "POST",
            "/configs",
            Some(
                json!({"id": "lb", "config": {"strategy": {"mode": "loadbalance"},
                "targets": [{"provider": "@openai-mock"}, {"provider": "@mock", "weight": -1}]}}),
            ),
        )
        .await;
    expect(&invalid, 400);
    assert_eq!(invalid.body["error"]["param"], "config.targets[1].weight");
    assert!(
        invalid.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("targets[1].weight"),
        "{}",
        invalid.text
    );
    let dangling = admin
        .call(
            "POST",
            "/configs",
            Some(json!({"id": "lb", "config": {"provider": "@nowhere"}})),
        )
        .await;
    expect(&dangling, 400);
    assert_eq!(dangling.body["error"]["param"], "config.provider");
    assert!(
        dangling.text.contains("no provider `@nowhere`"),
        "{}",
        dangling.text
    );
    let bad_id = admin
        .call(
            "POST",
            "/configs",
            Some(json!({"id": "{x}", "config": {"retry": {"attempts": 1}}})),
        )
        .await;
    expect(&bad_id, 400);
    assert_eq!(bad_id.body["error"]["param"], "id");

    // An unknown id in x-portkey-config is a 400 until the config exists.
    let with_config = |id: &'static str| {
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-config", id)
            .json(&chat("@mock/echo", "hi"))
            .send()
    };
    assert_eq!(with_config("via-api").await.unwrap().status(), 400);

    let created = admin
        .call(
            "POST",
            "/configs",
            Some(json!({"id": "via-api", "config": {"retry": {"attempts": 1}}})),
        )
        .await;
    expect(&created, 201);
    assert_eq!(created.body["source"], "api");
    assert_eq!(created.body["config"], json!({"retry": {"attempts": 1}}));
    assert_eq!(with_config("via-api").await.unwrap().status(), 200);
    expect(
        &admin
            .call(
                "POST",
                "/configs",
                Some(json!({"id": "via-api", "config": {"retry": {"attempts": 1}}})),
            )
            .await,
        409,
    );

    let replaced = admin
        .call(
            "PUT",
            "/configs/via-api",
            Some(json!({"config": {"retry": {"attempts": 2}, "request_timeout": 30000}})),
        )
        .await;
    expect(&replaced, 200);
    assert_eq!(replaced.body["config"]["retry"]["attempts"], 2);
    let bad_replace = admin
        .call(
            "PUT",
            "/configs/via-api",
            Some(json!({"config": {"retry": {"attempts": 9}}})),
        )
        .await;
    expect(&bad_replace, 400);
    assert_eq!(bad_replace.body["error"]["param"], "config.retry.attempts");
    expect(
        &admin
            .call(
                "PUT",
                "/configs/missing",
                Some(json!({"config": {"retry": {"attempts": 2}}})),
            )
            .await,
        404,
    );

    // A key using the config keeps it from being deleted.
    let key = admin
        .call(
            "POST",
            "/keys",
            Some(json!({"name": "configured", "type": "service", "config": "via-api"})),
        )
        .await;
    expect(&key, 201);
    assert_eq!(key.body["config"], "via-api");
    let in_use = admin.call("DELETE", "/configs/via-api", None).await;
    expect(&in_use, 409);
    assert!(in_use.text.contains("`configured`"), "{}", in_use.text);
    let detached = admin
        .call("PATCH", "/keys/configured", Some(json!({"config": null})))
        .await;
    expect(&detached, 200);
    assert_eq!(detached.body["config"], Value::Null);
    expect(&admin.call("DELETE", "/configs/via-api", None).await, 204);
    expect(&admin.call("GET", "/configs/via-api", None).await, 404);
    assert_eq!(with_config("via-api").await.unwrap().status(), 400);

    // A provider a config routes to cannot be deleted.
    let upstream = MockUpstream::start().await;
    expect(
        &admin
            .call(
                "POST",
                "/providers",
                Some(
                    json!({"slug": "target", "kind": "openai", "api_key": ADDED_KEY,
                            "base_url": upstream.base_url()}),
                ),
            )
            .await,
        201,
    );
    expect(
        &admin
            .call(
                "POST",
                "/configs",
                Some(json!({"id": "to-target", "config": {"provider": "@target"}})),
            )
            .await,
        201,
    );
    let used = admin.call("DELETE", "/providers/target", None).await;
    expect(&used, 409);
    assert!(used.text.contains("`to-target`"), "{}", used.text);

    admin.assert_never_answered(&[ADDED_KEY, PROVIDER_KEY, ADMIN_KEY, SERVICE_KEY]);
}

#[tokio::test]
async fn models_carry_catalog_or_built_in_prices() {
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);
    let mut models = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/models?limit=7&cursor={c}"),
            None => "/models?limit=7".to_owned(),
        };
        let page = admin.call("GET", &path, None).await;
        expect(&page, 200);
        models.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let find = |id: &str| {
        models
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {models:#?}"))
    };
    let priced = find("@restricted/gpt-priced");
    assert_eq!(priced["provider"], "restricted");
    assert_eq!(priced["model"], "gpt-priced");
    assert_eq!(priced["name"], "Priced");
    assert_eq!(priced["pricing"]["input_per_mtok"], 1.0);
    assert_eq!(priced["pricing"]["output_per_mtok"], 2.0);
    assert_eq!(priced["pricing_source"], "catalog");
    assert_eq!(find("@restricted/gpt-allowed")["pricing"], Value::Null);
    assert_eq!(find("@mock/echo")["allow_listed"], false);
    // A provider without an allow-list lists the built-in price table's models of its kind.
    let builtin = find("@openai-mock/gpt-4o-mini");
    assert_eq!(builtin["pricing_source"], "builtin");
    assert!(builtin["pricing"]["input_per_mtok"].as_f64().unwrap() > 0.0);
    expect(&admin.call("GET", "/models?limit=0", None).await, 400);
}

/// The standard catalog plus a config attached to the service key.
fn catalog_with_configs(upstream: &MockUpstream) -> String {
    standard_catalog(upstream)
        .replace(
            "keys:\n",
            "configs:\n  - id: reliable\n    config:\n      strategy: { mode: fallback }\n      targets: [ { provider: \"@openai-mock\" }, { provider: \"@mock\" } ]\n      retry: { attempts: 2 }\nkeys:\n",
        )
        .replace(
            &format!("    key: {SERVICE_KEY}\n"),
            &format!("    key: {SERVICE_KEY}\n    config: reliable\n"),
        )
}

#[tokio::test]
async fn file_configs_are_applied_once_and_shown_by_the_admin_api() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog_with_configs(&upstream);
    assert!(catalog.contains("config: reliable"), "{catalog}");
    let get = |portico: &portico_testkit::PorticoProcess, path: &str| {
        reqwest::Client::new()
            .get(portico.url(&format!("/admin/v1{path}")))
            .bearer_auth(ADMIN_KEY)
            .send()
    };

    let mut portico = start_in(dir.path(), &catalog, &[]).await;
    let configs: Value = get(&portico, "/configs")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(configs["data"][0]["id"], "reliable");
    assert_eq!(configs["data"][0]["source"], "file");
    assert_eq!(
        configs["data"][0]["config"]["targets"][1]["provider"],
        "@mock"
    );
    let key: Value = get(&portico, "/keys/service")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["config"], "reliable");
    let first_updated = configs["data"][0]["updated_at"].clone();

    // The file's config is the file's to change.
    let response = reqwest::Client::new()
        .delete(portico.url("/admin/v1/configs/reliable"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);

    // A restart with the same file changes nothing.
    portico.sigterm().unwrap();
    portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    let portico = start_in(dir.path(), &catalog, &[]).await;
    let configs: Value = get(&portico, "/configs")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(configs["data"][0]["updated_at"], first_updated);
    assert_eq!(configs["data"].as_array().unwrap().len(), 1);
}

/// Runs `portico serve` on `catalog` and returns its exit code and stderr; the catalog is
/// expected to be refused before anything listens.
async fn refused(catalog: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.yaml");
    std::fs::write(&file, catalog).unwrap();
    let out = tokio::process::Command::new(bin())
        .args([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_invalid_config_in_the_catalog_exits_2_naming_its_field() {
    let (code, stderr) = refused(
        "configs:\n  - id: lb\n    config:\n      strategy: { mode: loadbalance }\n      targets: [ { provider: \"@mock\" }, { provider: \"@mock\", weight: -1 } ]\n",
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("catalog.yaml: configs[0].config.targets[1].weight: "),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let (code, stderr) = refused("keys:\n  - name: k\n    config: nowhere\n").await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("keys[0].config: "), "{stderr}");

    // Which providers exist is known once environment detection and the store are consulted.
    let (code, stderr) = refused(
        "configs:\n  - id: reliable\n    config: { strategy: { mode: fallback }, targets: [ { provider: \"@mock\" }, { provider: \"@nowhere\" } ] }\n",
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "config `reliable`: targets[1].provider: no provider `@nowhere` in the catalog"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() {
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);
    let doc = admin.call("GET", "/openapi.json", None).await;
    expect(&doc, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    expect(&admin.call_as("", "GET", "/openapi.json", None).await, 401);

    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 11, "{paths:?}");
    let mut probed = 0;
    for (path, item) in paths {
        // Path parameters get a value no record has: the route must still be the one
        // answering (a 404 of its own, not the router's).
        let concrete = path
            .replace("{slug}", "probe-none")
            .replace("{id}", "probe-none")
            .replace("{name}", "probe-none");
        for method in methods {
            let documented = item.get(method.to_ascii_lowercase()).is_some();
            let body = matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({}));
            let answer = admin.call(method, &concrete, body).await;
            let code = answer.body["error"]["code"].as_str().unwrap_or("");
            if documented {
                probed += 1;
                assert!(
                    answer.status != 405
                        && !matches!(code, "route_not_found" | "method_not_allowed"),
                    "{method} {path} is documented but the router does not serve it: {}",
                    answer.text
                );
                assert!(answer.status < 500, "{method} {path}: {}", answer.text);
            } else {
                assert_eq!(
                    answer.status, 405,
                    "{method} {path} is served but not documented: {}",
                    answer.text
                );
            }
        }
    }
    assert!(probed >= 20, "{probed}");
}

#[tokio::test]
async fn keys_created_concurrently_all_work_as_soon_as_they_are_answered() {
    let gw = std::sync::Arc::new(Gateway::start().await);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let gw = std::sync::Arc::clone(&gw);
        tasks.push(tokio::spawn(async move {
            let created: Value = gw
                .http
                .post(gw.url("/admin/v1/keys"))
                .bearer_auth(ADMIN_KEY)
                .json(&json!({"name": format!("burst-{i}"), "type": "service"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let secret = created["secret"].as_str().unwrap().to_owned();
            chat_as(&gw, &secret, "@mock/echo").await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn cloud_credentials_go_through_the_admin_api_and_are_kept_on_replacement() {
    let google = portico_testkit::token::MockTokenServer::oauth("admin-vertex-token", 3600).await;
    let gw = Gateway::start().await;
    let admin = AdminClient::new(&gw);
    let private_key = include_str!("../../../portico-testkit/fixtures/jwt/rsa-a.pem");
    let account =
        json!({"type": "service_account", "client_email": "sa@p-1.iam.gserviceaccount.com",
                         "private_key": private_key, "token_uri": google.url_for("/token")})
        .to_string();
    let base = format!("http://{}", gw.upstream.addr());
    let created = admin
        .call(
            "POST",
            "/providers",
            Some(json!({"slug": "vx", "kind": "gemini", "base_url": base,
                        "vertex_project_id": "p-1", "vertex_region": "us-central1",
                        "vertex_service_account_json": account})),
        )
        .await;
    expect(&created, 201);
    assert_eq!(
        created.body["credentials_set"],
        json!(["vertex_service_account_json"])
    );
    // Replaced without the key file: the stored one is kept.
    let replaced = admin
        .call(
            "PUT",
            "/providers/vx",
            Some(json!({"kind": "gemini", "base_url": base,
                        "vertex_project_id": "p-1", "vertex_region": "europe-west4"})),
        )
        .await;
    expect(&replaced, 200);
    assert_eq!(
        replaced.body["credentials_set"],
        json!(["vertex_service_account_json"])
    );
    let (status, body) = chat_as(&gw, SERVICE_KEY, "@vx/gemini-2.5-flash").await;
    assert_eq!(status, 200, "{body}");
    let seen = gw.upstream.last_request().unwrap();
    assert!(
        seen.path.contains("/locations/europe-west4/"),
        "{}",
        seen.path
    );
    assert_eq!(seen.bearer(), Some("admin-vertex-token-1"));

    let entra_secret = "entra-secret-through-admin-api-0042";
    let azure = admin
        .call(
            "POST",
            "/providers",
            Some(
                json!({"slug": "az", "kind": "azure-openai", "base_url": base,
                        "azure_tenant_id": "tenant-1", "azure_client_id": "client-1",
                        "azure_client_secret": entra_secret}),
            ),
        )
        .await;
    expect(&azure, 201);
    assert_eq!(
        azure.body["credentials_set"],
        json!(["azure_client_secret"])
    );
    assert_eq!(azure.body["settings"]["azure_tenant_id"], "tenant-1");
    let incomplete = admin
        .call(
            "POST",
            "/providers",
            Some(
                json!({"slug": "az2", "kind": "azure-openai", "base_url": base,
                        "azure_tenant_id": "tenant-1"}),
            ),
        )
        .await;
    expect(&incomplete, 400);
    assert_eq!(incomplete.body["error"]["param"], "azure_client_id");

    admin.assert_never_answered(&[entra_secret, "BEGIN PRIVATE KEY", PROVIDER_KEY]);
}
