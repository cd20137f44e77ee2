//! Budgets on a shared database without Redis: every `portico serve` process delivers its
//! charges to the database as deltas, exactly once, and follows the database's totals.
//!
//! Why: each process enforces budgets on its own in-memory ledger. With Redis the shared
//! limits keep every ledger at Redis's figures, so writing each subject's state as it is
//! (the engine's `LedgerWriter`) stores the same figure whichever process writes. Without
//! Redis each process's ledger holds its own charges only, and absolute writes overwrite
//! each other's spend: spend is lost and a budget holds per process. So in this mode the
//! ledger is never written as it is; instead:
//!
//! - **Charges.** The limits policy reports each settled charge to its observer
//!   ([`SharedSpend::observer`], chained before the metrics); a `portico_hybrid::SpendOutbox`
//!   sums them per subject and budget period, cuts a batch with a UUID about once a second,
//!   writes it to `spend-spool/` in the data dir, and applies it with
//!   `SpendStore::apply_delivery`, which adds it in one transaction once per batch id. A
//!   batch that fails (database away) stays in the spool and is applied later, after a
//!   restart too; a lost answer resends a batch the database skips. A crash loses the
//!   charges not yet cut (at most the last second's); SIGTERM delivers them.
//! - **Totals.** After each delivery the process reads every subject's total back
//!   (`SpendStore::load_spend`) and sets its ledger to it plus its own charges not yet in it
//!   (`portico_hybrid::restore_ledger`), the way a hybrid gateway follows its snapshots.
//!
//! So a budget is shared across processes with a lag: a charge on one process is in the
//! database within one interval, and in another process's ledger within one more. For a
//! budget `B` of which `S` was spent as every process knows, `N` processes can each admit up
//! to `B - S` on their own before they learn of the others' charges: the overspend is at
//! most what the other `N - 1` processes charge in those two intervals (about 2 s), never
//! more than `(N - 1)·(B - S)`, plus each process's in-flight margin (`docs/budgets.md`).
//! While the database is away the window is the outage, as for a hybrid gateway whose link
//! is down.
//!
//! What is not shared in this mode: rate-limit windows. They stay in each process's memory
//! (`N` processes admit up to `N` times a per-minute limit) and are not written, since a
//! window written by one process would overwrite another's row with its spend.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portico_core::{Clock, LimitObserver, SpendState};
use portico_hybrid::{SpendDoc, SpendObserver, SpendOutbox, restore_ledger};
use portico_limits::Ledger;
use portico_store::{SpendStore, StoreError};
use tokio_util::sync::CancellationToken;

/// The spend of one process on a database it shares with others; see the module docs.
pub(crate) struct SharedSpend {
    outbox: Arc<SpendOutbox>,
    store: Arc<dyn SpendStore>,
    ledger: Arc<Ledger>,
    clock: Arc<dyn Clock>,
}

impl SharedSpend {
    /// Opens the spool in `data_dir` (batches an earlier run left are applied first) for
    /// the charges of `ledger`, delivered to `store`.
    pub(crate) fn open(
        data_dir: &Path,
        ledger: Arc<Ledger>,
        store: Arc<dyn SpendStore>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<SharedSpend> {
        let outbox = SpendOutbox::open(data_dir, Arc::clone(&ledger), Arc::clone(&clock))?;
        Ok(SharedSpend {
            outbox: Arc::new(outbox),
            store,
            ledger,
            clock,
        })
    }

    /// The limits policy's observer: each charge goes to the outbox, every report also to
    /// `next` (the metrics).
    pub(crate) fn observer(&self, next: Arc<dyn LimitObserver>) -> Arc<dyn LimitObserver> {
        Arc::new(SpendObserver::new(Arc::clone(&self.outbox), Some(next)))
    }

    /// One round: applies what is pending and spooled, then sets the ledger to the
    /// database's totals plus what is not in them. Answers the first error; the totals are
    /// read even when the delivery failed, since the others' spend counts all the same.
    ///
    /// Call it from one task at a time: the read below counts on every batch acknowledged
    /// so far having been committed before it began.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let delivered = self.outbox.deliver_to_store(&*self.store).await;
        let states = self.store.load_spend().await?;
        // The delivery above returned before this read began and no other runs meanwhile,
        // so the totals include every acknowledged batch, whatever the clock says: none
        // counts on top of them (a millisecond clock cannot tell the commit and the read
        // apart).
        let everything_acknowledged = i64::MAX;
        let own = self.outbox.undelivered(everything_acknowledged);
        let totals: Vec<SpendDoc> = states.iter().filter_map(doc_of).collect();
        restore_ledger(&self.ledger, &totals, &own, self.clock.now_ms());
        self.outbox.covered_by(everything_acknowledged);
        delivered.map(|_| ())
    }

