//! The metric families and how one finished request updates them.

use std::sync::Arc;

use portico_core::RequestSink;
use portico_core::{Outcome, RequestRecord};
use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry,
};

use crate::labels::{HandleCache, LabelCache, join_into, status_class, status_label};

/// Distinct model names kept per provider before the rest are counted as `other`.
pub const DEFAULT_MAX_MODELS_PER_PROVIDER: usize = 200;

/// Distinct providers (slugs, plus `none`) before the rest are counted as `other`.
const MAX_PROVIDERS: usize = 1_000;

/// Distinct error codes before the rest are counted as `other`: upstreams pass their own.
const MAX_ERROR_CODES: usize = 100;

/// The label value for a request that never reached a provider, or named no model.
const NONE: &str = "none";

/// Request latency buckets, in seconds: from a cache-speed answer to a long generation.
const LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Time-to-first-token buckets, in seconds.
const TTFT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// Prometheus metrics fed by every finished request (a [`RequestSink`]).
///
/// Every family is named `portico_*` (see docs/metrics.md). Model names come from clients,
/// so each provider keeps at most `max_models_per_provider` distinct `model` labels and
/// counts the rest under `model="other"`; error codes are capped the same way. The handles
/// of a `(provider, model)` pair are made once and reused, so recording a request is a few
/// atomic additions and two hash lookups in lock-free maps.
pub struct Metrics {
    registry: Registry,
    errors: IntCounterVec,
    families: Families,
    providers: LabelCache<Arc<ProviderLabels>>,
    error_codes: LabelCache<Arc<str>>,
    max_models: usize,
    /// Refusals and spend by budget subject.
    pub(crate) limits: crate::limits::LimitFamilies,
    /// Requests by cache status, and what hits saved.
    cache: crate::cache::CacheFamilies,
    /// Guardrail checks by id and verdict, requests by outcome.
    guardrails: crate::guardrails::GuardrailFamilies,
    /// Protective-limit hits and open connections.
    pub(crate) server_limits: crate::server_limits::ServerLimitFamilies,
    /// The request log's storage, once [`Metrics::watch_log_store`] named its source.
    log_store: std::sync::OnceLock<crate::log_store::LogStoreFamilies>,
    /// Gauges read at each scrape (tasks, requests in flight), added by the binary.
    sampled: crate::sampled::SampledGauges,
}

/// The families whose handles are cached per `(provider, model)`.
struct Families {
    requests: IntCounterVec,
    attempts: IntCounterVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    unpriced: IntCounterVec,
    latency: HistogramVec,
    ttft: HistogramVec,
}

/// One provider's admitted model names and their handles.
struct ProviderLabels {
    label: Arc<str>,
    models: LabelCache<Arc<ModelHandles>>,
}

/// The metric handles of one `(provider, model)` label pair.
struct ModelHandles {
    model: Arc<str>,
    prompt_tokens: IntCounter,
    completion_tokens: IntCounter,
    cached_tokens: IntCounter,
    cache_write_tokens: IntCounter,
    cost: prometheus::Counter,
    unpriced: IntCounter,
    latency: Histogram,
    ttft: Histogram,
    attempts_ok: IntCounter,
    attempts_error: IntCounter,
    /// `portico_requests_total` handles by `endpoint status outcome`.
    requests: HandleCache<IntCounter>,
}

/// Label combinations of `portico_requests_total` cached per model (endpoint × status ×
/// outcome); rarer ones go through the family's own lookup.
const REQUEST_HANDLES_PER_MODEL: usize = 32;

