//! Rate limits end to end: 429 with `Retry-After` and a message naming the limit, in
//! OpenAI's shape on /v1/chat/completions and Anthropic's on /v1/messages, on a key and on a
//! provider (whose limited attempt a fallback moves past); and the refusals in `/metrics`.

use portico_testkit::MockUpstream;
use serde_json::{Value, json};

use crate::support::{Gateway, PROVIDER_KEY, SERVICE_KEY};

const FREE_KEY: &str = "prt-test-free-key-0123456789";

fn catalog(upstream: &MockUpstream) -> String {
    let base = upstream.base_url();
    format!(
        r#"
providers:
  - slug: oa
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
  - slug: slow-lane
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {base}
    rate_limit: {{ requests_per_minute: 1 }}
configs:
  - id: spill-over
    config:
      strategy: {{ mode: fallback }}
      targets: [ {{ provider: "@slow-lane" }}, {{ provider: "@oa" }} ]
keys:
  - name: service
    key: {SERVICE_KEY}
    rate_limit: {{ requests_per_minute: 3, tokens_per_minute: 100000 }}
  - name: free
    key: {FREE_KEY}
"#
    )
}

async fn send(
    gw: &Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    send_as(gw, SERVICE_KEY, path, body, headers).await
}

async fn send_as(
    gw: &Gateway,
    key: &str,
    path: &str,
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
    (status, response.json().await.unwrap(), retry_after)
}

#[tokio::test]
async fn a_rate_limit_answers_429_with_retry_after_in_each_apis_shape() {
    let upstream = MockUpstream::start().await;
    let text = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &text).await;
    let chat =
        json!({"model": "@oa/m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});

    // The provider's limit: its one request a minute, then the fallback moves past it.
    let spill = [("x-portkey-config", "spill-over")];
    let (status, _, _) = send(&gw, "/v1/chat/completions", &chat, &spill).await;
    assert_eq!(status, 200);
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", "spill-over")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-portkey-provider"], "@oa");
    assert_eq!(
        response.headers()["x-portkey-last-used-option-index"],
        "config.targets[1]"
    );

    // The key's limit: three requests a minute.
    let (status, _, _) = send(&gw, "/v1/chat/completions", &chat, &[]).await;
    assert_eq!(status, 200);
    let (status, body, retry_after) = send(&gw, "/v1/chat/completions", &chat, &[]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "rate limit `key:service` reached: 3 requests per minute (requests_per_minute)"
        ),
        "{message}"
    );
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert!(
        message.ends_with(&format!("retry after {secs} s")),
        "{message}"
    );

    let messages = json!({"model": "@oa/m", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, retry_after) = send(&gw, "/v1/messages", &messages, &[]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("rate limit `key:service` reached"),
        "{body}"
    );
    assert!(retry_after.is_some());
    assert_eq!(gw.upstream.hits(), 3);

    // Alone, a provider's limit is the answer (with a key that has no limit of its own).
    let (status, body, retry_after) = send_as(
        &gw,
        FREE_KEY,
        "/v1/chat/completions",
        &json!({"model": "@slow-lane/m", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("rate limit `provider:slow-lane` reached: 1 request per minute"),
        "{body}"
    );
    assert!(retry_after.is_some());
    assert_eq!(gw.upstream.hits(), 3);

    // Refusals and spend by subject in the metrics.
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refusals = metrics
        .lines()
        .find(|l| {
            l.starts_with("portico_limit_refusals_total{")
                && l.contains(r#"subject="key:service""#)
                && l.contains(r#"limit="requests_per_minute""#)
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let count: f64 = refusals.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{refusals}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"portico_budget_spend_tokens_total{subject="key:service"}"#)),
        "{metrics}"
    );
}
