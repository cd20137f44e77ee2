//! Files at rest (spec §13): the real binary creates its data dir 0700 and every file in it
//! 0600 (the databases with their `-wal`/`-shm`, the spill file, `master.key`), and tightens
//! a data dir left group- or world-readable by an older version.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use portico_testkit::{MockUpstream, PorticoProcess};
use serde_json::Value;

use crate::support::{ADMIN_KEY, SERVICE_KEY, chat, standard_catalog, start_in};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Sends `n` requests at once and waits until the request log lists them all.
async fn send_and_wait_logged(portico: &PorticoProcess, n: usize) {
    let http = reqwest::Client::new();
    let sends = (0..n).map(|i| {
        http.post(portico.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .json(&chat("@openai-mock/gpt-4o-mini", &format!("payload {i}")))
            .send()
    });
    for resp in futures::future::join_all(sends).await {
        assert_eq!(resp.unwrap().status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = http
            .get(portico.url("/admin/v1/logs?limit=500"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["data"].as_array().is_some_and(|d| d.len() >= n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not logged: {body}\n{}",
            portico.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every file in `dir` with its mode (one removed meanwhile, such as a replayed spill file,
/// is left out).
fn files(dir: &Path) -> Vec<(String, u32)> {
    let mut files: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let meta = std::fs::metadata(e.path()).ok()?;
            let mode = meta.permissions().mode() & 0o7777;
            Some((e.file_name().to_string_lossy().into_owned(), mode))
        })
        .collect();
    files.sort();
    files
}

fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "the data dir");
    let files = files(data);
    for (name, mode) in &files {
        assert_eq!(*mode, 0o600, "{name} is {mode:04o}; all: {files:?}");
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "portico.db",
        "portico.db-wal",
        "portico.db-shm",
        "logs.db",
        "logs.db-wal",
        "logs.db-shm",
        "master.key",
    ] {
        assert!(names.contains(&expected), "no {expected} in {names:?}");
    }
}

#[tokio::test]
async fn a_fresh_data_dir_is_0700_and_every_file_in_it_0600() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A one-byte queue spills every record that arrives while another waits, so the spill
    // file is likely to exist at some point (it is replayed and removed soon after).
    let portico = start_in(
        dir.path(),
        &standard_catalog(&upstream),
        &[("PORTICO_LOG_QUEUE_BYTES", "1")],
    )
    .await;
    send_and_wait_logged(&portico, 20).await;
    assert_private(&dir.path().join("data"));
}

#[tokio::test]
async fn an_older_open_data_dir_is_tightened_at_start() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // What an older version left: a world-readable dir, database and WAL, spill file.
    std::fs::create_dir(&data).unwrap();
    chmod(&data, 0o755);
    for name in ["logs.db", "logs.db-wal", "logs-spill.jsonl"] {
        std::fs::write(data.join(name), b"").unwrap();
        chmod(&data.join(name), 0o644);
    }
    let portico = start_in(dir.path(), &standard_catalog(&upstream), &[]).await;
    send_and_wait_logged(&portico, 1).await;
    assert_private(&data);
}
