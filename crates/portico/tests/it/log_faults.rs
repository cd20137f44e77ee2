//! The request log's database in trouble, through the real binary: locked by another
//! process, corrupt (at start and while running), and a full disk (a real tmpfs mounted
//! small). In each, requests keep being served; records that cannot be written spill and are
//! replayed once the database works again, none lost and none twice; `/readyz` (still 200)
//! says `degraded` with the log store's last error, and `/metrics` counts it.
//!
//! The disk-full test mounts a tmpfs, which needs root (CI runs as root). Where mounting is
//! not permitted it fails saying why, unless `PORTICO_TEST_SKIP_MOUNT=1` is set.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use portico_testkit::{MockUpstream, PorticoProcess};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{SERVICE_KEY, admin_get, chat, standard_catalog, start_in};

/// A gateway whose data dir is `dir/data`, against a mock upstream.
struct LogGateway {
    upstream: MockUpstream,
    portico: PorticoProcess,
    http: reqwest::Client,
    dir: PathBuf,
    /// Requests answered so far (each must end in exactly one stored record).
    sent: usize,
}

/// The environment every gateway here runs with: a short busy timeout, so a locked
/// `logs.db` fails a write in a fifth of a second rather than ten.
const ENV: &[(&str, &str)] = &[("PORTICO_LOG_BUSY_TIMEOUT_MS", "200")];

