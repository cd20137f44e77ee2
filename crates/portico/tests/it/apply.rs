//! `portico apply` against a running gateway started without a catalog file: the plan it
//! prints (guardrails included), dry runs, a second apply that changes nothing, keys with a
//! fixed secret, records of the admin API left alone, a refused apply that writes nothing,
//! errors worded as `portico serve --config` words them, and changes in force on the data
//! plane at once (and after a restart).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use portico_testkit::{MockUpstream, PorticoProcess};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{ADMIN_KEY, bin, chat};

const FRESH_V1: &str = "sk-fresh-ptsecret-upstream-v1";
const FRESH_V2: &str = "sk-fresh-ptsecret-upstream-v2";
const BACKEND_V1: &str = "prt-backend-fixed-secret-v1";
const BACKEND_V2: &str = "prt-backend-fixed-secret-v2";
const OPS_KEY: &str = "prt-ops-fixed-secret-000000";

/// A gateway started with `portico serve` and no `--config`, managed by `portico apply`.
struct Instance {
    dir: TempDir,
    upstream: MockUpstream,
    portico: PorticoProcess,
    http: reqwest::Client,
}

impl Instance {
    async fn start() -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let portico = serve(dir.path()).await;
        Instance {
            dir,
            upstream: MockUpstream::start().await,
            portico,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the gateway and starts it again on the same data directory, still without a file.
    async fn restart(&mut self) {
        self.portico.sigterm().unwrap();
        self.portico
            .wait_exit(Duration::from_secs(20))
            .await
            .unwrap();
        self.portico = serve(self.dir.path()).await;
    }

    /// Writes `text` to `name` in the test's directory (the CLI runs there).
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// The first catalog: two providers, a config guarded by a guardrail that refuses email
    /// addresses, another guardrail, a key with a fixed secret and one without.
    fn v1(&self) -> String {
        format!(
            r#"providers:
  - slug: fresh
    kind: openai
    api_key: ${{FRESH_KEY}}
    base_url: {base}
  - slug: spare
    kind: mock
configs:
  - id: reliable
    config:
      strategy: {{ mode: fallback }}
      targets: [ {{ provider: "@fresh" }}, {{ provider: "@spare" }} ]
      input_guardrails: [ no-emails ]
guardrails:
  - id: no-emails
    checks:
      - id: portico.pii
        parameters: {{ categories: [email] }}
    deny: true
  - id: legacy
    checks:
      - id: default.wordCount
        parameters: {{ maxWords: 500 }}
keys:
  - name: backend
    key: ${{BACKEND_KEY}}
    config: reliable
  - name: ci
"#,
            base = self.upstream.base_url()
        )
    }

    /// The second: `@fresh` gets an allow-list (and, from the environment, a new API key),
    /// `@spare` and `ci` go, the config routes elsewhere, `no-emails` flags instead of
    /// refusing, `legacy` goes and `words` comes, `backend`'s secret rotates, `ops` and
    /// `nightly` come.
    fn v2(&self) -> String {
        format!(
            r#"providers:
  - slug: fresh
    kind: openai
    api_key: ${{FRESH_KEY}}
    base_url: {base}
    models: [gpt-4o-mini]
configs:
  - id: reliable
    config:
      strategy: {{ mode: fallback }}
      targets: [ {{ provider: "@fresh" }}, {{ provider: "@mock" }} ]
      input_guardrails: [ no-emails ]
guardrails:
  - id: no-emails
    checks:
      - id: portico.pii
        parameters: {{ categories: [email] }}
    deny: false
  - id: words
    checks:
      - id: default.wordCount
        parameters: {{ maxWords: 100 }}
keys:
  - name: backend
    key: ${{BACKEND_KEY}}
    config: reliable
  - name: ops
    key: {OPS_KEY}
  - name: nightly
"#,
            base = self.upstream.base_url()
        )
    }

    /// Runs `portico apply ARGS` in the test's directory with the instance's URL and admin
    /// key, and `env` (the variables the file names).
    async fn apply(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = std::process::Command::new(bin());
        command
            .arg("apply")
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORTICO_URL", self.portico.base_url())
            .env("PORTICO_ADMIN_KEY", ADMIN_KEY);
        for (name, value) in env {
            command.env(name, value);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// `portico apply -f v1.yaml` with the first secrets, which must succeed.
    async fn apply_v1(&self) -> String {
        self.write("v1.yaml", &self.v1());
        let out = self
            .apply(
                &["-f", "v1.yaml"],
                &[("FRESH_KEY", FRESH_V1), ("BACKEND_KEY", BACKEND_V1)],
            )
            .await;
        succeeded(&out)
    }

    /// `portico apply -f v2.yaml ...` with the second secrets.
    async fn apply_v2(&self, extra: &[&str]) -> Output {
        self.write("v2.yaml", &self.v2());
        let mut args = vec!["-f", "v2.yaml"];
        args.extend_from_slice(extra);
        self.apply(
            &args,
            &[("FRESH_KEY", FRESH_V2), ("BACKEND_KEY", BACKEND_V2)],
        )
        .await
    }

    /// `GET /admin/v1{path}` with the admin key.
    async fn admin(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(self.portico.url(&format!("/admin/v1{path}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    /// Everything the admin API shows of the catalog, times included.
    async fn catalog(&self) -> Value {
        json!({
            "providers": self.admin("/providers?limit=500").await,
            "configs": self.admin("/configs?limit=500").await,
            "keys": self.admin("/keys?limit=500").await,
            "guardrails": self.admin("/guardrails?limit=500").await,
        })
    }

    /// The status of a chat request with `key` that names an email address (which the
    /// file's `no-emails` guardrail, on the file's config, refuses or flags).
    async fn chat_with_email(&self, key: &str) -> u16 {
        self.http
            .post(self.portico.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat("@fresh/gpt-4o-mini", "write to jane.doe@example.com"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The key named `name` as the admin API lists it.
    async fn key(&self, name: &str) -> Value {
        self.admin(&format!("/keys/{name}")).await
    }

    /// The status of a chat request with `key` to `model`.
    async fn chat(&self, key: &str, model: &str) -> u16 {
        self.http
            .post(self.portico.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat(model, "hi"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// `portico serve` without a catalog file, on `dir/data`.
async fn serve(dir: &Path) -> PorticoProcess {
    let data = dir.join("data");
    PorticoProcess::start(
        &bin(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("PORTICO_ADMIN_KEY", ADMIN_KEY)],
    )
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stdout of a run that must have succeeded.
#[track_caller]
fn succeeded(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// The secret printed for key `name`.
#[track_caller]
fn printed_secret(text: &str, name: &str) -> String {
    let prefix = format!("portico: key {name} (shown once, store it now): ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no secret printed for {name}:\n{text}"))
        .to_owned()
}

#[track_caller]
fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing line {line:?} in:\n{text}"
        );
    }
}

#[track_caller]
fn assert_no_secret(text: &str) {
    for secret in [FRESH_V1, FRESH_V2, BACKEND_V1, BACKEND_V2, OPS_KEY] {
        assert!(!text.contains(secret), "{secret} was printed:\n{text}");
    }
}

#[tokio::test]
async fn apply_prints_the_plan_and_its_changes_serve_at_once() {
    let gw = Instance::start().await;
    let text = gw.apply_v1().await;
    assert_lines(
        &text,
        &[
            "  + provider @fresh",
            "  + provider @spare",
            "  + config reliable",
            "  + guardrail legacy",
            "  + guardrail no-emails",
            "  + key backend",
            "  + key ci (its secret is generated and shown once)",
            "Plan: 7 to create, 0 to change, 0 to delete.",
            "Applied: 7 created, 0 changed, 0 deleted.",
        ],
    );
    assert_no_secret(&text);
    let ci = printed_secret(&text, "ci");

    // In force at once: the file's key through the file's config to the file's provider,
    // with the provider key taken from the CLI's environment.
    assert_eq!(gw.chat(BACKEND_V1, "@fresh/gpt-4o-mini").await, 200);
    assert_eq!(gw.upstream.last_request().unwrap().bearer(), Some(FRESH_V1));
    assert_eq!(gw.chat(&ci, "@spare/echo").await, 200);
    assert_eq!(
        gw.chat_with_email(BACKEND_V1).await,
        446,
        "the file's guardrail"
    );
    let backend = gw.key("backend").await;

    let out = gw.apply_v2(&[]).await;
    let text = succeeded(&out);
    assert_lines(
        &text,
        &[
            "  ~ provider @fresh: api_key (secret), models",
            "  - provider @spare",
            "  ~ config reliable: config.targets",
            "  - guardrail legacy",
            "  ~ guardrail no-emails: deny",
            "  + guardrail words",
            "  ~ key backend: key (secret)",
            "  - key ci (revoked, not deleted: its logs and spend keep it; declaring it again restores it)",
            "  + key nightly (its secret is generated and shown once)",
            "  + key ops",
            "Plan: 3 to create, 4 to change, 3 to delete.",
        ],
    );
    assert_no_secret(&text);
    assert!(!text.contains(&ci), "{text}");
    let nightly = printed_secret(&text, "nightly");

    // Through the admin API: `@spare` is gone, `ci` revoked but kept, `backend` the same key.
    let providers = gw.admin("/providers").await;
    let slugs: Vec<&str> = providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["slug"].as_str())
        .collect();
    assert!(
        !slugs.contains(&"spare") && slugs.contains(&"fresh"),
        "{slugs:?}"
    );
    assert!(gw.key("ci").await["revoked_at"].is_string());
    let rotated = gw.key("backend").await;
    assert_eq!(rotated["id"], backend["id"]);
    assert_ne!(rotated["hint"], backend["hint"]);

    // And on the data plane, at once.
    assert_eq!(gw.chat(BACKEND_V2, "@fresh/gpt-4o-mini").await, 200);
    assert_eq!(gw.upstream.last_request().unwrap().bearer(), Some(FRESH_V2));
    // (`ops` has no config to fall back with.)
    assert_eq!(
        gw.chat(OPS_KEY, "@fresh/gpt-4o").await,
        404,
        "the allow-list"
    );
    assert_eq!(gw.chat(BACKEND_V1, "@fresh/gpt-4o-mini").await, 401);
    assert_eq!(gw.chat(&ci, "@mock/echo").await, 401);
    assert_eq!(gw.chat(OPS_KEY, "@mock/echo").await, 200);
    assert_eq!(gw.chat(&nightly, "@mock/echo").await, 200);
    assert_eq!(gw.chat_with_email(BACKEND_V2).await, 246, "flagged now");
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let gw = Instance::start().await;
    gw.apply_v1().await;
    let before = gw.catalog().await;

    let out = gw.apply_v2(&["--dry-run"]).await;
    let text = succeeded(&out);
    assert_lines(
        &text,
        &[
            "  ~ key backend: key (secret)",
            "  + key nightly (its secret is generated and shown once)",
            "  ~ guardrail no-emails: deny",
            "Plan: 3 to create, 4 to change, 3 to delete.",
            "Dry run: nothing was changed.",
        ],
    );
    assert!(!text.contains("Applied"), "{text}");
    assert!(!text.contains("shown once, store it now"), "{text}");
    assert_no_secret(&text);
    assert_eq!(gw.catalog().await, before);
    assert_eq!(gw.chat(BACKEND_V1, "@spare/echo").await, 200);
    assert_eq!(gw.chat(BACKEND_V2, "@spare/echo").await, 401);
    assert_eq!(gw.chat_with_email(BACKEND_V1).await, 446);

    // The real apply then does what the dry run said.
    let applied = succeeded(&gw.apply_v2(&[]).await);
    let plan = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("  "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(plan(&applied), plan(&text));
}

#[tokio::test]
async fn a_second_apply_says_no_changes_and_writes_nothing() {
    let gw = Instance::start().await;
    let first = gw.apply_v1().await;
    let ci = printed_secret(&first, "ci");
    let before = gw.catalog().await;

    let text = gw.apply_v1().await;
    assert_eq!(
        text.lines().next(),
        Some(
            format!(
                "No changes: {} already matches v1.yaml.",
                gw.portico.base_url()
            )
            .as_str()
        ),
        "{text}"
    );
    assert!(
        !text.contains("Plan:") && !text.contains("shown once"),
        "{text}"
    );
    // Not a field of a provider, config, guardrail or key changed, `updated_at` included.
    assert_eq!(gw.catalog().await, before);
    assert_eq!(
        gw.chat(&ci, "@spare/echo").await,
        200,
        "the generated secret stays"
    );
}

#[tokio::test]
async fn a_key_with_a_fixed_secret_keeps_its_id_across_applies_and_restarts() {
    let mut gw = Instance::start().await;
    gw.apply_v1().await;
    let id = gw.key("backend").await["id"].clone();
    assert!(id.is_string());
    succeeded(&gw.apply_v2(&[]).await);
    assert_eq!(gw.key("backend").await["id"], id);

    // A start without a file keeps what the last apply wrote.
    gw.restart().await;
    assert_eq!(gw.key("backend").await["id"], id);
    assert_eq!(gw.chat(BACKEND_V2, "@fresh/gpt-4o-mini").await, 200);
    assert_eq!(gw.chat(OPS_KEY, "@mock/echo").await, 200);
    let text = succeeded(&gw.apply_v2(&[]).await);
    assert!(text.starts_with("No changes: "), "{text}");
    assert_eq!(gw.key("backend").await["id"], id);
}

#[tokio::test]
async fn a_bad_file_gets_the_line_serve_prints_and_exit_code_2() {
    let gw = Instance::start().await;
    let before = gw.catalog().await;
    let cases = [
        // Found by the CLI: the file's shape.
        "providers:\n  - slug: x\n    kind: openai\n    base_ur: http://127.0.0.1:9/v1\n",
        // Found by the instance: a value the file's rules refuse.
        "providers:\n  - slug: x\n    kind: openai-compatible\n    base_url: not a url\n",
        // Found when the catalog is applied: a config routing to no provider.
        "configs:\n  - id: reliable\n    config: { strategy: { mode: fallback }, targets: [ { provider: \"@mock\" }, { provider: \"@nowhere\" } ] }\n",
    ];
    for catalog in cases {
        gw.write("bad.yaml", catalog);
        let applied = gw.apply(&["-f", "bad.yaml"], &[]).await;
        assert_eq!(applied.status.code(), Some(2), "{}", stderr(&applied));
        assert!(applied.stdout.is_empty(), "{}", stdout(&applied));

        let data = gw.dir.path().join("serve-data");
        let served = std::process::Command::new(bin())
            .args(["serve", "--config", "bad.yaml", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data)
            .current_dir(gw.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
            .output()
            .unwrap();
        assert_eq!(served.status.code(), Some(2), "{}", stderr(&served));
        let served_line = stderr(&served)
            .lines()
            .find(|l| l.starts_with("portico: error: "))
            .unwrap()
            .to_owned();
        assert!(served_line.contains("bad.yaml") || served_line.contains("reliable"));
        assert_eq!(stderr(&applied).trim_end(), served_line, "{catalog}");
        let _ = std::fs::remove_dir_all(&data);
    }
    assert_eq!(gw.catalog().await, before, "a refused file changes nothing");
}

#[tokio::test]
async fn records_of_the_admin_api_are_left_alone_and_counted() {
    let gw = Instance::start().await;
    let created = gw
        .http
        .post(gw.portico.url("/admin/v1/providers"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"slug": "by-api", "kind": "mock"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let text = gw.apply_v1().await;
    assert_lines(
        &text,
        &[
            "Left as they are: 1 provider created through the admin API (an apply changes only what the file owns).",
        ],
    );

    // An empty file removes what the file owned; with `auto_providers: false`, the built-in
    // provider too. The API's provider stays.
    gw.write("empty.yaml", "auto_providers: false\n");
    let text = succeeded(&gw.apply(&["-f", "empty.yaml"], &[]).await);
    assert_lines(
        &text,
        &[
            "  - provider @fresh",
            "  - provider @mock (built in)",
            "  - config reliable",
            "  - key backend (revoked, not deleted: its logs and spend keep it; declaring it again restores it)",
        ],
    );
    let providers = gw.admin("/providers").await;
    let slugs: Vec<&str> = providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["slug"].as_str())
        .collect();
    assert_eq!(slugs, ["by-api"]);

    // A file may not take over a record of the API.
    gw.write(
        "takeover.yaml",
        "providers:\n  - slug: by-api\n    kind: mock\n",
    );
    let out = gw.apply(&["-f", "takeover.yaml"], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("portico: error: 409 cannot apply the catalog: provider `@by-api` was created through the admin API"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_guardrail_of_the_admin_api_in_the_way_fails_the_whole_apply() {
    let gw = Instance::start().await;
    let created = gw
        .http
        .post(gw.portico.url("/admin/v1/guardrails"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"id": "no-emails", "guardrail": {"checks": [], "deny": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let before = gw.catalog().await;

    // The file's `no-emails` clashes with the API's: nothing of the file is written, not the
    // providers, config and keys an apply writes before its guardrails.
    gw.write("v1.yaml", &gw.v1());
    let out = gw
        .apply(
            &["-f", "v1.yaml"],
            &[("FRESH_KEY", FRESH_V1), ("BACKEND_KEY", BACKEND_V1)],
        )
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("portico: error: 409 cannot apply the catalog: guardrail `no-emails` was created through the admin API"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert_eq!(gw.catalog().await, before, "a refused apply wrote");

    // A file of other guardrails applies beside it, counts it, and applies again as no change.
    gw.write(
        "other.yaml",
        "guardrails:\n  - id: short\n    checks:\n      - id: default.wordCount\n        parameters: { maxWords: 9 }\n",
    );
    let text = succeeded(&gw.apply(&["-f", "other.yaml"], &[]).await);
    assert_lines(
        &text,
        &[
            "  + guardrail short",
            "Plan: 1 to create, 0 to change, 0 to delete.",
            "Left as they are: 1 guardrail created through the admin API (an apply changes only what the file owns).",
        ],
    );
    let text = succeeded(&gw.apply(&["-f", "other.yaml"], &[]).await);
    assert!(text.starts_with("No changes: "), "{text}");
    let listed = gw.admin("/guardrails").await;
    let mut ids: Vec<(&str, &str)> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["id"].as_str().unwrap(), g["source"].as_str().unwrap()))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [("no-emails", "api"), ("short", "file")]);
}

#[tokio::test]
async fn apply_finds_the_instance_by_flag_and_needs_the_admin_key() {
    let gw = Instance::start().await;
    gw.write("mock.yaml", "providers:\n  - slug: extra\n    kind: mock\n");
    let run = |args: Vec<String>| {
        let dir = gw.dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(bin())
                .args(&args)
                .current_dir(dir)
                .env_clear()
                .output()
                .unwrap()
        })
    };
    let url = gw.portico.base_url();
    let args = |key: &str| -> Vec<String> {
        [
            "apply",
            "-f",
            "mock.yaml",
            "--url",
            &url,
            "--admin-key",
            key,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let out = run(args("prt-not-the-admin-key-000")).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    let out = run(vec![
        "apply".into(),
        "-f".into(),
        "mock.yaml".into(),
        "--url".into(),
        url.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("PORTICO_ADMIN_KEY"),
        "{}",
        stderr(&out)
    );

    let out = run(args(ADMIN_KEY)).await.unwrap();
    assert_lines(&succeeded(&out), &["  + provider @extra"]);
    assert_eq!(gw.chat(ADMIN_KEY, "@extra/echo").await, 200);
}
