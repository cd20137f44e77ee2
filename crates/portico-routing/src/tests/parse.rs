use serde_json::{Value, json};

use std::time::Duration;

use super::*;
use crate::config::{CacheConfig, CacheMode, GuardrailRef};
use crate::limits::MAX_TARGETS;
use crate::retry::RetryPolicy;

/// The config's shape, every field included: the fields not enforced yet (guardrails) keep
/// their rules checked here; `RoutingConfig::parse` then refuses them.
fn parse(v: Value) -> RoutingConfig {
    match RoutingConfig::parse_shape(&v) {
        Ok(c) => c,
        Err(e) => panic!("{v} should parse: {e}"),
    }
}

fn parse_err(v: Value) -> ConfigPathError {
    match RoutingConfig::parse_shape(&v) {
        Ok(c) => panic!("{v} should be rejected, parsed as {c:?}"),
        Err(e) => e,
    }
}

/// Wraps `targets` in a fallback strategy.
fn fallback(targets: Value) -> Value {
    json!({"strategy": {"mode": "fallback"}, "targets": targets})
}

#[test]
fn the_spec_example_parses() {
    let cfg = parse(json!({
        "strategy": { "mode": "fallback", "on_status_codes": [429, 500, 502, 503] },
        "targets": [
            { "provider": "@anthropic-prod", "override_params": { "model": "claude-sonnet-4-5" } },
            { "strategy": { "mode": "loadbalance" },
              "targets": [ { "provider": "@openai-us", "weight": 0.7 },
                           { "provider": "@openai-eu", "weight": 0.3 } ] }
        ],
        "retry": { "attempts": 3, "on_status_codes": [429, 500, 502, 503], "use_retry_after_header": true },
        "request_timeout": 30000,
        "cache": { "mode": "simple", "max_age": 60 },
        "input_guardrails": ["pii-check"], "output_guardrails": ["content-moderation"],
        "override_params": { "temperature": 0.2 }
    }));
    assert!(cfg.has_targets());
    let Route::Strategy(s) = &cfg.root.route else {
        panic!("root should be a strategy")
    };
    let Mode::Fallback(policy) = &s.mode else {
        panic!("fallback expected")
    };
    assert_eq!(policy.on_status_codes, Some(vec![429, 500, 502, 503]));
    assert_eq!(s.targets.len(), 2);
    assert!(
        matches!(&s.targets[0].route, Route::Provider(p) if p.slug == "anthropic-prod" && p.at_slug() == "@anthropic-prod")
    );
    assert_eq!(s.targets[0].override_params["model"], "claude-sonnet-4-5");
    let Route::Strategy(inner) = &s.targets[1].route else {
        panic!("nested strategy expected")
    };
    assert!(matches!(inner.mode, Mode::Loadbalance));
    assert_eq!(inner.targets[0].weight, 0.7);
    assert_eq!(inner.targets[1].weight, 0.3);
    assert_eq!(
        cfg.root.retry,
        Some(RetryPolicy {
            attempts: 3,
            on_status_codes: Some(vec![429, 500, 502, 503]),
            use_retry_after_header: true,
        })
    );
    assert_eq!(
        cfg.root.request_timeout,
        Some(Duration::from_millis(30_000))
    );
    assert_eq!(
        cfg.cache,
        Some(CacheConfig {
            mode: CacheMode::Simple,
            max_age: Some(60)
        })
    );
    assert_eq!(
        cfg.input_guardrails,
        vec![GuardrailRef::Id("pii-check".into())]
    );
    assert_eq!(
        cfg.output_guardrails,
        vec![GuardrailRef::Id("content-moderation".into())]
    );
    assert_eq!(cfg.root.override_params["temperature"], 0.2);
    assert_eq!(cfg.root.weight, 1.0);
    assert_eq!(cfg.root.name, None);
}

