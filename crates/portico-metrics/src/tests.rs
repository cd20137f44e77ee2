use std::sync::Arc;

use portico_core::RequestSink as _;
use portico_core::{Attempt, Outcome, RequestRecord};

use crate::Metrics;

fn record(provider: &str, model: &str, status: u16) -> RequestRecord {
    let mut r = RequestRecord::new("r".into(), 0, "chat.completions");
    r.provider = Some(provider.into());
    r.model = Some(model.into());
    r.status = status;
    r.latency_ms = 1_500;
    r
}

fn attempt(provider: &str, model: &str, error: Option<&str>) -> Attempt {
    Attempt {
        provider: provider.into(),
        model: model.into(),
        target: None,
        retry: 0,
        started_at_ms: 0,
        latency_ms: 10,
        status: Some(if error.is_some() { 500 } else { 200 }),
        error: error.map(str::to_owned),
    }
}

/// A series `name{a="x",b="y"}` as its name and sorted label pairs.
fn parse_series(series: &str) -> Option<(String, Vec<(String, String)>)> {
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_owned(), Vec::new()));
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        match chars.peek() {
            Some('}') => break,
            Some(',') => {
                chars.next();
            }
            None => return None,
            _ => {}
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key, value));
    }
    labels.sort();
    Some((name.to_owned(), labels))
}

/// The value of the series `name{labels}` in the text output, whatever the label order.
fn value(text: &str, series: &str) -> Option<f64> {
    let wanted = parse_series(series)?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (parse_series(series)? == wanted).then(|| value.parse().ok())?
        })
}

