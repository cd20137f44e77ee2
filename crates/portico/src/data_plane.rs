//! The wiring `portico serve` and `portico gateway` share: the process's logging, the
//! upstream client, the policies, the gateway itself, and serving until shutdown with the
//! drain. Each command adds what is its own (the stores and admin API for `serve`, the
//! control-plane link for `gateway`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_core::{Clock, Fanout, RequestSink, ServerLimitObserver};
use portico_engine::auth::JwtAuth;
use portico_engine::policies::cache::{CachePolicy, SemanticSettings};
use portico_engine::policies::guardrails::GuardrailsPolicy;
use portico_engine::policies::limits::LimitsPolicy;
use portico_engine::{AccessLog, Gateway, RequestLimits, Snapshot};
use portico_logs::{PipelineOptions, Retention};
use portico_providers::http::{HttpClient, HttpOptions, build_guarded_client};
use portico_providers::upstream_guard::UpstreamAllowlist;
use portico_server::{Admission, AppState, BodyLimits, HeadLimits, ServeOptions};

use crate::Fatal;
use crate::cli::{DataPlaneArgs, LogFormat};
use crate::line_writer::{self, LineWriter, LineWriterGuard};
use crate::otel::Otel;

/// The default `--listen`.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// Where a command listens.
#[derive(Debug)]
pub enum Listen {
    /// The address of `--listen`, else the catalog file's `listen:`, else 127.0.0.1:8787.
    Configured,
    /// A listener the caller bound (a test's, on port 0).
    Bound(tokio::net::TcpListener),
}

impl Listen {
    /// The listener: the one given, or one bound on `addr`.
    pub(crate) async fn bind(self, addr: SocketAddr) -> Result<tokio::net::TcpListener, Fatal> {
        match self {
            Listen::Bound(listener) => Ok(listener),
            Listen::Configured => tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Fatal::other(format!("cannot listen on {addr}: {e}"))),
        }
    }
}

/// Process-wide bounds, set before any routing config is parsed.
pub(crate) fn set_process_limits(common: &DataPlaneArgs) {
    portico_routing::set_limits(
        usize::from(common.max_config_targets),
        usize::from(common.max_upstream_attempts),
    );
}

/// The hosts outgoing connections may reach, from `--upstream-allowlist` (docs/security.md).
pub(crate) fn upstream_allowlist(common: &DataPlaneArgs) -> Result<UpstreamAllowlist, Fatal> {
    UpstreamAllowlist::parse(common.upstream_allowlist.as_deref().unwrap_or_default())
        .map_err(|e| Fatal::usage(e.to_string()))
}

/// The client every upstream call goes through, with the flags' timeouts and size bound, and
/// the SSRF guard on every address it connects to.
pub(crate) fn http_client(common: &DataPlaneArgs) -> Result<HttpClient, Fatal> {
    let allowlist = Arc::new(upstream_allowlist(common)?);
    build_guarded_client(
        HttpOptions {
            connect_timeout: Duration::from_millis(common.upstream_connect_timeout_ms),
            read_timeout: Duration::from_millis(common.upstream_read_timeout_ms),
            max_body_bytes: common.max_upstream_body_bytes,
            ..HttpOptions::default()
        },
        allowlist,
    )
    .map_err(|e| Fatal::other(format!("cannot build the HTTP client: {e}")))
}