#[test]
fn configs_without_targets_combine_with_the_request() {
    for v in [
        json!({"retry": {"attempts": 2}}),
        json!({"request_timeout": 5000}),
        json!({"cache": {"mode": "semantic"}}),
        json!({"override_params": {"temperature": 0}}),
        json!({"input_guardrails": [{"default.wordCount": {"minWords": 1}, "deny": true}]}),
        json!({"output_guardrails": []}),
    ] {
        let cfg = parse(v.clone());
        assert!(!cfg.has_targets(), "{v}");
        assert!(matches!(cfg.root.route, Route::Request), "{v}");
    }
    let cfg = parse(json!({"input_guardrails": [{"default.wordCount": {"minWords": 1}}]}));
    assert!(
        matches!(&cfg.input_guardrails[0], GuardrailRef::Inline(g) if g.checks[0].id == "default.wordCount")
    );
}

#[test]
fn a_root_provider_is_a_single_target() {
    let cfg = parse(json!({"provider": "@openai", "retry": {"attempts": 5}}));
    assert!(cfg.has_targets());
    assert!(matches!(&cfg.root.route, Route::Provider(p) if p.slug == "openai"));
}

#[test]
fn virtual_key_is_an_alias_of_provider() {
    let cfg = parse(json!({"virtual_key": "main-258f4d"}));
    assert!(
        matches!(&cfg.root.route, Route::Provider(p) if p.slug == "main-258f4d" && p.kind_hint.is_none())
    );
    let cfg = parse(json!({"virtual_key": "@main"}));
    assert!(matches!(&cfg.root.route, Route::Provider(p) if p.slug == "main"));
    // Portkey's older form: a bare provider kind beside the virtual key.
    let cfg = parse(fallback(json!([
        {"provider": "openai", "virtual_key": "main-258f4d"},
        {"provider": "azure-openai", "virtual_key": "azure-test-4110dd"}
    ])));
    let Route::Strategy(s) = &cfg.root.route else {
        panic!()
    };
    assert!(matches!(&s.targets[1].route, Route::Provider(p)
        if p.slug == "azure-test-4110dd" && p.kind_hint.as_deref() == Some("azure-openai")));
}

#[test]
fn defaults() {
    let cfg = parse(json!({
        "strategy": {"mode": "loadbalance"},
        "targets": [{"provider": "@a"}, {"provider": "@b", "name": "b"}]
    }));
    let Route::Strategy(s) = &cfg.root.route else {
        panic!()
    };
    assert_eq!(s.targets[0].weight, 1.0);
    assert_eq!(s.targets[0].name, None);
    assert_eq!(s.targets[1].name.as_deref(), Some("b"));
    assert!(s.targets[0].override_params.is_empty());
    assert_eq!(s.targets[0].retry, None);
    assert_eq!(s.targets[0].request_timeout, None);
    let cfg = parse(json!({"retry": {"attempts": 0}}));
    assert_eq!(cfg.root.retry, Some(RetryPolicy::none()));
}

#[test]
fn modes_parse() {
    for (mode, check) in [
        (
            "single",
            (|m: &Mode| matches!(m, Mode::Single)) as fn(&Mode) -> bool,
        ),
        (
            "fallback",
            |m| matches!(m, Mode::Fallback(p) if p.on_status_codes.is_none()),
        ),
        ("loadbalance", |m| matches!(m, Mode::Loadbalance)),
    ] {
        let cfg = parse(json!({"strategy": {"mode": mode}, "targets": [{"provider": "@a"}]}));
        let Route::Strategy(s) = &cfg.root.route else {
            panic!()
        };
        assert!(check(&s.mode), "{mode}");
        assert_eq!(s.mode.as_str(), mode);
    }
}