#[test]
fn a_completed_request_counts_tokens_cost_and_latency() {
    let metrics = Metrics::new().unwrap();
    let mut r = record("openai-prod", "gpt-4o", 200);
    r.prompt_tokens = Some(120);
    r.completion_tokens = Some(30);
    r.cached_tokens = Some(100);
    r.cache_write_tokens = Some(0);
    r.cost_usd = Some(0.25);
    r.attempts = vec![attempt("openai-prod", "gpt-4o", None)];
    metrics.record(r.clone());
    metrics.record(r);
    let text = metrics.render();
    let pm = r#"provider="openai-prod",model="gpt-4o""#;
    assert_eq!(
        value(
            &text,
            &format!(
                r#"portico_requests_total{{{pm},endpoint="chat.completions",status="200",status_class="2xx",outcome="completed"}}"#
            )
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_tokens_total{{{pm},direction="prompt"}}"#)
        ),
        Some(240.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_tokens_total{{{pm},direction="completion"}}"#)
        ),
        Some(60.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_tokens_total{{{pm},direction="cached"}}"#)
        ),
        Some(200.0)
    );
    assert_eq!(
        value(&text, &format!(r#"portico_cost_usd_total{{{pm}}}"#)),
        Some(0.5)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_request_duration_seconds_count{{{pm}}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_request_duration_seconds_sum{{{pm}}}"#)
        ),
        Some(3.0)
    );
    // 1.5 s falls in the 2.5 s bucket, not the 1 s one.
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_request_duration_seconds_bucket{{{pm},le="1"}}"#)
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_request_duration_seconds_bucket{{{pm},le="2.5"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_upstream_attempts_total{{{pm},result="ok"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            &format!(r#"portico_unpriced_requests_total{{{pm}}}"#)
        ),
        Some(0.0)
    );
    assert!(!text.contains("portico_errors_total{"), "{text}");
    assert_eq!(
        value(&text, r#"portico_build_info{version="0.1.0"}"#),
        Some(1.0)
    );
}

#[test]
fn failures_retries_and_streams_are_visible() {
    let metrics = Metrics::new().unwrap();
    // Two failed tries on one provider, then a fallback that answered a stream.
    let mut r = record("backup", "claude-x", 200);
    r.stream = true;
    r.ttft_ms = Some(40);
    r.attempts = vec![
        attempt("primary", "gpt-4o", Some("upstream 500")),
        attempt("primary", "gpt-4o", Some("upstream 500")),
        attempt("backup", "claude-x", None),
    ];
    metrics.record(r);
    let mut failed = record("primary", "gpt-4o", 502);
    failed.outcome = Outcome::Failed;
    failed.error_code = Some("upstream_error".into());
    metrics.record(failed);
    let mut broken = record("primary", "gpt-4o", 200);
    broken.outcome = Outcome::StreamBroken;
    metrics.record(broken);
    // Usage without a price.
    let mut unpriced = record("primary", "gpt-4o", 200);
    unpriced.prompt_tokens = Some(5);
    metrics.record(unpriced);

    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            r#"portico_upstream_attempts_total{provider="primary",model="gpt-4o",result="error"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            r#"portico_upstream_attempts_total{provider="backup",model="claude-x",result="ok"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"portico_time_to_first_token_seconds_count{provider="backup",model="claude-x"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"portico_time_to_first_token_seconds_bucket{provider="backup",model="claude-x",le="0.05"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"portico_errors_total{provider="primary",model="gpt-4o",endpoint="chat.completions",code="upstream_error"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"portico_errors_total{provider="primary",model="gpt-4o",endpoint="chat.completions",code="stream_broken"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"portico_requests_total{provider="primary",model="gpt-4o",endpoint="chat.completions",status="502",status_class="5xx",outcome="failed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"portico_unpriced_requests_total{provider="primary",model="gpt-4o"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn a_request_that_reached_no_provider_is_labelled_none() {
    let metrics = Metrics::new().unwrap();
    let mut r = RequestRecord::new("r".into(), 0, "chat.completions");
    r.status = 401;
    r.error_code = Some("invalid_api_key".into());
    metrics.record(r);
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            r#"portico_errors_total{provider="none",model="none",endpoint="chat.completions",code="invalid_api_key"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn model_names_past_the_cap_fold_into_other() {
    let metrics = Metrics::with_max_models(3).unwrap();
    for i in 0..10 {
        metrics.record(record("p", &format!("model-{i}"), 200));
    }
    // Another provider has its own budget of names.
    metrics.record(record("q", "model-9", 200));
    let text = metrics.render();
    let series = |model: &str, provider: &str| {
        value(
            &text,
            &format!(
                r#"portico_requests_total{{provider="{provider}",model="{model}",endpoint="chat.completions",status="200",status_class="2xx",outcome="completed"}}"#
            ),
        )
    };
    for i in 0..3 {
        assert_eq!(series(&format!("model-{i}"), "p"), Some(1.0));
    }
    assert_eq!(series("model-3", "p"), None);
    assert_eq!(series("other", "p"), Some(7.0));
    assert_eq!(series("model-9", "q"), Some(1.0));
    let distinct: std::collections::HashSet<_> = text
        .lines()
        .filter(|l| l.starts_with("portico_requests_total{") && l.contains(r#"provider="p""#))
        .collect();
    assert_eq!(distinct.len(), 4);
}

#[test]
fn odd_error_codes_are_not_labels() {
    let metrics = Metrics::new().unwrap();
    let mut r = record("p", "m", 500);
    r.error_code = Some("weird code with spaces {\"}".into());
    metrics.record(r);
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            r#"portico_errors_total{provider="p",model="m",endpoint="chat.completions",code="other"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new().unwrap();
    metrics.record(record("p", "a\"b\\c\nd", 200));
    let text = metrics.render();
    assert!(text.contains(r#"model="a\"b\\c\nd""#), "{text}");
}

#[tokio::test]
#[expect(
    clippy::disallowed_methods,
    reason = "a test serves the route on its own runtime task and scrapes it with a plain client"
)]
async fn the_route_serves_text_and_guards_with_a_token() {
    let metrics = Arc::new(Metrics::new().unwrap());
    metrics.record(record("p", "m", 200));
    let serve = |token: Option<&str>| {
        let app: axum::Router = crate::router(Arc::clone(&metrics), token.map(str::to_owned));
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}/metrics")
        }
    };
    let http = reqwest::Client::new();

    let open = serve(None).await;
    let res = http.get(&open).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("portico_requests_total{")
    );

    let guarded = serve(Some("s3cret-token")).await;
    let res = http.get(&guarded).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");
    let res = http
        .get(&guarded)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("invalid_api_key") && !body.contains("s3cret-token"),
        "{body}"
    );
    let res = http
        .get(&guarded)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("portico_build_info"));
}

#[test]
fn cache_statuses_are_counted_and_a_hit_spends_no_tokens() {
    let metrics = Metrics::new().unwrap();
    let mut miss = record("oa", "m", 200);
    miss.cache_status = Some("miss");
    miss.prompt_tokens = Some(10);
    let mut hit = record("oa", "m", 200);
    hit.cache_status = Some("hit");
    hit.prompt_tokens = Some(10);
    hit.cache_saved_usd = Some(0.25);
    metrics.observe(&miss);
    metrics.observe(&hit);
    metrics.observe(&record("oa", "m", 200));
    let text = metrics.render();
    assert!(
        text.contains("portico_cache_requests_total{status=\"hit\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portico_cache_requests_total{status=\"miss\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portico_cache_saved_usd_total 0.25"),
        "{text}"
    );
    assert!(
        text.contains("portico_tokens_total{direction=\"prompt\",model=\"m\",provider=\"oa\"} 10"),
        "only the miss's tokens: {text}"
    );
}

#[test]
fn sampled_gauges_are_read_at_each_scrape() {
    let metrics = Metrics::new().unwrap();
    let value = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(7));
    let read = std::sync::Arc::clone(&value);
    metrics
        .add_sampled_gauge(
            "portico_test_tasks",
            "A test gauge.",
            Box::new(move || read.load(std::sync::atomic::Ordering::Relaxed)),
        )
        .unwrap();
    assert_eq!(value_of(&metrics.render(), "portico_test_tasks"), Some(7.0));
    value.store(3, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(value_of(&metrics.render(), "portico_test_tasks"), Some(3.0));
    // A second gauge of the same name is refused, not silently shadowed.
    assert!(
        metrics
            .add_sampled_gauge("portico_test_tasks", "again", Box::new(|| 0))
            .is_err()
    );
}

fn value_of(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
