//! Budgets end to end (docs/budgets.md): each subject kind refused with a 412 that names it,
//! in OpenAI's shape and in Anthropic's on /v1/messages, before any upstream call; the
//! overspend bound under 50 concurrent requests; `GET /admin/v1/budgets`; budgets on the
//! admin API's objects.

use std::sync::Arc;
use std::time::Duration;

use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Gateway, PROVIDER_KEY, SERVICE_KEY};

const ALICE_KEY: &str = "prt-test-alice-key-0123456789";
const ALICE_PHONE_KEY: &str = "prt-test-alice-phone-key-0123456789";
const UNDER_KEY: &str = "prt-test-under-key-0123456789";
const COVERED_KEY: &str = "prt-test-covered-key-0123456789";

/// A provider `@oa` (any model) and `@tight`, whose budget has no room for any request, on
/// `upstream`, and `extra` appended (more keys, a `budgets:` list).
fn catalog(upstream: &MockUpstream, keys: &str, extra: &str) -> String {
    let base = upstream.base_url();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
    models:
      - id: priced
        pricing: {{ input_per_mtok: 10000, output_per_mtok: 10000 }}
      - plain
  - slug: tight
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
    budget: {{ tokens: 1, period: day }}
keys:
{keys}
{extra}
"#
    )
}

/// A chat body of `words` one-letter words: the mock reports `words` prompt tokens and
/// `words + 1` completion tokens (`echo:` and the words).
fn words(model: &str, words: usize, max_tokens: u64) -> Value {
    let text = vec!["a"; words].join(" ");
    json!({"model": model, "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": text}]})
}

/// The estimate docs/budgets.md documents: a quarter of the body's bytes, rounded up, plus
/// `max_tokens`.
fn estimate(body: &Value) -> u64 {
    let bytes = serde_json::to_vec(body).unwrap().len() as u64;
    bytes.div_ceil(4) + body["max_tokens"].as_u64().unwrap()
}

async fn post(gw: &Gateway, path: &str, key: &str, body: &Value) -> (u16, Value, Option<String>) {
    post_with(gw, path, key, body, &[]).await
}

async fn post_with(
    gw: &Gateway,
    path: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let mut request = gw.http.post(gw.url(path)).bearer_auth(key).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = gw
        .http
        .request(method, gw.url(&format!("/admin/v1{path}")))
        .bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

/// The `GET /admin/v1/budgets` entry of `subject` and `kind`.
async fn listed(gw: &Gateway, subject: &str, kind: &str) -> Value {
    let (status, list) = admin(gw, "GET", "/budgets?limit=500", None).await;
    assert_eq!(status, 200, "{list}");
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == subject && e["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} of {subject} in {list}"))
}

#[tokio::test]
async fn each_subject_kind_is_refused_with_a_412_that_names_it_before_any_upstream_call() {
    let upstream = MockUpstream::start().await;
    let keys = format!(
        r#"
  - name: service
    key: {SERVICE_KEY}
    budget: {{ cost_usd: 0.5, period: month }}
  - name: alice-laptop
    type: user
    user: alice@example.com
    key: {ALICE_KEY}
    budget: {{ tokens: 100, period: week }}
  - name: alice-phone
    type: user
    user: alice@example.com
    key: {ALICE_PHONE_KEY}
  - name: free
    key: {UNDER_KEY}
"#
    );
    let budgets = r#"
budgets:
  - name: team-backend
    match: { metadata.team: backend }
    budget: { tokens: 50, period: day }
"#;
    let text = catalog(&upstream, &keys, budgets);
    let gw = Gateway::start_with(upstream, &text).await;
    // 40 words with max_tokens 1: estimated at about 40 tokens, charged 81.
    let priced = words("@oa/priced", 40, 1);
    let plain = words("@oa/plain", 40, 1);
    assert!(estimate(&priced) < 50, "{}", estimate(&priced));

    // key: $0.01 a token, so the first request costs $0.81 of the $0.50.
    assert_eq!(
        post(&gw, "/v1/chat/completions", SERVICE_KEY, &priced)
            .await
            .0,
        200
    );
    let (status, body, _) = post(&gw, "/v1/chat/completions", SERVICE_KEY, &priced).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "budget `key:service` is exhausted: $0.81 of $0.50 spent this month; it resets at "
        ) && message.ends_with("-01T00:00:00Z"),
        "{message}"
    );
    // The Messages API answers in Anthropic's shape.
    let messages = json!({"model": "@oa/priced", "max_tokens": 1,
                          "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = post(&gw, "/v1/messages", SERVICE_KEY, &messages).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "billing_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget `key:service` is exhausted"),
        "{body}"
    );

    // user: the laptop key spends the user's budget, the phone key finds it spent.
    assert_eq!(
        post(&gw, "/v1/chat/completions", ALICE_KEY, &plain).await.0,
        200
    );
    let (status, body, _) = post(&gw, "/v1/chat/completions", ALICE_PHONE_KEY, &plain).await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget `user:alice@example.com` has no room for this request"),
        "{body}"
    );

    // metadata: only requests of team backend count.
    let backend = [("x-portkey-metadata", r#"{"team":"backend"}"#)];
    let chat = "/v1/chat/completions";
    assert_eq!(
        post_with(&gw, chat, UNDER_KEY, &plain, &backend).await.0,
        200
    );
    let (status, body, _) = post_with(&gw, chat, UNDER_KEY, &plain, &backend).await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget `budget:team-backend` is exhausted: 81 tokens of 50 tokens"),
        "{body}"
    );
    assert_eq!(post(&gw, chat, UNDER_KEY, &plain).await.0, 200);

    // provider: its budget has no room for any attempt.
    let (status, body, _) = post(&gw, chat, UNDER_KEY, &words("@tight/m", 1, 1)).await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("budget `provider:tight` has no room"),
        "{body}"
    );

    assert_eq!(
        gw.upstream.hits(),
        4,
        "no refused request reached the upstream"
    );

    // The spec's shape, one entry per budget in force.
    let key = listed(&gw, "key:service", "budget").await;
    assert_eq!(key["period"], "month");
    assert_eq!(key["cost_usd_limit"], 0.5);
    assert_eq!(key["tokens_limit"], Value::Null);
    assert_eq!(key["cost_usd_spent"].as_f64().unwrap(), 0.81);
    assert_eq!(key["tokens_spent"], 81);
    let resets = key["resets_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(resets).is_ok(),
        "{resets}"
    );
    let user = listed(&gw, "user:alice@example.com", "budget").await;
    assert_eq!(
        (user["period"].as_str(), user["tokens_limit"].as_u64()),
        (Some("week"), Some(100))
    );
    assert_eq!(user["tokens_spent"], 81);
    let team = listed(&gw, "budget:team-backend", "budget").await;
    assert_eq!(team["tokens_spent"], 81);
    let provider = listed(&gw, "provider:tight", "budget").await;
    assert_eq!(provider["tokens_spent"], 0);
    let (_, list) = admin(&gw, "GET", "/budgets", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 4, "{list}");
    assert_eq!(list["next_cursor"], Value::Null);
}