#[test]
fn conditional_names_resolve_to_indices() {
    let cfg = parse(json!({
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.plan": {"$eq": "pro"}}, "then": "smart"},
                {"query": {"params.model": "fastest"}, "then": "fast"}
            ],
            "default": "fast"
        },
        "targets": [
            {"name": "fast", "provider": "@groq"},
            {"name": "smart", "provider": "@anthropic"}
        ]
    }));
    let Route::Strategy(s) = &cfg.root.route else {
        panic!()
    };
    let Mode::Conditional(c) = &s.mode else {
        panic!()
    };
    assert_eq!(c.conditions.len(), 2);
    assert_eq!(c.conditions[0].then, 1);
    assert_eq!(c.conditions[1].then, 0);
    assert_eq!(c.default, Some(0));
    // A default alone is enough.
    parse(json!({
        "strategy": {"mode": "conditional", "conditions": [], "default": "a"},
        "targets": [{"name": "a", "provider": "@a"}]
    }));
    parse(json!({
        "strategy": {"mode": "conditional", "default": "a"},
        "targets": [{"name": "a", "provider": "@a"}]
    }));
}

#[test]
fn nesting_to_depth_three_parses_and_deep_trees_are_bounded() {
    parse(fallback(json!([
        {"provider": "@a"},
        {"strategy": {"mode": "loadbalance"}, "targets": [
            {"strategy": {"mode": "fallback"}, "targets": [{"provider": "@b"}, {"provider": "@c"}]},
            {"provider": "@d", "weight": 2}
        ]}
    ])));
    let mut v = json!({"provider": "@leaf"});
    for _ in 0..MAX_TARGET_DEPTH {
        v = json!({"strategy": {"mode": "single"}, "targets": [v]});
    }
    parse(v.clone());
    let v = json!({"strategy": {"mode": "single"}, "targets": [v]});
    let e = parse_err(v);
    assert!(e.message.contains("nest at most"), "{e}");
}

#[test]
fn zero_weights_are_fine_outside_loadbalance_and_beside_a_positive_one() {
    parse(json!({"strategy": {"mode": "fallback"}, "targets": [{"provider": "@a", "weight": 0}]}));
    parse(json!({"strategy": {"mode": "loadbalance"}, "targets": [
        {"provider": "@a", "weight": 0}, {"provider": "@b", "weight": 0.1}
    ]}));
}

