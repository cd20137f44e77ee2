//! The planner: a parsed config plus one request → an ordered list of candidates.
//!
//! Pingora-style: routing only decides the *order*; the engine's retry/fallback loop walks
//! the [`Plan`], retrying each [`Candidate`] per its [`RetryPolicy`] and asking
//! [`Plan::next_after`] where to go when a candidate has failed for good.
//!
//! How each strategy resolves:
//! - `single`: its first target.
//! - `conditional`: the target named by the first condition whose query matches, else
//!   `default`, else a [`PlanError`].
//! - `loadbalance`: targets with weight > 0, ordered by weighted random draw without
//!   replacement (optionally with weights scaled by observed latency, see
//!   [`crate::health::latency_factor`]); the first drawn target whose subtree is healthy is
//!   used and the others are not tried on failure (Portkey: a load balancer picks one).
//! - `fallback`: every target in order; a candidate's failure moves to the next target when
//!   it matches the strategy's `on_status_codes` (any failure when absent). With nesting, the
//!   innermost fallback that can move on does; a failure it does not list ends that group and
//!   is offered to the enclosing fallback, exactly as Portkey's recursive walk behaves.
//!
//! Health is kept per provider *and* model ([`crate::health::health_key`]), so the planner
//! works out the model each target will send: its `override_params.model` along the path,
//! else the request's own model ([`RequestContext::model`]) without any `@slug/`.
//!
//! A target whose breaker is open is skipped, and so is a subtree with no available
//! target, unless *every* alternative at that level is unavailable: then they are all kept,
//! in order, and marked [`Candidate::bypass_health`] (trying a probably-dead target beats
//! failing outright). A target that cannot be resolved for this request (a nested
//! conditional with no match) is skipped the same way, and its error is returned only when
//! nothing else resolves.
//!
//! Along each candidate's path, `override_params` merge key by key (inner nodes win, as in
//! Portkey), and `retry` and `request_timeout` are inherited whole (inner nodes win).

use std::time::{Duration, Instant};

use portico_core::{ApiError, ErrorCode};
use rand::Rng;
use serde_json::{Map, Value};

use crate::config::{Mode, ProviderRef, Route, RoutingConfig, Strategy, Target};
use crate::failure::Failure;
use crate::health::{HealthView, health_key, latency_factor};
use crate::query::RequestContext;
use crate::retry::RetryPolicy;

/// Planner switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Scale `loadbalance` weights by observed latency (Portico's addition; Portkey's weights
    /// are static).
    pub latency_aware: bool,
}

/// One upstream the request may be sent to.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The catalog provider; `None` for a config without targets: use the request's own
    /// `@slug/model` (or `x-portkey-provider`).
    pub provider: Option<ProviderRef>,
    /// The model sent to `provider`: `override_params.model` along the path, else the
    /// request's model without its `@slug/`. `None` when the candidate names no provider
    /// (the request's own `@slug/model` decides both) or no model is known at all.
    pub model: Option<String>,
    /// `override_params` merged along the path (inner nodes win): set these request-body
    /// fields before sending.
    pub override_params: Map<String, Value>,
    /// The target's JSON path, for `x-portkey-last-used-option-index`:
    /// `config`, `config.targets[1]`, `config.targets[1].targets[0]`.
    pub path: String,
    /// The retry policy for this candidate (none when no node on its path sets `retry`).
    pub retry: RetryPolicy,
    /// The time budget of this candidate (first try, retries and waits), when set.
    pub request_timeout: Option<Duration>,
    /// Kept although its breaker is open (every alternative was unavailable): try it without
    /// asking the breaker for admission.
    pub bypass_health: bool,
    fallthrough: Vec<FallthroughRule>,
}

impl Candidate {
    /// The key of this target's health (its provider and model, see
    /// [`crate::health::health_key`]), when it names both.
    pub fn health_key(&self) -> Option<String> {
        match (&self.provider, &self.model) {
            (Some(p), Some(model)) => Some(health_key(&p.slug, model)),
            _ => None,
        }
    }

    /// The provider's slug, when the candidate names one.
    pub fn slug(&self) -> Option<&str> {
        self.provider.as_ref().map(|p| p.slug.as_str())
    }

    /// The model set by `override_params`, when any.
    pub fn model_override(&self) -> Option<&str> {
        self.override_params.get("model").and_then(Value::as_str)
    }
}

/// "On a failure matching `on_status_codes`, continue at candidate `next`".
#[derive(Debug, Clone, PartialEq, Eq)]
struct FallthroughRule {
    on_status_codes: Option<Vec<u16>>,
    next: usize,
}

/// The ordered candidates of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    candidates: Vec<Candidate>,
}

impl Plan {
    /// The candidates in walking order (never empty).
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Where to continue after candidate `index` failed for good (its retries spent) with
    /// `failure`: the index of the next candidate, or `None` to answer with this failure.
    pub fn next_after(&self, index: usize, failure: &Failure) -> Option<usize> {
        self.candidates
            .get(index)?
            .fallthrough
            .iter()
            .find(|rule| failure.falls_through(rule.on_status_codes.as_deref()))
            .map(|rule| rule.next)
    }
}

