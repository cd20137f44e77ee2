//! The gateway: authentication, routing and the upstream call over the current snapshot,
//! and the state every request shares (circuit breakers, policies, the clock, the sink).

use std::sync::Arc;

use arc_swap::ArcSwap;
use portico_core::{
    ApiError, Clock, Endpoint, ErrorCode, JsonBody, KeyHash, ModelRef, ModelRefError,
    RequestRecord, RequestSink, SystemClock,
};
use portico_providers::http::HttpClient;
use portico_providers::{ProviderError, UpstreamRequest, UpstreamResponse};
use portico_store::Store;

use crate::auth::JwtAuth;
use crate::pipeline::policy::{Deferred, Finished, Output, Policy, Runs};
use crate::route::Route;
use crate::snapshot::{KeyEntry, Snapshot};
use crate::telemetry::Tracing;

/// The request pipeline over a swappable [`Snapshot`].
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    client: HttpClient,
    sink: Arc<dyn RequestSink>,
    health: portico_routing::HealthRegistry,
    plan_options: portico_routing::PlanOptions,
    /// The policies every request is offered to, in order (none: nothing is paid for them).
    policies: Vec<Arc<dyn Policy>>,
    clock: Arc<dyn Clock>,
    /// `auth.jwt`: JWT callers and the identity provider's kept keys; `None`: keys only.
    jwt: Option<JwtAuth>,
    /// Finished requests' background work (async guardrails) and the records waiting for it.
    deferred: tokio_util::task::TaskTracker,
    /// Bumped after every reload: what another process is told, with a shared database.
    reloads: tokio::sync::watch::Sender<u64>,
    responses: Arc<crate::responses::ResponseKeeper>,
    /// OpenTelemetry traces of requests; `None` (the default): off, and free.
    tracing: Option<Tracing>,
    /// The shape a request body may have, and the open streams.
    request_limits: crate::request_limits::RequestLimits,
}