    /// Runs [`SharedSpend::sync`] every `every` until `stop`; a failure is logged once
    /// until it clears (the spool keeps what was not applied).
    pub(crate) async fn run(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            let synced = tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => tokio::select! {
                    // Abandoning a delivery is safe: uncommitted, it is sent again by
                    // `shutdown`; committed, the database skips its id then.
                    () = stop.cancelled() => return,
                    synced = self.sync() => synced,
                },
            };
            match synced {
                Ok(()) => {
                    if failing.take().is_some() {
                        tracing::info!("budgets' spend: the shared database takes it again");
                    }
                }
                Err(err) => {
                    let text = err.to_string();
                    if failing.as_deref() != Some(text.as_str()) {
                        tracing::warn!(
                            error = %text,
                            "budgets' spend: cannot deliver it to or read it from the shared database; budgets are enforced on what this process knows, and its charges wait in the spool"
                        );
                        failing = Some(text);
                    }
                }
            }
        }
    }

    /// At shutdown, after every request settled and [`SharedSpend::run`] ended: applies
    /// what is left within `limit`; what is not waits in the spool for the next start.
    pub(crate) async fn shutdown(&self, limit: Duration) {
        let delivered =
            tokio::time::timeout(limit, self.outbox.deliver_to_store(&*self.store)).await;
        let (left, _) = self.outbox.backlog();
        match delivered {
            Ok(Ok(batches)) if left == 0 => {
                tracing::info!(batches, "budgets' spend delivered to the shared database");
            }
            Ok(Err(err)) => tracing::error!(
                batches = left,
                error = %err,
                "budgets' spend: cannot deliver it to the shared database; the spool is delivered at the next start"
            ),
            _ => tracing::error!(
                batches = left,
                "budgets' spend: not all delivered in time; the spool is delivered at the next start"
            ),
        }
    }
}

/// A stored budget total in the form `restore_ledger` takes; a subject without a budget
/// period (a rate limit only) has none.
fn doc_of(state: &SpendState) -> Option<SpendDoc> {
    Some(SpendDoc {
        subject: state.subject.to_string(),
        period: state.period?,
        period_start_ms: state.period_start_ms,
        cost_usd: state.cost_usd,
        tokens: state.tokens,
    })
}

#[cfg(test)]
mod tests {
    use portico_core::{BudgetSpec, Limits, ManualClock, Period, Subject};
    use portico_limits::{Charge, Estimate, Hold};
    use portico_store::{MasterKey, SqlStore};

    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn limits() -> Limits {
        Limits {
            budget: Some(BudgetSpec {
                cost_usd: None,
                tokens: Some(100),
                period: Period::Month,
            }),
            rate_limit: None,
        }
    }

    fn service() -> Subject {
        Subject::Key("service".into())
    }

    /// A process: its own ledger and spool, on the shared `store`.
    struct Process {
        ledger: Arc<Ledger>,
        spend: SharedSpend,
        observer: Arc<dyn LimitObserver>,
        dir: tempfile::TempDir,
    }

