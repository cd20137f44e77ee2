use std::collections::{HashMap, HashSet};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use super::*;
use crate::health::AllHealthy;

fn config(v: Value) -> RoutingConfig {
    match RoutingConfig::parse(&v) {
        Ok(c) => c,
        Err(e) => panic!("{v}: {e}"),
    }
}

fn empty() -> Map<String, Value> {
    Map::new()
}

/// Plans with no metadata, an empty body, every target healthy.
fn plan_of(v: Value) -> Plan {
    plan_with(
        &config(v),
        &AllHealthy,
        PlanOptions::default(),
        &mut StdRng::seed_from_u64(1),
    )
}

/// The request's `model` in these plans: the model of every target without its own.
const MODEL: &str = "m";

fn plan_with(
    cfg: &RoutingConfig,
    health: &dyn HealthView,
    options: PlanOptions,
    rng: &mut StdRng,
) -> Plan {
    let (m, p) = (empty(), empty());
    let cx = RequestContext {
        metadata: &m,
        params: &p,
        url_path: None,
        model: Some(MODEL),
    };
    match plan(cfg, &cx, health, Instant::now(), options, rng) {
        Ok(p) => p,
        Err(e) => panic!("plan failed: {e}"),
    }
}

fn slugs(p: &Plan) -> Vec<&str> {
    p.candidates()
        .iter()
        .map(|c| c.slug().unwrap_or("<request>"))
        .collect()
}

fn paths(p: &Plan) -> Vec<&str> {
    p.candidates().iter().map(|c| c.path.as_str()).collect()
}

/// Targets listed as down are unavailable; latencies as given; by health key.
#[derive(Default)]
struct FakeHealth {
    down: HashSet<String>,
    latency: HashMap<String, Duration>,
}

impl HealthView for FakeHealth {
    fn is_available(&self, key: &str, _now: Instant) -> bool {
        !self.down.contains(key)
    }

    fn latency(&self, key: &str) -> Option<Duration> {
        self.latency.get(key).copied()
    }
}

/// The request's model of these providers is down.
fn down(slugs: &[&str]) -> FakeHealth {
    FakeHealth {
        down: slugs.iter().map(|s| health_key(s, MODEL)).collect(),
        ..FakeHealth::default()
    }
}

/// The request's model of these providers has these latencies.
fn latencies(pairs: &[(&str, u64)]) -> FakeHealth {
    FakeHealth {
        latency: pairs
            .iter()
            .map(|(s, ms)| (health_key(s, MODEL), Duration::from_millis(*ms)))
            .collect(),
        ..FakeHealth::default()
    }
}

#[test]
fn a_config_without_targets_yields_the_request_itself() {
    let p = plan_of(
        json!({"retry": {"attempts": 2}, "override_params": {"temperature": 0}, "request_timeout": 900}),
    );
    assert_eq!(p.candidates().len(), 1);
    let c = &p.candidates()[0];
    assert_eq!(c.provider, None);
    assert_eq!(c.health_key(), None);
    assert_eq!(c.path, "config");
    assert_eq!(c.retry.attempts, 2);
    assert_eq!(c.request_timeout, Some(Duration::from_millis(900)));
    assert_eq!(
        c.override_params,
        *json!({"temperature": 0}).as_object().unwrap()
    );
    assert!(!c.bypass_health);
    assert_eq!(p.next_after(0, &Failure::Connect), None);
}

#[test]
fn a_root_provider_is_the_only_candidate() {
    let p = plan_of(json!({"provider": "@openai", "override_params": {"model": "gpt-4o"}}));
    assert_eq!(slugs(&p), ["openai"]);
    assert_eq!(paths(&p), ["config"]);
    assert_eq!(p.candidates()[0].model_override(), Some("gpt-4o"));
    assert_eq!(p.candidates()[0].retry, RetryPolicy::none());
}

