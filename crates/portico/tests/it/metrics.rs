//! `GET /metrics`: counters and histograms from real requests, and the optional bearer token.

use std::time::{Duration, Instant};

use portico_testkit::{MockReply, MockUpstream};
use serde_json::json;

use crate::support::{Gateway, chat, standard_catalog, start_in};

/// The value of the series `name` whose labels include every pair of `labels`.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (label_text, value) = rest.rsplit_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            })
            .then(|| value.parse().ok())?
    })
}

/// Scrapes until `done(text)` holds: records reach the metrics when an answer has ended,
/// which for a stream is just after the client read its last byte.
async fn scrape_until(gw: &Gateway, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = gw.http.get(gw.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "metrics never settled:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requests_errors_tokens_and_latency_by_provider_and_model() {
    let gw = Gateway::start().await;

    let ok = gw
        .post(
            "/v1/chat/completions",
            chat("@openai-mock/gpt-4o", "hi there"),
        )
        .await;
    assert_eq!(ok.status(), 200);
    ok.text().await.unwrap();

    gw.upstream
        .enqueue(MockReply::error(500, "the upstream broke"));
    let failed = gw
        .post("/v1/chat/completions", chat("@openai-mock/gpt-4.1", "x"))
        .await;
    let failed_status = failed.status().as_u16().to_string();
    assert!(failed.status().is_server_error(), "{failed_status}");
    failed.text().await.unwrap();

    let unpriced = gw
        .post(
            "/v1/chat/completions",
            chat("@openai-mock/my-fine-tune", "a b c"),
        )
        .await;
    assert_eq!(unpriced.status(), 200);
    unpriced.text().await.unwrap();

    let stream = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "@openai-mock/gpt-4o-mini", "stream": true,
                   "messages": [{"role": "user", "content": "stream this"}]}),
        )
        .await;
    assert_eq!(stream.status(), 200);
    assert!(stream.text().await.unwrap().contains("[DONE]"));

    let text = scrape_until(&gw, |t| {
        series(
            t,
            "portico_time_to_first_token_seconds_count",
            &[("model", "gpt-4o-mini")],
        ) == Some(1.0)
    })
    .await;
    let of = |model: &'static str| [("provider", "openai-mock"), ("model", model)];

    let ok_labels = [
        of("gpt-4o").as_slice(),
        &[
            ("endpoint", "chat.completions"),
            ("status", "200"),
            ("status_class", "2xx"),
            ("outcome", "completed"),
        ],
    ]
    .concat();
    assert_eq!(
        series(&text, "portico_requests_total", &ok_labels),
        Some(1.0),
        "{text}"
    );
    let failed_labels = [
        of("gpt-4.1").as_slice(),
        &[
            ("status", failed_status.as_str()),
            ("status_class", "5xx"),
            ("outcome", "failed"),
        ],
    ]
    .concat();
    assert_eq!(
        series(&text, "portico_requests_total", &failed_labels),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "portico_errors_total", &of("gpt-4.1")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(series(&text, "portico_errors_total", &of("gpt-4o")), None);

    // The mock counts words: "hi there" is 2 prompt tokens, "echo: hi there" 3 completion.
    let tokens = |direction| {
        series(
            &text,
            "portico_tokens_total",
            &[of("gpt-4o").as_slice(), &[("direction", direction)]].concat(),
        )
    };
    assert_eq!(tokens("prompt"), Some(2.0), "{text}");
    assert_eq!(tokens("completion"), Some(3.0));

    // Built-in OpenAI price of gpt-4o: $2.50 in, $10 out per million tokens.
    let cost = series(&text, "portico_cost_usd_total", &of("gpt-4o")).unwrap();
    assert!(
        (cost - (2.0 * 2.5 + 3.0 * 10.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
    assert_eq!(
        series(&text, "portico_unpriced_requests_total", &of("gpt-4o")),
        Some(0.0)
    );
    // A model the table does not know: its cost is null and counted as unpriced.
    assert_eq!(
        series(
            &text,
            "portico_unpriced_requests_total",
            &of("my-fine-tune")
        ),
        Some(1.0)
    );
    assert_eq!(
        series(&text, "portico_cost_usd_total", &of("my-fine-tune")),
        Some(0.0)
    );

    assert_eq!(
        series(
            &text,
            "portico_request_duration_seconds_count",
            &of("gpt-4o")
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &text,
            "portico_request_duration_seconds_count",
            &of("gpt-4.1")
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            &text,
            "portico_request_duration_seconds_count",
            &of("gpt-4o-mini")
        ),
        Some(1.0)
    );
    // Only the stream has a first token to time.
    assert_eq!(
        series(
            &text,
            "portico_time_to_first_token_seconds_count",
            &of("gpt-4o")
        ),
        Some(0.0)
    );

    let attempts = |model, result| {
        series(
            &text,
            "portico_upstream_attempts_total",
            &[of(model).as_slice(), &[("result", result)]].concat(),
        )
    };
    assert_eq!(attempts("gpt-4o", "ok"), Some(1.0));
    assert_eq!(attempts("gpt-4.1", "error"), Some(1.0), "{text}");
    assert_eq!(attempts("gpt-4o-mini", "ok"), Some(1.0));

    assert_eq!(series(&text, "portico_build_info", &[]), Some(1.0));
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
}

#[tokio::test]
async fn a_metrics_token_guards_the_scrape() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "metrics-token-0123456789";
    let portico = start_in(
        dir.path(),
        &standard_catalog(&upstream),
        &[("PORTICO_METRICS_TOKEN", token)],
    )
    .await;
    let http = reqwest::Client::new();
    let url = portico.url("/metrics");

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_api_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PORTICO_METRICS_TOKEN")
    );

    let wrong = http
        .get(&url)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");

    let right = http.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("portico_build_info"));
    assert!(
        !portico.stderr_text().contains(token),
        "the token was logged"
    );
}

#[test]
fn help_names_the_metrics_token_variable_but_never_its_value() {
    let secret = "metrics-secret-never-shown";
    let out = std::process::Command::new(crate::support::bin())
        .args(["serve", "--help"])
        .env("PORTICO_METRICS_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--metrics-token"), "{text}");
    assert!(text.contains("PORTICO_METRICS_TOKEN"), "{text}");
    assert!(!text.contains(secret), "{text}");
}
