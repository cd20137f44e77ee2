//! The retry/fallback loop: one request, its routing plan, attempts until one answers.
//!
//! [`Gateway::plan_request`] decides *where* a request may go: straight to the provider its
//! `@slug/model` names, or along the candidates of a routing config (the key's config with
//! `x-portkey-config` merged over it, planned by `portico_routing`). [`Gateway::dispatch`]
//! then walks the candidates: each is tried, retried per its `retry` policy within its
//! `request_timeout` budget, and on a failure for good the plan says whether the next
//! candidate is tried (`fallback`) or the failure is the answer. Every try is written into
//! the request's record as an [`Attempt`], and its outcome feeds the circuit breaker of the
//! provider and model it went to.
//!
//! One request makes at most [`portico_routing::max_attempts`] upstream tries in all, retries and fallbacks
//! together: the config bounds how many targets there are ([`portico_routing::max_targets`]),
//! this bounds how often they are tried (both are set by flags at start). When the budget is spent the walk stops with the
//! last try's error, which says so (the client and the log record both see it).
//!
//! The attempt itself (sending, and for a stream waiting for its first event) is the
//! caller's closure, so the same loop serves every API family; a stream can thus fail over
//! until its first event, and never after (the caller then owns the stream).

use std::future::Future;
use std::time::Duration;

use portico_core::{ApiError, Attempt, ErrorCode, JsonBody, RequestRecord};
use portico_providers::ProviderError;
use portico_routing::{
    Admission, Failure, Plan, RequestContext, RoutingConfig, health_key, max_attempts,
};
use serde_json::{Map, Value};

use crate::gateway::Gateway;
use crate::route::Route;
use crate::snapshot::{KeyEntry, Snapshot};

/// How one try failed, as the closure given to [`Gateway::dispatch`] reports it.
#[derive(Debug)]
pub enum AttemptError {
    /// The upstream, or the way to it, failed: retried and failed over per the config.
    Upstream(ProviderError),
    /// The request cannot be sent at all (the client's fault, such as a body the target's
    /// dialect cannot express): answered at once, never retried.
    Fatal(ApiError),
}

impl From<ProviderError> for AttemptError {
    fn from(err: ProviderError) -> AttemptError {
        AttemptError::Upstream(err)
    }
}

/// What a successful try produced: the dispatcher only needs its status for the log.
pub trait Answer {
    /// The upstream's HTTP status.
    fn status(&self) -> u16;
}

/// Where a request may go, decided before the first try.
#[derive(Debug)]
pub struct Dispatch {
    way: Way,
    /// `x-portkey-request-timeout`: the budget of candidates whose config sets none.
    timeout: Option<Duration>,
    /// The catalog config that applies (the key's, or a header's by id), for the log.
    pub config_id: Option<String>,
    /// The routing config that applies (the key's, a header's merged over it), for the
    /// policies (its `cache`).
    pub config: Option<std::sync::Arc<RoutingConfig>>,
}

#[derive(Debug)]
enum Way {
    /// No routing config: the provider the model names, tried once.
    Direct(Route),
    /// A routing config's candidates. `model` and `provider_header` are the request's own,
    /// for candidates that name no provider or no model.
    Config {
        plan: Plan,
        model: Option<String>,
        provider_header: Option<String>,
    },
}

/// What [`Gateway::plan_request`] reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The caller's key.
    pub key: &'a KeyEntry,
    /// The body's `model`, when it has one.
    pub model: Option<&'a str>,
    /// `x-portkey-provider`.
    pub provider_header: Option<&'a str>,
    /// `x-portkey-config`: a config id or inline JSON.
    pub config_header: Option<&'a str>,
    /// `x-portkey-request-timeout`.
    pub timeout: Option<Duration>,
    /// `x-portkey-metadata`, for conditional routing.
    pub metadata: Option<&'a Map<String, Value>>,
    /// The request body, for conditional routing on `params.*`.
    pub body: &'a JsonBody,
    /// The request path, for conditional routing on `url.pathname`.
    pub path: &'a str,
}