#[test]
fn the_spec_example() {
    let cfg = config(json!({
        "strategy": { "mode": "fallback", "on_status_codes": [429, 500, 502, 503] },
        "targets": [ { "provider": "@anthropic-prod", "override_params": { "model": "claude-sonnet-4-5" } },
                     { "strategy": { "mode": "loadbalance" },
                       "targets": [ { "provider": "@openai-us", "weight": 0.7 },
                                    { "provider": "@openai-eu", "weight": 0.3 } ] } ],
        "retry": { "attempts": 3, "on_status_codes": [429, 500, 502, 503], "use_retry_after_header": true },
        "request_timeout": 30000,
        "override_params": { "temperature": 0.2 }
    }));
    let p = plan_with(
        &cfg,
        &AllHealthy,
        PlanOptions::default(),
        &mut StdRng::seed_from_u64(3),
    );
    assert_eq!(p.candidates().len(), 2);
    let first = &p.candidates()[0];
    assert_eq!(first.path, "config.targets[0]");
    assert_eq!(first.slug(), Some("anthropic-prod"));
    assert_eq!(
        first.override_params,
        *json!({"temperature": 0.2, "model": "claude-sonnet-4-5"})
            .as_object()
            .unwrap()
    );
    assert_eq!(first.retry.attempts, 3);
    assert!(first.retry.use_retry_after_header);
    assert_eq!(first.request_timeout, Some(Duration::from_secs(30)));
    let second = &p.candidates()[1];
    assert!(
        second.path == "config.targets[1].targets[0]" && second.slug() == Some("openai-us")
            || second.path == "config.targets[1].targets[1]" && second.slug() == Some("openai-eu"),
        "{second:?}"
    );
    assert_eq!(
        second.override_params,
        *json!({"temperature": 0.2}).as_object().unwrap()
    );
    // 503 falls through to the load-balanced pair; 400 does not; the pair's pick is last.
    assert_eq!(p.next_after(0, &Failure::status(503)), Some(1));
    assert_eq!(p.next_after(0, &Failure::status(400)), None);
    assert_eq!(p.next_after(0, &Failure::Timeout), Some(1));
    assert_eq!(p.next_after(1, &Failure::status(503)), None);
    assert_eq!(p.next_after(7, &Failure::status(503)), None);
}

#[test]
fn nesting_to_depth_three_merges_params_inner_first_and_names_paths() {
    let p = plan_of(json!({
        "override_params": {"temperature": 0.2, "max_tokens": 100},
        "retry": {"attempts": 1},
        "request_timeout": 1000,
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "@a"},
            {"override_params": {"temperature": 0.5, "top_p": 1},
             "retry": {"attempts": 4},
             "strategy": {"mode": "fallback"},
             "targets": [
                {"override_params": {"max_tokens": 50},
                 "request_timeout": 2000,
                 "strategy": {"mode": "fallback"},
                 "targets": [
                    {"provider": "@b"},
                    {"provider": "@c", "override_params": {"model": "m-c", "temperature": 0.9},
                     "retry": {"attempts": 0}, "request_timeout": 3000}
                 ]},
                {"provider": "@d"}
             ]}
        ]
    }));
    assert_eq!(slugs(&p), ["a", "b", "c", "d"]);
    assert_eq!(
        paths(&p),
        [
            "config.targets[0]",
            "config.targets[1].targets[0].targets[0]",
            "config.targets[1].targets[0].targets[1]",
            "config.targets[1].targets[1]",
        ]
    );
    let params = |i: usize| Value::Object(p.candidates()[i].override_params.clone());
    assert_eq!(params(0), json!({"temperature": 0.2, "max_tokens": 100}));
    assert_eq!(
        params(1),
        json!({"temperature": 0.5, "max_tokens": 50, "top_p": 1})
    );
    assert_eq!(
        params(2),
        json!({"temperature": 0.9, "max_tokens": 50, "top_p": 1, "model": "m-c"})
    );
    assert_eq!(
        params(3),
        json!({"temperature": 0.5, "max_tokens": 100, "top_p": 1})
    );
    let attempts: Vec<u8> = p.candidates().iter().map(|c| c.retry.attempts).collect();
    assert_eq!(attempts, [1, 4, 0, 4]);
    let timeouts: Vec<u64> = p
        .candidates()
        .iter()
        .map(|c| c.request_timeout.map_or(0, |d| d.as_millis() as u64))
        .collect();
    assert_eq!(timeouts, [1000, 2000, 3000, 1000]);
    // Plain fallbacks: every failure moves one step, the last one ends the walk.
    for i in 0..3 {
        assert_eq!(p.next_after(i, &Failure::status(400)), Some(i + 1));
    }
    assert_eq!(p.next_after(3, &Failure::Connect), None);
}