/// Every validation error names its path, says what is wrong, and shows the path in its
/// message.
#[test]
fn every_error_names_its_path() {
    let lb = |targets: Value| json!({"strategy": {"mode": "loadbalance"}, "targets": targets});
    let cond = |strategy: Value, targets: Value| json!({"strategy": strategy, "targets": targets});
    let named = json!([{"name": "a", "provider": "@a"}, {"name": "b", "provider": "@b"}]);
    let q = |query: Value| {
        cond(
            json!({"mode": "conditional", "conditions": [{"query": query, "then": "a"}]}),
            json!([{"name": "a", "provider": "@a"}]),
        )
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        // The config as a whole.
        (json!({}), "", "empty"),
        (json!([]), "", "JSON object"),
        (json!("pc-123"), "", "JSON object"),
        // Unknown keys, with hints.
        (json!({"foo": 1}), "foo", "unknown field `foo`"),
        (json!({"bar": 1, "foo": 2}), "bar", "`bar`, `foo`"),
        (
            json!({"overrideParams": {}}),
            "overrideParams",
            "did you mean `override_params`",
        ),
        (
            json!({"requestTimeout": 1}),
            "requestTimeout",
            "did you mean `request_timeout`",
        ),
        (
            json!({"api_key": "sk-1", "provider": "@a"}),
            "api_key",
            "catalog",
        ),
        (json!({"custom_host": "http://x"}), "custom_host", "catalog"),
        (
            json!({"on_status_codes": [429]}),
            "on_status_codes",
            "in `strategy`",
        ),
        (
            json!({"before_request_hooks": []}),
            "before_request_hooks",
            "input_guardrails",
        ),
        (
            json!({"weight": 1, "provider": "@a"}),
            "weight",
            "entry of `targets`",
        ),
        (
            json!({"name": "x", "provider": "@a"}),
            "name",
            "entry of `targets`",
        ),
        (
            fallback(json!([{"provider": "@a", "bogus": 1}])),
            "targets[0].bogus",
            "unknown field",
        ),
        (
            fallback(json!([{"provider": "@a", "cache": {"mode": "simple"}}])),
            "targets[0].cache",
            "top level",
        ),
        (
            fallback(json!([{"provider": "@a", "input_guardrails": []}])),
            "targets[0].input_guardrails",
            "top level",
        ),
        // Retry.
        (
            json!({"retry": {"attempts": 6}}),
            "retry.attempts",
            "at most 5",
        ),
        (
            json!({"retry": {"attempts": 100}}),
            "retry.attempts",
            "got 100",
        ),
        (
            json!({"retry": {"attempts": -1}}),
            "retry.attempts",
            "whole number from 0 to 5",
        ),
        (
            json!({"retry": {"attempts": 1.5}}),
            "retry.attempts",
            "whole number",
        ),
        (
            json!({"retry": {"attempts": "3"}}),
            "retry.attempts",
            "whole number",
        ),
        (json!({"retry": {}}), "retry.attempts", "needs `attempts`"),
        (json!({"retry": 3}), "retry", "must be an object"),
        (
            json!({"retry": {"attempts": 1, "max": 2}}),
            "retry.max",
            "unknown field `max`",
        ),
        (
            json!({"retry": {"attempts": 1, "on_status_codes": [429, "x"]}}),
            "retry.on_status_codes[1]",
            "status code",
        ),
        (
            json!({"retry": {"attempts": 1, "on_status_codes": [700]}}),
            "retry.on_status_codes[0]",
            "100 to 599",
        ),
        (
            json!({"retry": {"attempts": 1, "on_status_codes": 429}}),
            "retry.on_status_codes",
            "array",
        ),
        (
            json!({"retry": {"attempts": 1, "use_retry_after_header": "yes"}}),
            "retry.use_retry_after_header",
            "true or false",
        ),
        (
            fallback(json!([{"provider": "@a"}, {"provider": "@b", "retry": {"attempts": 9}}])),
            "targets[1].retry.attempts",
            "at most 5",
        ),
        // Strategy and targets.
        (
            json!({"strategy": {"mode": "fallback"}}),
            "strategy",
            "needs `targets`",
        ),
        (
            json!({"strategy": {"mode": "fallback"}, "targets": []}),
            "targets",
            "at least one target",
        ),
        (
            json!({"targets": [{"provider": "@a"}]}),
            "targets",
            "needs a `strategy`",
        ),
        (
            json!({"provider": "@a", "strategy": {"mode": "single"}, "targets": [{"provider": "@b"}]}),
            "provider",
            "not both",
        ),
        (
            json!({"provider": "@a", "targets": [{"provider": "@b"}]}),
            "provider",
            "not both",
        ),
        (
            fallback(json!([{"override_params": {"model": "x"}}])),
            "targets[0]",
            "needs a `provider`",
        ),
        (
            fallback(json!([{"name": "a"}])),
            "targets[0]",
            "needs a `provider`",
        ),
        (
            fallback(json!({"provider": "@a"})),
            "targets",
            "array of targets",
        ),
        (
            fallback(json!([{"provider": "@a"}, "@b"])),
            "targets[1]",
            "must be an object",
        ),
        (
            json!({"strategy": "fallback", "targets": [{"provider": "@a"}]}),
            "strategy",
            "must be an object",
        ),
        (
            json!({"strategy": {}, "targets": [{"provider": "@a"}]}),
            "strategy.mode",
            "needs a `mode`",
        ),
        (
            json!({"strategy": {"mode": "roundrobin"}, "targets": [{"provider": "@a"}]}),
            "strategy.mode",
            "unknown mode `roundrobin`",
        ),
        (
            json!({"strategy": {"mode": 1}, "targets": [{"provider": "@a"}]}),
            "strategy.mode",
            "non-empty string",
        ),
        (
            json!({"strategy": {"mode": "loadbalance", "on_status_codes": [429]}, "targets": [{"provider": "@a"}]}),
            "strategy.on_status_codes",
            "fallback only",
        ),
        (
            json!({"strategy": {"mode": "fallback", "default": "a"}, "targets": [{"provider": "@a"}]}),
            "strategy.default",
            "conditional only",
        ),
        (
            json!({"strategy": {"mode": "single", "sticky": true}, "targets": [{"provider": "@a"}]}),
            "strategy.sticky",
            "unknown field `sticky`",
        ),
        (
            json!({"strategy": {"mode": "fallback", "on_status_codes": ["429"]}, "targets": [{"provider": "@a"}]}),
            "strategy.on_status_codes[0]",
            "status code",
        ),
        // Weights.
        (
            lb(json!([{"provider": "@a"}, {"provider": "@b", "weight": -1}])),
            "targets[1].weight",
            "number ≥ 0",
        ),
        (
            lb(json!([{"provider": "@a"}, {"provider": "@b", "weight": "heavy"}])),
            "targets[1].weight",
            "got string \"heavy\"",
        ),
        (
            lb(json!([{"provider": "@a"}, {"provider": "@b", "weight": null}])),
            "targets[1].weight",
            "got null",
        ),
        (
            lb(json!([{"provider": "@a", "weight": 0}, {"provider": "@b", "weight": 0}])),
            "targets",
            "weight 0",
        ),
        // Providers and names.
        (
            fallback(json!([{"provider": "openai"}])),
            "targets[0].provider",
            "write \"@openai\"",
        ),
        (
            fallback(json!([{"provider": "@openai/gpt-4o"}])),
            "targets[0].provider",
            "\"override_params\": {\"model\": \"gpt-4o\"}",
        ),
        (
            fallback(json!([{"provider": "@Bad Slug"}])),
            "targets[0].provider",
            "invalid slug",
        ),
        (
            fallback(json!([{"provider": 5}])),
            "targets[0].provider",
            "non-empty string",
        ),
        (
            fallback(json!([{"provider": ""}])),
            "targets[0].provider",
            "non-empty string",
        ),
        (
            fallback(json!([{"virtual_key": "Not A Slug"}])),
            "targets[0].virtual_key",
            "not a provider slug",
        ),
        (
            fallback(json!([{"provider": "@a", "virtual_key": "b"}])),
            "targets[0].virtual_key",
            "not both",
        ),
        (
            fallback(json!([{"provider": "@a", "name": ""}])),
            "targets[0].name",
            "non-empty string",
        ),
        (
            fallback(json!([{"provider": "@a", "name": "x"}, {"provider": "@b", "name": "x"}])),
            "targets[1].name",
            "duplicate target name `x` (also targets[0].name)",
        ),
        // Conditional.
        (
            cond(
                json!({"mode": "conditional", "conditions": [{"query": {"metadata.plan": "pro"}, "then": "c"}]}),
                named.clone(),
            ),
            "strategy.conditions[0].then",
            "`c` names no target; this strategy's targets are named `a`, `b`",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": [{"query": {"metadata.plan": "pro"}, "then": "a"}], "default": "zzz"}),
                named.clone(),
            ),
            "strategy.default",
            "`zzz` names no target",
        ),
        (
            cond(
                json!({"mode": "conditional", "default": "a"}),
                json!([{"provider": "@a"}]),
            ),
            "strategy.default",
            "none of this strategy's targets has a `name`",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": []}),
                named.clone(),
            ),
            "strategy.conditions",
            "or a `default`",
        ),
        (
            cond(json!({"mode": "conditional"}), named.clone()),
            "strategy.conditions",
            "or a `default`",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": {"query": {}}}),
                named.clone(),
            ),
            "strategy.conditions",
            "must be an array",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": [{"then": "a"}]}),
                named.clone(),
            ),
            "strategy.conditions[0].query",
            "needs a `query`",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": [{"query": {"metadata.a": "1"}}]}),
                named.clone(),
            ),
            "strategy.conditions[0].then",
            "needs `then`",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": [{"query": {"metadata.a": "1"}, "then": "a", "else": "b"}]}),
                named.clone(),
            ),
            "strategy.conditions[0].else",
            "unknown field `else`",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": [{"query": {"metadata.a": "1"}, "then": 3}]}),
                named.clone(),
            ),
            "strategy.conditions[0].then",
            "non-empty string",
        ),
        (
            cond(
                json!({"mode": "conditional", "conditions": ["x"]}),
                named.clone(),
            ),
            "strategy.conditions[0]",
            "must be an object",
        ),
        // Queries.
        (q(json!({})), "strategy.conditions[0].query", "empty query"),
        (
            q(json!("metadata.plan == pro")),
            "strategy.conditions[0].query",
            "query object",
        ),
        (
            q(json!({"metadata.plan": {"$foo": 1}})),
            "strategy.conditions[0].query[\"metadata.plan\"].$foo",
            "unknown operator `$foo`",
        ),
        (
            q(json!({"metadata.plan": {"plan": "pro"}})),
            "strategy.conditions[0].query[\"metadata.plan\"].plan",
            "unknown operator `plan`",
        ),
        (
            q(json!({"metadata.plan": {}})),
            "strategy.conditions[0].query[\"metadata.plan\"]",
            "empty operator object",
        ),
        (
            q(json!({"user.id": "1"})),
            "strategy.conditions[0].query[\"user.id\"]",
            "unknown query field `user.id`",
        ),
        (
            q(json!({"metadata.": "1"})),
            "strategy.conditions[0].query[\"metadata.\"]",
            "empty path segment",
        ),
        (
            q(json!({"params..model": "1"})),
            "strategy.conditions[0].query[\"params..model\"]",
            "empty path segment",
        ),
        (
            q(json!({"metadata.plan": {"$regex": "(unclosed"}})),
            "strategy.conditions[0].query[\"metadata.plan\"].$regex",
            "not a valid regular expression",
        ),
        (
            q(json!({"metadata.plan": {"$regex": 5}})),
            "strategy.conditions[0].query[\"metadata.plan\"].$regex",
            "regular expression string",
        ),
        (
            q(json!({"metadata.plan": {"$in": "pro"}})),
            "strategy.conditions[0].query[\"metadata.plan\"].$in",
            "array of values",
        ),
        (
            q(json!({"metadata.plan": {"$nin": 1}})),
            "strategy.conditions[0].query[\"metadata.plan\"].$nin",
            "array of values",
        ),
        (
            q(json!({"params.temperature": {"$gt": "hot"}})),
            "strategy.conditions[0].query[\"params.temperature\"].$gt",
            "must be a number",
        ),
        (
            q(json!({"params.temperature": {"$lte": null}})),
            "strategy.conditions[0].query[\"params.temperature\"].$lte",
            "must be a number",
        ),
        (
            q(json!({"params.messages": {"$length": "3"}})),
            "strategy.conditions[0].query[\"params.messages\"].$length",
            "whole number",
        ),
        (
            q(json!({"params.messages": {"$length": {"$foo": 1}}})),
            "strategy.conditions[0].query[\"params.messages\"].$length.$foo",
            "unknown operator",
        ),
        (
            q(json!({"$and": {"metadata.a": "1"}})),
            "strategy.conditions[0].query.$and",
            "non-empty array",
        ),
        (
            q(json!({"$or": []})),
            "strategy.conditions[0].query.$or",
            "non-empty array",
        ),
        (
            q(json!({"$or": [{"metadata.a": "1"}, {"metadata.b": {"$bad": 1}}]})),
            "strategy.conditions[0].query.$or[1][\"metadata.b\"].$bad",
            "unknown operator",
        ),
        (
            q(json!({"$xor": []})),
            "strategy.conditions[0].query.$xor",
            "not a logical operator",
        ),
        (
            q(json!({"metadata.a": {"$and": []}})),
            "strategy.conditions[0].query[\"metadata.a\"].$and",
            "beside the fields",
        ),
        // Timeouts, cache, guardrails, override_params.
        (json!({"request_timeout": 0}), "request_timeout", "above 0"),
        (
            json!({"request_timeout": -5}),
            "request_timeout",
            "milliseconds",
        ),
        (
            json!({"request_timeout": "1000"}),
            "request_timeout",
            "got string \"1000\"",
        ),
        (
            json!({"request_timeout": 1.5}),
            "request_timeout",
            "whole number",
        ),
        (
            fallback(json!([{"provider": "@a"}, {"provider": "@b", "request_timeout": false}])),
            "targets[1].request_timeout",
            "got boolean false",
        ),
        (
            json!({"cache": {"mode": "fuzzy"}}),
            "cache.mode",
            "unknown cache mode `fuzzy`",
        ),
        (
            json!({"cache": {"max_age": 10}}),
            "cache.mode",
            "needs `mode`",
        ),
        (
            json!({"cache": {"mode": "simple", "max_age": -1}}),
            "cache.max_age",
            "seconds",
        ),
        (
            json!({"cache": {"mode": "simple", "ttl": 1}}),
            "cache.ttl",
            "unknown field `ttl`",
        ),
        (json!({"cache": true}), "cache", "must be an object"),
        (
            json!({"input_guardrails": "pii-check"}),
            "input_guardrails",
            "must be an array",
        ),
        (
            json!({"output_guardrails": [1]}),
            "output_guardrails[0]",
            "guardrail id",
        ),
        (
            json!({"input_guardrails": ["pii", ""]}),
            "input_guardrails[1]",
            "guardrail id",
        ),
        (
            json!({"input_guardrails": [{}]}),
            "input_guardrails[0]",
            "guardrail id",
        ),
        (
            json!({"override_params": "gpt-4o"}),
            "override_params",
            "must be an object",
        ),
        (
            json!({"override_params": {"model": 4}}),
            "override_params.model",
            "model name string",
        ),
        (
            fallback(json!([{"provider": "@a", "override_params": []}])),
            "targets[0].override_params",
            "must be an object",
        ),
    ];
    for (config, path, fragment) in cases {
        let e = parse_err(config.clone());
        assert_eq!(e.path, path, "path for {config}: {e}");
        assert!(
            e.message.contains(fragment),
            "message for {config} should contain {fragment:?}: {e}"
        );
        let shown = if path.is_empty() { "config" } else { path };
        if !path.is_empty() {
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid routing config: {path}: ")),
                "{e}"
            );
        }
        let api = e.to_api_error();
        assert_eq!(api.status, 400);
        assert_eq!(api.param.as_deref(), Some(shown));
    }
}