/// Why a config could not be planned for this request (400-style).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A conditional strategy matched no condition and has no `default`.
    #[error(
        "no condition of the conditional strategy at `{path}` matched this request, and it has no `default`; add \"default\": \"<target name>\" to the strategy or send metadata/params that match"
    )]
    NoConditionMatched {
        /// The JSON path of the strategy's node (`config.targets[0]`).
        path: String,
    },
    /// A load balancer had no target with weight above 0.
    #[error("the loadbalance strategy at `{path}` has no target with weight above 0")]
    NoWeightedTarget {
        /// The JSON path of the strategy's node.
        path: String,
    },
}

impl PlanError {
    /// The client-facing 400.
    pub fn to_api_error(&self) -> ApiError {
        let path = match self {
            PlanError::NoConditionMatched { path } | PlanError::NoWeightedTarget { path } => path,
        };
        ApiError::new(ErrorCode::InvalidParameter, self.to_string())
            .with_param(format!("{path}.strategy"))
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> ApiError {
        e.to_api_error()
    }
}

/// Plans `config` for one request. `rng` orders load-balanced targets; `health` and `now`
/// decide which targets are skipped.
pub fn plan<R: Rng + ?Sized>(
    config: &RoutingConfig,
    cx: &RequestContext<'_>,
    health: &dyn HealthView,
    now: Instant,
    options: PlanOptions,
    rng: &mut R,
) -> Result<Plan, PlanError> {
    let mut walk = Walk {
        cx,
        health,
        now,
        options,
        rng,
    };
    let inherited = Inherited::default();
    let resolved = walk.resolve(&config.root, "config".to_owned(), &inherited)?;
    let mut candidates = Vec::with_capacity(resolved.count());
    emit(resolved, &mut candidates, &[]);
    Ok(Plan { candidates })
}

/// What a node passes down to its targets.
#[derive(Debug, Clone, Default)]
struct Inherited {
    params: Map<String, Value>,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
}

impl Inherited {
    fn enter(&self, node: &Target) -> Inherited {
        let mut params = self.params.clone();
        for (k, v) in &node.override_params {
            params.insert(k.clone(), v.clone());
        }
        Inherited {
            params,
            retry: node.retry.clone().or_else(|| self.retry.clone()),
            timeout: node.request_timeout.or(self.timeout),
        }
    }
}

/// A node after strategy selection: a candidate, or a fallback group.
#[derive(Debug)]
enum Resolved {
    Leaf {
        candidate: Candidate,
        available: bool,
    },
    Fallback {
        codes: Option<Vec<u16>>,
        children: Vec<Resolved>,
    },
}

impl Resolved {
    fn any_available(&self) -> bool {
        match self {
            Resolved::Leaf { available, .. } => *available,
            Resolved::Fallback { children, .. } => children.iter().any(Resolved::any_available),
        }
    }

    fn count(&self) -> usize {
        match self {
            Resolved::Leaf { .. } => 1,
            Resolved::Fallback { children, .. } => children.iter().map(Resolved::count).sum(),
        }
    }
}

struct Walk<'a, 'c, R: Rng + ?Sized> {
    cx: &'a RequestContext<'c>,
    health: &'a dyn HealthView,
    now: Instant,
    options: PlanOptions,
    rng: &'a mut R,
}

impl<R: Rng + ?Sized> Walk<'_, '_, R> {
    fn resolve(
        &mut self,
        node: &Target,
        path: String,
        inherited: &Inherited,
    ) -> Result<Resolved, PlanError> {
        let here = inherited.enter(node);
        match &node.route {
            Route::Request => Ok(self.leaf(None, path, here)),
            Route::Provider(p) => Ok(self.leaf(Some(p.clone()), path, here)),
            Route::Strategy(s) => self.resolve_strategy(s, path, &here),
        }
    }

    fn leaf(&self, provider: Option<ProviderRef>, path: String, here: Inherited) -> Resolved {
        let model = provider
            .as_ref()
            .and_then(|_| self.model_of(here.params.get("model")));
        let available = match (&provider, &model) {
            (Some(p), Some(model)) => self
                .health
                .is_available(&health_key(&p.slug, model), self.now),
            // Without a provider or a model there is no target to judge (the engine
            // answers the request's own route, or that a model is needed).
            _ => true,
        };
        Resolved::Leaf {
            candidate: Candidate {
                provider,
                model,
                override_params: here.params,
                path,
                retry: here.retry.unwrap_or_default(),
                request_timeout: here.timeout,
                bypass_health: false,
                fallthrough: Vec::new(),
            },
            available,
        }
    }