#[test]
fn fallback_on_status_codes_decide_the_walk() {
    let p = plan_of(json!({
        "strategy": {"mode": "fallback", "on_status_codes": [429]},
        "targets": [{"provider": "@a"}, {"provider": "@b"}, {"provider": "@c"}]
    }));
    assert_eq!(p.next_after(0, &Failure::status(429)), Some(1));
    assert_eq!(p.next_after(1, &Failure::status(429)), Some(2));
    assert_eq!(p.next_after(2, &Failure::status(429)), None);
    assert_eq!(p.next_after(0, &Failure::status(500)), None);
    // Transport and gateway failures and skips always move on.
    for f in [
        Failure::Connect,
        Failure::Timeout,
        Failure::Gateway,
        Failure::Skipped,
    ] {
        assert_eq!(p.next_after(0, &f), Some(1), "{f:?}");
    }
}

#[test]
fn nested_fallbacks_offer_unlisted_failures_to_the_enclosing_one() {
    // outer (on 500): [ inner (on 429): [A, B], C ]
    let p = plan_of(json!({
        "strategy": {"mode": "fallback", "on_status_codes": [500]},
        "targets": [
            {"strategy": {"mode": "fallback", "on_status_codes": [429]},
             "targets": [{"provider": "@a"}, {"provider": "@b"}]},
            {"provider": "@c"}
        ]
    }));
    assert_eq!(slugs(&p), ["a", "b", "c"]);
    assert_eq!(
        p.next_after(0, &Failure::status(429)),
        Some(1),
        "inner moves on"
    );
    assert_eq!(
        p.next_after(0, &Failure::status(500)),
        Some(2),
        "inner gives up, outer moves on"
    );
    assert_eq!(
        p.next_after(0, &Failure::status(400)),
        None,
        "nobody lists 400"
    );
    assert_eq!(
        p.next_after(1, &Failure::status(429)),
        None,
        "inner exhausted, outer does not list 429"
    );
    assert_eq!(p.next_after(1, &Failure::status(500)), Some(2));
    assert_eq!(p.next_after(2, &Failure::status(500)), None);
    assert_eq!(p.next_after(0, &Failure::Connect), Some(1));
    assert_eq!(p.next_after(1, &Failure::Connect), Some(2));
}

#[test]
fn single_uses_the_first_target_only() {
    let p = plan_of(json!({
        "strategy": {"mode": "single"},
        "targets": [{"provider": "@a"}, {"provider": "@b"}]
    }));
    assert_eq!(slugs(&p), ["a"]);
    assert_eq!(paths(&p), ["config.targets[0]"]);
    assert_eq!(p.next_after(0, &Failure::status(503)), None);
}

#[test]
fn loadbalance_picks_one_target_and_does_not_fall_through() {
    let p = plan_of(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "@a"}, {"provider": "@b"}]
    }));
    assert_eq!(p.candidates().len(), 1);
    assert_eq!(p.next_after(0, &Failure::Connect), None);
}

