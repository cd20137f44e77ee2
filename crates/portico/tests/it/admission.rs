//! The admission limit (`--max-in-flight`): past it a data-plane request is refused at once
//! with 503 `overloaded` and `Retry-After`, in the client's API shape, and logged; requests
//! already admitted finish; health checks and the admin API still answer; once the gateway
//! has room again, requests are admitted.

use std::time::Duration;

use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, admin_get, chat, standard_catalog, wait_for_logs};

#[tokio::test]
async fn past_the_limit_requests_get_a_fast_503_and_the_admitted_ones_finish() {
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    let gw = Gateway::start_with_env(upstream, &catalog, &[("PORTICO_MAX_IN_FLIGHT", "2")]).await;
    // Two slow answers fill the gateway.
    for _ in 0..2 {
        gw.upstream.enqueue_for(
            "/v1/chat/completions",
            MockReply::echo().delay(Duration::from_secs(3)),
        );
    }
    let slow = |trace: &'static str| {
        gw.http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("x-portkey-trace-id", trace)
            .json(&chat("@openai-mock/m", trace))
            .send()
    };
    let (first, second) = (slow("admitted-1"), slow("admitted-2"));
    let tasks = tokio_util::task::TaskTracker::new();
    let admitted = tasks.spawn(async move { tokio::join!(first, second) });
    assert!(
        gw.upstream.wait_for_hits(2, Duration::from_secs(10)).await,
        "both slow requests reached the upstream"
    );

    // The third is refused at once, without reaching the upstream: its answer comes while the
    // two admitted requests are still waiting for theirs.
    let refused = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "refused")
        .json(&chat("@openai-mock/m", "third"))
        .send()
        .await
        .unwrap();
    assert!(
        !admitted.is_finished(),
        "the refusal waited for the admitted requests"
    );
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["connection"], "close");
    assert!(refused.headers().contains_key("x-portkey-request-id"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(body["error"]["type"], "service_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limit of 2 requests in flight"),
        "{message}"
    );
    assert!(message.contains("--max-in-flight"), "{message}");

    // Anthropic's family gets Anthropic's word for it.
    let messages = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .json(&json!({"model": "@openai-mock/m", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 503);
    let body: Value = messages.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");

    // A wrong key is still told so, not that the gateway is busy.
    let unauthenticated = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("pk-not-a-key")
        .json(&chat("@openai-mock/m", "who"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // Operating the gateway is never refused.
    let ready = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(admin_get(&gw.portico, "/admin/v1/keys").await.status(), 200);
    assert_eq!(
        gw.upstream.hits(),
        2,
        "a refused request reached the upstream"
    );

    // The admitted ones finish normally.
    let (first, second) = admitted.await.unwrap();
    assert_eq!(first.unwrap().status(), 200);
    assert_eq!(second.unwrap().status(), 200);

    // With room again, requests are admitted.
    let after = gw
        .post("/v1/chat/completions", chat("@openai-mock/m", "again"))
        .await;
    assert_eq!(after.status(), 200);

    // The refusal is logged like any other answer, under the key that was refused.
    let logged = wait_for_logs(&gw.portico, "trace_id=refused", 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["status"], 503);
    assert_eq!(logged[0]["error_code"], "overloaded");
    assert!(logged[0]["key_name"].is_string(), "{}", logged[0]);
}
