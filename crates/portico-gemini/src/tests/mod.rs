//! Fixture-driven tests of the translation (tests/fixtures/, written in Gemini's and
//! OpenAI's documented shapes), snapshotted with insta, and the HTTP side against the mock
//! upstream.

use std::path::PathBuf;

use serde_json::Value;

mod provider;
mod request;
mod response;
mod stream;
mod vertex_auth;

/// A fixture file's path.
fn fixture_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A JSON fixture.
fn fixture(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture_path(path)).unwrap()).unwrap()
}
