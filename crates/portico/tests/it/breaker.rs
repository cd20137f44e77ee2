//! The circuit breaker keeps state per provider and model (spec §13): a key allowed only a
//! failing model opens that model's breaker, and every other key's configs keep using the
//! provider's healthy models.

use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};

use crate::support::{Gateway, PROVIDER_KEY, SERVICE_KEY, chat};

/// May use only `@shared/bad`.
const NARROW_KEY: &str = "prt-test-only-bad-model-0123456789";

/// `@shared` (models `good` and `bad`) on the gateway's upstream, `@other` on `other`.
async fn start() -> (Gateway, MockUpstream) {
    let shared = MockUpstream::start().await;
    let other = MockUpstream::start().await;
    let catalog = format!(
        r#"
providers:
  - slug: shared
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {shared}
    models: [good, bad]
  - slug: other
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {other}
keys:
  - name: service
    key: {SERVICE_KEY}
  - name: only-bad
    key: {NARROW_KEY}
    allowed_models: ["@shared/bad"]
"#,
        shared = shared.base_url(),
        other = other.base_url(),
    );
    (Gateway::start_with(shared, &catalog).await, other)
}

async fn send(gw: &Gateway, key: &str, config: Option<&Value>, model: &str) -> reqwest::Response {
    let mut req = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat(model, "hi"));
    if let Some(config) = config {
        req = req.header("x-portkey-config", config.to_string());
    }
    req.send().await.unwrap()
}

fn to(model: &str) -> Value {
    json!({"provider": "@shared", "override_params": {"model": model}})
}

#[tokio::test]
async fn one_keys_failing_model_does_not_eject_the_providers_healthy_models() {
    let (gw, other) = start().await;
    // The narrow key's model always fails: five consecutive 500s open its breaker.
    for _ in 0..5 {
        gw.upstream.enqueue(MockReply::error(500, "bad is broken"));
        let resp = send(&gw, NARROW_KEY, None, "@shared/bad").await;
        assert_eq!(resp.status(), 500);
    }
    assert_eq!(gw.upstream.hits(), 5);

    // The breaker is open for `bad`: a config that lists it first goes straight to @other,
    // without a call to @shared.
    let bad_first = json!({"strategy": {"mode": "fallback"},
        "targets": [to("bad"), {"provider": "@other"}]});
    let resp = send(&gw, SERVICE_KEY, Some(&bad_first), "gpt-4o-mini").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-portkey-provider"], "@other");
    assert_eq!(
        gw.upstream.hits(),
        5,
        "the open breaker skipped @shared/bad"
    );
    assert_eq!(other.hits(), 1);

    // Another key's fallback config from @shared's healthy model keeps using @shared.
    let good_first = json!({"strategy": {"mode": "fallback"},
        "targets": [to("good"), {"provider": "@other"}]});
    for n in 1..=3 {
        let resp = send(&gw, SERVICE_KEY, Some(&good_first), "gpt-4o-mini").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-portkey-provider"], "@shared");
        assert_eq!(gw.upstream.hits(), 5 + n);
        assert_eq!(
            gw.upstream.last_request().unwrap().json_body()["model"],
            "good"
        );
    }
    assert_eq!(other.hits(), 1, "nothing more fell back to @other");
}