/// Plans `cfg` `n` times and counts which slug comes first.
fn first_pick_counts(
    cfg: &RoutingConfig,
    health: &dyn HealthView,
    options: PlanOptions,
    n: usize,
) -> HashMap<String, usize> {
    let mut rng = StdRng::seed_from_u64(42);
    let mut counts = HashMap::new();
    for _ in 0..n {
        let p = plan_with(cfg, health, options, &mut rng);
        let slug = p.candidates()[0].slug().unwrap_or("").to_owned();
        *counts.entry(slug).or_insert(0) += 1;
    }
    counts
}

fn assert_share(counts: &HashMap<String, usize>, slug: &str, expected: f64, n: usize) {
    let share = counts.get(slug).copied().unwrap_or(0) as f64 / n as f64;
    assert!(
        (share - expected).abs() <= 0.03,
        "{slug}: share {share:.4}, expected {expected} ± 0.03 ({counts:?})"
    );
}

#[test]
fn weights_hold_within_statistical_bounds() {
    const N: usize = 10_000;
    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "@us", "weight": 0.7}, {"provider": "@eu", "weight": 0.3}]
    }));
    let counts = first_pick_counts(&cfg, &AllHealthy, PlanOptions::default(), N);
    assert_share(&counts, "us", 0.7, N);
    assert_share(&counts, "eu", 0.3, N);

    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "@a", "weight": 5}, {"provider": "@b", "weight": 3},
            {"provider": "@c", "weight": 2}, {"provider": "@z", "weight": 0}
        ]
    }));
    let counts = first_pick_counts(&cfg, &AllHealthy, PlanOptions::default(), N);
    assert_share(&counts, "a", 0.5, N);
    assert_share(&counts, "b", 0.3, N);
    assert_share(&counts, "c", 0.2, N);
    assert_eq!(counts.get("z"), None, "weight 0 is never chosen");

    // Default weights are equal.
    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "@a"}, {"provider": "@b"}]
    }));
    let counts = first_pick_counts(&cfg, &AllHealthy, PlanOptions::default(), N);
    assert_share(&counts, "a", 0.5, N);
}

#[test]
fn the_draw_is_without_replacement_so_an_unhealthy_pick_passes_to_the_next_draw() {
    const N: usize = 10_000;
    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "@a", "weight": 5}, {"provider": "@b", "weight": 3},
            {"provider": "@c", "weight": 2}, {"provider": "@z", "weight": 0}
        ]
    }));
    // With `a` down, the pick is among b and c in proportion 3:2; `z` stays out.
    let counts = first_pick_counts(&cfg, &down(&["a"]), PlanOptions::default(), N);
    assert_share(&counts, "b", 0.6, N);
    assert_share(&counts, "c", 0.4, N);
    assert_eq!(counts.get("a"), None);
    assert_eq!(counts.get("z"), None);
    // Everything down: the first draw anyway, marked to bypass the breaker; still weighted.
    let all_down = down(&["a", "b", "c", "z"]);
    let counts = first_pick_counts(&cfg, &all_down, PlanOptions::default(), N);
    assert_share(&counts, "a", 0.5, N);
    assert_eq!(counts.get("z"), None);
    let p = plan_with(
        &cfg,
        &all_down,
        PlanOptions::default(),
        &mut StdRng::seed_from_u64(0),
    );
    assert!(p.candidates()[0].bypass_health);
}

#[test]
fn latency_aware_weights_favour_fast_targets() {
    const N: usize = 10_000;
    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "@fast"}, {"provider": "@slow"}]
    }));
    let health = latencies(&[("fast", 100), ("slow", 300)]);
    // weight × fastest/own: 1 vs 1/3, so 75 % / 25 %.
    let counts = first_pick_counts(
        &cfg,
        &health,
        PlanOptions {
            latency_aware: true,
        },
        N,
    );
    assert_share(&counts, "fast", 0.75, N);
    // Off by default: static weights only.
    let counts = first_pick_counts(&cfg, &health, PlanOptions::default(), N);
    assert_share(&counts, "fast", 0.5, N);
    // A target with no samples yet counts as fast.
    let one = latencies(&[("slow", 300)]);
    let counts = first_pick_counts(
        &cfg,
        &one,
        PlanOptions {
            latency_aware: true,
        },
        N,
    );
    assert_share(&counts, "fast", 0.5, N);
}

