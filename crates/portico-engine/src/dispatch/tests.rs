//! The retry/fallback loop against scripted attempts, on tokio's paused clock: waits and
//! timeouts are exact virtual durations, so delays are asserted without wall-clock flakiness.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use portico_core::{ErrorCode, JsonBody, KeyHash, ProviderKind, RequestRecord, Secret};
use portico_providers::ProviderError;
use portico_routing::{BreakerConfig, BreakerState, MAX_ATTEMPTS, MAX_TARGETS, health_key};
use portico_store::{ConfigRecord, KeyRecord, KeyType, ProviderRecord, RecordSource};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Answer, AttemptError, Dispatched, RouteRequest};
use crate::{AccessLog, Gateway, Snapshot};

const KEY: &str = "prt-dispatch-test-key-000";

/// What a scripted attempt does.
#[derive(Debug, Clone)]
enum Step {
    Ok,
    Status(u16, Option<Duration>),
    Refused,
    /// The adapter's own timeout (the upstream read timeout), not the config's budget.
    TimedOut,
    Hang,
    Fatal,
}

struct Answered(u16);

impl Answer for Answered {
    fn status(&self) -> u16 {
        self.0
    }
}

/// Per-provider (`a`) or per-model (`a/m`, which wins) scripts, and the virtual time and
/// provider of every call.
#[derive(Default)]
struct Script {
    steps: Mutex<HashMap<String, VecDeque<Step>>>,
    calls: Mutex<Vec<(String, Instant)>>,
}

impl Script {
    fn new(steps: &[(&str, &[Step])]) -> Arc<Script> {
        let script = Script::default();
        for (slug, list) in steps {
            script
                .steps
                .lock()
                .unwrap()
                .insert((*slug).to_owned(), list.iter().cloned().collect());
        }
        Arc::new(script)
    }

    fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.0.clone())
            .collect()
    }

    fn times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|c| c.1).collect()
    }

    async fn run(&self, slug: String, model: String) -> Result<Answered, AttemptError> {
        self.calls
            .lock()
            .unwrap()
            .push((slug.clone(), Instant::now()));
        let step = {
            let mut steps = self.steps.lock().unwrap();
            match steps.get_mut(&format!("{slug}/{model}")) {
                Some(list) => list.pop_front(),
                None => steps.get_mut(&slug).and_then(VecDeque::pop_front),
            }
        }
        .unwrap_or(Step::Ok);
        match step {
            Step::Ok => Ok(Answered(200)),
            Step::Status(status, retry_after) => {
                Err(AttemptError::Upstream(ProviderError::Status {
                    status,
                    message: format!("{slug} says {status}"),
                    error_type: None,
                    code: None,
                    param: None,
                    retry_after,
                }))
            }
            Step::Refused => Err(AttemptError::Upstream(ProviderError::Unreachable(
                "connection refused".into(),
            ))),
            Step::TimedOut => Err(AttemptError::Upstream(ProviderError::Timeout(None))),
            Step::Hang => std::future::pending().await,
            Step::Fatal => Err(AttemptError::Fatal(portico_core::ApiError::new(
                ErrorCode::InvalidParameter,
                "this target cannot express the request",
            ))),
        }
    }
}

fn provider(slug: &str) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind: ProviderKind::Mock,
        base_url: None,
        api_key: Some(Secret::new("sk-test")),
        settings: json!({}),
        credentials: Default::default(),
        models: None,
        source: RecordSource::File,
        limits: Default::default(),
    }
}

fn gateway(key_config: Option<Value>, breaker: BreakerConfig) -> Gateway {
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let configs: Vec<ConfigRecord> = key_config
        .iter()
        .map(|config| ConfigRecord {
            id: "key-config".to_owned(),
            config: config.clone(),
            source: RecordSource::File,
            created_at_ms: 0,
            updated_at_ms: 0,
        })
        .chain(std::iter::once(ConfigRecord {
            id: "no-retries".to_owned(),
            config: json!({"retry": {"attempts": 0}}),
            source: RecordSource::File,
            created_at_ms: 0,
            updated_at_ms: 0,
        }))
        .collect();
    let key = KeyRecord {
        id: "k1".to_owned(),
        name: "service".to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(KEY),
        hint: String::new(),
        allowed_models: None,
        log_payloads: true,
        config: key_config.map(|_| "key-config".to_owned()),
        source: RecordSource::File,
        created_at_ms: 0,
        revoked_at_ms: None,
        expires_at_ms: None,
        limits: Default::default(),
    };
    let snapshot = Snapshot::build(
        vec![provider("a"), provider("b")],
        vec![key],
        configs,
        &client,
    )
    .unwrap();
    Gateway::new(snapshot, client, Arc::new(AccessLog::discard())).with_breaker(breaker)
}

