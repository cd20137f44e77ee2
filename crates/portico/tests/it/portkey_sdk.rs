//! Portkey's own Python SDK (`portkey-ai` from PyPI) as the client, pointed at Portico by its
//! `base_url` alone (tests/python/portkey_sdk_e2e.py): chat, streams, embeddings, configs by
//! id and inline, trace ids and metadata, and the errors it must surface.

use portico_testkit::MockUpstream;

use crate::support::{Gateway, SERVICE_KEY, run_python_checks, standard_catalog, wait_for_logs};

#[tokio::test]
async fn portkey_python_sdk() {
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "{}configs:\n  - id: pk-sdk-fallback\n    config:\n      strategy: {{ mode: fallback }}\n      targets: [ {{ provider: \"@openai-mock\" }} ]\n",
        standard_catalog(&upstream)
    );
    let gw = Gateway::start_with(upstream, &catalog).await;
    let passed = run_python_checks(
        "portkey_ai",
        "portkey_sdk_e2e.py",
        &[
            ("PORTICO_BASE_URL", gw.url("/v1")),
            ("PORTICO_KEY", SERVICE_KEY.to_owned()),
            ("PORTICO_MODEL", "@openai-mock/gpt-4o-mini".to_owned()),
            ("PORTICO_CONFIG_ID", "pk-sdk-fallback".to_owned()),
        ],
        &[],
    )
    .await;
    assert_eq!(
        passed,
        [
            "chat",
            "stream",
            "embeddings",
            "config_id",
            "config_inline",
            "bad_config",
            "401"
        ]
    );

    // The upstream saw the five answered calls, with the provider's key and not the gateway's
    // (which the SDK sends in `x-portkey-api-key`), and no `x-portkey-*` header.
    let requests = gw.upstream.requests();
    assert_eq!(requests.len(), 5, "chat, stream, embeddings, two configs");
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer sk-upstream-secret-abc123")
        );
        assert!(
            request
                .headers
                .keys()
                .all(|name| !name.as_str().starts_with("x-portkey-")),
            "a gateway header reached the upstream: {:?}",
            request.headers
        );
        assert_eq!(request.json_body()["model"], "gpt-4o-mini");
    }

    // The request log holds what the SDK sent: its trace ids, its metadata (`_user` as the
    // user) and the config, by id or inline.
    let chat = wait_for_logs(&gw.portico, "trace_id=pk-sdk-chat", 1).await;
    assert_eq!(chat[0]["status"], 200);
    assert_eq!(chat[0]["user"], "pk-alice");
    assert_eq!(chat[0]["metadata"]["team"], "qa");
    assert_eq!(chat[0]["key_name"], "service");
    let stream = wait_for_logs(&gw.portico, "trace_id=pk-sdk-stream", 1).await;
    assert_eq!(stream[0]["stream"], true);
    assert!(stream[0]["completion_tokens"].as_u64().unwrap() > 0);
    let by_id = wait_for_logs(&gw.portico, "trace_id=pk-sdk-config-id", 1).await;
    assert_eq!(by_id[0]["config_id"], "pk-sdk-fallback");
    assert_eq!(by_id[0]["target"], "config.targets[0]");
    let embeddings = wait_for_logs(&gw.portico, "trace_id=pk-sdk-embeddings", 1).await;
    assert_eq!(embeddings[0]["endpoint"], "embeddings");
    wait_for_logs(&gw.portico, "trace_id=pk-sdk-config-inline", 1).await;
}