impl Metrics {
    /// Metrics with the default cap on models per provider, plus the process metrics.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        Metrics::with_max_models(DEFAULT_MAX_MODELS_PER_PROVIDER)
    }

    /// Metrics keeping at most `max_models` model names per provider.
    pub fn with_max_models(max_models: usize) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok::<_, prometheus::Error>(vec)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let vec = HistogramVec::new(opts, &["provider", "model"])?;
            registry.register(Box::new(vec.clone()))?;
            Ok::<_, prometheus::Error>(vec)
        };
        let requests = counter(
            "portico_requests_total",
            "Finished requests, by the provider that answered, model, endpoint, HTTP status and outcome.",
            &[
                "provider",
                "model",
                "endpoint",
                "status",
                "status_class",
                "outcome",
            ],
        )?;
        let errors = counter(
            "portico_errors_total",
            "Requests answered with an error status or broken mid-stream, by error code.",
            &["provider", "model", "endpoint", "code"],
        )?;
        let attempts = counter(
            "portico_upstream_attempts_total",
            "Upstream tries (first tries, retries and fallbacks), by the provider and model tried and their result.",
            &["provider", "model", "result"],
        )?;
        let tokens = counter(
            "portico_tokens_total",
            "Tokens reported by upstreams, by direction: prompt (cached included), completion, cached (cache reads), cache_write.",
            &["provider", "model", "direction"],
        )?;
        let unpriced = counter(
            "portico_unpriced_requests_total",
            "Requests with reported usage but no known price (their cost is null).",
            &["provider", "model"],
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "portico_cost_usd_total",
                "Cost of the tokens used, in US dollars (built-in price table or catalog override).",
            ),
            &["provider", "model"],
        )?;
        registry.register(Box::new(cost.clone()))?;
        let latency = histogram(
            "portico_request_duration_seconds",
            "From a request's arrival to the end of its answer.",
            &LATENCY_BUCKETS,
        )?;
        let ttft = histogram(
            "portico_time_to_first_token_seconds",
            "From a streamed request's arrival to its first event.",
            &TTFT_BUCKETS,
        )?;
        let limits = crate::limits::LimitFamilies::register(&registry)?;
        let cache = crate::cache::CacheFamilies::register(&registry)?;
        let guardrails = crate::guardrails::GuardrailFamilies::register(&registry)?;
        let server_limits = crate::server_limits::ServerLimitFamilies::register(&registry)?;
        let build = IntGaugeVec::new(
            Opts::new("portico_build_info", "The running Portico version."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            errors,
            families: Families {
                requests,
                attempts,
                tokens,
                cost,
                unpriced,
                latency,
                ttft,
            },
            providers: LabelCache::new(MAX_PROVIDERS),
            error_codes: LabelCache::new(MAX_ERROR_CODES),
            max_models,
            limits,
            cache,
            guardrails,
            server_limits,
            log_store: std::sync::OnceLock::new(),
            sampled: crate::sampled::SampledGauges::default(),
        })
    }

    /// Adds the request log's storage families (`portico_log_*`), read from `source` at
    /// each scrape. Only the first call counts.
    pub fn watch_log_store(
        &self,
        source: Arc<dyn portico_core::LogHealthSource>,
    ) -> Result<(), prometheus::Error> {
        if self.log_store.get().is_none() {
            let families = crate::log_store::LogStoreFamilies::register(&self.registry, source)?;
            let _ = self.log_store.set(families);
        }
        Ok(())
    }

    /// Adds gauge `name` (`help` its description), set from `read` at every scrape: for
    /// figures kept elsewhere, such as the runtime's live tasks (docs/metrics.md).
    pub fn add_sampled_gauge(
        &self,
        name: &str,
        help: &str,
        read: crate::GaugeFn,
    ) -> Result<(), prometheus::Error> {
        self.sampled.add(&self.registry, name, help, read)
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        if let Some(log_store) = self.log_store.get() {
            log_store.refresh();
        }
        let mut out = String::new();
        self.sampled.refresh();
        let encoder = prometheus::TextEncoder::new();
        if let Err(err) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!("could not encode the metrics: {err}");
        }
        out
    }

    /// Updates every family from one finished request.
    pub fn observe(&self, record: &RequestRecord) {
        let provider = self.provider(record.provider.as_deref().unwrap_or(NONE));
        let handles = self.model(&provider, record.model.as_deref().unwrap_or(NONE));
        let (p, m) = (&*provider.label, &*handles.model);

        let mut buf = [0u8; 3];
        let status = status_label(record.status, &mut buf);
        let outcome = outcome_label(record.outcome);
        let labels = [
            p,
            m,
            record.endpoint,
            status,
            status_class(record.status),
            outcome,
        ];
        let mut key_buf = [0u8; 64];
        let cached = join_into(&[record.endpoint, status, outcome], &mut key_buf).and_then(|key| {
            handles
                .requests
                .get(key, || self.families.requests.with_label_values(&labels))
        });
        match cached {
            Some(counter) => counter.inc(),
            None => self.families.requests.with_label_values(&labels).inc(),
        }

        let failed = record.status >= 400
            || matches!(record.outcome, Outcome::Failed | Outcome::StreamBroken);
        if failed {
            let code = match record.error_code.as_deref() {
                Some(code) => self.error_code(code),
                None => Arc::from(outcome_label(record.outcome)),
            };
            self.errors
                .with_label_values(&[p, m, record.endpoint, &code])
                .inc();
        }

        self.cache.observe(record);
        self.guardrails.observe(record);
        // A cache hit's record carries the usage of the answer it replayed, which no upstream
        // spent now: not counted as tokens.
        if !crate::cache::is_hit(record) {
            if let Some(n) = record.prompt_tokens {
                handles.prompt_tokens.inc_by(n);
            }
            if let Some(n) = record.completion_tokens {
                handles.completion_tokens.inc_by(n);
            }
            if let Some(n) = record.cached_tokens {
                handles.cached_tokens.inc_by(n);
            }
            if let Some(n) = record.cache_write_tokens {
                handles.cache_write_tokens.inc_by(n);
            }
        }
        match record.cost_usd {
            Some(cost) if cost.is_finite() && cost >= 0.0 => handles.cost.inc_by(cost),
            Some(_) => {}
            None if record.prompt_tokens.is_some() => handles.unpriced.inc(),
            None => {}
        }

        handles.latency.observe(record.latency_ms as f64 / 1000.0);
        if let Some(ttft) = record.ttft_ms {
            handles.ttft.observe(ttft as f64 / 1000.0);
        }

        for attempt in &record.attempts {
            let provider = self.provider(&attempt.provider);
            let model = self.model(&provider, &attempt.model);
            match attempt.error {
                None => model.attempts_ok.inc(),
                Some(_) => model.attempts_error.inc(),
            }
        }
    }

    fn provider(&self, slug: &str) -> Arc<ProviderLabels> {
        self.providers.get(slug, |label| {
            Arc::new(ProviderLabels {
                label: Arc::from(label),
                models: LabelCache::new(self.max_models),
            })
        })
    }

    fn model(&self, provider: &ProviderLabels, model: &str) -> Arc<ModelHandles> {
        provider.models.get(model, |label| {
            Arc::new(self.families.handles(&provider.label, label))
        })
    }

    fn error_code(&self, code: &str) -> Arc<str> {
        // An upstream's code is its own text: long or odd ones are not label material.
        let code = if code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            code
        } else {
            crate::labels::OTHER
        };
        self.error_codes.get(code, |label: &str| Arc::from(label))
    }
}

impl Families {
    fn handles(&self, provider: &str, model: &str) -> ModelHandles {
        let pm = [provider, model];
        let tokens = |direction: &str| self.tokens.with_label_values(&[provider, model, direction]);
        ModelHandles {
            model: Arc::from(model),
            prompt_tokens: tokens("prompt"),
            completion_tokens: tokens("completion"),
            cached_tokens: tokens("cached"),
            cache_write_tokens: tokens("cache_write"),
            cost: self.cost.with_label_values(&pm),
            unpriced: self.unpriced.with_label_values(&pm),
            latency: self.latency.with_label_values(&pm),
            ttft: self.ttft.with_label_values(&pm),
            attempts_ok: self.attempts.with_label_values(&[provider, model, "ok"]),
            attempts_error: self.attempts.with_label_values(&[provider, model, "error"]),
            requests: HandleCache::new(REQUEST_HANDLES_PER_MODEL),
        }
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::StreamBroken => "stream_broken",
        Outcome::ClientDisconnected => "client_disconnected",
    }
}

impl RequestSink for Metrics {
    fn observe(&self, record: &RequestRecord) {
        Metrics::observe(self, record);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
