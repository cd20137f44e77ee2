//! Routing configs through the real binary: fallback, retries, timeouts, load balancing,
//! conditional routing, streaming failover, the circuit breaker and config errors, against
//! two mock upstreams that fail on command.

use std::time::Duration;

use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};

use crate::support::{Gateway, PROVIDER_KEY, SERVICE_KEY, access_record, chat};

/// Two providers, `@primary` and `@backup`, each on its own mock upstream, plus `@dead`,
/// whose address refuses connections.
struct Pair {
    gw: Gateway,
    backup: MockUpstream,
}

impl Pair {
    async fn start() -> Pair {
        Pair::start_with_catalog_extra("").await
    }

    async fn start_with_catalog_extra(extra: &str) -> Pair {
        let primary = MockUpstream::start().await;
        let backup = MockUpstream::start().await;
        let dead = dead_address();
        let catalog = format!(
            r#"
providers:
  - slug: primary
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {primary}
  - slug: backup
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {backup}
  - slug: dead
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: http://{dead}/v1
{extra}"#,
            primary = primary.base_url(),
            backup = backup.base_url(),
        );
        let catalog = if catalog.contains("\nkeys:") {
            catalog
        } else {
            format!("{catalog}\nkeys:\n  - name: service\n    key: {SERVICE_KEY}\n")
        };
        Pair {
            gw: Gateway::start_with(primary, &catalog).await,
            backup,
        }
    }

    fn primary(&self) -> &MockUpstream {
        &self.gw.upstream
    }

    /// A chat request with `config` in `x-portkey-config`.
    async fn send(&self, config: &Value, body: Value) -> reqwest::Response {
        self.send_with(Some(config), body, &[]).await
    }

    /// A chat request with `config` (if any) in `x-portkey-config` and other `headers`.
    async fn send_with(
        &self,
        config: Option<&Value>,
        body: Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .gw
            .http
            .post(self.gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .json(&body);
        if let Some(config) = config {
            req = req.header("x-portkey-config", config.to_string());
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }
}

/// An address nothing listens on: a port bound and released.
fn dead_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn record_of(gw: &Gateway, resp: &reqwest::Response) -> Value {
    access_record(gw, &header(resp, "x-portkey-request-id")).await
}

fn fallback(on_status_codes: Option<&[u16]>, targets: &[&str]) -> Value {
    let targets: Vec<Value> = targets.iter().map(|t| json!({"provider": t})).collect();
    let mut strategy = json!({"mode": "fallback"});
    if let Some(codes) = on_status_codes {
        strategy["on_status_codes"] = json!(codes);
    }
    json!({"strategy": strategy, "targets": targets})
}

#[tokio::test]
async fn fallback_moves_on_for_a_listed_status_and_records_both_attempts() {
    let pair = Pair::start().await;
    pair.primary()
        .enqueue(MockReply::error(503, "primary is overloaded"));
    let config = fallback(Some(&[503]), &["@primary", "@backup"]);
    let resp = pair.send(&config, chat("gpt-4o-mini", "hello")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    assert_eq!(
        header(&resp, "x-portkey-last-used-option-index"),
        "config.targets[1]"
    );
    assert_eq!(header(&resp, "x-portkey-retry-attempt-count"), "0");
    let record = record_of(&pair.gw, &resp).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hello");
    assert_eq!(pair.primary().hits(), 1);
    assert_eq!(pair.backup.hits(), 1);
    assert_eq!(
        pair.backup.last_request().unwrap().json_body()["model"],
        "gpt-4o-mini"
    );

    assert_eq!(record["provider"], "backup");
    assert_eq!(record["target"], "config.targets[1]");
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{record}");
    assert_eq!(attempts[0]["provider"], "primary");
    assert_eq!(attempts[0]["status"], 503);
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("primary is overloaded")
    );
    assert_eq!(attempts[0]["target"], "config.targets[0]");
    assert_eq!(attempts[1]["provider"], "backup");
    assert_eq!(attempts[1]["status"], 200);
    assert_eq!(attempts[1]["error"], Value::Null);
}

#[tokio::test]
async fn a_status_the_fallback_does_not_list_is_the_answer() {
    let pair = Pair::start().await;
    pair.primary()
        .enqueue(MockReply::error(400, "max_tokens is too large"));
    let config = fallback(Some(&[429, 503]), &["@primary", "@backup"]);
    let resp = pair.send(&config, chat("gpt-4o-mini", "hello")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        header(&resp, "x-portkey-last-used-option-index"),
        "config.targets[0]"
    );
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens is too large"),
        "{body}"
    );
    assert_eq!(pair.backup.hits(), 0);
}

#[tokio::test]
async fn connection_refused_falls_through_even_with_a_status_list() {
    let pair = Pair::start().await;
    let config = fallback(Some(&[429]), &["@dead", "@backup"]);
    let resp = pair.send(&config, chat("m", "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    let record = record_of(&pair.gw, &resp).await;
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["provider"], "dead");
    assert_eq!(
        attempts[0]["status"],
        Value::Null,
        "no answer came: {record}"
    );
}

#[tokio::test]
async fn retries_honour_retry_after_and_count_in_the_headers() {
    let pair = Pair::start().await;
    pair.primary()
        .enqueue(MockReply::error(429, "slow down").header("retry-after", "1"));
    let config = json!({
        "provider": "@primary",
        "retry": {"attempts": 3, "on_status_codes": [429], "use_retry_after_header": true}
    });
    let resp = pair.send(&config, chat("m", "again")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-retry-attempt-count"), "1");
    assert_eq!(header(&resp, "x-portkey-last-used-option-index"), "config");
    assert_eq!(pair.primary().hits(), 2);
    let record = record_of(&pair.gw, &resp).await;
    assert_eq!(record["retry_count"], 1);
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (attempts[0]["retry"].clone(), attempts[1]["retry"].clone()),
        (json!(0), json!(1))
    );
    // The second try started no earlier than the upstream asked (1 s), by the gateway's own
    // timestamps: an ordering fact, not a timing assertion.
    let gap = attempts[1]["started_at_ms"].as_i64().unwrap()
        - attempts[0]["started_at_ms"].as_i64().unwrap();
    assert!(gap >= 1000, "retried after {gap} ms");
}

#[tokio::test]
async fn spent_retries_answer_the_last_error_with_count_minus_one() {
    let pair = Pair::start().await;
    for _ in 0..3 {
        pair.primary().enqueue(MockReply::error(503, "down"));
    }
    let config = json!({"provider": "@primary", "retry": {"attempts": 2}});
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "x-portkey-retry-attempt-count"), "-1");
    assert_eq!(pair.primary().hits(), 3);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("down"));
}