#[test]
fn errors_deep_in_the_tree_name_the_full_path() {
    let e = parse_err(fallback(json!([
        {"provider": "@a"},
        {"strategy": {"mode": "loadbalance"}, "targets": [
            {"strategy": {"mode": "fallback"}, "targets": [
                {"provider": "@b"}, {"provider": "@c"}, {"provider": "@d", "weight": -2}
            ]}
        ]}
    ])));
    assert_eq!(e.path, "targets[1].targets[0].targets[2].weight");
    assert_eq!(
        e.to_string(),
        "invalid routing config: targets[1].targets[0].targets[2].weight: must be a number ≥ 0, got number -2"
    );
    let e = parse_err(json!({
        "strategy": {"mode": "fallback"},
        "targets": [{"strategy": {"mode": "conditional", "conditions": [
            {"query": {"metadata.a": "1"}, "then": "nope"}
        ]}, "targets": [{"name": "yes", "provider": "@a"}]}]
    }));
    assert_eq!(e.path, "targets[0].strategy.conditions[0].then");
}

#[test]
fn unknown_fields_are_all_named() {
    let e = parse_err(json!({"provider": "@a", "zeta": 1, "alpha": 2, "mid": 3}));
    for k in ["`alpha`", "`mid`", "`zeta`"] {
        assert!(e.message.contains(k), "{e}");
    }
    assert!(e.message.contains("unknown fields"), "{e}");
    assert!(
        e.message.contains("a config accepts provider, virtual_key"),
        "{e}"
    );
}

