//! The ledger on disk: loaded once at start ([`load_ledger`]), written by [`LedgerWriter`]
//! in batches off the request path (the accounts that changed, about once a second) and a
//! last time at shutdown, after the server has stopped and every request has settled.
//!
//! A request never waits for this: it changes an account in memory and marks it; the writer
//! collects the marked accounts and writes them in one transaction. A failed write is logged
//! and retried with the next batch. Spend survives a restart exactly when the process is
//! stopped (SIGTERM, Ctrl-C); a crash loses at most the last second.

use std::sync::Arc;
use std::time::Duration;

use portico_core::Clock;
use portico_limits::Ledger;
use portico_store::{SpendStore, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Puts the persisted spend and rate windows back into `ledger`; returns how many subjects.
pub async fn load_ledger(
    ledger: &Ledger,
    store: &dyn SpendStore,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let states = store.load_spend().await?;
    ledger.restore(&states, now_ms);
    Ok(states.len())
}

/// Writes the accounts that changed since the last write; returns how many.
async fn flush(ledger: &Ledger, store: &dyn SpendStore, now_ms: i64) -> Result<usize, StoreError> {
    let states = ledger.take_changed(now_ms);
    if states.is_empty() {
        return Ok(0);
    }
    match store.save_spend(&states).await {
        Ok(()) => Ok(states.len()),
        Err(err) => {
            ledger.mark_changed(states.into_iter().map(|s| s.subject));
            Err(err)
        }
    }
}

/// The background writer of the ledger.
pub struct LedgerWriter {
    ledger: Arc<Ledger>,
    store: Arc<dyn SpendStore>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for LedgerWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerWriter").finish_non_exhaustive()
    }
}

impl LedgerWriter {
    /// Starts writing `ledger` to `store` every `every`. Must be called inside a Tokio
    /// runtime.
    pub fn start(
        ledger: Arc<Ledger>,
        store: Arc<dyn SpendStore>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> LedgerWriter {
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(write_loop(
            Arc::clone(&ledger),
            Arc::clone(&store),
            Arc::clone(&clock),
            every,
            stop.clone(),
        ));
        tasks.close();
        LedgerWriter {
            ledger,
            store,
            clock,
            stop,
            tasks,
        }
    }

    /// Stops the loop and writes what changed since its last write. Call it after the server
    /// has stopped, so that every request has settled.
    pub async fn shutdown(self) -> Result<usize, StoreError> {
        self.stop.cancel();
        self.tasks.wait().await;
        flush(&self.ledger, &*self.store, self.clock.now_ms()).await
    }
}

async fn write_loop(
    ledger: Arc<Ledger>,
    store: Arc<dyn SpendStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = flush(&ledger, &*store, clock.now_ms()).await {
            tracing::warn!(error = %err, "could not write the budgets' spend; retrying with the next batch");
        }
    }
}
