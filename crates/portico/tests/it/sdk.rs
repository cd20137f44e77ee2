//! The official OpenAI Python SDK as the client (tests/python/openai_sdk_e2e.py).

use crate::support::{Gateway, SERVICE_KEY, run_python_checks};

#[tokio::test]
async fn openai_python_sdk() {
    let gw = Gateway::start().await;
    let passed = run_python_checks(
        "openai",
        "openai_sdk_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("/v1")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", "@restricted/gpt-allowed".to_owned()),
        ],
        &[],
    )
    .await;
    assert_eq!(
        passed,
        [
            "chat",
            "stream",
            "stream_tool_call",
            "image",
            "embeddings",
            "models",
            "401",
            "404"
        ]
    );
    // Every SDK call that passed auth and routing reached the mock upstream with the
    // upstream model name.
    let requests = gw.upstream.requests();
    assert_eq!(
        requests.len(),
        5,
        "chat, stream, tool stream, image, embeddings"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.json_body()["model"] == "gpt-allowed")
    );
}