impl Gateway {
    /// A gateway serving `snapshot`, building adapters on reload with `client`, and handing
    /// the record of every finished request to `sink`.
    pub fn new(snapshot: Snapshot, client: HttpClient, sink: Arc<dyn RequestSink>) -> Gateway {
        Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            client,
            sink,
            health: portico_routing::HealthRegistry::new(portico_routing::BreakerConfig::default()),
            plan_options: portico_routing::PlanOptions::default(),
            policies: Vec::new(),
            clock: Arc::new(SystemClock),
            jwt: None,
            deferred: tokio_util::task::TaskTracker::new(),
            reloads: tokio::sync::watch::Sender::new(0),
            responses: Arc::new(crate::responses::ResponseKeeper::in_memory()),
            tracing: None,
            request_limits: crate::request_limits::RequestLimits::default(),
        }
    }

    /// The same gateway with other limits on request shapes and open streams.
    pub fn with_request_limits(mut self, limits: crate::request_limits::RequestLimits) -> Gateway {
        self.request_limits = limits;
        self
    }

    /// The limits on request shapes and open streams.
    pub fn request_limits(&self) -> &crate::request_limits::RequestLimits {
        &self.request_limits
    }

    /// The same gateway tracing every request with `tracing` (OpenTelemetry spans), or with
    /// `None` not at all.
    pub fn with_tracing(mut self, tracing: Option<Tracing>) -> Gateway {
        self.tracing = tracing;
        self
    }

    /// The request tracing, when on.
    pub(crate) fn tracing(&self) -> Option<&Tracing> {
        self.tracing.as_ref()
    }

    /// The same gateway accepting JWTs as `jwt` says (`auth.jwt`) besides gateway keys, or
    /// (with `None`) gateway keys only.
    pub fn with_jwt(mut self, jwt: Option<JwtAuth>) -> Gateway {
        self.jwt = jwt;
        self
    }

    /// The JWT check, when `auth.jwt` is configured.
    pub fn jwt(&self) -> Option<&JwtAuth> {
        self.jwt.as_ref()
    }

    /// The hosts outgoing connections may reach (`--upstream-allowlist`): what a URL set
    /// through the admin API is checked against.
    pub fn upstream_allowlist(&self) -> &portico_providers::upstream_guard::UpstreamAllowlist {
        self.client().allowlist()
    }

    /// The shared upstream HTTP client (adapters, the identity provider's keys).
    pub(crate) fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The stored key whose secret hashes to `hash` (revoked and expired ones included).
    pub(crate) fn stored_key(&self, hash: &KeyHash) -> Option<Arc<KeyEntry>> {
        self.snapshot.load().key(hash).cloned()
    }

    /// The same gateway with one more policy, offered every request after those added before.
    /// The policy learns the current catalog now, and every reloaded one after.
    pub fn with_policy(mut self, policy: Arc<dyn Policy>) -> Gateway {
        policy.catalog_changed(&self.snapshot.load_full());
        self.policies.push(policy);
        self
    }

    /// The policies, in order.
    /// Keeps Responses API answers in `store` (written in batches off the request path,
    /// the recent ones in memory too) rather than in memory only. Call within the runtime.
    pub fn with_response_store(mut self, store: Arc<dyn portico_store::ResponseStore>) -> Gateway {
        self.responses = Arc::new(crate::responses::ResponseKeeper::durable(
            store,
            &self.deferred,
        ));
        self
    }

    /// Background tasks of finished requests still running (async guardrails, deliveries):
    /// a gauge that must come back down when the traffic stops.
    pub fn background_tasks(&self) -> usize {
        self.deferred.len()
    }

    /// The responses the gateway keeps (the Responses API's `previous_response_id`).
    pub fn responses(&self) -> &crate::responses::ResponseKeeper {
        &self.responses
    }

    pub(crate) fn policies(&self) -> &[Arc<dyn Policy>] {
        &self.policies
    }

    /// The same gateway reading the time from `clock` (tests drive one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Gateway {
        self.clock = clock;
        self
    }

    /// The clock requests are timed by.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The same gateway with other planner switches (latency-aware load balancing).
    pub fn with_plan_options(mut self, options: portico_routing::PlanOptions) -> Gateway {
        self.plan_options = options;
        self
    }

    /// The planner switches.
    pub fn plan_options(&self) -> portico_routing::PlanOptions {
        self.plan_options
    }

    /// The same gateway with other circuit-breaker settings.
    pub fn with_breaker(mut self, config: portico_routing::BreakerConfig) -> Gateway {
        self.health = portico_routing::HealthRegistry::new(config);
        self
    }

    /// The health of every provider (circuit breakers and latency averages), which routing
    /// configs steer by.
    pub fn health(&self) -> &portico_routing::HealthRegistry {
        &self.health
    }

    /// Finishes a request: prices its record, settles its policies with it and `output`,
    /// and hands the record to the sink, at once or, when a run has background work (async
    /// guardrails), once that work is done ([`PolicyRun::deferred`]).
    ///
    /// [`PolicyRun::deferred`]: crate::pipeline::policy::PolicyRun::deferred
    pub(crate) fn finish(&self, mut record: RequestRecord, runs: &mut Runs, output: Output<'_>) {
        if !runs.is_empty() {
            runs.annotate(&mut record);
        }
        if record.cost_usd.is_none() {
            record.cost_usd = self.cost(&record);
        }
        if let Some(tracing) = &self.tracing {
            tracing.export(&record, &self.snapshot.load());
        }
        let deferred = if runs.is_empty() {
            Vec::new()
        } else {
            runs.after(&Finished {
                record: &record,
                output,
            })
        };
        if deferred.is_empty() {
            self.sink.record(record);
            return;
        }
        self.record_later(record, deferred);
    }

    /// Hands `record` to the sink once the runs' background work (async guardrails) is done
    /// and has amended it. The caller has already answered (or is answering) the client, so
    /// this costs the client nothing; it delays the log line. Without a runtime (never on the
    /// request path) the work is dropped and the record written as it is.
    fn record_later(&self, mut record: RequestRecord, deferred: Vec<Deferred>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sink.record(record);
            return;
        };
        let sink = Arc::clone(&self.sink);
        self.deferred.spawn_on(
            async move {
                for work in deferred {
                    let amend = work.await;
                    amend(&mut record);
                }
                sink.record(record);
            },
            &runtime,
        );
    }

    /// Waits for the background work of finished requests (async guardrails) and the records
    /// waiting for it: call it once the server has stopped, before the request log is
    /// flushed. Each piece of work is bounded by its checks' timeouts.
    pub async fn drain_deferred(&self) {
        // The response writer ends once its queue is written.
        self.responses.close();
        self.deferred.close();
        self.deferred.wait().await;
    }

    /// The cost of a record's reported usage: the catalog's price override for the model,
    /// else the built-in price table's, else `None` (never a guess).
    pub fn cost(&self, record: &RequestRecord) -> Option<f64> {
        let (Some(slug), Some(model)) = (&record.provider, &record.model) else {
            return None;
        };
        if record.prompt_tokens.is_none() && record.completion_tokens.is_none() {
            return None;
        }
        let usage = portico_core::Usage {
            prompt_tokens: record.prompt_tokens.unwrap_or(0),
            completion_tokens: record.completion_tokens.unwrap_or(0),
            cached_tokens: record.cached_tokens.unwrap_or(0),
            cache_write_tokens: record.cache_write_tokens.unwrap_or(0),
        };
        let snapshot = self.snapshot.load();
        let entry = snapshot.provider(slug)?;
        portico_pricing::cost_usd(entry.pricing(model), entry.kind, model, Some(usage))
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Rebuilds the snapshot from the store and swaps it in; requests in flight keep the one
    /// they started with.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), String> {
        let snapshot = Arc::new(Snapshot::load(store, &self.client).await?);
        self.snapshot.store(Arc::clone(&snapshot));
        for policy in &self.policies {
            policy.catalog_changed(&snapshot);
        }
        self.reloads.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Changes after every reload (its value counts them): a scale-out process tells the
    /// others when its admin API changed the catalog.
    pub fn subscribe_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Resolves `model` (`@slug/model`, or a bare name with `x-portkey-provider: @slug`) to a
    /// provider the key may use.
    pub fn route(
        &self,
        key: &KeyEntry,
        model: &str,
        provider_header: Option<&str>,
    ) -> Result<Route, ApiError> {
        self.route_in(&self.snapshot.load(), key, model, provider_header)
    }

    /// [`Gateway::route`] over a given snapshot.
    pub(crate) fn route_in(
        &self,
        snapshot: &Snapshot,
        key: &KeyEntry,
        model: &str,
        provider_header: Option<&str>,
    ) -> Result<Route, ApiError> {
        let target = match (model.starts_with('@'), provider_header) {
            (false, Some(header)) => {
                let slug = header.trim().trim_start_matches('@');
                ModelRef::parse(&format!("@{slug}/{model}"))
            }
            _ => ModelRef::parse(model),
        };
        let target = target.map_err(|err| match err {
            ModelRefError::NoProvider(_) => ApiError::new(
                ErrorCode::UnknownModel,
                format!(
                    "model `{model}` is not in the catalog: address models as `@provider/model`{}, or send `x-portkey-provider: @provider` with a bare model name",
                    example(snapshot, model)
                ),
            )
            .with_param("model"),
            other => ApiError::new(ErrorCode::UnknownModel, other.to_string()).with_param("model"),
        })?;
        self.route_to(snapshot, key, &target.slug, &target.model)
    }

    /// The route to `model` of provider `slug`, if the catalog has it and `key` may use it.
    pub(crate) fn route_to(
        &self,
        snapshot: &Snapshot,
        key: &KeyEntry,
        slug: &str,
        model: &str,
    ) -> Result<Route, ApiError> {
        let target = ModelRef {
            slug: slug.to_owned(),
            model: model.to_owned(),
        };
        let Some(entry) = snapshot.provider(&target.slug) else {
            return Err(ApiError::new(
                ErrorCode::UnknownProvider,
                format!(
                    "no provider `@{}` in the catalog (model `{target}`); address models as `@provider/model` with one of: {}",
                    target.slug,
                    slug_list(snapshot)
                ),
            )
            .with_param("model"));
        };
        if !entry.allows_model(&target.model) {
            let choices: Vec<String> = entry
                .advertised_models()
                .iter()
                .map(|m| format!("`@{}/{m}`", entry.slug))
                .collect();
            return Err(ApiError::new(
                ErrorCode::UnknownModel,
                format!(
                    "model `{target}` is not in the catalog of provider @{}; use one of: {}",
                    entry.slug,
                    choices.join(", ")
                ),
            )
            .with_param("model"));
        }
        if !key.may_use(&target.slug, &target.model) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "the key `{}` may not use `{target}`; ask an admin to add it to the key's allowed_models",
                    key.name
                ),
            )
            .with_param("model"));
        }
        Ok(Route {
            slug: target.slug,
            model: target.model,
            provider: Arc::clone(&entry.provider),
        })
    }

    /// The `@slug/model` ids a key may use, ordered by slug then catalog order.
    pub fn visible_models(&self, key: &KeyEntry) -> Vec<(String, String)> {
        let snapshot = self.snapshot.load();
        snapshot
            .providers()
            .flat_map(|p| {
                p.advertised_models()
                    .into_iter()
                    .filter(|m| key.may_use(&p.slug, m))
                    .map(|m| (p.slug.clone(), m.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Sends one request along `route`; the body's `model` is already the upstream name
    /// (the dispatcher sets it). Streams always ask upstream for usage.
    pub async fn send(
        &self,
        route: &Route,
        endpoint: Endpoint,
        mut body: JsonBody,
        stream: bool,
    ) -> Result<UpstreamResponse, ProviderError> {
        if stream {
            ensure_stream_usage(&mut body);
        }
        let request = UpstreamRequest {
            endpoint,
            model: route.model.clone(),
            body,
            stream,
        };
        route.provider.send(request).await
    }
}

/// Asks for the usage chunk at the end of a stream (`stream_options.include_usage`), which
/// providers send only when asked (translating adapters follow the same flag): without it a streamed request would have no
/// token count and no cost. The gateway strips the chunk again when the client did not ask.
fn ensure_stream_usage(body: &mut JsonBody) {
    let mut options = match body.get::<serde_json::Map<String, serde_json::Value>>("stream_options")
    {
        Some(Ok(map)) => map,
        // Absent, or not an object (the upstream will say what is wrong with it).
        None => serde_json::Map::new(),
        Some(Err(_)) => return,
    };
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return;
    }
    options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    // Setting a map of plain values cannot fail.
    let _ = body.set("stream_options", &options);
}

fn slug_list(snapshot: &Snapshot) -> String {
    let slugs: Vec<String> = snapshot
        .providers()
        .map(|p| format!("@{}", p.slug))
        .collect();
    if slugs.is_empty() {
        "(the catalog has no providers)".to_owned()
    } else {
        slugs.join(", ")
    }
}

fn example(snapshot: &Snapshot, model: &str) -> String {
    match snapshot.providers().next() {
        Some(p) => format!(" (for example `@{}/{model}`)", p.slug),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_ask_for_usage_without_losing_other_stream_options() {
        let mut body =
            JsonBody::parse(bytes::Bytes::from_static(br#"{"model":"m","stream":true}"#)).unwrap();
        ensure_stream_usage(&mut body);
        assert_eq!(
            body.get_raw("stream_options"),
            Some(r#"{"include_usage":true}"#)
        );
        let mut body = JsonBody::parse(bytes::Bytes::from_static(
            br#"{"stream_options":{"include_usage":false,"other":1}}"#,
        ))
        .unwrap();
        ensure_stream_usage(&mut body);
        let options: serde_json::Value = body.get("stream_options").unwrap().unwrap();
        assert_eq!(
            options,
            serde_json::json!({"include_usage": true, "other": 1})
        );
        let text = br#"{"stream_options":{"include_usage":true}}"#;
        let mut body = JsonBody::parse(bytes::Bytes::from_static(text)).unwrap();
        ensure_stream_usage(&mut body);
        assert_eq!(
            &body.to_bytes()[..],
            text,
            "an asking body is forwarded unchanged"
        );
    }
}