/// The outcome of [`Gateway::dispatch`].
#[derive(Debug)]
pub struct Dispatched<T> {
    /// The answer and the route that gave it, or the error to answer. The config option
    /// tried last (`x-portkey-last-used-option-index`) is the record's `target`.
    pub result: Result<(T, Route), ApiError>,
    /// `x-portkey-retry-attempt-count`: retries of the last candidate, `-1` when they were
    /// all spent without an answer.
    pub retry_count: i32,
}

/// One candidate, ready to try.
struct Step<'a> {
    route: Result<Route, ApiError>,
    overrides: Option<&'a Map<String, Value>>,
    retry: portico_routing::RetryPolicy,
    budget: Option<Duration>,
    path: Option<&'a str>,
    ask_health: bool,
}

/// How a candidate ended without an answer.
enum StepFailure {
    /// Failed for good with `failure`; the plan decides whether another candidate follows.
    Failed {
        failure: Failure,
        error: ApiError,
        retries: u8,
        spent: bool,
    },
    /// Answer `error` now.
    Fatal(ApiError),
    /// A retry was due but the request's attempt budget ([`max_attempts`]) is spent: answer
    /// `error`, the last try's, now.
    BudgetSpent(ApiError),
}

impl Gateway {
    /// Decides where a request may go: its routing config (the key's, with
    /// `x-portkey-config` merged over it) planned for this request, or the provider its
    /// model names. Errors are the client's: an invalid or unknown config (400), an unknown
    /// model or provider (404), a model the key may not use (403).
    pub fn plan_request(&self, req: &RouteRequest<'_>) -> Result<Dispatch, ApiError> {
        let snapshot = self.snapshot();
        let resolved = resolve_config(&snapshot, req.key, req.config_header)?;
        let Some((config, config_id)) = resolved else {
            let Some(model) = req.model else {
                return Err(model_required());
            };
            let route = self.route_in(&snapshot, req.key, model, req.provider_header)?;
            return Ok(Dispatch {
                way: Way::Direct(route),
                timeout: req.timeout,
                config_id: None,
                config: None,
            });
        };
        let params = if has_conditional(&config.root) {
            req.body.to_map()
        } else {
            Map::new()
        };
        let no_metadata = Map::new();
        let cx = RequestContext {
            metadata: req.metadata.unwrap_or(&no_metadata),
            params: &params,
            url_path: Some(req.path),
            model: req.model,
        };
        let plan = portico_routing::plan(
            &config,
            &cx,
            self.health(),
            std::time::Instant::now(),
            self.plan_options(),
            &mut rand::rng(),
        )?;
        Ok(Dispatch {
            way: Way::Config {
                plan,
                model: req.model.map(str::to_owned),
                provider_header: req.provider_header.map(str::to_owned),
            },
            timeout: req.timeout,
            config_id,
            config: Some(config),
        })
    }

