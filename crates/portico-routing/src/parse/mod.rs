//! Strict parsing of Portkey's config JSON into a [`RoutingConfig`].
//!
//! Parsing walks a `serde_json::Value` by hand (not serde derive) so that every error names
//! the field path (`targets[1].weight`, `strategy.conditions[0].then`) and says what to write
//! instead. Rules, in short (docs/routing-config.md has the full table):
//!
//! - Unknown keys are rejected, naming them; a camelCase spelling of a known key gets a
//!   "did you mean" hint, and Portkey keys that Portico serves differently (`api_key`,
//!   `custom_host`, hooks) get a hint saying where that setting lives in Portico.
//! - The root and every target share one node shape: `provider` (or `virtual_key`),
//!   `strategy` + `targets`, `override_params`, `retry`, `request_timeout`. `name` and
//!   `weight` exist on targets only; `cache` and the guardrails on the root only.
//! - A node names a provider, or has a strategy with targets, never both; a strategy without
//!   targets (or targets without a strategy) is an error; only the root may have neither.
//! - `retry.attempts` is 0 to 5; weights are finite numbers ≥ 0 and a `loadbalance` needs one
//!   above 0; a conditional `then`/`default` must name a sibling target; target names are
//!   unique among siblings.
//! - The empty config `{}` is an error.
//! - A config holds at most [`crate::max_targets`] targets, nested ones included. They are counted
//!   on the raw JSON before anything else is parsed, so an oversized config is refused
//!   without building (or validating) thousands of targets, and the error gives the count.

use serde_json::{Map, Value};

use crate::config::{
    Condition, Conditional, ConfigPathError, FallbackPolicy, FieldPath, Mode, Route, RoutingConfig,
    Strategy, Target,
};
use crate::limits::max_targets;
use crate::query::{Query, kind};

mod fields;

use fields::{
    non_empty_string, object, parse_cache, parse_guardrails, parse_override_params, parse_provider,
    parse_retry, parse_status_codes, parse_timeout, parse_weight,
};

/// Target trees nested deeper than this are rejected (a bound on recursion, far beyond any
/// real config).
pub const MAX_TARGET_DEPTH: usize = 32;

/// Keys of any node (root or target).
const NODE_KEYS: &[&str] = &[
    "provider",
    "virtual_key",
    "strategy",
    "targets",
    "override_params",
    "retry",
    "request_timeout",
];
/// Keys only the root has.
const ROOT_ONLY_KEYS: &[&str] = &["cache", "input_guardrails", "output_guardrails"];
/// Keys only targets have.
const TARGET_ONLY_KEYS: &[&str] = &["name", "weight"];
/// Portkey keys that carry credentials or endpoints, which Portico keeps in its catalog.
const CATALOG_KEYS: &[&str] = &[
    "api_key",
    "custom_host",
    "forward_headers",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region",
    "vertex_project_id",
    "vertex_region",
    "vertex_service_account_json",
    "openai_project",
    "openai_organization",
    "azure_model_name",
    "resource_name",
    "deployment_id",
    "api_version",
];

/// Fields that parse but that nothing enforces yet: refused, naming the field, so that no
/// config is accepted and then silently ignored. Each leaves this list with the capability
/// that enforces it (the response cache, guardrails).
const NOT_ENFORCED_YET: &[(&str, &str)] = &[];

impl RoutingConfig {
    /// Parses and validates a config (spec section 5). Errors name the field path and say
    /// what is wrong; see the module docs of `parse` for the rules. A field this version
    /// does not enforce yet (`NOT_ENFORCED_YET`) is refused rather than ignored.
    pub fn parse(value: &Value) -> Result<RoutingConfig, ConfigPathError> {
        let config = RoutingConfig::parse_shape(value)?;
        if let Value::Object(map) = value
            && let Some((field, what)) = NOT_ENFORCED_YET.iter().find(|(k, _)| map.contains_key(*k))
        {
            return Err(FieldPath::root().key(field).err(format!(
                "`{field}` is not supported yet by this version of Portico ({what} is not implemented), so a config that sets it is refused rather than ignored; remove `{field}`"
            )));
        }
        Ok(config)
    }

