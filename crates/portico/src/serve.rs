//! `portico serve`: load the catalog, apply it, and serve until SIGTERM or Ctrl-C.
//!
//! [`serve`] is the wiring itself, with the listener and the shutdown signal given: the
//! binary's `run` passes the configured address and the process's signals, a test can pass
//! a listener on port 0 and a future it completes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portico_config::Catalog;
use portico_core::Secret;
use portico_core::{Clock, Fanout, RequestSink, SystemClock};
use portico_engine::auth::JwtAuth;
use portico_engine::policies::cache::{CachePolicy, SemanticSettings};
use portico_engine::policies::guardrails::GuardrailsPolicy;
use portico_engine::policies::limits::{LedgerWriter, LimitsPolicy, load_ledger};
use portico_engine::{AccessLog, Gateway, Snapshot};
use portico_logs::{LogPipeline, LogStore as _, PipelineOptions, Retention, SqliteLogStore};
use portico_providers::http::{HttpOptions, build_client};
use portico_server::{AppState, BodyLimits, ServeOptions};
use portico_store::{MasterKey, SqliteStore};

use crate::Fatal;
use crate::cli::{LogFormat, ServeArgs};
use crate::line_writer::{self, LineWriter, LineWriterGuard};

const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
const DEFAULT_DATA_DIR: &str = ".portico";
/// How often the budgets' spend is written to the data dir (and once more at shutdown): what
/// a crash can lose.
const LEDGER_WRITE_EVERY: Duration = Duration::from_secs(1);

/// Runs the gateway until SIGTERM or Ctrl-C, then drains in-flight requests.
pub(crate) async fn run(args: ServeArgs) -> Result<(), Fatal> {
    // Flushes the log writer when `run` returns, so the last lines are not lost.
    let (_log_guard, log_writer) = init_tracing(args.log_format);
    // The access log's lines are buffered for the writer thread, which waits only when its
    // buffer is full.
    let access_log = move |line: Vec<u8>| log_writer.append(&line);
    serve(args, Listen::Configured, wait_for_signal(), access_log).await
}

/// Where [`serve`] listens.
#[derive(Debug)]
pub enum Listen {
    /// The address of `--listen`, else the catalog file's `listen:`, else 127.0.0.1:8787.
    Configured,
    /// A listener the caller bound (a test's, on port 0).
    Bound(tokio::net::TcpListener),
}

