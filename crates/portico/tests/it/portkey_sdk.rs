//! Portkey's own SDKs as the client, pointed at Portico by their base URL alone: the Python
//! `portkey-ai` from PyPI (tests/python/portkey_sdk_e2e.py) and the Node `portkey-ai` from npm
//! (tests/node/portkey_sdk_e2e.mjs). Chat, streams, embeddings, configs by id and inline, trace
//! ids and metadata, and the errors they must surface.

use portico_testkit::MockUpstream;

use crate::support::{
    Gateway, SERVICE_KEY, run_node_checks, run_python_checks, standard_catalog, wait_for_logs,
};

/// The stored config the SDKs name by id: a fallback whose only target is the mock upstream.
const CONFIG_ID: &str = "pk-sdk-fallback";

/// The checks both scripts run, in order (each then checks a wrong key under its own name).
const CHECKS: [&str; 8] = [
    "chat",
    "stream",
    "embeddings",
    "config_id",
    "config_inline",
    "virtual_key",
    "custom_host",
    "bad_config",
];

/// The standard gateway plus the stored config, and the environment the check scripts read.
async fn gateway() -> (Gateway, Vec<(&'static str, String)>) {
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "{}configs:\n  - id: {CONFIG_ID}\n    config:\n      strategy: {{ mode: fallback }}\n      targets: [ {{ provider: \"@openai-mock\" }} ]\n",
        standard_catalog(&upstream)
    );
    let gw = Gateway::start_with(upstream, &catalog).await;
    let env = vec![
        ("PORTICO_BASE_URL", gw.url("/v1")),
        ("PORTICO_KEY", SERVICE_KEY.to_owned()),
        ("PORTICO_MODEL", "@openai-mock/gpt-4o-mini".to_owned()),
        ("PORTICO_CONFIG_ID", CONFIG_ID.to_owned()),
    ];
    (gw, env)
}

/// What both SDKs' runs must leave behind: six answered calls upstream, each with the
/// provider's key (not the gateway key the SDK sent in `x-portkey-api-key`) and no
/// `x-portkey-*` header; and a request log holding the SDK's trace ids (`{prefix}-chat`, ...),
/// its metadata with `_user` as the user, and the config by id.
async fn assert_upstream_and_log(gw: &Gateway, prefix: &str, user: &str) {
    let requests = gw.upstream.requests();
    assert_eq!(
        requests.len(),
        6,
        "chat, stream, embeddings, two configs, a virtual key"
    );
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer sk-ptsecret-upstream-abc123")
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

    let chat = wait_for_logs(&gw.portico, &format!("trace_id={prefix}-chat"), 1).await;
    assert_eq!(chat[0]["status"], 200);
    assert_eq!(chat[0]["user"], user);
    assert_eq!(chat[0]["metadata"]["team"], "qa");
    assert_eq!(chat[0]["key_name"], "service");
    let stream = wait_for_logs(&gw.portico, &format!("trace_id={prefix}-stream"), 1).await;
    assert_eq!(stream[0]["stream"], true);
    assert!(stream[0]["completion_tokens"].as_u64().unwrap() > 0);
    let by_id = wait_for_logs(&gw.portico, &format!("trace_id={prefix}-config-id"), 1).await;
    assert_eq!(by_id[0]["config_id"], CONFIG_ID);
    assert_eq!(by_id[0]["target"], "config.targets[0]");
    let embeddings = wait_for_logs(&gw.portico, &format!("trace_id={prefix}-embeddings"), 1).await;
    assert_eq!(embeddings[0]["endpoint"], "embeddings");
    wait_for_logs(&gw.portico, &format!("trace_id={prefix}-config-inline"), 1).await;
    let virtual_key =
        wait_for_logs(&gw.portico, &format!("trace_id={prefix}-virtual-key"), 1).await;
    assert_eq!(virtual_key[0]["provider"], "openai-mock");
    assert_eq!(virtual_key[0]["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn portkey_python_sdk() {
    let (gw, env) = gateway().await;
    let passed = run_python_checks("portkey_ai", "portkey_sdk_e2e.py", &env, &[]).await;
    assert_eq!(passed, [&CHECKS[..], &["401"]].concat());
    assert_upstream_and_log(&gw, "pk-sdk", "pk-alice").await;
}

#[tokio::test]
async fn portkey_node_sdk() {
    let (gw, env) = gateway().await;
    let passed = run_node_checks("portkey_sdk_e2e.mjs", &env, &[]).await;
    // Named apart: node lists an object's integer-like keys ("401") first.
    assert_eq!(passed, [&CHECKS[..], &["wrong_key"]].concat());
    assert_upstream_and_log(&gw, "pk-node", "pk-bob").await;
}
