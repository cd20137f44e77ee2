//! What the data directory keeps: hashed keys, encrypted provider secrets, and idempotent
//! applies across restarts.

use std::path::Path;
use std::time::Duration;

use portico_testkit::{MockUpstream, PorticoProcess};
use serde_json::json;

use crate::support::{ADMIN_KEY, PROVIDER_KEY, SERVICE_KEY, bin, standard_catalog, start_in};

/// Every byte stored under `dir`, files concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.extend(std::fs::read(&path).unwrap());
        } else if path.is_dir() {
            out.extend(all_bytes(&path));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn chat_status(portico: &PorticoProcess, key: &str) -> u16 {
    reqwest::Client::new()
        .post(portico.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "@mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn no_secret_is_stored_in_plain_text() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut portico = start_in(dir.path(), &standard_catalog(&upstream), &[]).await;
    assert_eq!(chat_status(&portico, SERVICE_KEY).await, 200);
    portico.sigterm().unwrap();
    portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    let stored = all_bytes(&dir.path().join("data"));
    assert!(!stored.is_empty());
    for secret in [
        SERVICE_KEY,
        ADMIN_KEY,
        PROVIDER_KEY,
        "prt-test-narrow-key-0123456789",
    ] {
        assert!(
            !contains(&stored, secret),
            "{secret} is stored in plain text"
        );
    }
    // The provider secret is still usable: it was encrypted, not lost.
    let portico = start_in(dir.path(), &standard_catalog(&upstream), &[]).await;
    let resp = reqwest::Client::new()
        .post(portico.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"model": "@openai-mock/m", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        upstream.last_request().unwrap().bearer(),
        Some(PROVIDER_KEY)
    );
}

#[tokio::test]
async fn generated_secrets_are_printed_once_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = "keys:\n  - name: generated-svc\n";
    let config = dir.path().join("portico.yaml");
    std::fs::write(&config, catalog).unwrap();
    let data = dir.path().join("data");
    let args = [
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let mut first = PorticoProcess::start(&bin(), &args, &[]).await.unwrap();
    let admin = first
        .admin_key()
        .expect("no admin key printed on first start");
    let generated = first
        .printed_key("generated-svc")
        .expect("generated key not printed");
    assert!(admin.starts_with("prt-admin-"), "{admin}");
    assert!(generated.starts_with("prt-"), "{generated}");
    assert_eq!(chat_status(&first, &admin).await, 200);
    assert_eq!(chat_status(&first, &generated).await, 200);
    first.sigterm().unwrap();
    first.wait_exit(Duration::from_secs(20)).await.unwrap();

    let second = PorticoProcess::start(&bin(), &args, &[]).await.unwrap();
    assert_eq!(second.admin_key(), None, "the admin key was printed again");
    assert_eq!(
        second.printed_key("generated-svc"),
        None,
        "the key was regenerated"
    );
    assert_eq!(chat_status(&second, &admin).await, 200);
    assert_eq!(chat_status(&second, &generated).await, 200);
}

#[tokio::test]
async fn keys_removed_from_the_file_stop_working_and_changed_secrets_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = "keys:\n  - name: a\n    key: prt-key-a-version-one-000\n  - name: b\n    key: prt-key-b-0000000000000000\n";
    let mut portico = start_in(dir.path(), v1, &[]).await;
    assert_eq!(
        chat_status(&portico, "prt-key-a-version-one-000").await,
        200
    );
    assert_eq!(
        chat_status(&portico, "prt-key-b-0000000000000000").await,
        200
    );
    portico.sigterm().unwrap();
    portico.wait_exit(Duration::from_secs(20)).await.unwrap();

    let v2 = "keys:\n  - name: a\n    key: prt-key-a-version-two-000\n";
    let portico = start_in(dir.path(), v2, &[]).await;
    assert_eq!(
        chat_status(&portico, "prt-key-a-version-two-000").await,
        200
    );
    assert_eq!(
        chat_status(&portico, "prt-key-a-version-one-000").await,
        401
    );
    assert_eq!(
        chat_status(&portico, "prt-key-b-0000000000000000").await,
        401
    );
}
