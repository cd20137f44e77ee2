//! The validated routing config: what [`RoutingConfig::parse`] returns.
//!
//! These types mirror Portkey's config object (our public contract, spec section 5), after
//! strict validation: every field is known, typed and in range, conditional `then`/`default`
//! names are resolved to target indices and `$regex` operands are compiled. Nothing here does
//! I/O; turning a config into an ordered list of upstream candidates is [`crate::plan()`]'s job.
//!
//! Main types: [`RoutingConfig`] (the root, with the root-only `cache` and guardrails),
//! [`Target`] (one node of the target tree, the root included), [`Route`] (what a node does:
//! nothing, one provider, or a [`Strategy`] over child targets) and [`ConfigPathError`] (a
//! 400-style error that names the field path).

use std::fmt;
use std::time::Duration;

use portico_core::{ApiError, ErrorCode};
use serde_json::{Map, Value};

use crate::query::Query;
use crate::retry::RetryPolicy;

/// A parsed, validated routing config (Portkey's config object).
///
/// The root is itself a [`Target`]: it may name a provider (`{"provider": "@openai"}`), hold a
/// strategy over `targets`, or neither (a config with only `retry`, `cache`, `request_timeout`,
/// guardrails or `override_params`, which combines with the request's own `@slug/model`).
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// The root node: its route, `override_params`, `retry` and `request_timeout`. Its
    /// `name` is always `None` and its `weight` always 1 (both are rejected at the root).
    pub root: Target,
    /// Response caching (`cache`); only accepted at the root.
    pub cache: Option<CacheConfig>,
    /// Guardrails run before the upstream call (`input_guardrails`); only at the root.
    pub input_guardrails: Vec<GuardrailRef>,
    /// Guardrails run on the answer (`output_guardrails`); only at the root.
    pub output_guardrails: Vec<GuardrailRef>,
}

impl RoutingConfig {
    /// Whether the config routes by itself (a provider or a strategy at the root), rather than
    /// leaving the choice to the request's own `@slug/model`.
    pub fn has_targets(&self) -> bool {
        !matches!(self.root.route, Route::Request)
    }
}

/// One node of the target tree: the root, or an entry of some `targets` array.
#[derive(Debug, Clone)]
pub struct Target {
    /// `name`: how a conditional strategy's `then`/`default` refers to this target.
    pub name: Option<String>,
    /// `weight` for load balancing (finite, ≥ 0; default 1). Ignored outside `loadbalance`.
    pub weight: f64,
    /// What this node does.
    pub route: Route,
    /// `override_params`: request-body fields this node sets (inner nodes win, key by key).
    pub override_params: Map<String, Value>,
    /// `retry`, when this node sets one (inner nodes win, as a whole object).
    pub retry: Option<RetryPolicy>,
    /// `request_timeout` in milliseconds, when this node sets one (inner nodes win).
    pub request_timeout: Option<Duration>,
}

/// What a [`Target`] does.
#[derive(Debug, Clone)]
pub enum Route {
    /// Neither `provider` nor `targets` (root only): use the request's own `@slug/model`.
    Request,
    /// A leaf: send to this catalog provider.
    Provider(ProviderRef),
    /// A group: choose among child targets with a strategy.
    Strategy(Strategy),
}

/// A catalog provider named by a target (`"provider": "@slug"` or `"virtual_key": "slug"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRef {
    /// The catalog slug, without the `@`.
    pub slug: String,
    /// A bare provider kind given next to `virtual_key` (`{"provider": "openai",
    /// "virtual_key": "main"}`, Portkey's older form). Not checked here: the engine may
    /// compare it with the catalog provider's kind.
    pub kind_hint: Option<String>,
}

impl ProviderRef {
    /// The `@slug` form used in headers (`x-portkey-provider`).
    pub fn at_slug(&self) -> String {
        format!("@{}", self.slug)
    }
}

/// A `strategy` with its `targets`.
#[derive(Debug, Clone)]
pub struct Strategy {
    /// `strategy.mode` and its mode-specific fields.
    pub mode: Mode,
    /// `targets`, never empty.
    pub targets: Vec<Target>,
}

/// `strategy.mode`.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The first target only.
    Single,
    /// Targets in order; the next one on a failure listed in `on_status_codes`.
    Fallback(FallbackPolicy),
    /// One target by weighted random draw (the other draws are spares for unhealthy targets).
    Loadbalance,
    /// The target named by the first matching condition, or `default`.
    Conditional(Conditional),
}

impl Mode {
    /// The mode's name as written in configs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Fallback(_) => "fallback",
            Mode::Loadbalance => "loadbalance",
            Mode::Conditional(_) => "conditional",
        }
    }
}

