//! `PorticoProcess` against `/bin/sh` scripts standing in for the real binary.

use std::path::Path;

use portico_testkit::{PorticoProcess, ProcessError};

use crate::LIMIT;

const SH: &str = "/bin/sh";

/// Prints what the real binary prints, then waits for SIGTERM and exits 0 ("graceful").
const STAND_IN: &str = r#"
trap 'echo "portico: shutting down"; kill $! 2>/dev/null; exit 0' TERM
echo "portico: admin key (shown once, store it now): pk_admin_secret"
echo "portico: key ci bot (shown once, store it now): pk_ci_secret"
echo "env: leak=${CARGO_MANIFEST_DIR:-none} log=$RUST_LOG extra=$EXTRA args=$0"
echo "warming up" >&2
echo "portico: listening on http://127.0.0.1:1"
sleep 30 >/dev/null 2>&1 &
wait
"#;

#[tokio::test]
async fn parses_startup_lines_and_stops_on_sigterm() {
    // Cargo sets this for the test process; it must not reach the child.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let mut process = PorticoProcess::start(
        Path::new(SH),
        &["-c", STAND_IN, "argzero"],
        &[("EXTRA", "yes")],
    )
    .await
    .unwrap();

    assert_eq!(process.base_url(), "http://127.0.0.1:1");
    assert_eq!(process.addr().port(), 1);
    assert_eq!(process.url("/v1/models"), "http://127.0.0.1:1/v1/models");
    assert_eq!(process.admin_key().as_deref(), Some("pk_admin_secret"));
    assert_eq!(
        process.printed_key("ci bot").as_deref(),
        Some("pk_ci_secret")
    );
    assert_eq!(process.printed_key("ci"), None);
    let env_line = process.wait_for_stdout("env:", LIMIT).await.unwrap();
    assert_eq!(env_line, "env: leak=none log=info extra=yes args=argzero");

    process.sigterm().unwrap();
    let status = process.wait_exit(LIMIT).await.unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        process.stdout_lines().last().map(String::as_str),
        Some("portico: shutting down")
    );
    assert_eq!(process.stderr_text(), "warming up\n");
}

#[tokio::test]
async fn given_env_overrides_rust_log() {
    let script =
        r#"echo "log=$RUST_LOG"; echo "portico: listening on http://127.0.0.1:2"; exec sleep 30"#;
    let mut process =
        PorticoProcess::start(Path::new(SH), &["-c", script], &[("RUST_LOG", "debug")])
            .await
            .unwrap();
    assert_eq!(process.stdout_lines()[0], "log=debug");
    assert_eq!(process.admin_key(), None);
    process.sigterm().unwrap();
    let status = process.wait_exit(LIMIT).await.unwrap();
    assert!(!status.success());
}

#[tokio::test]
async fn early_exit_reports_captured_output() {
    let script = r#"echo "starting"; echo "error: bad config" >&2; exit 3"#;
    let error = PorticoProcess::start(Path::new(SH), &["-c", script], &[])
        .await
        .unwrap_err();
    let ProcessError::Exited {
        status,
        stdout,
        stderr,
    } = &error
    else {
        panic!("expected Exited, got {error}");
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(stdout, "starting");
    assert_eq!(stderr, "error: bad config\n");
    assert!(format!("{error:?}").contains("error: bad config"));
}

#[tokio::test]
async fn missing_binary_is_a_spawn_error() {
    let error = PorticoProcess::start(Path::new("/nonexistent/portico"), &[], &[])
        .await
        .unwrap_err();
    assert!(matches!(error, ProcessError::Spawn { .. }), "{error}");
}