impl LogGateway {
    async fn start(dir: &Path) -> LogGateway {
        let upstream = MockUpstream::start().await;
        let portico = start_in(dir, &standard_catalog(&upstream), ENV).await;
        LogGateway {
            upstream,
            portico,
            http: reqwest::Client::new(),
            dir: dir.to_owned(),
            sent: 0,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Sends `n` chat requests (with a `pad`-byte message, so each record has some weight);
    /// each must be answered 200.
    async fn serve(&mut self, n: usize, pad: usize) {
        for _ in 0..n {
            let text = format!("log fault {} {}", self.sent, "x".repeat(pad));
            let response = self
                .http
                .post(self.portico.url("/v1/chat/completions"))
                .bearer_auth(SERVICE_KEY)
                .json(&chat("@openai-mock/gpt-4o-mini", &text))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_eq!(status, 200, "the request is served: {body}");
            self.sent += 1;
        }
    }

    /// `GET /readyz`: its status and body.
    async fn readyz(&self) -> (u16, Value) {
        let response = self
            .http
            .get(self.portico.url("/readyz"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Waits until `/readyz` says `status` (answering 200 all along); its body.
    async fn wait_ready(&self, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.readyz().await;
            assert_eq!(code, 200, "/readyz stays 200 while serving: {body}");
            if body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never said {status}: {body}\n{}",
                self.portico.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `portico_log_*` figures of `/metrics`, by name.
    async fn log_metrics(&self) -> std::collections::HashMap<String, f64> {
        let text = self
            .http
            .get(self.portico.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("portico_log_"))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// Waits until the request log holds every request sent, and checks that each is there
    /// once: the ids listed are all different and as many as the requests.
    async fn wait_all_logged(&self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body: Value = admin_get(&self.portico, "/admin/v1/logs?limit=500")
                .await
                .json()
                .await
                .unwrap();
            let data = body["data"].as_array().cloned().unwrap_or_default();
            let ids: std::collections::HashSet<&str> =
                data.iter().filter_map(|e| e["id"].as_str()).collect();
            assert_eq!(ids.len(), data.len(), "no record twice: {body}");
            assert!(data.len() <= self.sent, "no record twice: {body}");
            if data.len() == self.sent {
                return data;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} requests logged\n{}",
                data.len(),
                self.sent,
                self.portico.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the gateway with SIGTERM (it flushes its log) and waits for it.
    async fn stop(mut self) -> (PathBuf, MockUpstream) {
        self.portico.sigterm().unwrap();
        let status = self
            .portico
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap();
        assert!(status.success(), "{}", self.portico.stderr_text());
        (self.dir, self.upstream)
    }
}

/// Asserts `/readyz` names the failing log store and `says` in its last error; the body.
async fn degraded(gw: &LogGateway, says: &str) -> Value {
    let body = gw.wait_ready("degraded").await;
    assert_eq!(body["log_store"]["state"], "failing", "{body}");
    let error = body["log_store"]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "the last error says {says:?}: {body}");
    assert!(body["log_store"]["last_error_at"].is_string(), "{body}");
    body
}

/// Asserts `/metrics` shows the store down with write errors and spilled records, and
/// nothing lost.
async fn metrics_show_the_failure(gw: &LogGateway) {
    let m = gw.log_metrics().await;
    assert_eq!(m["portico_log_store_up"], 0.0, "{m:?}");
    assert!(m["portico_log_write_errors_total"] >= 1.0, "{m:?}");
    assert!(m["portico_log_records_spilled_total"] >= 1.0, "{m:?}");
    assert_eq!(m["portico_log_records_lost_total"], 0.0, "{m:?}");
}

/// Asserts `/readyz` and `/metrics` show the store back up, everything spilled replayed
/// and nothing left waiting or lost.
async fn recovered(gw: &LogGateway) {
    let body = gw.wait_ready("ready").await;
    assert_eq!(body["log_store"]["state"], "ok", "{body}");
    // The last error stays on show after the recovery, with its time.
    assert!(body["log_store"]["last_error"].is_string(), "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = gw.log_metrics().await;
        let done = m["portico_log_store_up"] == 1.0
            && m["portico_log_spill_pending_bytes"] == 0.0
            && m["portico_log_records_replayed_total"] >= m["portico_log_records_spilled_total"];
        if done {
            assert_eq!(m["portico_log_records_lost_total"], 0.0, "{m:?}");
            return;
        }
        assert!(Instant::now() < deadline, "{m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Another process holding `BEGIN EXCLUSIVE` on a SQLite file (python3's sqlite3), until
/// dropped.
struct Locker(std::process::Child);

impl Locker {
    fn hold(path: &Path) -> Locker {
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\n\
                 c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
                 c.execute('BEGIN EXCLUSIVE')\n\
                 print('locked', flush=True)\n\
                 sys.stdin.read()\n\
                 c.execute('ROLLBACK')\n",
                path.to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (it holds the lock on logs.db)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        Locker(child)
    }

    fn release(mut self) {
        drop(self.0.stdin.take());
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_locked_log_database_spills_and_replays_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = LogGateway::start(dir.path()).await;
    gw.serve(3, 0).await;
    gw.wait_all_logged().await;
    let ready = gw.wait_ready("ready").await;
    assert_eq!(ready["log_store"]["state"], "ok", "{ready}");

    let lock = Locker::hold(&gw.data().join("logs.db"));
    gw.serve(20, 0).await;
    degraded(&gw, "locked").await;
    metrics_show_the_failure(&gw).await;
    lock.release();

    // The next write succeeds and replays what was spilled.
    gw.serve(1, 0).await;
    recovered(&gw).await;
    gw.wait_all_logged().await;
}

/// Writes garbage over the first `len` bytes of `path` (the header and the first pages).
fn garble(path: &Path, len: usize) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let garbage: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(7))
        .collect();
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
}

/// The names in `dir` starting with `prefix`.
fn names_with(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn a_corrupt_log_database_at_start_is_moved_aside_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = LogGateway::start(dir.path()).await;
    gw.serve(2, 0).await;
    gw.wait_all_logged().await;
    let (dir_path, _) = gw.stop().await;
    let data = dir_path.join("data");
    garble(&data.join("logs.db"), 64 * 1024);

    let mut gw = LogGateway::start(&dir_path).await;
    let aside = names_with(&data, "logs.db.corrupt-");
    assert_eq!(aside.len(), 1, "the corrupt file is kept aside: {aside:?}");
    let stderr = gw.portico.stderr_text();
    assert!(
        stderr.contains("was corrupt at start") && stderr.contains(&aside[0]),
        "said loudly: {stderr}"
    );
    // Ready, with the repair on show.
    let ready = gw.wait_ready("ready").await;
    let notice = ready["log_store"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(notice.contains("corrupt"), "{ready}");
    // A fresh log: the requests from now on.
    gw.sent = 0;
    gw.serve(3, 0).await;
    gw.wait_all_logged().await;
}

#[tokio::test]
async fn a_log_database_corrupted_while_running_spills_until_the_restart_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = LogGateway::start(dir.path()).await;
    gw.serve(2, 0).await;
    gw.wait_all_logged().await;
    // Garbage over the database, its WAL and its shared-memory index, as a failing disk
    // would leave them.
    let data = gw.data();
    for name in ["logs.db", "logs.db-wal", "logs.db-shm"] {
        let path = data.join(name);
        if path.exists() {
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            garble(&path, len.clamp(4096, 256 * 1024));
        }
    }
    gw.serve(10, 0).await;
    degraded(&gw, "").await;
    metrics_show_the_failure(&gw).await;
    let after_corruption = gw.sent - 2;

    // The restart moves the file aside and replays the spill into a fresh one.
    let (dir_path, _) = gw.stop().await;
    let mut gw = LogGateway::start(&dir_path).await;
    assert_eq!(names_with(&gw.data(), "logs.db.corrupt-").len(), 1);
    gw.sent = after_corruption;
    gw.wait_all_logged().await;
    gw.serve(1, 0).await;
    gw.wait_all_logged().await;
}

/// A tmpfs of `size` mounted on `dir` (created), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts it; `None` when mounting is not permitted and `PORTICO_TEST_SKIP_MOUNT=1`
    /// says to skip (otherwise the test fails with the reason).
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output();
        let why = match &out {
            Ok(out) if out.status.success() => return Some(SmallDisk(dir.to_owned())),
            Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
            Err(err) => err.to_string(),
        };
        if std::env::var("PORTICO_TEST_SKIP_MOUNT").is_ok_and(|v| v == "1") {
            eprintln!("skipped: cannot mount a tmpfs ({why}) and PORTICO_TEST_SKIP_MOUNT=1");
            return None;
        }
        panic!(
            "the disk-full test mounts a small tmpfs, which needs root: mount failed: {why}; run as root (as CI does), or set PORTICO_TEST_SKIP_MOUNT=1 to skip it"
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem of `path`'s directory with `path` until it is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.flush();
}

#[tokio::test]
async fn a_full_disk_keeps_serving_holds_records_and_replays_them_once_freed() {
    let dir: TempDir = tempfile::tempdir().unwrap();
    let Some(_disk) = SmallDisk::mount(&dir.path().join("data"), "24m") else {
        return;
    };
    let mut gw = LogGateway::start(dir.path()).await;
    gw.serve(2, 0).await;
    gw.wait_all_logged().await;

    let filler = gw.data().join("filler");
    fill(&filler);
    // Records with some weight (the payloads are logged): the database must grow.
    gw.serve(30, 16 * 1024).await;
    let body = degraded(&gw, "full").await;
    assert!(
        body["log_store"]["spill_pending_bytes"].as_u64().unwrap() > 0,
        "{body}"
    );
    metrics_show_the_failure(&gw).await;

    std::fs::remove_file(&filler).unwrap();
    gw.serve(1, 0).await;
    recovered(&gw).await;
    let logged = gw.wait_all_logged().await;
    // Payloads included: the records replayed are whole.
    let newest = logged[0]["id"].as_str().unwrap().to_owned();
    let detail: Value = admin_get(&gw.portico, &format!("/admin/v1/logs/{newest}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(detail["request"]["messages"].is_array(), "{detail}");
}