/// The response cache (docs/cache.md) on `store`, semantic when `--cache-embedding-model`
/// names a catalog model.
pub(crate) fn cache_policy(
    common: &DataPlaneArgs,
    store: Arc<dyn portico_cache::CacheStore>,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<CachePolicy>, Fatal> {
    let mut policy = CachePolicy::new(store, Arc::clone(clock));
    if let Some(model) = common.cache_embedding_model.as_deref() {
        let embedding_model = portico_core::ModelRef::parse(model.trim()).map_err(|e| {
            Fatal::usage(format!(
                "--cache-embedding-model: {e}; name a catalog model as `@slug/model`, such as `@openai/text-embedding-3-small`"
            ))
        })?;
        policy = policy.with_semantic(SemanticSettings {
            embedding_model,
            threshold: common.cache_semantic_threshold,
            max_entries: common.cache_semantic_max_entries,
        });
    }
    Ok(Arc::new(policy))
}

/// The in-process response cache within `--cache-max-bytes`.
pub(crate) fn memory_cache(common: &DataPlaneArgs) -> Arc<dyn portico_cache::CacheStore> {
    Arc::new(portico_cache::MemoryStore::new(
        usize::try_from(common.cache_max_bytes).unwrap_or(usize::MAX),
    ))
}

/// The request log's pipeline settings from the command line; `retention` is the log
/// store's (a gateway keeps no log of its own).
pub(crate) fn log_options(
    common: &DataPlaneArgs,
    data_dir: &std::path::Path,
    retention: Retention,
) -> PipelineOptions {
    PipelineOptions {
        queue_capacity: common.log_queue_capacity,
        queue_bytes: common.log_queue_bytes,
        max_payload_bytes: common.log_max_payload_bytes,
        spill_memory_bytes: common.log_spill_memory_bytes,
        retention,
        ..PipelineOptions::new(data_dir.join("logs-spill.jsonl"))
    }
}

/// The policies every request passes, in their order: guardrails, then the cache, then
/// budgets and rate limits.
pub(crate) struct Policies {
    /// Guardrails run first: a redacted request is what the cache keys and the limits charge,
    /// and a refused one (446) reaches neither.
    pub(crate) guardrails: Arc<GuardrailsPolicy>,
    /// A hit is charged to no budget.
    pub(crate) cache: Arc<CachePolicy>,
    /// Budgets and rate limits.
    pub(crate) limits: Arc<LimitsPolicy>,
}

/// The gateway on `snapshot`, its sinks and policies attached, tracing with `otel` when it
/// is on, keeping Responses API answers in `responses` when there is a database.
#[expect(
    clippy::too_many_arguments,
    reason = "the two modes' one wiring of the gateway; a struct would only rename the arguments"
)]
pub(crate) fn build_gateway(
    common: &DataPlaneArgs,
    snapshot: Snapshot,
    client: HttpClient,
    sinks: Vec<Arc<dyn RequestSink>>,
    clock: &Arc<dyn Clock>,
    jwt: Option<JwtAuth>,
    policies: &Policies,
    responses: Option<Arc<dyn portico_store::ResponseStore>>,
    otel: Option<&Otel>,
    limits_observer: Arc<dyn ServerLimitObserver>,
) -> Arc<Gateway> {
    let gateway = Gateway::new(snapshot, client, Arc::new(Fanout::new(sinks)))
        .with_request_limits(request_limits(common).with_observer(limits_observer));
    // A gateway without a database keeps the recent responses in memory only.
    let gateway = match responses {
        Some(store) => gateway.with_response_store(store),
        None => gateway,
    };
    Arc::new(
        gateway
            .with_tracing(otel.map(Otel::tracing))
            .with_plan_options(portico_routing::PlanOptions {
                latency_aware: common.latency_aware_loadbalance,
            })
            .with_clock(Arc::clone(clock))
            .with_jwt(jwt)
            .with_policy(policies.guardrails.clone())
            .with_policy(policies.cache.clone())
            .with_policy(policies.limits.clone()),
    )
}

/// The access log: each finished request's line goes to `write`.
pub(crate) fn access_log<W>(write: W) -> Arc<dyn RequestSink>
where
    W: Fn(Vec<u8>) + Send + Sync + 'static,
{
    Arc::new(AccessLog::new(write))
}

/// The request-body bounds of the flags.
pub(crate) fn body_limits(common: &DataPlaneArgs) -> BodyLimits {
    BodyLimits {
        max_bytes: common.max_body_bytes,
        stall_timeout: Duration::from_secs(common.body_timeout_secs),
    }
}

/// The limits on request shapes and open streams of the flags.
pub(crate) fn request_limits(common: &DataPlaneArgs) -> RequestLimits {
    RequestLimits::new(
        common.max_json_depth,
        common.max_messages,
        common.max_tools,
        common.max_streams,
    )
}

