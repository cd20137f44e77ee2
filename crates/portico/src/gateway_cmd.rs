//! `portico gateway`: a data plane fed by a control plane (hybrid mode, spec section 9).
//!
//! The catalog comes from a `portico serve` (the control plane) as a signed snapshot, kept
//! encrypted in the data dir so the gateway starts and serves without the control plane;
//! request logs and spend go back to it, spooled to disk while it cannot be reached
//! (`portico_hybrid` has the pieces and the guarantees). The gateway serves the data plane,
//! `/healthz`, `/readyz` and `/metrics`; no admin API, no dashboard. Until it has a snapshot
//! (none on disk, control plane unreachable) `/readyz` and the data plane answer 503 saying
//! why.
//!
//! The wiring shared with `portico serve` is `crate::data_plane`'s; what is the gateway's own
//! is the control-plane link, the stores behind it and the readiness gate.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portico_core::{ApiError, Clock, ErrorCode, RequestSink, SystemClock};
use portico_engine::policies::guardrails::GuardrailsPolicy;
use portico_engine::policies::limits::LimitsPolicy;
use portico_engine::{Family, Snapshot};
use portico_hybrid::{
    ControlPlane, Readiness, RemoteLogStore, SnapshotFile, SnapshotStore, SnapshotSync,
    SpendObserver, SpendOutbox, SyncParts,
};
use portico_logs::{LogPipeline, PipelineOptions, Retention};
use portico_server::AppState;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Fatal;
use crate::cli::DataPlaneArgs;
use crate::data_plane::{self, DEFAULT_LISTEN, Listen, Policies};
use crate::otel::Otel;

/// Not `portico serve`'s `.portico`, so the two can run from one directory.
const DEFAULT_DATA_DIR: &str = ".portico-gateway";
/// At shutdown, how long the last spend delivery may take before it is left in the spool.
const FINAL_DELIVERY: Duration = Duration::from_secs(5);

/// `portico gateway`
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("listen", |a| a.help("Address to listen on [default: 127.0.0.1:8787]")),
    mut_arg("data_dir", |a| a.help(
        "Directory for the saved snapshot, the request-log spill and the spend spool [default: ./.portico-gateway]"
    ))
)]
pub struct GatewayArgs {
    /// The control plane: the address of the `portico serve` whose catalog this gateway
    /// serves (`https://portico.internal:8787`).
    #[arg(long, env = "PORTICO_CONTROL_PLANE", value_name = "URL", value_parser = parse_control_plane)]
    pub(crate) control_plane: String,

    /// This gateway's token: the secret of a key of type gateway on the control plane
    /// (`portico keys add NAME --type gateway`). Prefer the environment variable: a flag is
    /// visible to other local users in the process list.
    #[arg(
        long,
        env = "PORTICO_GATEWAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: String,

    /// The flags `portico gateway` shares with `portico serve` (the data dir defaults to
    /// ./.portico-gateway here).
    #[command(flatten)]
    pub(crate) common: DataPlaneArgs,
}