    /// Walks `dispatch`: tries candidates with `attempt` (given the route and the body with
    /// `model` and the config's `override_params` set), retrying and failing over as the
    /// config says, and records every try in `record` (attempts, retries, the option used,
    /// the provider and model that answered, the time spent upstream).
    ///
    /// `admit` is asked before each try whether the route may be tried at all (the policies'
    /// `before_attempt` hooks): a refusal is not a try and not a failure of the target's
    /// health; a fallback goes on to the next target, alone the refusal is the answer.
    pub async fn dispatch<T, A, F, Fut>(
        &self,
        dispatch: &Dispatch,
        key: &KeyEntry,
        body: &JsonBody,
        record: &mut RequestRecord,
        mut admit: A,
        mut attempt: F,
    ) -> Dispatched<T>
    where
        T: Answer,
        A: FnMut(&Route) -> Result<(), ApiError>,
        F: FnMut(Route, JsonBody) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        record.config_id.clone_from(&dispatch.config_id);
        let mut index = 0;
        // Upstream tries made so far, across every candidate (bounded by max_attempts()).
        let mut tries = 0;
        loop {
            let step = self.step(dispatch, index, key);
            if let Ok(route) = &step.route {
                record.provider = Some(route.slug.clone());
                record.model = Some(route.model.clone());
            }
            record.target = step.path.map(str::to_owned);
            let outcome = self
                .try_candidate(step, body, record, &mut tries, &mut admit, &mut attempt)
                .await;
            let (failure, error, retries, spent) = match outcome {
                Ok((answer, route, retries)) => {
                    return Dispatched {
                        result: Ok((answer, route)),
                        retry_count: i32::from(retries),
                    };
                }
                Err(StepFailure::Fatal(error)) => {
                    return Dispatched {
                        result: Err(error),
                        retry_count: 0,
                    };
                }
                Err(StepFailure::BudgetSpent(error)) => {
                    return Dispatched {
                        result: Err(budget_spent(error)),
                        retry_count: -1,
                    };
                }
                Err(StepFailure::Failed {
                    failure,
                    error,
                    retries,
                    spent,
                }) => (failure, error, retries, spent),
            };
            let next = match &dispatch.way {
                Way::Direct(_) => None,
                Way::Config { plan, .. } => plan.next_after(index, &failure),
            };
            match next {
                Some(_) if tries >= max_attempts() => {
                    // Another target would be tried, but the request's budget is spent.
                    return Dispatched {
                        result: Err(budget_spent(error)),
                        retry_count: -1,
                    };
                }
                Some(next) => index = next,
                None => {
                    return Dispatched {
                        result: Err(error),
                        retry_count: if spent { -1 } else { i32::from(retries) },
                    };
                }
            }
        }
    }

    /// Candidate `index` of `dispatch`, resolved against the current catalog.
    fn step<'a>(&self, dispatch: &'a Dispatch, index: usize, key: &KeyEntry) -> Step<'a> {
        match &dispatch.way {
            Way::Direct(route) => Step {
                route: Ok(route.clone()),
                overrides: None,
                retry: portico_routing::RetryPolicy::none(),
                budget: dispatch.timeout,
                path: None,
                // A direct request has no alternative: the breaker only steers configs.
                ask_health: false,
            },
            Way::Config {
                plan,
                model,
                provider_header,
            } => {
                let candidate = &plan.candidates()[index];
                let snapshot = self.snapshot();
                let request_model = model.as_deref();
                let route = match (&candidate.provider, candidate.model_override()) {
                    // The planner worked out the model (the override, else the body's without
                    // its `@slug/`) and judged the target's health by it: send exactly that.
                    (Some(provider), _) => match candidate.model.as_deref() {
                        Some(model) => self.route_to(&snapshot, key, &provider.slug, model),
                        None => Err(model_required()),
                    },
                    (None, over) => match (request_model, over) {
                        (Some(model), None) => {
                            self.route_in(&snapshot, key, model, provider_header.as_deref())
                        }
                        (Some(model), Some(over)) => {
                            // The request's provider with the config's model.
                            self.route_in(&snapshot, key, model, provider_header.as_deref())
                                .and_then(|r| self.route_to(&snapshot, key, &r.slug, over))
                        }
                        (None, _) => Err(model_required()),
                    },
                };
                Step {
                    route,
                    overrides: Some(&candidate.override_params),
                    retry: candidate.retry.clone(),
                    budget: candidate.request_timeout.or(dispatch.timeout),
                    path: Some(&candidate.path),
                    ask_health: !candidate.bypass_health,
                }
            }
        }
    }

    /// Tries one candidate until it answers, its retries are spent, its time budget runs
    /// out or the request's attempt budget does (`tries`, counted across candidates).
    async fn try_candidate<T, A, F, Fut>(
        &self,
        step: Step<'_>,
        body: &JsonBody,
        record: &mut RequestRecord,
        tries: &mut usize,
        admit: &mut A,
        attempt: &mut F,
    ) -> Result<(T, Route, u8), StepFailure>
    where
        T: Answer,
        A: FnMut(&Route) -> Result<(), ApiError>,
        F: FnMut(Route, JsonBody) -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let route = match step.route {
            Ok(route) => route,
            Err(error) => {
                // A target this request cannot use (unknown model, forbidden): the next
                // fallback target may do; alone, its error is the answer.
                return Err(StepFailure::Failed {
                    failure: Failure::Gateway,
                    error,
                    retries: 0,
                    spent: false,
                });
            }
        };
        let body = prepare_body(body, &route.model, step.overrides).map_err(StepFailure::Fatal)?;
        let deadline = step.budget.map(|b| tokio::time::Instant::now() + b);
        // Health is kept per provider and model: one model's failures leave the others be.
        let health = health_key(&route.slug, &route.model);
        let mut retries: u8 = 0;
        loop {
            let admission = if step.ask_health {
                self.health()
                    .try_acquire(&health, std::time::Instant::now())
            } else {
                Admission::Allowed
            };
            if admission == Admission::Rejected {
                return Err(StepFailure::Failed {
                    failure: Failure::Skipped,
                    error: ApiError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "model `{}` of provider @{} is ejected for a cool-down after repeated failures (circuit breaker open)",
                            route.model, route.slug
                        ),
                    ),
                    retries,
                    spent: false,
                });
            }
            if let Err(error) = admit(&route) {
                // A policy refused this target before any upstream call.
                return Err(StepFailure::Failed {
                    failure: Failure::Skipped,
                    error,
                    retries,
                    spent: false,
                });
            }
            let started_at_ms = self.clock().now_ms();
            let started = std::time::Instant::now();
            *tries += 1;
            let future = attempt(route.clone(), body.clone());
            // `None`: the candidate's time budget ran out before an answer.
            let result = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
                None => Some(future.await),
            };
            let latency = started.elapsed();
            let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
            *record.upstream_latency_ms.get_or_insert(0) += latency_ms;
            let mut tried = Attempt {
                provider: route.slug.clone(),
                model: route.model.clone(),
                target: step.path.map(str::to_owned),
                retry: u32::from(retries),
                started_at_ms,
                latency_ms,
                status: None,
                error: None,
            };
            let error = match result {
                Some(Ok(answer)) => {
                    self.health()
                        .record(&health, std::time::Instant::now(), Ok(latency));
                    tried.status = Some(answer.status());
                    record.attempts.push(tried);
                    return Ok((answer, route, retries));
                }
                Some(Err(AttemptError::Fatal(error))) => {
                    self.health().record(
                        &health,
                        std::time::Instant::now(),
                        Err(&Failure::Gateway),
                    );
                    tried.status = Some(error.status);
                    tried.error = Some(error.log_text().to_owned());
                    record.attempts.push(tried);
                    return Err(StepFailure::Fatal(error));
                }
                Some(Err(AttemptError::Upstream(error))) => Some(error),
                None => None,
            };
            let (failure, api_error) = match error {
                Some(error) => (classify(&error), error.to_api_error(&route.slug)),
                None => (
                    Failure::Timeout,
                    ApiError::new(
                        ErrorCode::RequestTimeout,
                        format!(
                            "provider @{} did not answer within the request timeout of {} ms (request_timeout or x-portkey-request-timeout)",
                            route.slug,
                            step.budget.map_or(0, |b| b.as_millis())
                        ),
                    ),
                ),
            };
            self.health()
                .record(&health, std::time::Instant::now(), Err(&failure));
            tried.status = failure.http_status();
            tried.error = Some(api_error.log_text().to_owned());
            record.attempts.push(tried);
            let remaining =
                deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            let decision = step
                .retry
                .decide(retries, &failure, remaining, &mut rand::rng());
            match decision {
                portico_routing::RetryDecision::Retry { .. } if *tries >= max_attempts() => {
                    // No wait for a retry that will not be made.
                    return Err(StepFailure::BudgetSpent(api_error));
                }
                portico_routing::RetryDecision::Retry { after, .. } => {
                    tokio::time::sleep(after).await;
                    retries += 1;
                    record.retry_count += 1;
                }
                portico_routing::RetryDecision::GiveUp(why) => {
                    let spent = step.retry.attempts > 0
                        && !matches!(why, portico_routing::GiveUp::NotRetryable);
                    return Err(StepFailure::Failed {
                        failure,
                        error: api_error,
                        retries,
                        spent,
                    });
                }
            }
        }
    }
}