#[test]
fn open_targets_are_skipped_unless_all_are_open() {
    let cfg = config(json!({
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "@a"}, {"provider": "@b"}, {"provider": "@c"}]
    }));
    let mut rng = StdRng::seed_from_u64(0);
    let p = plan_with(&cfg, &down(&["a"]), PlanOptions::default(), &mut rng);
    assert_eq!(slugs(&p), ["b", "c"]);
    assert_eq!(paths(&p), ["config.targets[1]", "config.targets[2]"]);
    assert!(p.candidates().iter().all(|c| !c.bypass_health));
    assert_eq!(p.next_after(0, &Failure::Connect), Some(1));

    let p = plan_with(
        &cfg,
        &down(&["a", "b", "c"]),
        PlanOptions::default(),
        &mut rng,
    );
    assert_eq!(
        slugs(&p),
        ["a", "b", "c"],
        "all open: tried anyway, in order"
    );
    assert!(p.candidates().iter().all(|c| c.bypass_health));

    // A subtree with nothing available is skipped as a whole.
    let cfg = config(json!({
        "strategy": {"mode": "fallback"},
        "targets": [
            {"strategy": {"mode": "fallback"}, "targets": [{"provider": "@b"}, {"provider": "@c"}]},
            {"provider": "@a"}
        ]
    }));
    let p = plan_with(&cfg, &down(&["b", "c"]), PlanOptions::default(), &mut rng);
    assert_eq!(slugs(&p), ["a"]);
    let p = plan_with(&cfg, &down(&["b"]), PlanOptions::default(), &mut rng);
    assert_eq!(slugs(&p), ["c", "a"]);
    assert_eq!(p.next_after(0, &Failure::status(500)), Some(1));
}

fn conditional() -> RoutingConfig {
    config(json!({
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.plan": {"$eq": "pro"}}, "then": "smart"},
                {"query": {"$or": [{"params.model": "fastest"}, {"params.temperature": {"$gt": 0.7}}]}, "then": "fast"}
            ],
            "default": "cheap"
        },
        "targets": [
            {"name": "fast", "provider": "@groq"},
            {"name": "smart", "provider": "@anthropic", "override_params": {"model": "claude"}},
            {"name": "cheap", "provider": "@mock"}
        ]
    }))
}

fn plan_cx(cfg: &RoutingConfig, metadata: Value, params: Value) -> Result<Plan, PlanError> {
    let (Value::Object(m), Value::Object(p)) = (metadata, params) else {
        panic!("objects expected")
    };
    let cx = RequestContext {
        metadata: &m,
        params: &p,
        url_path: None,
        model: None,
    };
    plan(
        cfg,
        &cx,
        &AllHealthy,
        Instant::now(),
        PlanOptions::default(),
        &mut StdRng::seed_from_u64(0),
    )
}

#[test]
fn conditional_routes_by_metadata_and_params() {
    let cfg = conditional();
    let p = plan_cx(&cfg, json!({"plan": "pro"}), json!({"model": "fastest"})).unwrap();
    assert_eq!(slugs(&p), ["anthropic"], "first matching condition wins");
    assert_eq!(paths(&p), ["config.targets[1]"]);
    assert_eq!(p.candidates()[0].model_override(), Some("claude"));
    let p = plan_cx(&cfg, json!({"plan": "free"}), json!({"model": "fastest"})).unwrap();
    assert_eq!(slugs(&p), ["groq"]);
    let p = plan_cx(&cfg, json!({}), json!({"temperature": 0.9})).unwrap();
    assert_eq!(slugs(&p), ["groq"]);
    let p = plan_cx(&cfg, json!({}), json!({"temperature": 0.5})).unwrap();
    assert_eq!(slugs(&p), ["mock"], "default");
    assert_eq!(paths(&p), ["config.targets[2]"]);
}

