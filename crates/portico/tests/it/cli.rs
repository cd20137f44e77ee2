//! The command line: help, usage errors, configuration errors, exit codes.

use std::process::{Command, Output};

use crate::support::bin;

fn portico(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn help_lists_serve_and_its_flags_with_their_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = portico(&["--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");

    let out = portico(&["serve", "--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "--listen",
        "--data-dir",
        "PORTICO_LISTEN",
        "PORTICO_DATA_DIR",
        "PORTICO_CONFIG",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = portico(&["serve", "--no-such-flag"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = portico(&["serve", "--listen", "not-an-address"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let out = portico(&["serve", "--worker-threads", "0"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--worker-threads"));
}

#[test]
fn an_invalid_catalog_exits_2_naming_the_file_and_field_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "providers:\n  - slug: ok\n    kind: openai\n    api_key: sk-x\n  - slug: broken\n    kind: openai-compatible\n    base_url: not a url\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = portico(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    assert!(stderr.contains("providers[1].base_url"), "{stderr}");
    assert!(
        !data.exists(),
        "the data directory was created for an invalid catalog"
    );
    assert!(
        out.stdout.is_empty(),
        "it printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn an_unset_variable_in_the_catalog_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portico.yaml");
    std::fs::write(
        &file,
        "providers:\n  - slug: oa\n    kind: openai\n    api_key: ${PORTICO_TEST_UNSET_VAR}\n",
    )
    .unwrap();
    let out = portico(&["serve", "--config", file.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORTICO_TEST_UNSET_VAR"), "{stderr}");
}

#[test]
fn a_busy_port_exits_1_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let out = portico(
        &[
            "serve",
            "--listen",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("portico: error: cannot listen on"),
        "{stderr}"
    );
}