    fn resolve_strategy(
        &mut self,
        s: &Strategy,
        path: String,
        here: &Inherited,
    ) -> Result<Resolved, PlanError> {
        let child_path = |i: usize| format!("{path}.targets[{i}]");
        match &s.mode {
            Mode::Single => self.resolve_index(s, 0, child_path(0), here),
            Mode::Conditional(c) => {
                let chosen = c
                    .conditions
                    .iter()
                    .find(|cond| cond.query.matches(self.cx))
                    .map(|cond| cond.then)
                    .or(c.default);
                match chosen {
                    Some(i) => self.resolve_index(s, i, child_path(i), here),
                    None => Err(PlanError::NoConditionMatched { path }),
                }
            }
            Mode::Loadbalance => {
                let order = self.weighted_order(s, here);
                let mut first: Option<Result<Resolved, PlanError>> = None;
                for i in order {
                    match self.resolve_index(s, i, child_path(i), here) {
                        Ok(r) if r.any_available() => return Ok(r),
                        other => {
                            // Keep the first draw (or its error) in case nothing is better.
                            if first.as_ref().is_none_or(|f| f.is_err() && other.is_ok()) {
                                first = Some(other);
                            }
                        }
                    }
                }
                first.unwrap_or(Err(PlanError::NoWeightedTarget { path }))
            }
            Mode::Fallback(policy) => {
                let mut children = Vec::with_capacity(s.targets.len());
                let mut first_err = None;
                for i in 0..s.targets.len() {
                    match self.resolve_index(s, i, child_path(i), here) {
                        Ok(r) => children.push(r),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if children.is_empty()
                    && let Some(e) = first_err
                {
                    return Err(e);
                }
                if children.iter().any(Resolved::any_available) {
                    children.retain(Resolved::any_available);
                }
                Ok(Resolved::Fallback {
                    codes: policy.on_status_codes.clone(),
                    children,
                })
            }
        }
    }

    fn resolve_index(
        &mut self,
        s: &Strategy,
        i: usize,
        path: String,
        here: &Inherited,
    ) -> Result<Resolved, PlanError> {
        match s.targets.get(i) {
            Some(t) => self.resolve(t, path, here),
            // Parsing resolves every index against `targets`; unreachable in practice.
            None => Err(PlanError::NoWeightedTarget { path }),
        }
    }

    /// The model a provider target sends, given the `model` of its merged
    /// `override_params`: that, else the request's own without its `@slug/` (a config's
    /// target names the provider).
    fn model_of(&self, override_model: Option<&Value>) -> Option<String> {
        match override_model.and_then(Value::as_str) {
            Some(model) => Some(model.to_owned()),
            None => self.cx.model.map(|m| model_name(m).to_owned()),
        }
    }

    /// Indices of targets with weight > 0, by weighted draw without replacement.
    fn weighted_order(&mut self, s: &Strategy, here: &Inherited) -> Vec<usize> {
        let latencies: Vec<Option<Duration>> = s
            .targets
            .iter()
            .map(|t| match (&t.route, self.options.latency_aware) {
                (Route::Provider(p), true) => {
                    // The target's own `model` wins over the one it inherits.
                    let over = t
                        .override_params
                        .get("model")
                        .or_else(|| here.params.get("model"));
                    let model = self.model_of(over)?;
                    self.health.latency(&health_key(&p.slug, &model))
                }
                _ => None,
            })
            .collect();
        let fastest = latencies.iter().flatten().min().copied();
        let mut pool: Vec<(usize, f64)> = s
            .targets
            .iter()
            .zip(&latencies)
            .enumerate()
            .filter(|(_, (t, _))| t.weight > 0.0)
            .map(|(i, (t, l))| (i, t.weight * latency_factor(*l, fastest)))
            .collect();
        let mut order = Vec::with_capacity(pool.len());
        while !pool.is_empty() {
            let total: f64 = pool.iter().map(|(_, w)| w).sum();
            let mut x = self.rng.random::<f64>() * total;
            let mut pick = pool.len() - 1;
            for (k, (_, w)) in pool.iter().enumerate() {
                if x < *w {
                    pick = k;
                    break;
                }
                x -= w;
            }
            order.push(pool.remove(pick).0);
        }
        order
    }
}

/// The model name of `@slug/model`, or the name itself.
pub(crate) fn model_name(model: &str) -> &str {
    match model
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('/'))
    {
        Some((_, name)) => name,
        None => model,
    }
}

/// Appends the candidates of `r` to `out`, giving each the fall-through rules of the
/// fallback groups it sits in (innermost first).
fn emit(r: Resolved, out: &mut Vec<Candidate>, outer: &[FallthroughRule]) {
    match r {
        Resolved::Leaf {
            mut candidate,
            available,
        } => {
            candidate.bypass_health = !available;
            candidate.fallthrough = outer.to_vec();
            out.push(candidate);
        }
        Resolved::Fallback { codes, children } => {
            let n = children.len();
            for (i, child) in children.into_iter().enumerate() {
                if i + 1 < n {
                    let next = out.len() + child.count();
                    let mut rules = Vec::with_capacity(outer.len() + 1);
                    rules.push(FallthroughRule {
                        on_status_codes: codes.clone(),
                        next,
                    });
                    rules.extend_from_slice(outer);
                    emit(child, out, &rules);
                } else {
                    emit(child, out, outer);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "tests/plan.rs"]
mod tests;
