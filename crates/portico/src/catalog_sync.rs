//! Scale-out: keeping every process's snapshot in step with the shared database.
//!
//! Each process rebuilds its own snapshot after a change made through its own admin API. A
//! change made through another process is noticed two ways: the change signal (Redis
//! pub/sub, when `PORTICO_REDIS_URL` is set), which arrives at once, and a poll of the
//! store's catalog version every `--reload-poll-ms`, which needs nothing but the database and
//! catches a signal lost while Redis was away. Either way the snapshot is rebuilt off the
//! request path, so a change is in force everywhere within the poll interval (1 s by default;
//! the spec's bound is 5 s).

use std::sync::Arc;
use std::time::Duration;

use portico_engine::Gateway;
use portico_store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The change signal between processes: how to tell the others a version, and what they
/// told this one.
pub(crate) struct ChangeSignal {
    /// Announces a catalog version this process's admin API wrote.
    pub(crate) publish: Arc<dyn Fn(i64) -> Announce + Send + Sync>,
    /// The versions other processes announced.
    pub(crate) received: watch::Receiver<i64>,
}

/// The announcement under way.
pub(crate) type Announce = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Why the watcher woke.
enum Wake {
    /// This process reloaded (its admin API changed something, or this loop reloaded).
    LocalReload,
    /// A signal from another process, or the poll interval passed.
    Check,
}

/// The watcher: runs until `stop` is cancelled.
pub(crate) async fn watch(
    store: Arc<dyn Store>,
    gateway: Arc<Gateway>,
    mut signal: Option<ChangeSignal>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut last = store.catalog_version().await.ok();
    let mut local = gateway.subscribe_reloads();
    // One warning per outage, not one a second.
    let mut failing = false;
    loop {
        let wake = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => Wake::Check,
            changed = local.changed() => match changed {
                Ok(()) => Wake::LocalReload,
                Err(_) => return,
            },
            () = received(&mut signal) => Wake::Check,
        };
        let version = match store.catalog_version().await {
            Ok(version) => {
                if failing {
                    tracing::info!(
                        "the shared database answers again; catalog changes are followed"
                    );
                    failing = false;
                }
                version
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the catalog version from the shared database; serving the last catalog until it answers");
                    failing = true;
                }
                continue;
            }
        };
        if last == Some(version) {
            continue;
        }
        match wake {
            Wake::LocalReload => {
                // This process wrote it and has already rebuilt its snapshot: tell the rest.
                if let Some(signal) = &signal {
                    (signal.publish)(version).await;
                }
                last = Some(version);
            }
            Wake::Check => match gateway.reload(&*store).await {
                Ok(()) => {
                    tracing::info!(version, "catalog changed by another process; reloaded");
                    last = Some(version);
                }
                Err(e) => {
                    tracing::error!(error = %e, version, "catalog changed by another process, but it could not be loaded; serving the previous one");
                }
            },
        }
    }
}

/// Completes when another process announces a version; never without a signal.
async fn received(signal: &mut Option<ChangeSignal>) {
    match signal {
        Some(signal) => {
            if signal.received.changed().await.is_err() {
                // The signal's task ended: rely on the poll from now on.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