#[tokio::test]
async fn statuses_outside_the_retry_list_are_not_retried() {
    let pair = Pair::start().await;
    pair.primary().enqueue(MockReply::error(400, "bad"));
    let config = json!({"provider": "@primary", "retry": {"attempts": 3}});
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(header(&resp, "x-portkey-retry-attempt-count"), "0");
    assert_eq!(pair.primary().hits(), 1);
}

#[tokio::test]
async fn request_timeout_gives_408_or_moves_to_the_fallback() {
    let pair = Pair::start().await;
    pair.primary()
        .enqueue(MockReply::echo().delay(Duration::from_secs(30)));
    let config = json!({"provider": "@primary", "request_timeout": 200});
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 408);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("200 ms")
    );

    pair.primary()
        .enqueue(MockReply::echo().delay(Duration::from_secs(30)));
    let mut config = fallback(None, &["@primary", "@backup"]);
    config["request_timeout"] = json!(200);
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
}

#[tokio::test]
async fn the_request_timeout_header_bounds_a_plain_request() {
    let pair = Pair::start().await;
    pair.primary()
        .enqueue(MockReply::echo().delay(Duration::from_secs(30)));
    let resp = pair
        .send_with(
            None,
            chat("@primary/m", "x"),
            &[("x-portkey-request-timeout", "150")],
        )
        .await;
    assert_eq!(resp.status(), 408);
    let resp = pair
        .send_with(
            None,
            chat("@primary/m", "x"),
            &[("x-portkey-request-timeout", "soon")],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-portkey-request-timeout");
}

#[tokio::test]
async fn loadbalance_follows_the_weights() {
    let pair = Pair::start().await;
    let config = json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "@primary", "weight": 0.8}, {"provider": "@backup", "weight": 0.2}]
    });
    let n = 200;
    for _ in 0..n {
        let resp = pair.send(&config, chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
    }
    let primary = pair.primary().hits();
    assert_eq!(primary + pair.backup.hits(), n);
    // Binomial(200, 0.8): mean 160, sd 5.7; 30 is more than five sd.
    assert!(
        (130..=190).contains(&primary),
        "primary got {primary} of {n}"
    );
}