/// An http(s) URL without a query or fragment.
fn parse_control_plane(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| {
        format!("`{text}` is not a URL ({e}); give the control plane's address, such as http://127.0.0.1:8787")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "`{text}` is not an http(s) address; give the control plane's address, such as https://portico.internal:8787"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a query or fragment; give the control plane's address only"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Runs the gateway until SIGTERM or Ctrl-C, then drains in-flight requests.
pub(crate) async fn run(args: GatewayArgs) -> Result<(), Fatal> {
    let (_log_guard, log_writer) = data_plane::init_tracing(args.common.log_format);
    let access_log = move |line: Vec<u8>| log_writer.append(&line);
    gateway(
        args,
        Listen::Configured,
        data_plane::wait_for_signal(),
        access_log,
    )
    .await
}

/// `portico gateway`'s wiring: serves the data plane from the control plane's snapshot
/// until `shutdown` completes, then drains like `portico serve` and hands the request log
/// and spend over (or spools them for the next start).
///
/// # Errors
///
/// A [`Fatal`] that says why the gateway could not start.
pub async fn gateway<S, W>(
    args: GatewayArgs,
    listen: Listen,
    shutdown: S,
    access_log: W,
) -> Result<(), Fatal>
where
    S: Future<Output = ()> + Send,
    W: Fn(Vec<u8>) + Send + Sync + 'static,
{
    let common = &args.common;
    if args.token.trim().is_empty() {
        return Err(Fatal::usage(
            "--token (PORTICO_GATEWAY_TOKEN) is empty; give the secret of a key of type gateway on the control plane",
        ));
    }
    data_plane::set_process_limits(common);
    // OpenTelemetry traces, when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
    let otel = Otel::from_env(&|name: &str| std::env::var(name).ok())?;
    let listen_addr: SocketAddr = match common.listen {
        Some(addr) => addr,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|e| Fatal::other(format!("default listen address: {e}")))?,
    };
    let data_dir = common
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    portico_store::private_files::create_data_dir(&data_dir).map_err(|e| {
        Fatal::other(format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let client = data_plane::http_client(common)?.with_trace_propagation(otel.is_some());

    let url = args.control_plane.clone();
    let control_plane = Arc::new(ControlPlane::new(&url, &args.token).map_err(Fatal::other)?);
    let store = Arc::new(SnapshotStore::new(url.clone()));

    // The request log goes to the control plane; what it cannot take waits in the spill
    // file, replayed later (also at the next start). Retention is the control plane's.
    let remote_log = RemoteLogStore::new(Arc::clone(&control_plane));
    let log_pipeline = LogPipeline::start(
        Arc::new(remote_log.clone()),
        PipelineOptions {
            clock: Arc::clone(&clock),
            ..data_plane::log_options(
                common,
                &data_dir,
                Retention {
                    max_age_days: None,
                    max_rows: None,
                    ..Retention::default()
                },
            )
        },
    );
    let metrics = Arc::new(
        portico_metrics::Metrics::new()
            .map_err(|e| Fatal::other(format!("cannot set up the metrics: {e}")))?,
    );
    let sinks: Vec<Arc<dyn RequestSink>> = vec![
        data_plane::access_log(access_log),
        metrics.clone(),
        log_pipeline.sink(),
    ];

    // Budgets are enforced here, on a ledger the snapshots reset; charges go to the outbox.
    let ledger = Arc::new(portico_limits::Ledger::new());
    let outbox = Arc::new(
        SpendOutbox::open(&data_dir, Arc::clone(&ledger), Arc::clone(&clock)).map_err(|e| {
            Fatal::other(format!(
                "cannot open the spend spool in {}: {e}",
                data_dir.display()
            ))
        })?,
    );
    let policies = Policies {
        guardrails: Arc::new(GuardrailsPolicy::new(
            client.clone(),
            portico_guardrails::AddressGuard::default(),
        )),
        cache: data_plane::cache_policy(common, data_plane::memory_cache(common), &clock)?,
        limits: Arc::new(
            LimitsPolicy::new(Arc::clone(&ledger), Arc::clone(&clock)).with_observer(Arc::new(
                SpendObserver::new(Arc::clone(&outbox), Some(metrics.clone())),
            )),
        ),
    };
    // Empty until a snapshot is in force (the saved one, below, or the control plane's).
    // No JWTs: `auth.jwt` is the control plane's catalog file, not part of the snapshot.
    let gateway = data_plane::build_gateway(
        common,
        Snapshot::default(),
        client,
        sinks,
        &clock,
        None,
        &policies,
        // A hybrid gateway has no database: Responses API answers are kept in memory.
        None,
        otel.as_ref(),
        metrics.clone(),
    );
    let readiness = Readiness::not_ready(format!(
        "no snapshot yet: waiting for the first answer of the control plane at {url}"
    ));
    let sync = Arc::new(SnapshotSync::new(SyncParts {
        control_plane,
        file: SnapshotFile::new(&data_dir, &args.token),
        store,
        gateway: Arc::clone(&gateway),
        ledger,
        outbox,
        readiness: Arc::clone(&readiness),
        clock: Arc::clone(&clock),
    }));
    sync.start_from_saved().await;

    let state = AppState::new(gateway)
        .with_limits(Arc::clone(&policies.limits))
        .with_body_limits(data_plane::body_limits(common))
        .with_admission(data_plane::admission(common));
    let app = portico_server::data_plane_router(state.clone())
        .merge(portico_metrics::router(
            metrics,
            common.metrics_token.clone(),
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&readiness),
            until_ready,
        ));

    let listener = listen.bind(listen_addr).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Fatal::other(format!("cannot read the listening address: {e}")))?;
    policies
        .guardrails
        .set_guard(portico_guardrails::AddressGuard {
            own: vec![local],
            allow: Vec::new(),
        });
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(Arc::clone(&sync).run(stop.clone()));
    tasks.spawn(Arc::clone(&sync).deliver_spend(stop.clone()));
    tasks.close();
    match readiness.reason() {
        None => tracing::info!(
            data_dir = %data_dir.display(),
            control_plane = %url,
            "portico {} gateway ready",
            env!("CARGO_PKG_VERSION")
        ),
        Some(reason) => tracing::info!(
            data_dir = %data_dir.display(),
            control_plane = %url,
            "portico {} gateway started; not ready yet: {reason}",
            env!("CARGO_PKG_VERSION")
        ),
    }
    data_plane::announce_listening(local);

    data_plane::serve_until(common, listener, app, &state, shutdown).await;
    stop.cancel();
    tasks.wait().await;
    // Delivers what is queued, or keeps it in the spill file for the next start (one try
    // each: an unreachable control plane does not hold the exit up).
    remote_log.stop();
    let logged = log_pipeline.shutdown().await;
    tracing::info!(
        logged = logged.received,
        spilled = logged.spilled,
        "request log handed over"
    );
    if let Some(otel) = otel {
        otel.shutdown().await;
    }
    sync.final_delivery(FINAL_DELIVERY).await;
    tracing::info!("stopped");
    Ok(())
}

/// Until a snapshot is in force: `/readyz` and the data plane answer 503 with the reason;
/// `/healthz`, `/metrics` and unknown paths (404) are answered as usual.
async fn until_ready(
    State(readiness): State<Arc<Readiness>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(reason) = readiness.reason() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/readyz" {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "no_snapshot", "reason": reason})),
        )
            .into_response();
    }
    if !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let family = if path == "/v1/messages" {
        Family::Messages
    } else {
        Family::OpenAi(portico_core::Endpoint::ChatCompletions)
    };
    let err = ApiError::new(ErrorCode::Unavailable, reason);
    let request_id = uuid::Uuid::now_v7().to_string();
    let trace_id = request
        .headers()
        .get("x-portkey-trace-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_owned);
    let mut response = (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(family.error_json(&err)),
    )
        .into_response();
    for (name, value) in [
        ("x-portkey-request-id", request_id),
        ("x-portkey-trace-id", trace_id),
    ] {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_plane_is_an_http_address() {
        assert_eq!(
            parse_control_plane("http://127.0.0.1:8787/").unwrap(),
            "http://127.0.0.1:8787"
        );
        assert_eq!(
            parse_control_plane(" https://cp.internal/portico ").unwrap(),
            "https://cp.internal/portico"
        );
        for bad in ["cp:8787", "ftp://cp", "http://cp/?x=1", "not a url"] {
            assert!(parse_control_plane(bad).is_err(), "{bad}");
        }
    }
}