#[test]
fn conditional_without_a_match_or_default_is_an_error() {
    let cfg = config(json!({
        "strategy": {"mode": "fallback"},
        "targets": [
            {"strategy": {"mode": "conditional", "conditions": [
                {"query": {"metadata.plan": "pro"}, "then": "smart"}
            ]}, "targets": [{"name": "smart", "provider": "@anthropic"}]}
        ]
    }));
    let e = plan_cx(&cfg, json!({"plan": "free"}), json!({})).unwrap_err();
    assert_eq!(
        e,
        PlanError::NoConditionMatched {
            path: "config.targets[0]".into()
        }
    );
    let api = e.to_api_error();
    assert_eq!(api.status, 400);
    assert_eq!(api.param.as_deref(), Some("config.targets[0].strategy"));
    assert!(api.message.contains("default"), "{}", api.message);
    // Inside a fallback with another target, an unresolvable branch is skipped.
    let cfg = config(json!({
        "strategy": {"mode": "fallback"},
        "targets": [
            {"strategy": {"mode": "conditional", "conditions": [
                {"query": {"metadata.plan": "pro"}, "then": "smart"}
            ]}, "targets": [{"name": "smart", "provider": "@anthropic"}]},
            {"provider": "@backup"}
        ]
    }));
    let p = plan_cx(&cfg, json!({"plan": "free"}), json!({})).unwrap();
    assert_eq!(slugs(&p), ["backup"]);
    let p = plan_cx(&cfg, json!({"plan": "pro"}), json!({})).unwrap();
    assert_eq!(slugs(&p), ["anthropic", "backup"]);
    assert_eq!(
        paths(&p),
        ["config.targets[0].targets[0]", "config.targets[1]"]
    );
}