/// `n` provider targets.
fn leaves(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"provider": format!("@p{i}")}))
        .collect()
}

#[test]
fn a_config_holds_at_most_max_targets() {
    parse(fallback(json!(leaves(MAX_TARGETS))));
    let e = parse_err(fallback(json!(leaves(MAX_TARGETS + 1))));
    assert_eq!(e.path, "targets");
    assert!(
        e.message
            .contains(&format!("at most {MAX_TARGETS} targets"))
            && e.message
                .contains(&format!("this one has {}", MAX_TARGETS + 1)),
        "{e}"
    );
    // The probe's config: refused with its count, whatever else it holds.
    let e = parse_err(fallback(json!(leaves(15_000))));
    assert!(e.message.contains("this one has 15000"), "{e}");
}

#[test]
fn nested_groups_and_their_members_all_count() {
    // Two groups of 31 leaves: 2 + 62 = 64 target nodes.
    let group = |n| json!({"strategy": {"mode": "fallback"}, "targets": leaves(n)});
    parse(fallback(json!([group(31), group(31)])));
    // One more leaf anywhere in the tree is one too many.
    let e = parse_err(fallback(json!([group(31), group(32)])));
    assert!(e.message.contains("this one has 65"), "{e}");
    // A header merged over a key's config is counted as the merged whole.
    let key = fallback(json!(leaves(40)));
    let header = json!({"targets": leaves(MAX_TARGETS + 1)});
    let e = parse_err(crate::merge(&key, &header));
    assert!(e.message.contains("this one has 65"), "{e}");
}

