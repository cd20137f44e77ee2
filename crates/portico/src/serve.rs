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
use portico_core::{Clock, LimitObserver, RequestSink, SystemClock};
use portico_engine::Snapshot;
use portico_engine::auth::JwtAuth;
use portico_engine::policies::guardrails::GuardrailsPolicy;
use portico_engine::policies::limits::{LedgerWriter, LimitsPolicy, load_ledger};
use portico_logs::{LogPipeline, LogStore, PgLogStore, Retention, SqliteLogStore};
use portico_server::AppState;
use portico_store::{MasterKey, SqlStore};

use crate::cli::{FailMode, ServeArgs};
pub use crate::data_plane::Listen;
use crate::data_plane::{self, DEFAULT_LISTEN, Policies};
use crate::otel::Otel;
use crate::shared_spend::SharedSpend;
use crate::{Fatal, catalog_sync};

const DEFAULT_DATA_DIR: &str = ".portico";
/// How often the budgets' spend is written to the data dir (and once more at shutdown): what
/// a crash can lose. On a shared database without Redis, how often each process delivers
/// its charges and reads the others' back: half the lag of a budget across processes.
const LEDGER_WRITE_EVERY: Duration = Duration::from_secs(1);
/// At shutdown, how long the last delivery of spend to a shared database may take before it
/// is left in the spool for the next start.
const FINAL_SPEND_DELIVERY: Duration = Duration::from_secs(5);