/// The last try's error, saying that the request's attempt budget ended the walk (so the
/// client and the log record tell this apart from a config that had nothing left to try).
fn budget_spent(mut error: ApiError) -> ApiError {
    let note = format!(
        " (gave up after {} upstream attempts, the most one request may make, retries and fallbacks together (--max-upstream-attempts); the attempt budget is spent)",
        max_attempts()
    );
    // Both texts: the client's message, and the log's fuller one when there is one.
    if let Some(detail) = &mut error.detail {
        detail.push_str(&note);
    }
    error.message.push_str(&note);
    error
}

/// How a provider error counts for retries, fallbacks and health.
fn classify(error: &ProviderError) -> Failure {
    match error {
        ProviderError::Status {
            status,
            retry_after,
            ..
        } => Failure::Status {
            status: *status,
            retry_after: *retry_after,
        },
        // A stream that breaks before its first event is a connection that broke.
        ProviderError::Unreachable(_) | ProviderError::StreamBroken(_) => Failure::Connect,
        ProviderError::Timeout(_) => Failure::Timeout,
        // Refused before it was sent: this target cannot take it, another may; a retry of
        // the same one would fail the same way.
        ProviderError::Malformed(_)
        | ProviderError::Unsupported { .. }
        | ProviderError::Rejected { .. } => Failure::Gateway,
    }
}

