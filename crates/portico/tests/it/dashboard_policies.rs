//! What the policies did to a request, in the dashboard's request detail (real headless
//! Chromium against the real binary): a cache hit's status, and each guardrail check with its
//! verdict.

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::dashboard::{sign_in, wait_logged};
use crate::support::{Gateway, SERVICE_KEY, chat};

/// Sends `body` with `config` as `x-portkey-config`; answers the status, the cache status
/// header and the request id.
async fn send(gw: &Gateway, config: &Value, body: &Value) -> (u16, String, String) {
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (cache, id) = (
        header("x-portkey-cache-status"),
        header("x-portkey-request-id"),
    );
    let status = resp.status().as_u16();
    let _ = resp.bytes().await.unwrap();
    (status, cache, id)
}

/// The detail page's value of one field (`dd` of `[data-field=NAME]`).
fn field(name: &str) -> String {
    format!("document.querySelector('[data-field={name}] dd')?.textContent")
}

#[tokio::test]
async fn the_request_detail_shows_a_cache_hit_and_each_guardrail_check() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let gw = Gateway::start().await;
    // A flagging guardrail (deny: false): the answer comes with 246 and its checks are logged.
    let config = json!({
        "cache": {"mode": "simple", "max_age": 600},
        "input_guardrails": [{"default.contains": {"operator": "none", "words": ["secret-plan"]}, "deny": false}],
    });
    let body = chat("@openai-mock/gpt-4o-mini", "tell me the secret-plan");
    let (first, miss, flagged_id) = send(&gw, &config, &body).await;
    assert_eq!((first, miss.as_str()), (246, "MISS"));
    // A clean question, asked twice: the second is a hit.
    let clean = chat("@openai-mock/gpt-4o-mini", "what is the capital of France?");
    let (status, miss, _) = send(&gw, &config, &clean).await;
    assert_eq!((status, miss.as_str()), (200, "MISS"));
    let (status, hit, hit_id) = send(&gw, &config, &clean).await;
    assert_eq!((status, hit.as_str()), (200, "HIT"));
    wait_logged(&gw, 3).await;

    sign_in(&browser, &gw).await;
    browser.open(&gw.url(&format!("/#/logs/{hit_id}"))).await;
    // The log keeps the status in lower case (`hit`), as the request log's filter takes it.
    let cache = browser
        .until(
            "the cache status",
            &format!(
                "{} === 'hit' && {}",
                field("cache_status"),
                field("cache_saved_usd")
            ),
        )
        .await;
    // What the hit saved: the first answer's cost, not nothing.
    assert!(
        cache
            .as_str()
            .is_some_and(|s| s.starts_with('$') && s != "$0"),
        "{cache}"
    );
    let attempts = browser
        .until(
            "no upstream attempt",
            "document.querySelector('section[aria-labelledby=attempts-title] p')?.textContent",
        )
        .await;
    assert!(
        attempts.as_str().unwrap().contains("No upstream attempt"),
        "{attempts}"
    );
    browser.screenshot("detail-cache-hit").await;

    browser
        .open(&gw.url(&format!("/#/logs/{flagged_id}")))
        .await;
    let checks = browser
        .until(
            "the guardrail checks",
            "document.querySelectorAll('section[aria-labelledby=guardrails-title] tbody tr').length === 1 && [...document.querySelectorAll('section[aria-labelledby=guardrails-title] tbody tr')].map(r => [r.cells[0].textContent, r.cells[2].textContent, r.cells[3].textContent])",
        )
        .await;
    assert_eq!(
        checks,
        json!([["input", "default.contains", "fail"]]),
        "{checks}"
    );
    let explanation = browser
        .text("section[aria-labelledby=guardrails-title] tbody tr td:last-child")
        .await;
    assert!(
        !explanation.trim().is_empty() && explanation != "—",
        "{explanation}"
    );
    let status = browser.text(".page-head .badge").await;
    assert_eq!(status.trim(), "246");
    browser.screenshot("detail-guardrails").await;
}