/// The gauges that show a leak when the traffic stops (docs/metrics.md): the runtime's live
/// tasks, the requests in flight and the finished requests' background tasks, read at each
/// scrape. Call within the runtime.
pub(crate) fn task_gauges(
    metrics: &portico_metrics::Metrics,
    state: &AppState,
) -> Result<(), Fatal> {
    let runtime = tokio::runtime::Handle::current();
    let lifecycle = Arc::clone(&state.lifecycle);
    let gateway = Arc::clone(&state.gateway);
    let gauges: [(&str, &str, portico_metrics::GaugeFn); 3] = [
        (
            "portico_runtime_alive_tasks",
            "Tasks alive in the async runtime: connections, streams, background work.",
            Box::new(move || to_gauge(runtime.metrics().num_alive_tasks())),
        ),
        (
            "portico_requests_in_flight",
            "Requests received and not yet answered to the end (streams until their last byte).",
            Box::new(move || to_gauge(lifecycle.in_flight())),
        ),
        (
            "portico_background_tasks",
            "Finished requests' background work still running (async guardrails, log hand-off).",
            Box::new(move || to_gauge(gateway.background_tasks())),
        ),
    ];
    for (name, help, read) in gauges {
        metrics
            .add_sampled_gauge(name, help, read)
            .map_err(|e| Fatal::other(format!("cannot set up the metric {name}: {e}")))?;
    }
    Ok(())
}

fn to_gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The admission limit of the flags.
pub(crate) fn admission(common: &DataPlaneArgs) -> Admission {
    Admission {
        max_in_flight: common.max_in_flight,
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains: `/readyz` answers 503,
/// in-flight requests finish within `--shutdown-timeout-secs`, what is left is cut (503s and
/// stream error events, all logged), and requests whose async guardrails still run are
/// waited for within the same limit.
pub(crate) async fn serve_until<S>(
    common: &DataPlaneArgs,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    state: &AppState,
    shutdown: S,
) where
    S: Future<Output = ()> + Send,
{
    let lifecycle = Arc::clone(&state.lifecycle);
    let drain_limit = Duration::from_secs(common.shutdown_timeout_secs);
    let shutdown_timer = async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        lifecycle.begin_drain();
        tokio::time::sleep(drain_limit).await;
        tracing::warn!(
            seconds = drain_limit.as_secs(),
            in_flight = lifecycle.in_flight(),
            "in-flight requests did not finish in time; ending them"
        );
        lifecycle.cut();
        std::future::pending::<()>().await;
    };
    let options = ServeOptions {
        header_timeout: Duration::from_secs(common.header_timeout_secs),
        auth_failure_limit: common.auth_failure_limit,
        head_limits: HeadLimits {
            max_count: common.max_header_count,
            max_bytes: common.max_header_bytes,
        },
        write_timeout: Duration::from_secs(common.write_timeout_secs),
        max_connections: common.max_connections,
        // The metrics, which the gateway's own limits report to as well.
        observer: state.gateway.request_limits().observer.clone(),
        ..ServeOptions::default()
    };
    tokio::select! {
        () = portico_server::serve(listener, app, options, Arc::clone(&state.lifecycle)) => {}
        () = shutdown_timer => {}
    }
    // The server has stopped. Requests whose async guardrails are still running in the
    // background write their records when those finish: wait for them (within the drain
    // limit; a record still waiting after it is lost, as the process exits).
    if tokio::time::timeout(drain_limit, state.gateway.drain_deferred())
        .await
        .is_err()
    {
        tracing::warn!("async guardrails still running at shutdown; their requests are not logged");
    }
}

/// Completes on SIGTERM or Ctrl-C.
///
/// The handlers are installed when this is called, not when the future is first polled: the
/// serve loop polls it only after the listening line is printed, and a SIGTERM sent the moment
/// a supervisor sees that line would otherwise find the default action and kill the process
/// without a drain.
pub(crate) fn wait_for_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the CLI's contract: the address is printed on stdout"
)]
pub(crate) fn announce_listening(addr: SocketAddr) {
    println!("portico: listening on http://{addr}");
}

/// Logs go to stderr through a writer thread that writes in batches (`line_writer`): a request
/// never waits on the terminal or a pipe. Writers wait rather than drop when its buffer is
/// full, so no line is lost.
pub(crate) fn init_tracing(format: LogFormat) -> (LineWriterGuard, LineWriter) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (writer, guard) = line_writer::start(std::io::stderr());
    let for_tracing = writer.clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || for_tracing.clone());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    (guard, writer)
}