/// Runs the gateway until SIGTERM or Ctrl-C, then drains in-flight requests.
pub(crate) async fn run(args: ServeArgs) -> Result<(), Fatal> {
    // Flushes the log writer when `run` returns, so the last lines are not lost.
    let (_log_guard, log_writer) = data_plane::init_tracing(args.common.log_format);
    // The access log's lines are buffered for the writer thread, which waits only when its
    // buffer is full.
    let access_log = move |line: Vec<u8>| log_writer.append(&line);
    serve(
        args,
        Listen::Configured,
        data_plane::wait_for_signal(),
        access_log,
    )
    .await
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
    data_plane::set_process_limits(&args.common);
    portico_logs::set_max_metadata_filters(usize::from(args.log_search_max_metadata_filters));
    // Without a file, the records the last file applied (at a start or through `portico
    // apply`) stay as they are: see `bootstrap`.
    let catalog: Option<Catalog> = args
        .config
        .as_ref()
        .map(|path| portico_config::load_file(path, &env))
        .transpose()
        .map_err(|e| Fatal::usage(e.to_string()))?;
    // The SSRF guard on the file's base URLs, before anything is stored or started.
    let allowlist = data_plane::upstream_allowlist(&args.common)?;
    if let Some((path, why)) = catalog
        .as_ref()
        .and_then(|c| portico_engine::bootstrap::refused_base_url(c, &allowlist))
    {
        let file = args
            .config
            .as_deref()
            .unwrap_or(std::path::Path::new("the catalog file"));
        return Err(Fatal::usage(format!("{}: {path}: {why}", file.display())));
    }
    let listen_addr: SocketAddr = match args
        .common
        .listen
        .or(catalog.as_ref().and_then(|c| c.listen))
    {
        Some(addr) => addr,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|e| Fatal::other(format!("default listen address: {e}")))?,
    };
    let data_dir = args
        .common
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

    // OpenTelemetry traces, when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
    let otel = Otel::from_env(&env)?;

    // One clock for every timestamp the process keeps: records, the store's rows, retention.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stores = open_stores(&args, &data_dir, env_master, &clock).await?;
    let store = stores.catalog;
    let log_store = stores.logs;
    let where_stored = stores.location;
    let log_pipeline = LogPipeline::start(
        log_store.clone(),
        portico_logs::PipelineOptions {
            clock: Arc::clone(&clock),
            notice: stores.log_notice,
            ..data_plane::log_options(&args.common, &data_dir, retention(&args))
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
                "{where_stored}: cannot read the budgets' spend: {e}"
            ))
        })?;

    // Scale-out: the shared limits, cache, breakers and change signal.
    let redis = connect_redis(&args).await?;
    let shared_limits = match &redis {
        Some(redis) => {
            let shared = redis.limits(Arc::clone(&clock));
            // Seeds Redis from the spend just loaded where it has none, and copies the shared
            // figures into the ledger (the budgets page, the database); retried every second.
            if let Err(e) = shared.mirror(Arc::clone(&ledger)).await {
                tracing::warn!(error = %e, "cannot read the shared budgets from Redis yet; retrying every second");
            }
            Some(shared)
        }
        None => None,
    };

    let client = data_plane::http_client(&args.common)?.with_trace_propagation(otel.is_some());
    let snapshot = Snapshot::load(&store, &client)
        .await
        .map_err(Fatal::other)?;
    let providers: Vec<String> = snapshot
        .providers()
        .map(|p| format!("@{}", p.slug))
        .collect();
    let metrics = Arc::new(
        portico_metrics::Metrics::new()
            .map_err(|e| Fatal::other(format!("cannot set up the metrics: {e}")))?,
    );
    metrics
        .watch_log_store(log_pipeline.health())
        .map_err(|e| Fatal::other(format!("cannot set up the metrics: {e}")))?;
    // A database other processes may share, with no Redis to keep their ledgers at one
    // figure: charges go to it as deltas and the ledger follows its totals, instead of
    // being written as it is (which would overwrite the others' spend).
    let shared_spend = if redis.is_none() && shared_database(&args) {
        let shared = SharedSpend::open(
            &data_dir,
            Arc::clone(&ledger),
            Arc::new(store.clone()),
            Arc::clone(&clock),
        )
        .map_err(|e| {
            Fatal::other(format!(
                "cannot open the spend spool in {}: {e}",
                data_dir.display()
            ))
        })?;
        // Batches an earlier run left in the spool count before the first request.
        if let Err(e) = shared.sync().await {
            tracing::warn!(error = %e, "budgets' spend: cannot deliver the spool to the shared database yet; retrying every second");
        }
        Some(Arc::new(shared))
    } else {
        None
    };
    let limit_observer: Arc<dyn LimitObserver> = match &shared_spend {
        Some(shared) => shared.observer(metrics.clone()),
        None => metrics.clone(),
    };
    let sinks: Vec<Arc<dyn RequestSink>> = vec![
        data_plane::access_log(access_log),
        metrics.clone(),
        log_pipeline.sink(),
    ];
    // Named guardrails (the file's, applied above, and the admin API's) come with the
    // snapshot; the address guard learns the listener below.
    let policies = Policies {
        guardrails: Arc::new(GuardrailsPolicy::new(
            client.clone(),
            portico_guardrails::AddressGuard::default(),
        )),
        cache: data_plane::cache_policy(
            &args.common,
            match &redis {
                Some(redis) => Arc::new(redis.cache(portico_redis::DEFAULT_MAX_ENTRY_BYTES)),
                None => data_plane::memory_cache(&args.common),
            },
            &clock,
        )?,
        limits: Arc::new({
            let limits = LimitsPolicy::new(Arc::clone(&ledger), Arc::clone(&clock))
                .with_observer(limit_observer);
            match shared_limits {
                Some(shared) => limits.with_shared(Arc::new(shared)),
                None => limits,
            }
        }),
    };
    let jwt = catalog
        .as_ref()
        .and_then(|c| c.auth.jwt.clone())
        .map(JwtAuth::new);
    let gateway = data_plane::build_gateway(
        &args.common,
        snapshot,
        client,
        sinks,
        &clock,
        jwt,
        &policies,
        Some(Arc::new(store.clone())),
        otel.as_ref(),
        metrics.clone(),
    );
    // A breaker opened here opens on the other processes, and theirs here.
    let _shared_breakers = redis.as_ref().and_then(|redis| {
        let weak = Arc::downgrade(&gateway);
        redis.share_breakers(gateway.health(), move |key, until| {
            if let Some(gateway) = weak.upgrade() {
                gateway.health().force_open(key, until);
            }
        })
    });
    let ledger_writer = shared_spend.is_none().then(|| {
        LedgerWriter::start(
            ledger,
            Arc::new(store.clone()),
            Arc::clone(&clock),
            LEDGER_WRITE_EVERY,
        )
    });
    let state = AppState::new(gateway)
        .with_store(Arc::new(store.clone()))
        .with_spend_store(Arc::new(store.clone()))
        .with_logs(log_store.clone())
        .with_log_health(log_pipeline.health())
        .with_limits(policies.limits.clone())
        .with_body_limits(data_plane::body_limits(&args.common))
        .with_admission(data_plane::admission(&args.common));
    data_plane::task_gauges(&metrics, &state)?;
    let app = portico_server::router(state.clone()).merge(portico_metrics::router(
        metrics,
        args.common.metrics_token.clone(),
    ));

    let listener = listen.bind(listen_addr).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Fatal::other(format!("cannot read the listening address: {e}")))?;
    tracing::info!(
        data_dir = %data_dir.display(),
        store = %where_stored,
        providers = %providers.join(", "),
        "portico {} ready",
        env!("CARGO_PKG_VERSION")
    );
    policies
        .guardrails
        .set_guard(portico_guardrails::AddressGuard {
            own: vec![local],
            allow: catalog
                .as_ref()
                .map(|c| c.webhook_allow.clone())
                .unwrap_or_default(),
        });
    data_plane::announce_listening(local);

    // With a shared database, other processes change the catalog too: follow them.
    let stop_sync = tokio_util::sync::CancellationToken::new();
    let sync_tasks = tokio_util::task::TaskTracker::new();
    if shared_database(&args) {
        sync_tasks.spawn(catalog_sync::watch(
            Arc::new(store.clone()),
            Arc::clone(&state.gateway),
            redis.as_ref().map(change_signal),
            Duration::from_millis(args.reload_poll_ms),
            stop_sync.clone(),
        ));
    }
    if let Some(shared) = &shared_spend {
        sync_tasks.spawn(Arc::clone(shared).run(LEDGER_WRITE_EVERY, stop_sync.clone()));
    }
    sync_tasks.spawn(prune_deliveries(
        store.clone(),
        Arc::clone(&clock),
        stop_sync.clone(),
    ));
    sync_tasks.close();

    data_plane::serve_until(&args.common, listener, app, &state, shutdown).await;
    stop_sync.cancel();
    sync_tasks.wait().await;
    // Write every queued request record before exiting.
    let logged = log_pipeline.shutdown().await;
    log_store.close().await;
    tracing::info!(
        logged = logged.received,
        spilled = logged.spilled,
        "request log flushed"
    );
    // Every request has been recorded, so every span has ended: export what is queued.
    if let Some(otel) = otel {
        otel.shutdown().await;
    }
    // Settlements still queued for Redis, and the last shared figures into the ledger.
    if let Some(redis) = &redis {
        redis.shutdown(REDIS_SHUTDOWN).await;
    }
    // Every request has settled: the spend is final.
    if let Some(ledger_writer) = ledger_writer {
        match ledger_writer.shutdown().await {
            Ok(subjects) => tracing::info!(subjects, "budgets' spend written"),
            Err(e) => tracing::error!(error = %e, "could not write the budgets' spend at shutdown"),
        }
    }
    if let Some(shared) = &shared_spend {
        shared.shutdown(FINAL_SPEND_DELIVERY).await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often the ids of applied spend deliveries past their retention are deleted.
const PRUNE_DELIVERIES_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the ids of spend deliveries (hybrid gateways', or this mode's own batches) older
/// than [`portico_store::DELIVERY_RETENTION_MS`], at start and hourly, until `stop`.
async fn prune_deliveries(
    store: SqlStore,
    clock: Arc<dyn Clock>,
    stop: tokio_util::sync::CancellationToken,
) {
    use portico_store::SpendStore as _;
    loop {
        let before = clock.now_ms() - portico_store::DELIVERY_RETENTION_MS;
        match store.prune_deliveries(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "forgot spend deliveries past their retention"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete old spend deliveries; retrying in an hour");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PRUNE_DELIVERIES_EVERY) => {}
        }
    }
}

/// How long settlements still queued for Redis may take at shutdown.
const REDIS_SHUTDOWN: Duration = Duration::from_secs(5);

/// Redis on `--redis-url`, when set. A Redis that is down does not stop the start (each
/// concern follows its fail mode until it answers); a URL that cannot be read does.
async fn connect_redis(args: &ServeArgs) -> Result<Option<portico_redis::Redis>, Fatal> {
    let Some(url) = args.redis_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let mode = |mode: FailMode| match mode {
        FailMode::Open => portico_redis::FailMode::Open,
        FailMode::Closed => portico_redis::FailMode::Closed,
    };
    let options = portico_redis::RedisOptions {
        timeout: Duration::from_millis(args.redis_timeout_ms),
        limits_fail: mode(args.redis_limits_fail),
        budgets_fail: mode(args.redis_budgets_fail),
        ..portico_redis::RedisOptions::new(url)
    };
    portico_redis::Redis::connect(options)
        .await
        .map(Some)
        .map_err(|e| Fatal::usage(e.to_string()))
}

/// The change signal over Redis's pub/sub.
fn change_signal(redis: &portico_redis::Redis) -> catalog_sync::ChangeSignal {
    let bus = redis.bus();
    let received = bus.subscribe();
    catalog_sync::ChangeSignal {
        publish: Arc::new(move |version| {
            let bus = bus.clone();
            Box::pin(async move {
                if let Err(e) = bus.publish(version).await {
                    tracing::warn!(error = %e, version, "cannot announce the catalog change on Redis; the others see it at their next poll");
                }
            })
        }),
        received,
    }
}

/// Whether the catalog and spend are on `--database-url` (a database other processes may
/// share) rather than in the data dir.
fn shared_database(args: &ServeArgs) -> bool {
    args.database_url.as_deref().is_some_and(|u| !u.is_empty())
}

/// Where this process keeps its state: SQLite files in the data dir, or the shared database.
struct Stores {
    catalog: SqlStore,
    logs: Arc<dyn LogStore>,
    /// What opening the request log repaired (a corrupt `logs.db` moved aside), to report.
    log_notice: Option<String>,
    /// What to name in an error: the SQLite file, or "the shared database".
    location: String,
}

/// Opens the catalog store and the request log: on `--database-url` when it is set (every
/// process sharing it must have the same `PORTICO_MASTER_KEY`), else in the data dir.
async fn open_stores(
    args: &ServeArgs,
    data_dir: &std::path::Path,
    env_master: Option<MasterKey>,
    clock: &Arc<dyn Clock>,
) -> Result<Stores, Fatal> {
    if let Some(url) = args.database_url.as_deref().filter(|u| !u.is_empty()) {
        let Some(master) = env_master else {
            return Err(Fatal::usage(
                "PORTICO_DATABASE_URL needs PORTICO_MASTER_KEY: every process sharing the \
                 database must encrypt and read provider secrets with the same key (generate \
                 one with `openssl rand -base64 32` and give it to each process)",
            ));
        };
        let catalog = SqlStore::connect(url, master)
            .await
            .map_err(|e| Fatal::other(format!("the shared database: {e}")))?
            .with_clock(Arc::clone(clock));
        let (logs, log_notice): (Arc<dyn LogStore>, _) = match catalog.backend_name() {
            "postgres" => (
                Arc::new(PgLogStore::connect(url).await.map_err(|e| {
                    Fatal::other(format!("the shared database's request log: {e}"))
                })?),
                None,
            ),
            // `sqlite://`: one process's file named by URL; its log stays beside it in the
            // data dir.
            _ => open_sqlite_log(args, data_dir).await?,
        };
        return Ok(Stores {
            catalog,
            logs,
            log_notice,
            location: format!("the shared database ({})", catalog_backend(url)),
        });
    }
    let master = match env_master {
        Some(master) => master,
        None => MasterKey::load_or_create(data_dir).map_err(|e| Fatal::other(e.to_string()))?,
    };
    let db_path = data_dir.join("portico.db");
    let catalog = SqlStore::open(&db_path, master)
        .await
        .map_err(|e| Fatal::other(format!("{}: {e}", db_path.display())))?
        .with_clock(Arc::clone(clock));
    let (logs, log_notice) = open_sqlite_log(args, data_dir).await?;
    Ok(Stores {
        catalog,
        logs,
        log_notice,
        location: db_path.display().to_string(),
    })
}

/// The data dir's `logs.db`; a corrupt one is moved aside and a fresh one created, which
/// the answer's message reports (it is also printed here, loudly).
async fn open_sqlite_log(
    args: &ServeArgs,
    data_dir: &std::path::Path,
) -> Result<(Arc<dyn LogStore>, Option<String>), Fatal> {
    let logs_path = data_dir.join("logs.db");
    let busy_timeout = Duration::from_millis(args.log_busy_timeout_ms);
    let (logs, notice) = SqliteLogStore::open_or_repair(&logs_path, busy_timeout)
        .await
        .map_err(|e| {
            let hint = if e.to_string().contains("locked") {
                " (another process holds the file: is a second portico using this data directory?)"
            } else {
                ""
            };
            Fatal::other(format!("{}: {e}{hint}", logs_path.display()))
        })?;
    if let Some(notice) = &notice {
        tracing::error!("request log: {notice}");
    }
    Ok((Arc::new(logs), notice))
}

/// The engine a database URL names, for messages (never the URL: it may hold a password).
fn catalog_backend(url: &str) -> &'static str {
    if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// The request log's retention from the command line.
fn retention(args: &ServeArgs) -> Retention {
    Retention {
        max_age_days: Some(args.log_retention_days).filter(|d| *d > 0),
        max_rows: args.log_max_rows,
        ..Retention::default()
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