    /// Parses and validates a config's shape, every field included (the fields not enforced
    /// yet too, so their rules are already checked and tested).
    pub(crate) fn parse_shape(value: &Value) -> Result<RoutingConfig, ConfigPathError> {
        let root_path = FieldPath::root();
        let Value::Object(map) = value else {
            return Err(root_path.err(format!(
                "a config must be a JSON object, got {}",
                kind(value)
            )));
        };
        if map.is_empty() {
            return Err(root_path.err(
                "the config is empty; give `strategy` with `targets`, a `provider`, or at least one of `retry`, `request_timeout`, `cache`, `override_params`, `input_guardrails`, `output_guardrails`",
            ));
        }
        let targets = count_targets(map, 0);
        let limit = max_targets();
        if targets > limit {
            return Err(root_path.key("targets").err(format!(
                "a config holds at most {limit} targets (every entry of every `targets` array, nested ones included); this one has {targets}. Use fewer fallback or load-balancing targets (the limit is --max-config-targets / PORTICO_MAX_CONFIG_TARGETS)"
            )));
        }
        let root = parse_node(map, &root_path, 0)?;
        Ok(RoutingConfig {
            root,
            cache: map
                .get("cache")
                .map(|v| parse_cache(v, &root_path.key("cache")))
                .transpose()?,
            input_guardrails: parse_guardrails(map, "input_guardrails", &root_path)?,
            output_guardrails: parse_guardrails(map, "output_guardrails", &root_path)?,
        })
    }
}

/// The targets in the tree under `node`: every entry of every `targets` array, counted on
/// the raw JSON. Deeper than [`MAX_TARGET_DEPTH`] the walk stops (the parser rejects such a
/// tree anyway), which also bounds the recursion.
fn count_targets(node: &Map<String, Value>, depth: usize) -> usize {
    let Some(Value::Array(items)) = node.get("targets") else {
        return 0;
    };
    if depth >= MAX_TARGET_DEPTH {
        return items.len();
    }
    items.iter().fold(items.len(), |sum, item| match item {
        Value::Object(child) => sum.saturating_add(count_targets(child, depth + 1)),
        _ => sum,
    })
}

/// Parses one node; `depth` 0 is the root.
fn parse_node(
    map: &Map<String, Value>,
    path: &FieldPath,
    depth: usize,
) -> Result<Target, ConfigPathError> {
    let is_root = depth == 0;
    check_keys(map, path, is_root)?;
    let provider = parse_provider(map, path)?;
    let route = match (provider, map.get("strategy"), map.get("targets")) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            return Err(path.key("provider").err(
                "a node either names a `provider` or has a `strategy` with `targets`, not both; move the provider into `targets`",
            ));
        }
        (Some(p), None, None) => Route::Provider(p),
        (None, Some(s), Some(t)) => Route::Strategy(parse_strategy(s, t, path, depth)?),
        (None, Some(_), None) => {
            return Err(path.key("strategy").err(
                "a strategy needs `targets` beside it, e.g. \"targets\": [{\"provider\": \"@primary\"}, {\"provider\": \"@backup\"}]",
            ));
        }
        (None, None, Some(_)) => {
            return Err(path.key("targets").err(
                "`targets` needs a `strategy` beside it, e.g. \"strategy\": {\"mode\": \"fallback\"}",
            ));
        }
        (None, None, None) if is_root => Route::Request,
        (None, None, None) => {
            return Err(path.err(
                "a target needs a `provider` (\"@slug\" of the catalog) or a `strategy` with `targets`",
            ));
        }
    };
    Ok(Target {
        name: map
            .get("name")
            .map(|v| non_empty_string(v, &path.key("name")))
            .transpose()?,
        weight: map
            .get("weight")
            .map(|v| parse_weight(v, &path.key("weight")))
            .transpose()?
            .unwrap_or(1.0),
        route,
        override_params: match map.get("override_params") {
            Some(v) => parse_override_params(v, &path.key("override_params"))?,
            None => Map::new(),
        },
        retry: map
            .get("retry")
            .map(|v| parse_retry(v, &path.key("retry")))
            .transpose()?,
        request_timeout: map
            .get("request_timeout")
            .map(|v| parse_timeout(v, &path.key("request_timeout")))
            .transpose()?,
    })
}

