//! `portico master-key rotate` on the real binary: provider secrets created through the admin
//! API (so only their encrypted copy exists), the key rotated offline, the gateway restarted
//! with the new key sends the same provider key upstream, and the old key is refused with a
//! clear message; with a key file and with `PORTICO_MASTER_KEY`.

use std::path::Path;
use std::time::Duration;

use portico_testkit::{MockUpstream, PorticoProcess};
use serde_json::json;

use crate::support::{ADMIN_KEY, bin, chat};

const API_PROVIDER_KEY: &str = "sk-ptsecret-rotation-api-0123456789";

/// `portico serve` on `data` without a catalog file: every provider comes from the database.
async fn serve(data: &Path, env: &[(&str, &str)]) -> PorticoProcess {
    let mut all = vec![("PORTICO_ADMIN_KEY", ADMIN_KEY)];
    all.extend_from_slice(env);
    PorticoProcess::start(
        &bin(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &all,
    )
    .await
    .unwrap()
}

/// The same, expected to fail: its exit code and stderr.
fn serve_fails(data: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTICO_ADMIN_KEY", ADMIN_KEY)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `portico master-key rotate --data-dir DATA` with `env`: exit code, stdout, stderr.
fn rotate(data: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(bin())
        .args(["master-key", "rotate", "--data-dir"])
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Adds `@rot` (kind openai, the API key above) through the admin API.
async fn add_provider(gw: &PorticoProcess, upstream: &MockUpstream) {
    let resp = reqwest::Client::new()
        .post(gw.url("/admin/v1/providers"))
        .bearer_auth(ADMIN_KEY)
        .json(
            &json!({"slug": "rot", "kind": "openai", "api_key": API_PROVIDER_KEY,
            "base_url": upstream.base_url()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// Sends a chat to `@rot` and returns the `Authorization` the upstream received.
async fn upstream_authorization(gw: &PorticoProcess, upstream: &MockUpstream) -> String {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(ADMIN_KEY)
        .json(&chat("@rot/gpt-4o-mini", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let request = upstream.last_request().unwrap();
    request.header("authorization").unwrap().to_owned()
}

async fn stop(mut gw: PorticoProcess) {
    gw.sigterm().unwrap();
    let status = gw.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn rotating_a_key_file_keeps_every_secret_and_refuses_the_old_key() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = serve(&data, &[]).await;
    add_provider(&gw, &upstream).await;
    assert_eq!(
        upstream_authorization(&gw, &upstream).await,
        format!("Bearer {API_PROVIDER_KEY}")
    );
    stop(gw).await;
    let old_key = std::fs::read_to_string(data.join("master.key")).unwrap();

    let (code, stdout, stderr) = rotate(&data, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("master key rotated"), "{stdout}");
    assert!(stdout.contains("master.key"), "{stdout}");
    let new_key = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!data.join("master.key.new").exists());
    // The key is printed nowhere: it is in the file.
    assert!(!stdout.contains(new_key.trim()) && !stderr.contains(new_key.trim()));
    assert!(!stdout.contains(API_PROVIDER_KEY) && !stderr.contains(API_PROVIDER_KEY));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Restarted with the new key: the same provider key goes upstream.
    let gw = serve(&data, &[]).await;
    assert_eq!(
        upstream_authorization(&gw, &upstream).await,
        format!("Bearer {API_PROVIDER_KEY}")
    );
    stop(gw).await;

    // The old key file put back: refused, saying what to do.
    std::fs::remove_file(data.join("master.key")).unwrap();
    std::fs::write(data.join("master.key"), &old_key).unwrap();
    let (code, stderr) = serve_fails(&data, &[]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("cannot decrypt stored provider secrets"),
        "{stderr}"
    );
    assert!(stderr.contains("master-key rotate"), "{stderr}");
    assert!(!stderr.contains(old_key.trim()), "{stderr}");

    // A rotation stopped after its commit, before the rename (simulated: the new key is left
    // in master.key.new): running the command again finishes it.
    std::fs::write(data.join("master.key.new"), &new_key).unwrap();
    let (code, stdout, stderr) = rotate(&data, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("finished an interrupted rotation"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("master.key")).unwrap(),
        new_key
    );
    let gw = serve(&data, &[]).await;
    assert_eq!(
        upstream_authorization(&gw, &upstream).await,
        format!("Bearer {API_PROVIDER_KEY}")
    );
    stop(gw).await;
}

#[tokio::test]
async fn rotating_a_key_from_the_environment_prints_the_new_one_once() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let gw = serve(&data, &[("PORTICO_MASTER_KEY", old)]).await;
    add_provider(&gw, &upstream).await;
    stop(gw).await;

    let (code, stdout, stderr) = rotate(&data, &[("PORTICO_MASTER_KEY", old)]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let marker = "store it now): ";
    let line = stdout.lines().find(|l| l.contains(marker)).unwrap();
    let new = line[line.find(marker).unwrap() + marker.len()..]
        .trim()
        .to_owned();
    assert_eq!(new.len(), 44, "{line}");
    assert_eq!(stdout.matches(&new).count(), 1, "printed once: {stdout}");
    assert!(stdout.contains("set PORTICO_MASTER_KEY"), "{stdout}");
    // No key file appears when the key comes from the environment.
    assert!(!data.join("master.key").exists());

    let gw = serve(&data, &[("PORTICO_MASTER_KEY", &new)]).await;
    assert_eq!(
        upstream_authorization(&gw, &upstream).await,
        format!("Bearer {API_PROVIDER_KEY}")
    );
    stop(gw).await;
    let (code, stderr) = serve_fails(&data, &[("PORTICO_MASTER_KEY", old)]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("cannot decrypt stored provider secrets"),
        "{stderr}"
    );
    assert!(stderr.contains("PORTICO_MASTER_KEY"), "{stderr}");

    // A rotation with the wrong current key changes nothing.
    let (code, _, stderr) = rotate(&data, &[("PORTICO_MASTER_KEY", old)]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("cannot decrypt"), "{stderr}");
    let gw = serve(&data, &[("PORTICO_MASTER_KEY", &new)]).await;
    stop(gw).await;
}