/// The body a candidate sends: `model` set to the upstream name, then the config's
/// `override_params` (all but `model`, which chose the route).
fn prepare_body(
    body: &JsonBody,
    model: &str,
    overrides: Option<&Map<String, Value>>,
) -> Result<JsonBody, ApiError> {
    let mut body = body.clone();
    let failed = |e: serde_json::Error| {
        ApiError::new(
            ErrorCode::Internal,
            format!("could not rewrite the request body: {e}"),
        )
    };
    body.set("model", &model).map_err(failed)?;
    for (name, value) in overrides.into_iter().flatten() {
        if name != "model" {
            body.set(name, value).map_err(failed)?;
        }
    }
    Ok(body)
}

fn model_required() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        "`model` is required; address models as `@provider/model` (for example `@mock/echo`), or use a routing config whose targets set `override_params.model`",
    )
    .with_param("model")
}

/// Whether planning needs the request body (`params.*` queries of a conditional strategy):
/// only then is the body parsed into a tree.
fn has_conditional(target: &portico_routing::Target) -> bool {
    match &target.route {
        portico_routing::Route::Strategy(strategy) => {
            matches!(strategy.mode, portico_routing::Mode::Conditional(_))
                || strategy.targets.iter().any(has_conditional)
        }
        _ => false,
    }
}

/// A request's routing config and the catalog id it came from, if any.
type ChosenConfig = (std::sync::Arc<RoutingConfig>, Option<String>);

/// The routing config of a request and the catalog id it came from: the key's config,
/// with `x-portkey-config` (an id or inline JSON) merged over it.
fn resolve_config(
    snapshot: &Snapshot,
    key: &KeyEntry,
    header: Option<&str>,
) -> Result<Option<ChosenConfig>, ApiError> {
    let key_config = key.config.as_ref();
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(key_config.map(|c| (std::sync::Arc::clone(&c.parsed), Some(c.id.clone()))));
    };
    let (header_json, header_id) = if header.starts_with('{') {
        let json: Value = serde_json::from_str(header).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidHeader,
                format!(
                    "`x-portkey-config` is not valid JSON ({e}); send a config id or a JSON object"
                ),
            )
            .with_param("x-portkey-config")
        })?;
        (json, None)
    } else {
        let Some(entry) = snapshot.config(header) else {
            let mut known: Vec<&str> = snapshot.config_ids().collect();
            known.sort_unstable();
            return Err(ApiError::new(
                ErrorCode::InvalidHeader,
                format!(
                    "`x-portkey-config` names no config `{header}`; the catalog has {}",
                    if known.is_empty() {
                        "no configs (add one under `configs:` or with the admin API, or send inline JSON)".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .with_param("x-portkey-config"));
        };
        if key_config.is_none() {
            return Ok(Some((
                std::sync::Arc::clone(&entry.parsed),
                Some(entry.id.clone()),
            )));
        }
        (entry.json.clone(), Some(entry.id.clone()))
    };
    let merged = match key_config {
        Some(base) => portico_routing::merge(&base.json, &header_json),
        None => header_json,
    };
    let config = RoutingConfig::parse(&merged).map_err(|e| e.to_api_error())?;
    let id = header_id.or_else(|| key_config.map(|c| c.id.clone()));
    Ok(Some((std::sync::Arc::new(config), id)))
}

#[cfg(test)]
mod tests;