/// Rejects unknown keys, naming them all, with a hint where one helps.
fn check_keys(
    map: &Map<String, Value>,
    path: &FieldPath,
    is_root: bool,
) -> Result<(), ConfigPathError> {
    let allowed = |k: &str| {
        NODE_KEYS.contains(&k)
            || (is_root && ROOT_ONLY_KEYS.contains(&k))
            || (!is_root && TARGET_ONLY_KEYS.contains(&k))
    };
    let unknown: Vec<&String> = map.keys().filter(|k| !allowed(k)).collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let where_ = if is_root { "a config" } else { "a target" };
    let hint = if CATALOG_KEYS.contains(&first.as_str()) {
        "Portico keeps provider credentials and endpoints in its catalog; name a catalog provider with \"provider\": \"@slug\"".to_owned()
    } else if first.as_str() == "on_status_codes" {
        "put `on_status_codes` in `strategy` (fallback) or in `retry`".to_owned()
    } else if matches!(
        first.as_str(),
        "before_request_hooks" | "after_request_hooks"
    ) {
        "give guardrails as `input_guardrails` / `output_guardrails` at the top level".to_owned()
    } else if !is_root && ROOT_ONLY_KEYS.contains(&first.as_str()) {
        format!("`{first}` is accepted only at the top level of a config")
    } else if is_root && TARGET_ONLY_KEYS.contains(&first.as_str()) {
        format!("`{first}` applies to an entry of `targets`, not to the config itself")
    } else if let Some(known) = snake_case_match(first, is_root) {
        format!("did you mean `{known}`?")
    } else {
        let mut keys: Vec<&str> = NODE_KEYS.to_vec();
        keys.extend(if is_root {
            ROOT_ONLY_KEYS
        } else {
            TARGET_ONLY_KEYS
        });
        format!("{where_} accepts {}", keys.join(", "))
    };
    let names: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
    let noun = if names.len() == 1 { "field" } else { "fields" };
    Err(path.key(first).err(format!(
        "unknown {noun} {} in {where_}; {hint}",
        names.join(", ")
    )))
}

/// The known key a camelCase key stands for (`overrideParams` → `override_params`).
fn snake_case_match(key: &str, is_root: bool) -> Option<&'static str> {
    let mut snake = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    NODE_KEYS
        .iter()
        .chain(if is_root {
            ROOT_ONLY_KEYS
        } else {
            TARGET_ONLY_KEYS
        })
        .copied()
        .find(|k| *k == snake)
}

fn parse_strategy(
    strategy: &Value,
    targets: &Value,
    node: &FieldPath,
    depth: usize,
) -> Result<Strategy, ConfigPathError> {
    let spath = node.key("strategy");
    let tpath = node.key("targets");
    let smap = object(strategy, &spath)?;
    let targets = parse_targets(targets, &tpath, depth)?;
    let mode_path = spath.key("mode");
    let mode_name = match smap.get("mode") {
        Some(v) => non_empty_string(v, &mode_path)?,
        None => {
            return Err(mode_path
                .err("`strategy` needs a `mode`: single, fallback, loadbalance or conditional"));
        }
    };
    let allowed: &[&str] = match mode_name.as_str() {
        "single" | "loadbalance" => &["mode"],
        "fallback" => &["mode", "on_status_codes"],
        "conditional" => &["mode", "conditions", "default"],
        other => {
            return Err(mode_path.err(format!(
                "unknown mode `{other}`; use single, fallback, loadbalance or conditional"
            )));
        }
    };
    if let Some(extra) = smap.keys().find(|k| !allowed.contains(&k.as_str())) {
        let msg = match extra.as_str() {
            "on_status_codes" => "`on_status_codes` applies to mode fallback only".to_owned(),
            "conditions" | "default" => format!("`{extra}` applies to mode conditional only"),
            _ => format!(
                "unknown field `{extra}` in a {mode_name} strategy; it accepts {}",
                allowed.join(", ")
            ),
        };
        return Err(spath.key(extra).err(msg));
    }
    let mode = match mode_name.as_str() {
        "single" => Mode::Single,
        "loadbalance" => {
            if targets.iter().all(|t| t.weight == 0.0) {
                return Err(tpath.err(
                    "every target of this loadbalance strategy has weight 0; give at least one a weight above 0",
                ));
            }
            Mode::Loadbalance
        }
        "fallback" => Mode::Fallback(FallbackPolicy {
            on_status_codes: smap
                .get("on_status_codes")
                .map(|v| parse_status_codes(v, &spath.key("on_status_codes")))
                .transpose()?,
        }),
        _ => Mode::Conditional(parse_conditional(smap, &spath, &targets)?),
    };
    Ok(Strategy { mode, targets })
}

