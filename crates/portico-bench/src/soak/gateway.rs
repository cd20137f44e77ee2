//! The gateway under soak: a `portico serve` started on a fresh data dir (or one that is
//! given), and what the mix needs, created through its admin API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::mix::{Kind, MODEL};

/// Admin key of a gateway the soak starts itself.
const ADMIN_KEY: &str = "prt-soak-admin-key-0123456789abcdef";

/// The config of the fallback kind: the failing provider first, then the good one.
pub(crate) const FALLBACK_CONFIG: &str = "soak-fallback";

/// The gateway being soaked.
pub(crate) struct Gateway {
    /// Base URL, such as `http://127.0.0.1:8787`.
    pub(crate) url: String,
    pub(crate) admin_key: String,
    pub(crate) pid: u32,
    /// The process, when the soak started it (stopped on drop).
    child: Option<Child>,
    /// The data dir and logs of a started gateway.
    pub(crate) work_dir: Option<PathBuf>,
}

impl Gateway {
    /// Starts `binary serve` on a free port with a fresh data dir under `work_dir`.
    pub(crate) fn start(binary: &Path, work_dir: &Path) -> anyhow::Result<Gateway> {
        let dir = tempfile::Builder::new()
            .prefix("portico-soak-")
            .tempdir_in(work_dir)
            .context("creating the soak's data dir")?
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let stdout = std::fs::File::create(dir.join("stdout.log"))?;
        let stderr = std::fs::File::create(dir.join("stderr.log"))?;
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // No provider of the environment: the catalog is the soak's alone.
        for var in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "MISTRAL_API_KEY",
            "GROQ_API_KEY",
            "DEEPSEEK_API_KEY",
            "TOGETHER_API_KEY",
            "PORTICO_DATABASE_URL",
            "PORTICO_REDIS_URL",
        ] {
            command.env_remove(var);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let mut gateway = Gateway {
            url: format!("http://127.0.0.1:{port}"),
            admin_key: ADMIN_KEY.to_owned(),
            pid,
            child: Some(child),
            work_dir: Some(dir),
        };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    /// A gateway that is already running.
    pub(crate) fn given(url: String, admin_key: String, pid: u32) -> Gateway {
        Gateway {
            url: url.trim_end_matches('/').to_owned(),
            admin_key,
            pid,
            child: None,
            work_dir: None,
        }
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let addr: SocketAddr = self
            .url
            .trim_start_matches("http://")
            .parse()
            .context("the gateway's address")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "the gateway exited during start-up ({status}); see {}",
                    self.log_hint()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the gateway did not listen within 60 s; see {}",
                    self.log_hint()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_hint(&self) -> String {
        self.work_dir.as_ref().map_or_else(
            || "its log".to_owned(),
            |d| d.join("stderr.log").display().to_string(),
        )
    }

    /// Stops a gateway the soak started (SIGTERM, then SIGKILL after 30 s).
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// An admin API call; answers the JSON body, or fails with the status and body.
    pub(crate) async fn admin(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = client
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the soak created: the secret of each kind's key.
pub(crate) struct Setup {
    pub(crate) secrets: Vec<(Kind, String)>,
}

impl Setup {
    /// The secret of `kind`'s key.
    pub(crate) fn secret(&self, kind: Kind) -> &str {
        self.secrets
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or("", |(_, s)| s.as_str())
    }
}

/// Creates the providers (the mock, and the mock's failing paths), the fallback config and
/// one key per kind. Every key has a budget, so every kind's spend shows as its key's
/// budget line; the budget kind's is `small_budget_usd`, the others' far above the run.
pub(crate) async fn set_up(
    gateway: &Gateway,
    client: &reqwest::Client,
    mock: SocketAddr,
    run_id: &str,
    small_budget_usd: f64,
) -> anyhow::Result<Setup> {
    let pricing =
        json!([{ "id": MODEL, "pricing": { "input_per_mtok": 1.0, "output_per_mtok": 2.0 } }]);
    for (slug, base) in [
        ("soak", format!("http://{mock}/v1")),
        ("soak-fail500", format!("http://{mock}/status/500/v1")),
        ("soak-fail429", format!("http://{mock}/status/429/v1")),
    ] {
        let provider = json!({
            "slug": slug, "kind": "openai-compatible", "base_url": base, "models": pricing,
        });
        put_or_post(gateway, client, "/admin/v1/providers", slug, &provider).await?;
    }
    let config = json!({
        "id": FALLBACK_CONFIG,
        "config": {
            "strategy": { "mode": "fallback" },
            "targets": [ { "provider": "@soak-fail500" }, { "provider": "@soak" } ],
        },
    });
    put_or_post(
        gateway,
        client,
        "/admin/v1/configs",
        FALLBACK_CONFIG,
        &config,
    )
    .await?;
    let mut secrets = Vec::new();
    for kind in Kind::ALL {
        let budget_usd = if kind == Kind::Budget {
            small_budget_usd
        } else {
            1_000_000.0
        };
        let mut key = json!({
            "name": key_name(kind, run_id),
            "type": "service",
            "budget": { "cost_usd": budget_usd, "period": "day" },
        });
        if kind == Kind::Fallback {
            key["config"] = json!(FALLBACK_CONFIG);
        }
        let created = gateway
            .admin(client, reqwest::Method::POST, "/admin/v1/keys", Some(&key))
            .await?;
        let secret = created["secret"]
            .as_str()
            .context("POST /admin/v1/keys answered no secret")?
            .to_owned();
        secrets.push((kind, secret));
    }
    Ok(Setup { secrets })
}

/// Creates the record, or replaces it when a gateway that soaked before has it (its mock
/// was another one).
async fn put_or_post(
    gateway: &Gateway,
    client: &reqwest::Client,
    list: &str,
    id: &str,
    body: &Value,
) -> anyhow::Result<()> {
    match gateway
        .admin(client, reqwest::Method::POST, list, Some(body))
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.to_string().contains("409") => {
            let path = format!("{list}/{id}");
            gateway
                .admin(client, reqwest::Method::PUT, &path, Some(body))
                .await
                .map(drop)
        }
        Err(err) => Err(err),
    }
}

/// The key of `kind` in run `run_id` (a given gateway may have soaked before).
pub(crate) fn key_name(kind: Kind, run_id: &str) -> String {
    format!("{}-{run_id}", kind.key_name())
}