/// One request through `gw` with `header` as `x-portkey-config`, attempts run by `script`.
async fn send(
    gw: &Gateway,
    header: Option<&Value>,
    script: &Arc<Script>,
) -> (Dispatched<Answered>, RequestRecord) {
    let key = gw.authenticate(Some(KEY)).await.unwrap();
    let body = JsonBody::parse(Bytes::from_static(br#"{"model":"@a/m","messages":[]}"#)).unwrap();
    // A JSON string stands for a config id, sent as is; anything else as inline JSON.
    let header = header.map(|h| match h {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    });
    let dispatch = gw
        .plan_request(&RouteRequest {
            key: &key,
            model: Some("@a/m"),
            provider_header: None,
            config_header: header.as_deref(),
            timeout: None,
            metadata: None,
            body: &body,
            path: "/v1/chat/completions",
        })
        .unwrap();
    let mut record = RequestRecord::new("r".into(), 0, "chat.completions");
    let outcome = gw
        .dispatch(
            &dispatch,
            &key,
            &body,
            &mut record,
            |_| Ok(()),
            |route, _body| {
                let script = Arc::clone(script);
                async move { script.run(route.slug, route.model).await }
            },
        )
        .await;
    (outcome, record)
}

fn fallback_ab() -> Value {
    json!({"strategy": {"mode": "fallback"}, "targets": [{"provider": "@a"}, {"provider": "@b"}]})
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_stay_under_the_exponential_ceiling() {
    let gw = gateway(None, BreakerConfig::default());
    let s503 = Step::Status(503, None);
    let script = Script::new(&[("a", &[s503.clone(), s503.clone(), s503])]);
    let config = json!({"provider": "@a", "retry": {"attempts": 3}});
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(outcome.retry_count, 3);
    assert_eq!(record.retry_count, 3);
    let times = script.times();
    assert_eq!(times.len(), 4);
    for (n, pair) in times.windows(2).enumerate() {
        let wait = pair[1] - pair[0];
        let ceiling = Duration::from_millis(100 * (1 << n));
        assert!(wait <= ceiling, "retry {n} waited {wait:?} > {ceiling:?}");
    }
    let retries: Vec<u32> = record.attempts.iter().map(|a| a.retry).collect();
    assert_eq!(retries, vec![0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_sets_the_wait_exactly() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[("a", &[Step::Status(429, Some(Duration::from_secs(7)))])]);
    let config = json!({"provider": "@a",
        "retry": {"attempts": 1, "use_retry_after_header": true}});
    let (outcome, _) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    let times = script.times();
    assert_eq!(times[1] - times[0], Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_budget_ends_the_retries_at_once() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[("a", &[Step::Status(429, Some(Duration::from_secs(5)))])]);
    let config = json!({"provider": "@a", "request_timeout": 1000,
        "retry": {"attempts": 3, "use_retry_after_header": true}});
    let started = Instant::now();
    let (outcome, _) = send(&gw, Some(&config), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.status, 429);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(outcome.retry_count, -1, "the retries are given up");
    assert_eq!(Instant::now() - started, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_budget_cuts_a_hanging_attempt_with_408() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[("a", &[Step::Hang])]);
    let config = json!({"provider": "@a", "request_timeout": 500});
    let started = Instant::now();
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.code, ErrorCode::RequestTimeout);
    assert_eq!(err.status, 408);
    assert_eq!(Instant::now() - started, Duration::from_millis(500));
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].status, None);
}

#[tokio::test(start_paused = true)]
async fn the_budget_spans_retries_and_a_fallback_gets_a_fresh_one() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[
        ("a", &[Step::Hang, Step::Hang, Step::Hang]),
        ("b", &[Step::Hang]),
    ]);
    let mut config = fallback_ab();
    config["request_timeout"] = json!(300);
    config["retry"] = json!({"attempts": 5});
    let started = Instant::now();
    let (outcome, _) = send(&gw, Some(&config), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.code, ErrorCode::RequestTimeout);
    let calls = script.calls();
    assert!(calls.contains(&"b".to_owned()), "{calls:?}");
    let a_calls = calls.iter().filter(|c| *c == "a").count();
    assert!(a_calls >= 1);
    // Each target had 300 ms, retries and waits included.
    assert!(Instant::now() - started <= Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_stops_the_walk() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[("a", &[Step::Fatal])]);
    let (outcome, _) = send(&gw, Some(&fallback_ab()), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidParameter);
    assert_eq!(script.calls(), vec!["a"]);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_target_is_skipped_and_alone_is_the_answer() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[]);
    let config = json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@nowhere"}, {"provider": "@b"}]});
    let (outcome, _) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(script.calls(), vec!["b"]);

    let (outcome, _) = send(&gw, Some(&json!({"provider": "@nowhere"})), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.code, ErrorCode::UnknownProvider);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_ejects_a_failing_target_then_probes_it() {
    let hour = BreakerConfig {
        failure_threshold: 2,
        cool_down: Duration::from_secs(3600),
        probe_timeout: Duration::from_secs(60),
    };
    let gw = gateway(None, hour);
    let script = Script::new(&[("a", &[Step::Refused, Step::Refused])]);
    for _ in 0..2 {
        let (outcome, _) = send(&gw, Some(&fallback_ab()), &script).await;
        assert!(outcome.result.is_ok());
    }
    assert!(matches!(
        gw.health()
            .state(&health_key("a", "m"), std::time::Instant::now()),
        BreakerState::Open { .. }
    ));
    let (outcome, record) = send(&gw, Some(&fallback_ab()), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(record.attempts.len(), 1, "@a is skipped while open");
    assert_eq!(record.attempts[0].provider, "b");

    // With no cool-down the next request is the half-open probe; its success closes it.
    let gw = gateway(
        None,
        BreakerConfig {
            cool_down: Duration::ZERO,
            ..hour
        },
    );
    let script = Script::new(&[("a", &[Step::Refused, Step::Refused])]);
    for _ in 0..2 {
        send(&gw, Some(&fallback_ab()), &script).await;
    }
    let (_, record) = send(&gw, Some(&fallback_ab()), &script).await;
    assert_eq!(record.attempts[0].provider, "a", "the probe goes to @a");
    assert_eq!(
        gw.health()
            .state(&health_key("a", "m"), std::time::Instant::now()),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_header_config_merges_over_the_keys_config() {
    let key_config = json!({"provider": "@a", "retry": {"attempts": 2}});
    let gw = gateway(Some(key_config), BreakerConfig::default());
    let s503 = Step::Status(503, None);
    let script = Script::new(&[("a", &[s503.clone(), s503.clone()])]);
    let (outcome, record) = send(&gw, None, &script).await;
    assert!(outcome.result.is_ok(), "the key's retries apply");
    assert_eq!(record.config_id.as_deref(), Some("key-config"));
    assert_eq!(script.calls().len(), 3);

    let script = Script::new(&[("a", std::slice::from_ref(&s503))]);
    let header = json!({"retry": {"attempts": 0}});
    let (outcome, _) = send(&gw, Some(&header), &script).await;
    assert_eq!(
        outcome.result.err().unwrap().status,
        503,
        "the header's 0 wins"
    );
    assert_eq!(script.calls().len(), 1);

    let script = Script::new(&[("a", &[s503])]);
    let (outcome, record) = send(&gw, Some(&json!("no-retries")), &script).await;
    assert!(outcome.result.is_err());
    assert_eq!(script.calls().len(), 1);
    assert_eq!(record.config_id.as_deref(), Some("no-retries"));
}

#[tokio::test(start_paused = true)]
async fn connection_errors_and_timeouts_are_retried_whatever_the_status_list() {
    let gw = gateway(None, BreakerConfig::default());
    let script = Script::new(&[("a", &[Step::Refused, Step::TimedOut])]);
    // The list names only 429: transport failures are retried anyway.
    let config = json!({"provider": "@a", "retry": {"attempts": 2, "on_status_codes": [429]}});
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(outcome.retry_count, 2);
    assert_eq!(script.calls(), vec!["a", "a", "a"]);
    let statuses: Vec<Option<u16>> = record.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![None, None, Some(200)]);

    // A status outside the list is not.
    let script = Script::new(&[("a", &[Step::Status(503, None)])]);
    let (outcome, _) = send(&gw, Some(&config), &script).await;
    assert_eq!(outcome.result.err().unwrap().status, 503);
    assert_eq!(script.calls().len(), 1);
}

/// A breaker that never opens, so attempt counts are the dispatcher's alone.
fn never_opens() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: u32::MAX,
        ..BreakerConfig::default()
    }
}