#[test]
fn loadbalance_inside_fallback_inside_loadbalance() {
    // Property-style: whatever the draw, every candidate path names the slug's position and
    // the plan stays a valid walk.
    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"strategy": {"mode": "fallback"}, "targets": [
                {"provider": "@a1"},
                {"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "@b1"}, {"provider": "@b2"}]}
            ]},
            {"provider": "@c"}
        ]
    }));
    let expected_path: HashMap<&str, &str> = [
        ("a1", "config.targets[0].targets[0]"),
        ("b1", "config.targets[0].targets[1].targets[0]"),
        ("b2", "config.targets[0].targets[1].targets[1]"),
        ("c", "config.targets[1]"),
    ]
    .into_iter()
    .collect();
    let mut rng = StdRng::seed_from_u64(9);
    let mut seen = HashSet::new();
    for _ in 0..500 {
        let p = plan_with(&cfg, &AllHealthy, PlanOptions::default(), &mut rng);
        for c in p.candidates() {
            let slug = c.slug().unwrap();
            assert_eq!(expected_path[slug], c.path);
            seen.insert(slug.to_owned());
        }
        match slugs(&p).as_slice() {
            ["c"] => assert_eq!(p.next_after(0, &Failure::Connect), None),
            ["a1", b] if b.starts_with('b') => {
                assert_eq!(p.next_after(0, &Failure::Connect), Some(1));
                assert_eq!(p.next_after(1, &Failure::Connect), None);
            }
            other => panic!("unexpected plan {other:?}"),
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn candidates_know_their_model_and_health_is_per_provider_and_model() {
    let cfg = config(json!({
        "strategy": {"mode": "fallback"},
        "override_params": {"temperature": 0},
        "targets": [
            {"provider": "@a", "override_params": {"model": "bad"}},
            {"provider": "@a", "override_params": {"model": "good"}},
            {"provider": "@a"},
            {"strategy": {"mode": "single"}, "override_params": {"model": "inherited"},
             "targets": [{"provider": "@b"}]}
        ]
    }));
    let models = |p: &Plan| -> Vec<Option<String>> {
        p.candidates().iter().map(|c| c.model.clone()).collect()
    };
    let mut rng = StdRng::seed_from_u64(0);
    let p = plan_with(&cfg, &AllHealthy, PlanOptions::default(), &mut rng);
    assert_eq!(
        models(&p),
        [Some("bad"), Some("good"), Some(MODEL), Some("inherited")].map(|m| m.map(str::to_owned))
    );
    assert_eq!(p.candidates()[0].health_key().as_deref(), Some("@a/bad"));
    // The breaker of @a's `bad` is open: only that target is skipped, not @a's other models.
    let bad = FakeHealth {
        down: [health_key("a", "bad")].into_iter().collect(),
        ..FakeHealth::default()
    };
    let p = plan_with(&cfg, &bad, PlanOptions::default(), &mut rng);
    assert_eq!(slugs(&p), ["a", "a", "b"]);
    assert_eq!(
        models(&p),
        [Some("good"), Some(MODEL), Some("inherited")].map(|m| m.map(str::to_owned))
    );
    assert!(p.candidates().iter().all(|c| !c.bypass_health));
}

#[test]
fn the_requests_model_loses_its_slug_and_a_missing_model_is_not_judged() {
    let cfg = config(json!({
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "@a"}, {"provider": "@b"}]
    }));
    let (m, p) = (empty(), empty());
    let plan_for = |model: Option<&str>, health: &dyn HealthView| {
        let cx = RequestContext {
            metadata: &m,
            params: &p,
            url_path: None,
            model,
        };
        plan(
            &cfg,
            &cx,
            health,
            Instant::now(),
            PlanOptions::default(),
            &mut StdRng::seed_from_u64(0),
        )
        .unwrap()
    };
    let health = FakeHealth {
        down: [health_key("a", "gpt")].into_iter().collect(),
        ..FakeHealth::default()
    };
    let p1 = plan_for(Some("@other/gpt"), &health);
    assert_eq!(slugs(&p1), ["b"], "@a's `gpt` is down");
    assert_eq!(p1.candidates()[0].model.as_deref(), Some("gpt"));
    // Another model of @a is untouched by `gpt`'s breaker.
    assert_eq!(slugs(&plan_for(Some("mini"), &health)), ["a", "b"]);
    // No model anywhere: nothing to judge (the engine answers that a model is needed).
    let p2 = plan_for(None, &health);
    assert_eq!(slugs(&p2), ["a", "b"]);
    assert_eq!(p2.candidates()[0].health_key(), None);
}

#[test]
fn latency_is_weighed_per_model_of_one_provider() {
    const N: usize = 10_000;
    let cfg = config(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "@p", "override_params": {"model": "fast"}},
            {"provider": "@p", "override_params": {"model": "slow"}}
        ]
    }));
    let health = FakeHealth {
        latency: [
            (health_key("p", "fast"), Duration::from_millis(100)),
            (health_key("p", "slow"), Duration::from_millis(300)),
        ]
        .into_iter()
        .collect(),
        ..FakeHealth::default()
    };
    let mut rng = StdRng::seed_from_u64(7);
    let options = PlanOptions {
        latency_aware: true,
    };
    let fast = (0..N)
        .filter(|_| {
            let p = plan_with(&cfg, &health, options, &mut rng);
            p.candidates()[0].model.as_deref() == Some("fast")
        })
        .count();
    // weight × fastest/own: 1 vs 1/3, so 75 % / 25 %.
    let share = fast as f64 / N as f64;
    assert!((share - 0.75).abs() <= 0.03, "fast share {share}");
}