    struct Nothing;

    impl LimitObserver for Nothing {
        fn refused(&self, _: &str, _: portico_core::LimitKind) {}
        fn charged(&self, _: &str, _: f64, _: u64) {}
    }

    impl Process {
        fn start(store: &SqlStore) -> Process {
            let dir = tempfile::tempdir().unwrap();
            let ledger = Arc::new(Ledger::new());
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(NOW));
            let spend = SharedSpend::open(
                dir.path(),
                Arc::clone(&ledger),
                Arc::new(store.clone()),
                clock,
            )
            .unwrap();
            let observer = spend.observer(Arc::new(Nothing));
            Process {
                ledger,
                spend,
                observer,
                dir,
            }
        }

        /// A request admitted and charged `tokens`, as the limits policy does it.
        fn charge(&self, tokens: u64) {
            let account = self.ledger.account(&service());
            let hold = Hold::reserve(account, limits(), NOW, &Estimate::default()).unwrap();
            hold.settle(
                Charge {
                    cost_usd: 0.0,
                    tokens,
                },
                NOW,
            );
            self.observer.charged("key:service", 0.0, tokens);
        }

        fn spent(&self) -> u64 {
            self.ledger
                .get(&service())
                .unwrap()
                .budget_status(Period::Month, NOW)
                .tokens_spent
        }
    }

    async fn stored(store: &SqlStore) -> u64 {
        store
            .load_spend()
            .await
            .unwrap()
            .iter()
            .find(|s| s.subject == service())
            .map_or(0, |s| s.tokens)
    }

    #[tokio::test]
    async fn two_processes_add_up_in_the_database_and_each_follows_the_total() {
        let store = SqlStore::open_in_memory(MasterKey::generate())
            .await
            .unwrap();
        let (a, b) = (Process::start(&store), Process::start(&store));
        a.charge(30);
        b.charge(20);
        assert_eq!(
            (a.spent(), b.spent()),
            (30, 20),
            "each knows its own at once"
        );

        a.spend.sync().await.unwrap();
        assert_eq!(a.spent(), 30, "b has delivered nothing yet");
        b.charge(5);
        b.spend.sync().await.unwrap();
        assert_eq!(b.spent(), 55);
        assert_eq!(stored(&store).await, 55, "added, not overwritten");

        // Charged since the last round: counted on top of the totals until delivered.
        a.charge(10);
        a.spend.sync().await.unwrap();
        assert_eq!(a.spent(), 65);
        a.charge(1);
        b.spend.sync().await.unwrap();
        assert_eq!(b.spent(), 65, "a's last charge is not delivered yet");
        assert_eq!(a.spent(), 66);
        a.spend.shutdown(Duration::from_secs(5)).await;
        assert_eq!(stored(&store).await, 66);
    }

    #[tokio::test]
    async fn a_batch_the_database_could_not_take_is_applied_once_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let master = MasterKey::generate();
        let store = SqlStore::open(&path, master.clone()).await.unwrap();
        let a = Process::start(&store);
        a.charge(7);
        // The database goes away before the last delivery: the batch stays in the spool.
        store.close().await;
        a.spend.shutdown(Duration::from_secs(5)).await;
        assert_eq!(a.spend.outbox.backlog(), (1, false));

        let store = SqlStore::open(&path, master).await.unwrap();
        let ledger = Arc::new(Ledger::new());
        let again = SharedSpend::open(
            a.dir.path(),
            Arc::clone(&ledger),
            Arc::new(store.clone()),
            Arc::new(ManualClock::at(NOW)),
        )
        .unwrap();
        again.sync().await.unwrap();
        again.sync().await.unwrap();
        assert_eq!(stored(&store).await, 7);
        assert_eq!(
            ledger
                .get(&service())
                .unwrap()
                .budget_status(Period::Month, NOW)
                .tokens_spent,
            7
        );
    }
}
