//! The official OpenAI Python SDK as the client (tests/python/openai_sdk_e2e.py).

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Gateway, SERVICE_KEY};

/// The Python with the SDK installed: `PORTICO_TEST_PYTHON` (set by scripts/test.sh), or
/// `python3`. A missing SDK fails the test with the fix, rather than skipping it.
fn python() -> String {
    let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python).args(["-c", "import openai"]).output();
    match probe {
        Ok(out) if out.status.success() => python,
        _ => panic!(
            "the OpenAI Python SDK is not importable with `{python}`; run the suite with scripts/test.sh, which installs it"
        ),
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/openai_sdk_e2e.py")
}

#[tokio::test]
async fn openai_python_sdk() {
    let python = python();
    let gw = Gateway::start().await;
    let base_url = gw.url("/v1");
    let out = tokio::process::Command::new(python)
        .arg(script())
        .env("PORTICO_BASE_URL", &base_url)
        .env("PORTICO_KEY", SERVICE_KEY)
        .env("PORTICO_MODEL", "@restricted/gpt-allowed")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK checks failed:\n{stdout}\n{stderr}"
    );
    let passed: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["check"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        passed,
        [
            "chat",
            "stream",
            "stream_tool_call",
            "embeddings",
            "models",
            "401",
            "404"
        ],
        "{stdout}"
    );
    // Every SDK call that passed auth and routing reached the mock upstream with the
    // upstream model name.
    let requests = gw.upstream.requests();
    assert_eq!(requests.len(), 4, "chat, stream, tool stream, embeddings");
    assert!(
        requests
            .iter()
            .all(|r| r.json_body()["model"] == "gpt-allowed")
    );
}