#[test]
fn guardrails_are_accepted_and_inline_errors_name_the_field() {
    let cfg = RoutingConfig::parse(&json!({
        "provider": "@a",
        "input_guardrails": ["pii-check", {"default.wordCount": {"minWords": 1}, "deny": true}],
        "output_guardrails": ["content-moderation"]
    }))
    .unwrap();
    assert_eq!(cfg.input_guardrails.len(), 2);
    assert!(
        matches!(&cfg.input_guardrails[1], GuardrailRef::Inline(g) if g.deny && g.id == "input_guardrails[1]")
    );
    for (config, path) in [
        (
            json!({"input_guardrails": [{"default.regexMatch": {"rule": "("}}]}),
            "input_guardrails[0].default.regexMatch.rule",
        ),
        (
            json!({"output_guardrails": [{"checks": [{"id": "default.wordCount", "parameters": {"minWords": "x"}}]}]}),
            "output_guardrails[0].checks[0].parameters.minWords",
        ),
        (
            json!({"input_guardrails": [{"default.unknownCheck": {}}]}),
            "input_guardrails[0].default.unknownCheck",
        ),
    ] {
        let err = RoutingConfig::parse(&config).unwrap_err();
        assert_eq!(err.path, path, "{config}: {}", err.message);
    }
}

#[test]
fn a_cache_is_accepted_and_its_errors_name_the_field() {
    let cfg = RoutingConfig::parse(&json!({"cache": {"mode": "simple", "max_age": 60}})).unwrap();
    assert_eq!(
        cfg.cache,
        Some(CacheConfig {
            mode: CacheMode::Simple,
            max_age: Some(60)
        })
    );
    let cfg =
        RoutingConfig::parse(&json!({"provider": "@a", "cache": {"mode": "semantic"}})).unwrap();
    assert_eq!(cfg.cache.unwrap().mode, CacheMode::Semantic);
    for (config, path) in [
        (
            json!({"cache": {"mode": "simple", "max_age": "1m"}}),
            "cache.max_age",
        ),
        (json!({"cache": {"mode": "exact"}}), "cache.mode"),
        (
            json!({"cache": {"mode": "simple", "force_refresh": true}}),
            "cache.force_refresh",
        ),
    ] {
        let err = RoutingConfig::parse(&config).unwrap_err();
        assert_eq!(err.path, path, "{config}");
    }
}
