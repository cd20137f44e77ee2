//! The official OpenAI Python SDK as the client (tests/python/openai_sdk_e2e.py).

use crate::support::{Gateway, run_every_openai_sdk_check};

#[tokio::test]
async fn openai_python_sdk() {
    let gw = Gateway::start().await;
    run_every_openai_sdk_check(&gw, "@restricted/gpt-allowed").await;
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