/// Sends 50 requests with `key` at once (the upstream answers each after a pause, so all are
/// in flight together); returns how many were admitted.
async fn burst(gw: &Arc<Gateway>, key: &'static str, body: &Value) -> u64 {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let gw = Arc::clone(gw);
            let body = body.clone();
            tokio::spawn(async move {
                let (status, answer, _) = post(&gw, "/v1/chat/completions", key, &body).await;
                match status {
                    200 => 1,
                    412 => {
                        assert_eq!(answer["error"]["code"], "budget_exceeded", "{answer}");
                        0
                    }
                    other => panic!("{other}: {answer}"),
                }
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    admitted
}

#[tokio::test]
async fn fifty_concurrent_requests_stay_within_the_documented_bound() {
    let upstream = MockUpstream::start().await;
    for _ in 0..100 {
        upstream.enqueue(MockReply::echo().delay(Duration::from_millis(400)));
    }
    // Each request is charged 81 tokens (40 words in, 41 out).
    let under = words("@oa/plain", 40, 1);
    let covered = words("@oa/plain", 40, 100);
    let (e_under, e_covered) = (estimate(&under), estimate(&covered));
    assert!(e_under < 81 && e_covered >= 81);
    // Room for five estimates each.
    let (b_under, b_covered) = (5 * e_under + 3, 5 * e_covered + 3);
    let keys = format!(
        r#"
  - name: under
    key: {UNDER_KEY}
    budget: {{ tokens: {b_under}, period: month }}
  - name: covered
    key: {COVERED_KEY}
    budget: {{ tokens: {b_covered}, period: month }}
"#
    );
    let text = catalog(&upstream, &keys, "");
    let gw = Arc::new(Gateway::start_with(upstream, &text).await);

    // Estimates below the usage: overspent, by at most what the admitted requests used
    // beyond their estimates.
    let admitted = burst(&gw, UNDER_KEY, &under).await;
    let spent = listed(&gw, "key:under", "budget").await["tokens_spent"]
        .as_u64()
        .unwrap();
    assert!((1..=5).contains(&admitted), "{admitted}");
    assert_eq!(
        spent,
        admitted * 81,
        "each admitted request charged its usage"
    );
    assert!(
        spent <= b_under + admitted * (81 - e_under),
        "spent {spent} > {b_under} + {admitted} × (81 − {e_under})"
    );
    assert!(
        spent > b_under,
        "the bound is reached, not just respected: {spent}"
    );

    // Estimates that cover the usage: never overspent.
    let admitted_covered = burst(&gw, COVERED_KEY, &covered).await;
    let spent = listed(&gw, "key:covered", "budget").await["tokens_spent"]
        .as_u64()
        .unwrap();
    assert!((1..=5).contains(&admitted_covered), "{admitted_covered}");
    assert_eq!(spent, admitted_covered * 81);
    assert!(spent <= b_covered, "{spent} > {b_covered}");
    assert_eq!(
        gw.upstream.hits() as u64,
        admitted + admitted_covered,
        "refused requests never reached the upstream"
    );
    let held = listed(&gw, "key:covered", "budget").await["tokens_reserved"].clone();
    assert_eq!(held, 0, "nothing held once all settled");
}

#[tokio::test]
async fn budgets_and_rate_limits_are_set_and_shown_on_the_admin_apis_objects() {
    let upstream = MockUpstream::start().await;
    let keys = format!("  - name: service\n    key: {SERVICE_KEY}\n");
    let text = catalog(&upstream, &keys, "");
    let gw = Gateway::start_with(upstream, &text).await;

    // A named budget: created, listed, read, replaced, refused when invalid, deleted.
    let team = json!({"name": "team-search", "match": {"metadata.team": "search"},
                      "budget": {"tokens": 1000, "period": "day"},
                      "rate_limit": {"requests_per_minute": 1}});
    let (status, created) = admin(&gw, "POST", "/budgets", Some(team.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["match"], json!({"metadata.team": "search"}));
    assert_eq!(created["budget"], json!({"tokens": 1000, "period": "day"}));
    assert_eq!(created["source"], "api");
    assert_eq!(created["status"].as_array().unwrap().len(), 2, "{created}");
    let search = [("x-portkey-metadata", r#"{"team":"search"}"#)];
    let body = words("@oa/plain", 2, 10);
    let chat = "/v1/chat/completions";
    assert_eq!(
        post_with(&gw, chat, SERVICE_KEY, &body, &search).await.0,
        200
    );
    let (status, refused, retry_after) = post_with(&gw, chat, SERVICE_KEY, &body, &search).await;
    assert_eq!(status, 429, "{refused}");
    assert!(retry_after.is_some());
    let (status, again) = admin(&gw, "POST", "/budgets", Some(team.clone())).await;
    assert_eq!(status, 409, "{again}");
    let (status, bad) = admin(
        &gw,
        "POST",
        "/budgets",
        Some(
            json!({"name": "x", "match": {"team": "a"}, "budget": {"tokens": 5, "period": "day"}}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "match.team");
    let (status, bad) = admin(
        &gw,
        "POST",
        "/budgets",
        Some(json!({"name": "y", "match": {"metadata.team": "a"}, "budget": {"period": "day"}})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "budget");
    let (status, replaced) = admin(
        &gw,
        "PUT",
        "/budgets/team-search",
        Some(
            json!({"match": {"metadata.team": "search"}, "rate_limit": {"requests_per_minute": 5}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["budget"], Value::Null);
    assert_eq!(
        post_with(&gw, chat, SERVICE_KEY, &body, &search).await.0,
        200
    );
    let (status, one) = admin(&gw, "GET", "/budgets/team-search", None).await;
    assert_eq!(
        (status, one["rate_limit"]["requests_per_minute"].as_u64()),
        (200, Some(5))
    );
    assert_eq!(
        admin(&gw, "DELETE", "/budgets/team-search", None).await.0,
        204
    );
    assert_eq!(admin(&gw, "GET", "/budgets/team-search", None).await.0, 404);

    // A key with a budget and a rate limit, changed with PATCH.
    let (status, key) = admin(
        &gw,
        "POST",
        "/keys",
        Some(json!({"name": "limited", "type": "service",
                    "budget": {"cost_usd": 5, "period": "month"},
                    "rate_limit": {"requests_per_minute": 1}})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["budget"], json!({"cost_usd": 5.0, "period": "month"}));
    assert_eq!(key["rate_limit"], json!({"requests_per_minute": 1}));
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert_eq!(post(&gw, chat, &secret, &body).await.0, 200);
    assert_eq!(post(&gw, chat, &secret, &body).await.0, 429);
    let (status, patched) = admin(
        &gw,
        "PATCH",
        "/keys/limited",
        Some(json!({"rate_limit": null, "budget": {"tokens": 7, "period": "week"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["rate_limit"], Value::Null);
    let (status, refused, _) = post(&gw, chat, &secret, &body).await;
    assert_eq!(
        status, 412,
        "the rate limit is gone, the new budget has no room: {refused}"
    );
    let (status, bad) = admin(
        &gw,
        "PATCH",
        "/keys/limited",
        Some(json!({"budget": {"tokens": 7, "period": "year"}})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "budget.period");

    // A provider with a budget.
    let (status, provider) = admin(
        &gw,
        "POST",
        "/providers",
        Some(json!({"slug": "capped", "kind": "mock",
                    "budget": {"tokens": 10, "period": "day"},
                    "rate_limit": {"tokens_per_minute": 1000}})),
    )
    .await;
    assert_eq!(status, 201, "{provider}");
    assert_eq!(provider["budget"], json!({"tokens": 10, "period": "day"}));
    let listed_provider = listed(&gw, "provider:capped", "rate_limit").await;
    assert_eq!(listed_provider["tokens_limit"], 1000);
    assert_eq!(listed_provider["period"], "minute");
    let (status, refused, _) = post(&gw, chat, SERVICE_KEY, &words("@capped/echo", 1, 50)).await;
    assert_eq!(status, 412, "{refused}");
}
