//! Amplification bounds through the real binary (spec §13): a routing config holds at most 64
//! targets, and one request makes at most 16 upstream attempts, retries and fallbacks
//! together. Counted at the mock upstream, which sees every attempt.

use std::time::{Duration, Instant};

use portico_testkit::{MockReply, PorticoProcess};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, SERVICE_KEY, chat};

/// A fallback over `n` targets, all the standard catalog's `@openai-mock`, each with a model
/// of its own (`m0`, `m1`, ...): health is kept per provider and model, so no target fails
/// often enough to open its circuit breaker and cut the walk short by itself.
fn fallback(n: usize) -> Value {
    let targets: Vec<Value> = (0..n)
        .map(|i| json!({"provider": "@openai-mock", "override_params": {"model": format!("m{i}")}}))
        .collect();
    json!({"strategy": {"mode": "fallback"}, "targets": targets})
}

async fn send_with_config(gw: &Gateway, config: &Value) -> reqwest::Response {
    gw.http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .json(&chat("gpt-4o-mini", "hello"))
        .send()
        .await
        .unwrap()
}

/// `GET /admin/v1/logs/{id}`, polled until the record is written.
async fn log_record(portico: &PorticoProcess, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = reqwest::Client::new()
            .get(portico.url(&format!("/admin/v1/logs/{id}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            return resp.json().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no log record {id}: {}",
            portico.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_config_of_65_targets_is_a_400_naming_the_limit_without_an_upstream_call() {
    let gw = Gateway::start().await;
    // 64 is accepted (and answered by its first target)...
    let resp = send_with_config(&gw, &fallback(64)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.hits(), 1);

    // ...65 is not, and nothing is sent upstream.
    let resp = send_with_config(&gw, &fallback(65)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 64 targets") && message.contains("this one has 65"),
        "{body}"
    );
    assert_eq!(body["error"]["param"], "targets");
    // Nested groups count as targets, and so do their members: 2 groups of 32 = 66.
    let group = fallback(32);
    let nested = json!({"strategy": {"mode": "fallback"}, "targets": [group.clone(), group]});
    let resp = send_with_config(&gw, &nested).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this one has 66"),
        "{body}"
    );
    assert_eq!(
        gw.upstream.hits(),
        1,
        "no upstream call for a refused config"
    );

    // The admin API refuses to store one (the same parser).
    let resp = gw
        .http
        .post(gw.url("/admin/v1/configs"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"id": "too-wide", "config": fallback(65)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 64 targets"),
        "{body}"
    );
}

#[tokio::test]
async fn an_all_failing_64_target_fallback_makes_exactly_16_upstream_calls() {
    let gw = Gateway::start().await;
    // One reply more than the budget: a 17th call would take it (or an echo after it).
    for i in 1..=17 {
        gw.upstream
            .enqueue(MockReply::error(500, &format!("upstream failure {i}")));
    }
    let mut config = fallback(64);
    // 3 tries per target: 5 targets and the first try of a sixth make 16.
    config["retry"] = json!({"attempts": 2, "on_status_codes": [500]});
    let resp = send_with_config(&gw, &config).await;
    assert_eq!(resp.status(), 500, "the last error is the answer");
    assert_eq!(gw.upstream.hits(), 16);
    assert_eq!(gw.upstream.pending_replies(), 1);
    assert_eq!(resp.headers()["x-portkey-retry-attempt-count"], "-1");
    let id = resp.headers()["x-portkey-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("upstream failure 16"), "{body}");
    assert!(message.contains("attempt budget is spent"), "{body}");

    let record = log_record(&gw.portico, &id).await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 16, "{record}");
    assert!(attempts.iter().all(|a| a["status"] == 500), "{record}");
    assert_eq!(attempts[15]["target"], "config.targets[5]");
    assert_eq!(attempts[15]["model"], "m5");
    assert_eq!(record["status"], 500);
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .contains("attempt budget is spent"),
        "{record}"
    );
}

#[tokio::test]
async fn both_bounds_are_set_by_their_flags() {
    let upstream = portico_testkit::MockUpstream::start().await;
    let catalog = crate::support::standard_catalog(&upstream);
    let gw = Gateway::start_with_env(
        upstream,
        &catalog,
        &[
            ("PORTICO_MAX_CONFIG_TARGETS", "4"),
            ("PORTICO_MAX_UPSTREAM_ATTEMPTS", "3"),
        ],
    )
    .await;
    let resp = send_with_config(&gw, &fallback(5)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 4 targets"),
        "{body}"
    );
    assert_eq!(gw.upstream.hits(), 0);
    for _ in 0..4 {
        gw.upstream.enqueue(MockReply::error(503, "down"));
    }
    let resp = send_with_config(&gw, &fallback(4)).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(gw.upstream.hits(), 3, "the fourth target is never tried");
}