fn parse_targets(
    value: &Value,
    path: &FieldPath,
    depth: usize,
) -> Result<Vec<Target>, ConfigPathError> {
    if depth + 1 > MAX_TARGET_DEPTH {
        return Err(path.err(format!(
            "targets nest at most {MAX_TARGET_DEPTH} levels deep"
        )));
    }
    let Value::Array(items) = value else {
        return Err(path.err(format!("must be an array of targets, got {}", kind(value))));
    };
    if items.is_empty() {
        return Err(
            path.err("a strategy needs at least one target, e.g. [{\"provider\": \"@primary\"}]")
        );
    }
    let mut targets = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = path.index(i);
        let target = parse_node(object(item, &at)?, &at, depth + 1)?;
        if let Some(name) = &target.name
            && let Some(j) = targets
                .iter()
                .position(|t: &Target| t.name.as_deref() == Some(name))
        {
            return Err(at.key("name").err(format!(
                "duplicate target name `{name}` (also {}); names must differ among sibling targets",
                path.index(j).key("name")
            )));
        }
        targets.push(target);
    }
    Ok(targets)
}

fn parse_conditional(
    smap: &Map<String, Value>,
    spath: &FieldPath,
    targets: &[Target],
) -> Result<Conditional, ConfigPathError> {
    let cpath = spath.key("conditions");
    let items = match smap.get("conditions") {
        Some(Value::Array(items)) => items.as_slice(),
        Some(other) => {
            return Err(cpath.err(format!(
                "must be an array of {{\"query\": {{...}}, \"then\": \"target-name\"}}, got {}",
                kind(other)
            )));
        }
        None => &[],
    };
    let mut conditions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = cpath.index(i);
        let map = object(item, &at)?;
        if let Some(extra) = map.keys().find(|k| !matches!(k.as_str(), "query" | "then")) {
            return Err(at.key(extra).err(format!(
                "unknown field `{extra}` in a condition; a condition has `query` and `then`"
            )));
        }
        let query = match map.get("query") {
            Some(q) => Query::parse(q, &at.key("query"))?,
            None => return Err(at.key("query").err("a condition needs a `query`")),
        };
        let then = match map.get("then") {
            Some(v) => resolve_name(v, &at.key("then"), targets)?,
            None => {
                return Err(at
                    .key("then")
                    .err("a condition needs `then`: the `name` of the target to use"));
            }
        };
        conditions.push(Condition { query, then });
    }
    let default = smap
        .get("default")
        .map(|v| resolve_name(v, &spath.key("default"), targets))
        .transpose()?;
    if conditions.is_empty() && default.is_none() {
        return Err(cpath.err(
            "a conditional strategy needs `conditions` (a non-empty array) or a `default` target",
        ));
    }
    Ok(Conditional {
        conditions,
        default,
    })
}

/// The index of the sibling target named by `value`.
fn resolve_name(
    value: &Value,
    path: &FieldPath,
    targets: &[Target],
) -> Result<usize, ConfigPathError> {
    let name = non_empty_string(value, path)?;
    if let Some(i) = targets
        .iter()
        .position(|t| t.name.as_deref() == Some(name.as_str()))
    {
        return Ok(i);
    }
    let names: Vec<String> = targets
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| format!("`{n}`")))
        .collect();
    Err(path.err(if names.is_empty() {
        format!(
            "`{name}` names no target: none of this strategy's targets has a `name`; add \"name\": \"{name}\" to one"
        )
    } else {
        format!(
            "`{name}` names no target; this strategy's targets are named {}",
            names.join(", ")
        )
    }))
}

#[cfg(test)]
#[path = "../tests/parse.rs"]
mod tests;
