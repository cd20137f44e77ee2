//! Portico's routing configs: Portkey's config JSON (spec section 5), validated strictly, and
//! the pure decisions the engine's retry/fallback loop needs.
//!
//! Where it sits: above `portico-core`; the engine plans and walks its decisions, `portico-
//! config` and the admin API validate configs with its parser.
//!
//! This crate is a library of pure functions and small shared state. It does no I/O, has no
//! async code and knows nothing of HTTP or providers. The engine's dispatcher
//! (`portico_engine::Gateway::dispatch`) is the one retry/fallback loop: it walks the plans
//! on the request path, asking [`RetryPolicy::decide`] after each failed try.
//!
//! The pieces, in the order a request meets them:
//!
//! - [`merge()`]: a header config (`x-portkey-config`) merged over the key's config (objects
//!   deeply, arrays and scalars replaced, `null` removes).
//! - [`RoutingConfig::parse`] ([`parse`], [`config`]): the merged JSON → a validated
//!   [`RoutingConfig`], or a [`ConfigPathError`] naming the field (`targets[1].weight`) and
//!   what to fix (a 400).
//! - [`plan()`] ([`plan`](mod@plan)): config + request ([`RequestContext`]: metadata, body,
//!   path) + target health → a [`Plan`], the ordered [`Candidate`]s (provider, merged
//!   `override_params`, JSON path for `x-portkey-last-used-option-index`, retry policy,
//!   timeout) with the fall-through rules of their fallback groups.
//! - [`retry`]: whether and when to retry a candidate ([`RetryPolicy::decide`]: exponential
//!   backoff with full jitter, `Retry-After`, the `request_timeout` budget).
//! - [`health`]: a circuit breaker and a latency average per provider and model
//!   ([`HealthRegistry`], keyed by [`health_key`]), which the planner reads to skip dead
//!   targets and weigh fast ones.
//! - [`Failure`]: how an attempt failed, the one input all of the above decide from.
//! - [`limits`]: the amplification bounds, [`MAX_TARGETS`] per config (checked by the
//!   parser) and [`MAX_ATTEMPTS`] per request (enforced by the engine's dispatcher).
//!
//! The accepted schema and the decisions behind it are in `docs/routing-config.md`.
//!
//! ```
//! use portico_routing::{AllHealthy, Failure, PlanOptions, RequestContext, RoutingConfig};
//! use serde_json::json;
//!
//! // The key's config, with a header config laid over it.
//! let key_config = json!({
//!     "strategy": {"mode": "fallback", "on_status_codes": [429, 503]},
//!     "targets": [{"provider": "@primary"}, {"provider": "@backup"}],
//!     "retry": {"attempts": 2}
//! });
//! let header = json!({"retry": {"attempts": 3}, "override_params": {"temperature": 0}});
//! let config = RoutingConfig::parse(&portico_routing::merge(&key_config, &header))?;
//!
//! let metadata = serde_json::Map::new();
//! let body = json!({"model": "gpt-4o-mini", "messages": []});
//! let cx = RequestContext {
//!     metadata: &metadata,
//!     params: body.as_object().ok_or("not an object")?,
//!     url_path: Some("/v1/chat/completions"),
//!     model: Some("gpt-4o-mini"),
//! };
//! let plan = portico_routing::plan(
//!     &config, &cx, &AllHealthy, std::time::Instant::now(), PlanOptions::default(),
//!     &mut rand::rng(),
//! )?;
//! let first = &plan.candidates()[0];
//! assert_eq!(first.path, "config.targets[0]"); // x-portkey-last-used-option-index
//! assert_eq!(first.retry.attempts, 3);
//! assert_eq!(plan.next_after(0, &Failure::status(503)), Some(1)); // on to @backup
//! assert_eq!(plan.next_after(0, &Failure::status(400)), None); // answer with the 400
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
mod failure;
pub mod health;
pub mod limits;
mod merge;
pub mod parse;
pub mod plan;
mod query;
pub mod retry;

pub use config::{
    CacheConfig, CacheMode, Condition, Conditional, ConfigPathError, FallbackPolicy, GuardrailRef,
    Mode, ProviderRef, Route, RoutingConfig, Strategy, Target,
};
pub use failure::{DEFAULT_RETRY_STATUSES, Failure};
pub use health::{
    Admission, AllHealthy, BreakerConfig, BreakerObserver, BreakerState, HealthRegistry,
    HealthView, health_key, latency_factor, split_health_key,
};
pub use limits::{MAX_ATTEMPTS, MAX_TARGETS, max_attempts, max_targets, set_limits};
pub use merge::merge;
pub use plan::{Candidate, Plan, PlanError, PlanOptions, plan};
pub use query::{Query, RequestContext};
pub use retry::{DelaySource, GiveUp, RetryDecision, RetryPolicy};