#[tokio::test]
async fn conditional_routing_reads_metadata_and_params() {
    let pair = Pair::start().await;
    let config = json!({
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.plan": {"$eq": "pro"}}, "then": "fast"},
                {"query": {"params.temperature": {"$gt": 0.5}}, "then": "fast"}
            ],
            "default": "cheap"
        },
        "targets": [
            {"name": "fast", "provider": "@primary"},
            {"name": "cheap", "provider": "@backup"}
        ]
    });
    let pro = pair
        .send_with(
            Some(&config),
            chat("m", "x"),
            &[("x-portkey-metadata", r#"{"plan":"pro"}"#)],
        )
        .await;
    assert_eq!(header(&pro, "x-portkey-provider"), "@primary");
    let free = pair
        .send_with(
            Some(&config),
            chat("m", "x"),
            &[("x-portkey-metadata", r#"{"plan":"free"}"#)],
        )
        .await;
    assert_eq!(header(&free, "x-portkey-provider"), "@backup");
    assert_eq!(
        header(&free, "x-portkey-last-used-option-index"),
        "config.targets[1]"
    );
    let mut hot = chat("m", "x");
    hot["temperature"] = json!(0.9);
    let hot = pair.send(&config, hot).await;
    assert_eq!(header(&hot, "x-portkey-provider"), "@primary");
}

#[tokio::test]
async fn override_params_at_every_level_reach_the_upstream() {
    let pair = Pair::start().await;
    let config = json!({
        "override_params": {"temperature": 0.1, "max_tokens": 50},
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "@primary", "override_params": {"model": "gpt-4.1", "max_tokens": 7}}
        ]
    });
    let resp = pair
        .send(
            &config,
            json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let sent = pair.primary().last_request().unwrap();
    let body = sent.json_body();
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(body["temperature"], 0.1);
    assert_eq!(body["max_tokens"], 7);
}

#[tokio::test]
async fn nested_strategies_fall_back_from_a_load_balanced_group() {
    let pair = Pair::start().await;
    pair.primary().enqueue(MockReply::error(500, "boom"));
    let config = json!({
        "strategy": {"mode": "fallback"},
        "targets": [
            {"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "@primary"}]},
            {"provider": "@backup", "override_params": {"model": "backup-model"}}
        ]
    });
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "x-portkey-last-used-option-index"),
        "config.targets[1]"
    );
    assert_eq!(
        pair.backup.last_request().unwrap().json_body()["model"],
        "backup-model"
    );
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_byte() {
    let pair = Pair::start().await;
    pair.primary().enqueue(MockReply::error(503, "busy"));
    let config = fallback(None, &["@primary", "@backup"]);
    let mut body = chat("m", "stream me");
    body["stream"] = json!(true);
    let resp = pair.send(&config, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    let text = resp.text().await.unwrap();
    let chat = portico_testkit::sse::collect_chat_stream(&text).unwrap();
    assert_eq!(chat.content, "echo: stream me");
}

#[tokio::test]
async fn after_the_first_byte_a_broken_stream_ends_with_an_error_event() {
    let pair = Pair::start().await;
    pair.primary().enqueue(MockReply::sse(
        SseScript::new()
            .data(&portico_testkit::sse::chat_chunk(
                json!({"content": "partial"}),
                None,
            ))
            .abort(),
    ));
    let config = fallback(None, &["@primary", "@backup"]);
    let mut body = chat("m", "x");
    body["stream"] = json!(true);
    let resp = pair.send(&config, body).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("partial"), "{text}");
    assert!(text.contains("\"error\""), "no in-band error event: {text}");
    assert_eq!(pair.backup.hits(), 0, "a started stream never fails over");
}

#[tokio::test]
async fn a_target_that_keeps_failing_is_ejected() {
    let pair = Pair::start().await;
    let config = fallback(None, &["@primary", "@backup"]);
    for _ in 0..5 {
        pair.primary().enqueue(MockReply::error(503, "down"));
        let resp = pair.send(&config, chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(pair.primary().hits(), 5);
    // Five consecutive failures opened the breaker: the next requests skip @primary.
    for _ in 0..3 {
        let resp = pair.send(&config, chat("m", "x")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    }
    assert_eq!(pair.primary().hits(), 5);
    assert_eq!(pair.backup.hits(), 8);
}

#[tokio::test]
async fn invalid_configs_are_400s_that_name_the_field() {
    let pair = Pair::start().await;
    let cases = [
        (
            json!({"provider": "@primary", "retry": {"attempts": 7}}),
            "retry.attempts",
        ),
        (
            json!({"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "@primary"}, {"provider": "@backup", "weight": "heavy"}]}),
            "targets[1].weight",
        ),
        (json!({"strategy": {"mode": "fallback"}}), "strategy"),
        (json!({"provider": "@primary", "colour": "blue"}), "colour"),
    ];
    for (config, path) in cases {
        let resp = pair.send(&config, chat("m", "x")).await;
        assert_eq!(resp.status(), 400, "{config}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(path), "{config}: {message}");
    }
    assert_eq!(pair.primary().hits() + pair.backup.hits(), 0);

    let resp = pair
        .send_with(
            None,
            chat("@primary/m", "x"),
            &[("x-portkey-config", "no-such-config")],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-config"),
        "{body}"
    );
}

#[tokio::test]
async fn a_config_without_targets_adds_retries_to_the_requests_own_model() {
    let pair = Pair::start().await;
    pair.primary().enqueue(MockReply::error(502, "flaky"));
    let config = json!({"retry": {"attempts": 1, "on_status_codes": [502]}});
    let resp = pair.send(&config, chat("@primary/gpt-x", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-retry-attempt-count"), "1");
    assert_eq!(
        pair.primary().last_request().unwrap().json_body()["model"],
        "gpt-x"
    );
}

#[tokio::test]
async fn messages_requests_fail_over_too() {
    let pair = Pair::start().await;
    pair.primary().enqueue(MockReply::error(529, "overloaded"));
    let config = fallback(None, &["@primary", "@backup"]);
    let resp = pair
        .gw
        .http
        .post(pair.gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .json(&json!({"model": "m", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "message", "{body}");
}

#[tokio::test]
async fn a_keys_catalog_config_applies_and_header_configs_merge_over_it() {
    let pair = Pair::start_with_catalog_extra(&format!(
        r#"
configs:
  - id: reliable
    config:
      strategy: {{ mode: fallback, on_status_codes: [503] }}
      targets: [ {{ provider: "@primary" }}, {{ provider: "@backup" }} ]
  - id: backup-only
    config:
      provider: "@backup"
      override_params: {{ model: from-config }}
keys:
  - name: service
    key: {SERVICE_KEY}
    config: reliable
"#
    ))
    .await;
    pair.primary()
        .enqueue(MockReply::error(503, "primary down"));
    let resp = pair.gw.post("/v1/chat/completions", chat("m", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    let record = record_of(&pair.gw, &resp).await;
    assert_eq!(record["config_id"], "reliable");
    assert_eq!(record["attempts"].as_array().unwrap().len(), 2);

    // A header config is merged over the key's (spec section 11): arrays are replaced, so
    // new `targets` replace the key's targets and keep its strategy.
    let over =
        json!({"targets": [{"provider": "@backup", "override_params": {"model": "pinned"}}]});
    let resp = pair.send_with(Some(&over), chat("m", "x"), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    assert_eq!(
        pair.backup.last_request().unwrap().json_body()["model"],
        "pinned"
    );

    // A catalog config named in the header merges the same way; one that would give a node
    // both a provider and targets is a 400 that says so.
    let resp = pair
        .send_with(None, chat("m", "x"), &[("x-portkey-config", "backup-only")])
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("provider") && message.contains("targets"),
        "{message}"
    );
}

/// Sends `n` chat requests through a 1:1 `loadbalance` of `@fast` and `@slow` (built-in mock
/// providers, the slow one 40 ms behind) and returns how many `@slow` answered.
async fn slow_share(latency_aware: bool, n: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let catalog = format!(
        r#"
auto_providers: false
providers:
  - slug: fast
    kind: mock
  - slug: slow
    kind: mock
    mock: {{ latency_ms: 40 }}
configs:
  - id: balanced
    config:
      strategy: {{ mode: loadbalance }}
      targets: [ {{ provider: "@fast" }}, {{ provider: "@slow" }} ]
keys:
  - name: service
    key: {SERVICE_KEY}
    config: balanced
"#
    );
    let flag = if latency_aware { "true" } else { "false" };
    let portico = crate::support::start_in(
        dir.path(),
        &catalog,
        &[("PORTICO_LATENCY_AWARE_LOADBALANCE", flag)],
    )
    .await;
    let http = reqwest::Client::new();
    let mut slow = 0;
    for _ in 0..n {
        let resp = http
            .post(portico.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .json(&chat("echo", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        if header(&resp, "x-portkey-provider") == "@slow" {
            slow += 1;
        }
    }
    slow
}

#[tokio::test]
async fn latency_aware_load_balancing_moves_traffic_to_the_faster_target() {
    let n = 120;
    // Static weights: Binomial(120, 0.5), mean 60, sd 5.5.
    let static_share = slow_share(false, n).await;
    assert!(
        (35..=85).contains(&static_share),
        "static: {static_share} of {n}"
    );
    // Latency-aware: once both have samples, @slow keeps 5 % of its share (it is ~40x
    // slower), so about 6 of 120 plus the first few draws; far below the static 35.
    let aware_share = slow_share(true, n).await;
    assert!(aware_share < 30, "latency-aware: {aware_share} of {n}");
}

#[tokio::test]
async fn single_uses_its_first_target_and_never_the_others() {
    let pair = Pair::start().await;
    pair.backup.enqueue(MockReply::error(503, "backup down"));
    let config = json!({
        "strategy": {"mode": "single"},
        "targets": [{"provider": "@backup"}, {"provider": "@primary"}]
    });
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 503, "single does not fall back");
    assert_eq!(
        header(&resp, "x-portkey-last-used-option-index"),
        "config.targets[0]"
    );
    let resp = pair.send(&config, chat("m", "x")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-provider"), "@backup");
    assert_eq!(pair.primary().hits(), 0);
}