/// `portico serve`'s wiring: loads and applies the catalog, opens the stores, builds the
/// gateway and serves until `shutdown` completes; then drains (`/readyz` 503, in-flight
/// requests finish within `--shutdown-timeout-secs`, what is left is answered and logged)
/// and flushes the request log. Each finished request's access-log line goes to
/// `access_log`.
///
/// # Errors
///
/// A [`Fatal`] that says why the gateway could not start (a usage error for a bad catalog
/// file or flag) or failed.
pub async fn serve<S, W>(
    args: ServeArgs,
    listen: Listen,
    shutdown: S,
    access_log: W,
) -> Result<(), Fatal>
where
    S: Future<Output = ()> + Send,
    W: Fn(Vec<u8>) + Send + Sync + 'static,
{
    let env = |name: &str| std::env::var(name).ok();

    // Process-wide bounds, set before any routing config is parsed (the catalog file's own).
    portico_routing::set_limits(
        usize::from(args.max_config_targets),
        usize::from(args.max_upstream_attempts),
    );
    portico_logs::set_max_metadata_filters(usize::from(args.log_search_max_metadata_filters));
    // Without a file, the records the last file applied (at a start or through `portico
    // apply`) stay as they are: see `bootstrap`.
    let catalog: Option<Catalog> = args
        .config
        .as_ref()
        .map(|path| portico_config::load_file(path, &env))
        .transpose()
        .map_err(|e| Fatal::usage(e.to_string()))?;
    let listen_addr: SocketAddr = match args.listen.or(catalog.as_ref().and_then(|c| c.listen)) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|e| Fatal::other(format!("default listen address: {e}")))?,
    };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| catalog.as_ref().and_then(|c| c.data_dir.clone()))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let admin_key = match env("PORTICO_ADMIN_KEY").filter(|v| !v.is_empty()) {
        Some(value) if value.chars().count() < 16 || value.chars().any(char::is_whitespace) => {
            return Err(Fatal::usage(
                "PORTICO_ADMIN_KEY must be at least 16 characters without spaces; unset it to have one generated",
            ));
        }
        Some(value) => Some(Secret::new(value)),
        None => catalog.as_ref().and_then(|c| c.admin_key.clone()),
    };
    let env_master = env("PORTICO_MASTER_KEY")
        .filter(|v| !v.is_empty())
        .map(|value| MasterKey::from_env_value(&value))
        .transpose()
        .map_err(|e| Fatal::usage(e.to_string()))?;
    // 0700, and an older, group- or world-readable one tightened: it holds key hashes,
    // provider secrets and request payloads (docs/security.md, "Files at rest").
    portico_store::private_files::create_data_dir(&data_dir).map_err(|e| {
        Fatal::other(format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        ))
    })?;

    let master = match env_master {
        Some(master) => master,
        None => MasterKey::load_or_create(&data_dir).map_err(|e| Fatal::other(e.to_string()))?,
    };
    let db_path = data_dir.join("portico.db");
    // One clock for every timestamp the process keeps: records, the store's rows, retention.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = SqliteStore::open(&db_path, master)
        .await
        .map_err(|e| Fatal::other(format!("{}: {e}", db_path.display())))?
        .with_clock(Arc::clone(&clock));
    let logs_path = data_dir.join("logs.db");
    let log_store: Arc<SqliteLogStore> = Arc::new(
        SqliteLogStore::open(&logs_path)
            .await
            .map_err(|e| Fatal::other(format!("{}: {e}", logs_path.display())))?,
    );
    let log_pipeline = LogPipeline::start(
        log_store.clone(),
        PipelineOptions {
            clock: Arc::clone(&clock),
            ..log_options(&args, &data_dir)
        },
    );

    let env_providers = portico_config::detect_env_providers(&env);
    let report = portico_engine::bootstrap::bootstrap(
        &store,
        catalog.as_ref(),
        env_providers,
        admin_key.as_ref(),
    )
    .await
    .map_err(|e| match e {
        // A config naming a provider the catalog lacks is the file's fault: a usage error.
        portico_store::StoreError::InvalidConfig { .. } => {
            Fatal::usage(format!("cannot apply the catalog: {e}"))
        }
        e => Fatal::other(format!("cannot apply the catalog: {e}")),
    })?;
    announce_secrets(&report);
    // Budgets and rate limits: what each subject spent, as the last run left it.
    let ledger = Arc::new(portico_limits::Ledger::new());
    load_ledger(&ledger, &store, clock.now_ms())
        .await
        .map_err(|e| {
            Fatal::other(format!(
                "{}: cannot read the budgets' spend: {e}",
                db_path.display()
            ))
        })?;

    let client = build_client(HttpOptions {
        connect_timeout: Duration::from_millis(args.upstream_connect_timeout_ms),
        read_timeout: Duration::from_millis(args.upstream_read_timeout_ms),
        max_body_bytes: args.max_upstream_body_bytes,
        ..HttpOptions::default()
    })
    .map_err(|e| Fatal::other(format!("cannot build the HTTP client: {e}")))?;
    let snapshot = Snapshot::load(&store, &client)
        .await
        .map_err(Fatal::other)?;
    let providers: Vec<String> = snapshot
        .providers()
        .map(|p| format!("@{}", p.slug))
        .collect();
    let access_log = AccessLog::new(access_log);
    let metrics = Arc::new(
        portico_metrics::Metrics::new()
            .map_err(|e| Fatal::other(format!("cannot set up the metrics: {e}")))?,
    );
    let sinks: Vec<Arc<dyn RequestSink>> =
        vec![Arc::new(access_log), metrics.clone(), log_pipeline.sink()];
    let limits = Arc::new(
        LimitsPolicy::new(Arc::clone(&ledger), Arc::clone(&clock)).with_observer(metrics.clone()),
    );
    // The response cache runs before the limits: a hit is charged to no budget.
    let cache = cache_policy(&args, &clock)?;
    // Guardrails run first: a redacted request is what the cache keys and the limits charge,
    // and a refused one (446) reaches neither. The address guard learns the listener below.
    // Named guardrails (the file's, applied above, and the admin API's) come with the snapshot.
    let guardrails = Arc::new(GuardrailsPolicy::new(
        client.clone(),
        portico_guardrails::AddressGuard::default(),
    ));
    let gateway = Arc::new(
        Gateway::new(snapshot, client, Arc::new(Fanout::new(sinks)))
            .with_plan_options(portico_routing::PlanOptions {
                latency_aware: args.latency_aware_loadbalance,
            })
            .with_clock(Arc::clone(&clock))
            .with_jwt(
                catalog
                    .as_ref()
                    .and_then(|c| c.auth.jwt.clone())
                    .map(JwtAuth::new),
            )
            .with_policy(guardrails.clone())
            .with_policy(cache)
            .with_policy(limits.clone()),
    );
    let ledger_writer = LedgerWriter::start(
        ledger,
        Arc::new(store.clone()),
        Arc::clone(&clock),
        LEDGER_WRITE_EVERY,
    );
    let state = AppState::new(gateway)
        .with_store(Arc::new(store.clone()))
        .with_logs(log_store.clone())
        .with_limits(limits)
        .with_body_limits(BodyLimits {
            max_bytes: args.max_body_bytes,
            stall_timeout: Duration::from_secs(args.body_timeout_secs),
        });
    let app = portico_server::router(state.clone())
        .merge(portico_metrics::router(metrics, args.metrics_token.clone()));

    let listener = match listen {
        Listen::Bound(listener) => listener,
        Listen::Configured => tokio::net::TcpListener::bind(listen_addr)
            .await
            .map_err(|e| Fatal::other(format!("cannot listen on {listen_addr}: {e}")))?,
    };
    let local = listener
        .local_addr()
        .map_err(|e| Fatal::other(format!("cannot read the listening address: {e}")))?;
    tracing::info!(
        data_dir = %data_dir.display(),
        providers = %providers.join(", "),
        "portico {} ready",
        env!("CARGO_PKG_VERSION")
    );
    guardrails.set_guard(portico_guardrails::AddressGuard {
        own: vec![local],
        allow: catalog
            .as_ref()
            .map(|c| c.webhook_allow.clone())
            .unwrap_or_default(),
    });
    announce_listening(local);

    // SIGTERM starts the drain (`/readyz` 503, in-flight requests finish); the deadline cuts
    // what is left (503s and stream error events, all logged).
    let lifecycle = Arc::clone(&state.lifecycle);
    let drain_limit = Duration::from_secs(args.shutdown_timeout_secs);
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
        header_timeout: Duration::from_secs(args.header_timeout_secs),
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
    // Write every queued request record before exiting.
    let logged = log_pipeline.shutdown().await;
    log_store.close().await;
    tracing::info!(
        logged = logged.received,
        spilled = logged.spilled,
        "request log flushed"
    );
    // Every request has settled: the spend is final.
    match ledger_writer.shutdown().await {
        Ok(subjects) => tracing::info!(subjects, "budgets' spend written"),
        Err(e) => tracing::error!(error = %e, "could not write the budgets' spend at shutdown"),
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The response cache (docs/cache.md): in memory within `--cache-max-bytes`, semantic when
/// `--cache-embedding-model` names a catalog model.
fn cache_policy(args: &ServeArgs, clock: &Arc<dyn Clock>) -> Result<Arc<CachePolicy>, Fatal> {
    let store = Arc::new(portico_cache::MemoryStore::new(
        usize::try_from(args.cache_max_bytes).unwrap_or(usize::MAX),
    ));
    let mut policy = CachePolicy::new(store, Arc::clone(clock));
    if let Some(model) = args.cache_embedding_model.as_deref() {
        let embedding_model = portico_core::ModelRef::parse(model.trim()).map_err(|e| {
            Fatal::usage(format!(
                "--cache-embedding-model: {e}; name a catalog model as `@slug/model`, such as `@openai/text-embedding-3-small`"
            ))
        })?;
        policy = policy.with_semantic(SemanticSettings {
            embedding_model,
            threshold: args.cache_semantic_threshold,
            max_entries: args.cache_semantic_max_entries,
        });
    }
    Ok(Arc::new(policy))
}

/// The request log's pipeline settings from the command line.
fn log_options(args: &ServeArgs, data_dir: &std::path::Path) -> PipelineOptions {
    PipelineOptions {
        queue_capacity: args.log_queue_capacity,
        queue_bytes: args.log_queue_bytes,
        max_payload_bytes: args.log_max_payload_bytes,
        retention: Retention {
            max_age_days: Some(args.log_retention_days).filter(|d| *d > 0),
            max_rows: args.log_max_rows,
            ..Retention::default()
        },
        ..PipelineOptions::new(data_dir.join("logs-spill.jsonl"))
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the CLI's contract: secrets are shown once, on stdout"
)]
fn announce_secrets(report: &portico_engine::bootstrap::BootstrapReport) {
    if let Some(admin) = &report.generated_admin_key {
        println!(
            "portico: admin key (shown once, store it now): {}",
            admin.expose()
        );
    }
    for (name, secret) in &report.generated_keys {
        println!(
            "portico: key {name} (shown once, store it now): {}",
            secret.expose()
        );
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the CLI's contract: the address is printed on stdout"
)]
fn announce_listening(addr: SocketAddr) {
    println!("portico: listening on http://{addr}");
}

/// Logs go to stderr through a writer thread that writes in batches (`line_writer`): a request
/// never waits on the terminal or a pipe. Writers wait rather than drop when its buffer is
/// full, so no line is lost.
fn init_tracing(format: LogFormat) -> (LineWriterGuard, LineWriter) {
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
