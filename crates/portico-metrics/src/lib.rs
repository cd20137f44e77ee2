//! Prometheus metrics for Portico, fed by the record of every finished request.
//!
//! Where it sits: above `portico-core` only (it implements its `RequestSink`); the binary
//! mounts its route and puts it among the gateway's sinks.
//!
//! [`Metrics::watch_log_store`] adds the request log's storage health (`portico_log_*`),
//! read at each scrape.
//!
//! [`Metrics`] is also the limits policy's [`portico_core::LimitObserver`]: refusals and
//! spend by budget subject (`limits`), and the listener's and engine's
//! [`portico_core::ServerLimitObserver`]: protective-limit hits and open connections
//! (`server_limits`).
//!
//! [`Metrics`] is a [`portico_core::RequestSink`]: the binary puts it beside the access log
//! in a `Fanout`, so the request path only hands it a record it already built. [`router`]
//! serves `GET /metrics` in the Prometheus text format, behind a bearer token when
//! `PORTICO_METRICS_TOKEN` is set. It is not a tracing exporter and keeps no history: a
//! scrape sees the counters since the process started.
//!
//! docs/metrics.md lists every metric and label.

mod cache;
mod guardrails;
mod labels;
mod limits;
mod log_store;
mod recorder;
mod route;
mod sampled;
mod server_limits;

pub use recorder::{DEFAULT_MAX_MODELS_PER_PROVIDER, Metrics};
pub use route::router;
pub use sampled::GaugeFn;

#[cfg(test)]
mod tests;