/// A fallback over `n` targets, all `@a`, each with `retries` retries.
fn wide_fallback(n: usize, retries: u8) -> Value {
    let targets: Vec<Value> = (0..n).map(|_| json!({"provider": "@a"})).collect();
    json!({"strategy": {"mode": "fallback"}, "targets": targets,
        "retry": {"attempts": retries}})
}

fn always(status: u16, n: usize) -> Vec<Step> {
    vec![Step::Status(status, None); n]
}

#[tokio::test(start_paused = true)]
async fn retries_and_fallbacks_share_one_attempt_budget() {
    let gw = gateway(None, never_opens());
    let script = Script::new(&[("a", &always(500, 1000))]);
    let (outcome, record) = send(&gw, Some(&wide_fallback(MAX_TARGETS, 5)), &script).await;
    assert_eq!(script.calls().len(), MAX_ATTEMPTS);
    assert_eq!(record.attempts.len(), MAX_ATTEMPTS);
    let err = outcome.result.err().unwrap();
    assert_eq!(err.status, 500, "the last error is the answer");
    assert!(err.message.contains("a says 500"), "{}", err.message);
    assert!(
        err.message.contains("attempt budget is spent")
            && err.message.contains(&MAX_ATTEMPTS.to_string()),
        "{}",
        err.message
    );
    assert_eq!(outcome.retry_count, -1);
    // 6 tries of the first target, 6 of the second, 4 of the third.
    let retries: Vec<u32> = record.attempts.iter().map(|a| a.retry).collect();
    assert_eq!(retries[..7], [0, 1, 2, 3, 4, 5, 0]);
    assert_eq!(record.attempts.last().unwrap().retry, 3);
    assert_eq!(
        record.attempts.last().unwrap().target.as_deref(),
        Some("config.targets[2]")
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_fallback_chain_and_is_silent_when_nothing_was_cut() {
    let gw = gateway(None, never_opens());
    // One more target than the budget, no retries: the last one is never tried.
    let script = Script::new(&[("a", &always(503, 1000))]);
    let (outcome, record) = send(&gw, Some(&wide_fallback(MAX_ATTEMPTS + 1, 0)), &script).await;
    assert_eq!(script.calls().len(), MAX_ATTEMPTS);
    assert_eq!(record.attempts.len(), MAX_ATTEMPTS);
    let err = outcome.result.err().unwrap();
    assert_eq!(err.status, 503);
    assert!(err.message.contains("attempt budget"), "{}", err.message);

    // Exactly the budget, and the config had nothing more to try: the plain last error.
    let script = Script::new(&[("a", &always(503, 1000))]);
    let (outcome, _) = send(&gw, Some(&wide_fallback(MAX_ATTEMPTS, 0)), &script).await;
    assert_eq!(script.calls().len(), MAX_ATTEMPTS);
    let err = outcome.result.err().unwrap();
    assert!(!err.message.contains("attempt budget"), "{}", err.message);

    // A success within the budget is a success.
    let mut steps = always(503, MAX_ATTEMPTS - 1);
    steps.push(Step::Ok);
    let script = Script::new(&[("a", &steps)]);
    let (outcome, record) = send(&gw, Some(&wide_fallback(MAX_TARGETS, 0)), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(record.attempts.len(), MAX_ATTEMPTS);
}

#[tokio::test(start_paused = true)]
async fn one_models_breaker_leaves_the_providers_other_models_in_use() {
    let gw = gateway(
        None,
        BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(60),
        },
    );
    let script = Script::new(&[("a/bad", &always(500, 1000))]);
    let only_bad = json!({"provider": "@a", "override_params": {"model": "bad"}});
    for _ in 0..2 {
        let (outcome, _) = send(&gw, Some(&only_bad), &script).await;
        assert_eq!(outcome.result.err().unwrap().status, 500);
    }
    let now = std::time::Instant::now();
    assert!(matches!(
        gw.health().state(&health_key("a", "bad"), now),
        BreakerState::Open { .. }
    ));
    assert_eq!(
        gw.health().state(&health_key("a", "good"), now),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    // A fallback from @a's good model to @b stays on @a.
    let config = json!({"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "@a", "override_params": {"model": "good"}}, {"provider": "@b"}]});
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(
        (
            record.attempts[0].provider.as_str(),
            record.attempts[0].model.as_str()
        ),
        ("a", "good")
    );
    // While @a's bad model is skipped.
    let config = json!({"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "@a", "override_params": {"model": "bad"}},
        {"provider": "@a", "override_params": {"model": "good"}}]});
    let calls_before = script.calls().len();
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(script.calls().len(), calls_before + 1);
    assert_eq!(record.attempts[0].model, "good");
}

#[test]
fn the_budget_note_reaches_the_logged_text_too() {
    let err = super::budget_spent(
        portico_core::ApiError::new(ErrorCode::UpstreamUnreachable, "could not reach @a")
            .with_detail("could not reach @a: http://10.0.0.1/v1"),
    );
    assert!(err.message.contains("attempt budget is spent"), "{err:?}");
    assert!(!err.message.contains("10.0.0.1"));
    assert!(
        err.log_text().contains("10.0.0.1") && err.log_text().contains("attempt budget is spent"),
        "{err:?}"
    );
}

// The loop-level behaviours that `portico_routing::retry` once checked on a reference loop
// of its own (`run_with_retries`); the dispatcher is the one loop now (issue 14).

#[tokio::test(start_paused = true)]
async fn failures_of_every_kind_are_retried_and_recorded_in_order() {
    let gw = gateway(None, never_opens());
    let script = Script::new(&[(
        "a",
        &[
            Step::Status(503, None),
            Step::Refused,
            Step::Status(502, None),
        ],
    )]);
    let config = json!({"provider": "@a", "retry": {"attempts": 3}});
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(outcome.retry_count, 3);
    assert_eq!(script.calls().len(), 4);
    let statuses: Vec<Option<u16>> = record.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(503), None, Some(502), Some(200)]);
    let waited = *script.times().last().unwrap() - script.times()[0];
    assert!(
        waited <= Duration::from_millis(100 + 200 + 400),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn every_retry_waits_its_own_retry_after() {
    let gw = gateway(None, never_opens());
    let limited = Step::Status(429, Some(Duration::from_secs(3)));
    let script = Script::new(&[("a", &[limited.clone(), limited])]);
    let config = json!({"provider": "@a",
        "retry": {"attempts": 2, "use_retry_after_header": true}});
    let started = Instant::now();
    let (outcome, _) = send(&gw, Some(&config), &script).await;
    assert!(outcome.result.is_ok());
    assert_eq!(outcome.retry_count, 2);
    assert_eq!(script.calls().len(), 3);
    assert_eq!(Instant::now() - started, Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn retries_run_out_and_the_last_failure_is_the_answer() {
    let gw = gateway(None, never_opens());
    let script = Script::new(&[("a", &always(500, 10))]);
    let config = json!({"provider": "@a", "retry": {"attempts": 2}});
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.status, 500);
    assert_eq!(outcome.retry_count, -1, "the retries were all spent");
    assert_eq!(script.calls().len(), 3);
    assert_eq!(record.retry_count, 2);

    // A failure the policy does not retry is the answer at once: one try, no wait.
    let script = Script::new(&[("a", &[Step::Status(400, None)])]);
    let config = json!({"provider": "@a", "retry": {"attempts": 5}});
    let started = Instant::now();
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    assert_eq!(outcome.result.err().unwrap().status, 400);
    assert_eq!(outcome.retry_count, 0);
    assert_eq!(script.calls().len(), 1);
    assert_eq!(record.retry_count, 0);
    assert_eq!(Instant::now() - started, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_try_is_cut_at_the_budget_and_not_retried_without_time_left() {
    let gw = gateway(None, never_opens());
    let script = Script::new(&[("a", &[Step::Hang, Step::Hang])]);
    let config = json!({"provider": "@a", "request_timeout": 3000, "retry": {"attempts": 5}});
    let started = Instant::now();
    let (outcome, record) = send(&gw, Some(&config), &script).await;
    let err = outcome.result.err().unwrap();
    assert_eq!(err.status, 408);
    assert_eq!(Instant::now() - started, Duration::from_secs(3));
    assert_eq!(script.calls().len(), 1);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(outcome.retry_count, -1, "the budget ended the retries");
}
