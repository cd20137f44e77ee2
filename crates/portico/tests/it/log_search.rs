//! The admin log search and analytics are bounded against hostile query strings (spec §13):
//! at most 20 metadata filters, no NUL byte, and no input that makes the store answer 500.

use std::time::{Duration, Instant};

use portico_testkit::PorticoProcess;
use serde_json::Value;

use crate::support::{ADMIN_KEY, Gateway, SERVICE_KEY, chat};

async fn admin(portico: &PorticoProcess, path_and_query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(portico.url(path_and_query))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
}

/// A gateway with one logged request (metadata `team=backend`), listed by the search.
async fn start_with_one_logged_request() -> Gateway {
    let gw = Gateway::start().await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-metadata", r#"{"team":"backend"}"#)
        .json(&chat("@openai-mock/gpt-4o-mini", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = admin(&gw.portico, "/admin/v1/logs")
            .await
            .json()
            .await
            .unwrap();
        if body["data"].as_array().is_some_and(|d| !d.is_empty()) {
            return gw;
        }
        assert!(Instant::now() < deadline, "the request was never logged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `metadata.k0=v&metadata.k1=v&...`, `n` filters (`k0` is `team=backend`, which matches).
fn metadata_filters(n: usize) -> String {
    (0..n)
        .map(|i| {
            if i == 0 {
                "metadata.team=backend".to_owned()
            } else {
                format!("metadata.k{i}=v{i}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Asserts an OpenAI-style 400 whose message contains `needle`.
async fn assert_400(resp: reqwest::Response, needle: &str, what: &str) {
    assert_eq!(resp.status(), 400, "{what}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["type"], "invalid_request_error",
        "{what}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{what}: {body}");
}

#[tokio::test]
async fn twenty_metadata_filters_are_searched_and_twenty_one_are_a_400() {
    let gw = start_with_one_logged_request().await;
    for endpoint in ["/admin/v1/logs", "/admin/v1/analytics"] {
        let resp = admin(&gw.portico, &format!("{endpoint}?{}", metadata_filters(20))).await;
        assert_eq!(resp.status(), 200, "{endpoint}");
        let resp = admin(&gw.portico, &format!("{endpoint}?{}", metadata_filters(21))).await;
        assert_400(resp, "at most 20 metadata", endpoint).await;
        // The probe's count, which reached SQLite's expression depth before.
        let resp = admin(
            &gw.portico,
            &format!("{endpoint}?{}", metadata_filters(1000)),
        )
        .await;
        assert_400(resp, "at most 20 metadata", endpoint).await;
    }
    // One filter still finds the request.
    let body: Value = admin(&gw.portico, "/admin/v1/logs?metadata.team=backend")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_nul_byte_in_any_search_value_is_a_400() {
    let gw = start_with_one_logged_request().await;
    for query in [
        "q=%00",
        "q=hel%00lo",
        "model=%00",
        "trace_id=x%00",
        "metadata.team=%00",
        "metadata.te%00am=backend",
        "provider=%00",
    ] {
        let resp = admin(&gw.portico, &format!("/admin/v1/logs?{query}")).await;
        assert_400(resp, "NUL", query).await;
        let resp = admin(&gw.portico, &format!("/admin/v1/analytics?{query}")).await;
        assert_400(resp, "NUL", query).await;
    }
    let resp = admin(&gw.portico, "/admin/v1/analytics?group_by=metadata.te%00am").await;
    assert_400(resp, "NUL", "group_by").await;
}

#[tokio::test]
async fn no_search_or_analytics_input_answers_500() {
    let gw = start_with_one_logged_request().await;
    let long_q = "x".repeat(60_000);
    let queries = [
        "q=%25".to_owned(),
        "q=_".to_owned(),
        "q=%5C".to_owned(),
        "q=%27%3B%20DROP%20TABLE%20logs%3B--".to_owned(),
        "q=%F0%9F%92%A9".to_owned(),
        "q=%FF%FE".to_owned(),
        format!("q={}", "é".repeat(1000)),
        "metadata.team=%25".to_owned(),
        "metadata.%25=x".to_owned(),
        "metadata.a.b.c=x".to_owned(),
        "from=0&to=9223372036854775807".to_owned(),
        "from=99999999999999999999".to_owned(),
        "status=5xx&provider=%40openai-mock&model=gpt-4o-mini&key=service&user=u".to_owned(),
        "cursor=9223372036854775807.9223372036854775807".to_owned(),
        "cursor=-1.-1".to_owned(),
        "limit=500".to_owned(),
    ];
    for query in &queries {
        let resp = admin(&gw.portico, &format!("/admin/v1/logs?{query}")).await;
        let status = resp.status().as_u16();
        assert!(status == 200 || status == 400, "logs?{query}: {status}");
    }
    let analytics = [
        "group_by=metadata.team".to_owned(),
        "group_by=metadata.%25".to_owned(),
        format!("group_by=metadata.{}", "k".repeat(10_000)),
        "group_by=metadata.team&q=back&metadata.team=backend&interval=day".to_owned(),
        "group_by=user&from=0&to=9223372036854775807&interval=hour".to_owned(),
        "group_by=metadata.team&from=0&to=1".to_owned(),
        "interval=day&from=1&to=2".to_owned(),
    ];
    for query in &analytics {
        let resp = admin(&gw.portico, &format!("/admin/v1/analytics?{query}")).await;
        let status = resp.status().as_u16();
        assert!(
            status == 200 || status == 400,
            "analytics?{query}: {status}"
        );
    }
    // A `q` too long for SQLite's LIKE is refused by name, not failed in the store.
    let resp = admin(&gw.portico, &format!("/admin/v1/logs?q={long_q}")).await;
    assert_400(resp, "at most 1000 characters", "long q").await;
}