/// Which failures make a `fallback` strategy move on to its next target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FallbackPolicy {
    /// `strategy.on_status_codes`; `None`: any failure falls through. Connection errors,
    /// timeouts and gateway-side failures fall through either way (as in Portkey).
    pub on_status_codes: Option<Vec<u16>>,
}

/// A `conditional` strategy's conditions, resolved to target indices.
#[derive(Debug, Clone)]
pub struct Conditional {
    /// `strategy.conditions`, evaluated in order.
    pub conditions: Vec<Condition>,
    /// `strategy.default`: the index into `targets` used when no condition matches.
    pub default: Option<usize>,
}

/// One entry of `strategy.conditions`.
#[derive(Debug, Clone)]
pub struct Condition {
    /// `query`, over `metadata.*`, `params.*` and `url.pathname`.
    pub query: Query,
    /// `then`, resolved: the index into `targets` of the target it names.
    pub then: usize,
}

/// `cache`: response caching for this config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `cache.mode`.
    pub mode: CacheMode,
    /// `cache.max_age` in seconds; `None`: the gateway's default.
    pub max_age: Option<u64>,
}

/// `cache.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Exact match on the request.
    Simple,
    /// Match on meaning (embedding similarity).
    Semantic,
}

/// One entry of `input_guardrails` / `output_guardrails`.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardrailRef {
    /// The id of a catalog guardrail (`"pii-check"`), resolved per request against the
    /// catalog (an unknown id is the request's 400).
    Id(String),
    /// An inline guardrail in Portkey's shorthand
    /// (`{"default.wordCount": {"minWords": 1}, "deny": true}`), compiled when the config is
    /// parsed (its regexes too), so a catalog config compiles it once.
    Inline(std::sync::Arc<portico_guardrails::Guardrail>),
}

/// An invalid config: where (a field path such as `targets[1].weight`) and what is wrong.
///
/// Answered as a 400 (`invalid_parameter`) whose `param` is the path; see
/// [`ConfigPathError::to_api_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigPathError {
    /// The field at fault, e.g. `strategy.conditions[0].then`; empty for the config as a
    /// whole.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigPathError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigPathError {
        ConfigPathError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The client-facing 400, with `param` set to the field path (`config` for the whole
    /// config).
    pub fn to_api_error(&self) -> ApiError {
        ApiError::new(ErrorCode::InvalidParameter, self.to_string())
            .with_param(display_path(&self.path))
    }
}

/// `invalid routing config: targets[1].weight: must be a number ≥ 0, got number -1`; the
/// path is left out for errors about the config as a whole.
impl fmt::Display for ConfigPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid routing config: {}", self.message)
        } else {
            write!(f, "invalid routing config: {}: {}", self.path, self.message)
        }
    }
}

impl From<ConfigPathError> for ApiError {
    fn from(e: ConfigPathError) -> ApiError {
        e.to_api_error()
    }
}

/// The path as shown to users: `config` for the root.
fn display_path(path: &str) -> &str {
    if path.is_empty() { "config" } else { path }
}

/// A field path being built while walking a config (`targets[1].strategy.mode`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// The root.
    pub(crate) fn root() -> FieldPath {
        FieldPath(String::new())
    }

    /// `self.key`, or `self["key"]` when the key is not a plain identifier (query fields such
    /// as `metadata.plan` contain dots).
    pub(crate) fn key(&self, key: &str) -> FieldPath {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'-');
        let mut s = self.0.clone();
        if plain {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(key);
        } else {
            s.push_str(&format!("[{}]", Value::String(key.to_owned())));
        }
        FieldPath(s)
    }

    /// `self[i]`.
    pub(crate) fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// An error at this path.
    pub(crate) fn err(&self, message: impl Into<String>) -> ConfigPathError {
        ConfigPathError::new(self.0.clone(), message)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(display_path(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_keys_and_indices() {
        let p = FieldPath::root().key("targets").index(1).key("weight");
        assert_eq!(p.to_string(), "targets[1].weight");
        let q = FieldPath::root()
            .key("query")
            .key("metadata.plan")
            .key("$eq");
        assert_eq!(q.to_string(), "query[\"metadata.plan\"].$eq");
        assert_eq!(FieldPath::root().to_string(), "config");
    }

    #[test]
    fn errors_become_400_naming_the_param() {
        let e = ConfigPathError::new("targets[1].weight", "must be a number ≥ 0, got \"x\"");
        let api = e.to_api_error();
        assert_eq!(api.status, 400);
        assert_eq!(api.param.as_deref(), Some("targets[1].weight"));
        assert!(api.message.contains("targets[1].weight"), "{}", api.message);
        let root = ConfigPathError::new("", "the config is empty");
        assert_eq!(root.to_api_error().param.as_deref(), Some("config"));
    }
}
