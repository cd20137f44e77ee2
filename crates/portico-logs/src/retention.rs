//! [`Retention`]: how long the request log keeps entries, and the task that prunes it.

use std::sync::Arc;
use std::time::Duration;

use portico_core::Clock;
use tokio_util::sync::CancellationToken;

use crate::LogStore;

/// The default age limit, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// What the log keeps: entries younger than `max_age_days`, and at most `max_rows` of the
/// newest. `None` lifts a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Entries older than this many days are deleted.
    pub max_age_days: Option<u32>,
    /// Only this many of the newest entries are kept.
    pub max_rows: Option<u64>,
    /// How often the pruner runs.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age_days: Some(DEFAULT_RETENTION_DAYS),
            max_rows: None,
            every: Duration::from_secs(600),
        }
    }
}

impl Retention {
    /// Whether anything is ever pruned.
    pub fn is_unlimited(&self) -> bool {
        self.max_age_days.is_none() && self.max_rows.is_none()
    }
}

/// Prunes at start and then every `retention.every`, until `stop`. Ages count from `clock`,
/// read afresh at every round.
pub(crate) async fn run(
    store: Arc<dyn LogStore>,
    retention: Retention,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    if retention.is_unlimited() {
        return;
    }
    loop {
        match store.prune(&retention, clock.now_ms()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "request log: pruned old entries"),
            Err(err) => tracing::error!("request log: pruning failed: {err}"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retention.every) => {}
        }
    }
}
