//! A gateway's spend: charged locally, spooled to disk, delivered to the control plane once.
//!
//! The same outbox serves `portico serve` on a shared database without Redis: there a
//! batch goes to the database itself ([`SpendOutbox::deliver_to_store`], which applies it
//! with `SpendStore::apply_delivery`), not to a control plane over HTTP. What follows holds
//! for both, with "control plane" read as "the database" and "snapshot" as "the totals read
//! back from it" (`SpendStore::load_spend`).
//!
//! **Source.** The limits policy reports every settled charge to its
//! [`LimitObserver`] (`charged(subject, cost, tokens)`), right after the ledger account took
//! it. [`SpendObserver`] passes the report on (to the metrics) and adds it to the
//! [`SpendOutbox`], keyed by subject and by the budget period it was charged in: the period
//! of the account's budget (`Account::last_limits`), starting where the clock puts it. A
//! subject without a budget (a rate limit only) has no spend to deliver; its rate window
//! stays local to the gateway.
//!
//! **Batches.** About once a second the pending charges become a [`SpendBatch`] with a new
//! UUID v7, written to `spend-spool/<id>.json` in the data dir (atomically) *before* it is
//! sent, and sent in id order until the control plane answers 2xx. The control plane applies
//! a batch id once (a resend after a lost answer changes nothing), so a batch is counted
//! exactly once whatever fails: the link, the control plane, or the gateway (a restart sends
//! what the spool holds). Charges not yet written to the spool (at most the last second's)
//! are lost if the gateway itself crashes; SIGTERM writes and sends them.
//!
//! **Local enforcement.** The gateway's ledger starts from the snapshot's spend (what the
//! control plane knows, every gateway's delivered spend included) plus what this gateway
//! charged that the snapshot does not include ([`SpendOutbox::undelivered`]), and is reset
//! that way on every new snapshot ([`restore_ledger`]). A batch is in a snapshot when the
//! control plane applied it before it read its spend for that snapshot; the receipt's
//! `applied_at_ms` and the document's `spend_at_ms` are both the control plane's clock, so
//! the comparison needs no clock agreement. An acknowledged batch stays counted on top of
//! snapshots until one covers it (kept as `spend-spool/<id>.acked` so this survives a
//! restart too), which errs towards counting a batch twice for a moment, never zero times.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portico_core::{Clock, LimitKind, LimitObserver, Period, SpendState, Subject};
use portico_limits::Ledger;
use portico_store::{SpendStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::at_rest::write_atomic;
use crate::client::{ControlPlane, SyncError};
use crate::document::SpendDoc;
use crate::wire::{SpendBatch, SpendDelta, SpendReceipt};

/// The spool's directory in the data dir.
pub const SPOOL_DIR: &str = "spend-spool";

/// Where a [`SpendOutbox`] delivers its batches: a gateway's control plane over HTTP
/// ([`SpendOutbox::deliver`]), or a shared database directly
/// ([`SpendOutbox::deliver_to_store`]). The receiver applies a batch id at most once (a
/// resend after a lost answer changes nothing): that is what makes delivery exactly once.
trait SpendTarget: Send + Sync {
    /// Why a delivery failed (the batch stays in the spool and is sent again).
    type Error;

    /// Applies `batch` unless its id was applied before. The receipt's `applied_at_ms` is
    /// on the clock of whoever reads the totals back, so that [`SpendOutbox::undelivered`]
    /// can tell whether a read includes the batch.
    fn deliver(
        &self,
        batch: &SpendBatch,
    ) -> impl Future<Output = Result<SpendReceipt, Self::Error>> + Send;
}

impl SpendTarget for ControlPlane {
    type Error = SyncError;

    async fn deliver(&self, batch: &SpendBatch) -> Result<SpendReceipt, SyncError> {
        self.deliver_spend(batch).await
    }
}

/// A database every process shares, on the clock of the process that reads it back.
struct StoreTarget<'a> {
    store: &'a dyn SpendStore,
    clock: &'a dyn Clock,
}

impl SpendTarget for StoreTarget<'_> {
    type Error = StoreError;

    async fn deliver(&self, batch: &SpendBatch) -> Result<SpendReceipt, StoreError> {
        let applied = self
            .store
            .apply_delivery(&batch.batch, &batch.deltas)
            .await?;
        // Taken once the transaction committed: a read of the totals that starts later
        // includes the batch.
        Ok(SpendReceipt {
            applied,
            applied_at_ms: self.clock.now_ms(),
        })
    }
}

/// Charges of one subject in one period.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    subject: Subject,
    period: Period,
    period_start_ms: i64,
}

/// A batch the control plane acknowledged, until a snapshot includes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Acked {
    applied_at_ms: i64,
    batch: SpendBatch,
}

#[derive(Debug, Default)]
struct State {
    /// Charged since the last batch was cut.
    pending: HashMap<Slot, (f64, u64)>,
    /// Batches cut and not acknowledged, in id order.
    spooled: Vec<SpendBatch>,
    /// Batches acknowledged and perhaps not in the snapshot in force.
    acked: Vec<Acked>,
}

/// A gateway's charges on their way to the control plane; see the module docs.
pub struct SpendOutbox {
    ledger: Arc<Ledger>,
    clock: Arc<dyn Clock>,
    dir: PathBuf,
    state: Mutex<State>,
    /// One delivery at a time, so batches go in order and none is sent twice at once.
    sending: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SpendOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendOutbox")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SpendOutbox {
    /// The outbox of the gateway whose data dir is `data_dir`, charging periods by the
    /// budgets of `ledger`'s accounts; batches left in the spool by an earlier run are
    /// taken up (sent first).
    pub fn open(
        data_dir: &Path,
        ledger: Arc<Ledger>,
        clock: Arc<dyn Clock>,
    ) -> io::Result<SpendOutbox> {
        let dir = data_dir.join(SPOOL_DIR);
        portico_store::private_files::create_dir_all(&dir)?;
        portico_store::private_files::tighten(&dir);
        let mut state = State::default();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for path in names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "json" && ext != "acked" {
                continue;
            }
            let parsed = std::fs::read(&path).and_then(|bytes| {
                if ext == "json" {
                    serde_json::from_slice::<SpendBatch>(&bytes)
                        .map(|b| state.spooled.push(b))
                        .map_err(io::Error::other)
                } else {
                    serde_json::from_slice::<Acked>(&bytes)
                        .map(|a| state.acked.push(a))
                        .map_err(io::Error::other)
                }
            });
            if let Err(err) = parsed {
                // Set aside rather than deleted (it may be worth a look) or retried forever.
                let bad = path.with_extension(format!("{ext}.bad"));
                let _ = std::fs::rename(&path, &bad);
                tracing::error!(
                    path = %path.display(),
                    "spend spool: an unreadable batch was set aside as {}: {err}",
                    bad.display()
                );
            }
        }
        // A crash between writing the acknowledgement and removing the batch leaves both.
        let acked: Vec<String> = state.acked.iter().map(|a| a.batch.batch.clone()).collect();
        state.spooled.retain(|b| {
            let done = acked.contains(&b.batch);
            if done {
                let _ = std::fs::remove_file(dir.join(format!("{}.json", b.batch)));
            }
            !done
        });
        if !state.spooled.is_empty() {
            tracing::info!(
                batches = state.spooled.len(),
                "spend spool: batches from an earlier run will be delivered"
            );
        }
        Ok(SpendOutbox {
            ledger,
            clock,
            dir,
            state: Mutex::new(state),
            sending: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is a few statements that cannot panic half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a settled charge of the account labelled `label` (`key:service`).
    pub fn charge(&self, label: &str, cost_usd: f64, tokens: u64) {
        let Some(subject) = Subject::parse(label) else {
            return;
        };
        let Some(period) = self
            .ledger
            .get(&subject)
            .and_then(|account| account.last_limits())
            .and_then(|limits| limits.budget)
            .map(|budget| budget.period)
        else {
            return;
        };
        let slot = Slot {
            subject,
            period,
            period_start_ms: period.start(self.clock.now_ms()),
        };
        let cost = if cost_usd.is_finite() {
            cost_usd.max(0.0)
        } else {
            0.0
        };
        let mut state = self.lock();
        let sum = state.pending.entry(slot).or_insert((0.0, 0));
        sum.0 += cost;
        sum.1 = sum.1.saturating_add(tokens);
    }

    /// Cuts the pending charges into a batch and writes it to the spool.
    pub(crate) fn cut(&self) {
        let mut state = self.lock();
        if state.pending.is_empty() {
            return;
        }
        let deltas = std::mem::take(&mut state.pending)
            .into_iter()
            .map(|(slot, (cost_usd, tokens))| SpendDelta {
                subject: slot.subject,
                period: Some(slot.period),
                period_start_ms: slot.period_start_ms,
                cost_usd,
                tokens,
            })
            .collect();
        let batch = SpendBatch {
            batch: uuid::Uuid::now_v7().to_string(),
            deltas,
        };
        // Written under the lock (a small file): a batch is never both pending and spooled,
        // nor neither, for `undelivered`.
        if let Err(err) = self.write(&format!("{}.json", batch.batch), &batch) {
            tracing::error!(
                batch = %batch.batch,
                "spend spool: cannot write the batch ({err}); it is kept in memory and sent, but a crash before then loses it"
            );
        }
        state.spooled.push(batch);
    }

    fn write(&self, name: &str, value: &impl Serialize) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(name), &bytes)
    }

    /// Cuts a batch of what is pending, then sends every spooled batch in order until one
    /// fails; answers how many were acknowledged.
    pub async fn deliver(&self, control_plane: &ControlPlane) -> Result<usize, SyncError> {
        self.deliver_to(control_plane).await
    }

    /// [`SpendOutbox::deliver`] straight to `store`, a database other processes share
    /// (`portico serve` on PostgreSQL without Redis): each batch is applied with
    /// `SpendStore::apply_delivery`, once per id, and acknowledged at this outbox's clock
    /// once committed.
    pub async fn deliver_to_store(&self, store: &dyn SpendStore) -> Result<usize, StoreError> {
        let target = StoreTarget {
            store,
            clock: &*self.clock,
        };
        self.deliver_to(&target).await
    }

    async fn deliver_to<T: SpendTarget>(&self, target: &T) -> Result<usize, T::Error> {
        let _one_at_a_time = self.sending.lock().await;
        self.cut();
        let batches = self.lock().spooled.clone();
        let mut delivered = 0;
        for batch in batches {
            let receipt = target.deliver(&batch).await?;
            let acked = Acked {
                applied_at_ms: receipt.applied_at_ms,
                batch,
            };
            let id = acked.batch.batch.clone();
            if let Err(err) = self.write(&format!("{id}.acked"), &acked) {
                tracing::warn!(batch = %id, "spend spool: cannot note the acknowledgement: {err}");
            }
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
            let mut state = self.lock();
            state.spooled.retain(|b| b.batch != id);
            state.acked.push(acked);
            delivered += 1;
        }
        Ok(delivered)
    }

    /// What this gateway charged that a snapshot whose spend was read at `spend_at_ms`
    /// (control plane clock) may not include: pending, spooled, and acknowledged at or after
    /// that instant.
    pub fn undelivered(&self, spend_at_ms: i64) -> Vec<SpendDelta> {
        let state = self.lock();
        let pending = state
            .pending
            .iter()
            .map(|(slot, (cost_usd, tokens))| SpendDelta {
                subject: slot.subject.clone(),
                period: Some(slot.period),
                period_start_ms: slot.period_start_ms,
                cost_usd: *cost_usd,
                tokens: *tokens,
            });
        let spooled = state.spooled.iter().flat_map(|b| b.deltas.iter().cloned());
        let acked = state
            .acked
            .iter()
            .filter(|a| a.applied_at_ms >= spend_at_ms)
            .flat_map(|a| a.batch.deltas.iter().cloned());
        pending.chain(spooled).chain(acked).collect()
    }

    /// Forgets acknowledged batches that a snapshot whose spend was read at `spend_at_ms`
    /// includes. Call it once that snapshot is saved, so a restart counts them from it.
    pub fn covered_by(&self, spend_at_ms: i64) {
        let mut state = self.lock();
        state.acked.retain(|a| {
            let keep = a.applied_at_ms >= spend_at_ms;
            if !keep {
                let _ = std::fs::remove_file(self.dir.join(format!("{}.acked", a.batch.batch)));
            }
            keep
        });
    }

    /// Batches waiting to be delivered (and whether charges are pending).
    pub fn backlog(&self) -> (usize, bool) {
        let state = self.lock();
        (state.spooled.len(), !state.pending.is_empty())
    }
}

/// Resets `ledger`'s budget spend to the snapshot's `spend` plus `own` (this gateway's
/// charges the snapshot does not include), for the periods in progress at `now_ms`. Rate
/// windows are left as they are: they are per gateway.
pub fn restore_ledger(ledger: &Ledger, spend: &[SpendDoc], own: &[SpendDelta], now_ms: i64) {
    let mut totals: HashMap<(Subject, Period), (f64, u64)> = HashMap::new();
    let entries = spend
        .iter()
        .filter_map(|s| {
            let subject = s.subject()?;
            Some((subject, s.period, s.period_start_ms, s.cost_usd, s.tokens))
        })
        .chain(own.iter().filter_map(|d| {
            d.period.map(|p| {
                (
                    d.subject.clone(),
                    p,
                    d.period_start_ms,
                    d.cost_usd,
                    d.tokens,
                )
            })
        }));
    for (subject, period, start, cost, tokens) in entries {
        let total = totals.entry((subject, period)).or_insert((0.0, 0));
        // A period that has ended counts for nothing now.
        if start == period.start(now_ms) {
            total.0 += cost;
            total.1 = total.1.saturating_add(tokens);
        }
    }
    let states: Vec<SpendState> = totals
        .into_iter()
        .map(|((subject, period), (cost_usd, tokens))| SpendState {
            subject,
            period: Some(period),
            period_start_ms: period.start(now_ms),
            cost_usd,
            tokens,
            window: Vec::new(),
            updated_at_ms: now_ms,
        })
        .collect();
    ledger.restore(&states, now_ms);
}

/// The limits policy's observer on a gateway: every charge also goes to the outbox.
pub struct SpendObserver {
    outbox: Arc<SpendOutbox>,
    next: Option<Arc<dyn LimitObserver>>,
}

impl SpendObserver {
    /// Charges go to `outbox`, and every report also to `next` (the metrics).
    pub fn new(outbox: Arc<SpendOutbox>, next: Option<Arc<dyn LimitObserver>>) -> SpendObserver {
        SpendObserver { outbox, next }
    }
}

impl LimitObserver for SpendObserver {
    fn refused(&self, subject: &str, limit: LimitKind) {
        if let Some(next) = &self.next {
            next.refused(subject, limit);
        }
    }

    fn charged(&self, subject: &str, cost_usd: f64, tokens: u64) {
        self.outbox.charge(subject, cost_usd, tokens);
        if let Some(next) = &self.next {
            next.charged(subject, cost_usd, tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use portico_core::{BudgetSpec, Limits, ManualClock};
    use portico_limits::{Charge, Estimate, Hold};

    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn budget(period: Period) -> Limits {
        Limits {
            budget: Some(BudgetSpec {
                cost_usd: Some(10.0),
                tokens: None,
                period,
            }),
            rate_limit: None,
        }
    }

    /// A ledger where `key:service` has a monthly budget and was charged `cost`, as the
    /// limits policy leaves it before it calls the observer.
    fn charged_ledger(ledger: &Ledger, cost: f64) {
        let account = ledger.account(&Subject::Key("service".into()));
        let hold =
            Hold::reserve(account, budget(Period::Month), NOW, &Estimate::default()).unwrap();
        hold.settle(
            Charge {
                cost_usd: cost,
                tokens: 5,
            },
            NOW,
        );
    }

    fn outbox(dir: &Path, ledger: &Arc<Ledger>) -> SpendOutbox {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(NOW));
        SpendOutbox::open(dir, Arc::clone(ledger), clock).unwrap()
    }

    #[test]
    fn charges_are_summed_per_subject_and_period_and_spooled_before_sending() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::new());
        charged_ledger(&ledger, 0.25);
        let out = outbox(dir.path(), &ledger);
        out.charge("key:service", 0.25, 5);
        out.charge("key:service", 0.5, 7);
        // No budget, no account, not a subject: nothing to deliver.
        out.charge("provider:unlimited", 1.0, 1);
        out.charge("nonsense", 1.0, 1);
        let undelivered = out.undelivered(0);
        assert_eq!(undelivered.len(), 1);
        assert_eq!(undelivered[0].cost_usd, 0.75);
        assert_eq!(undelivered[0].tokens, 12);
        assert_eq!(undelivered[0].period, Some(Period::Month));
        assert_eq!(undelivered[0].period_start_ms, Period::Month.start(NOW));

        out.cut();
        assert_eq!(out.backlog(), (1, false));
        let spooled: Vec<_> = std::fs::read_dir(dir.path().join(SPOOL_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(spooled.len(), 1);
        let batch: SpendBatch =
            serde_json::from_slice(&std::fs::read(&spooled[0]).unwrap()).unwrap();
        assert_eq!(batch.deltas, undelivered);
        assert_eq!(out.undelivered(0), undelivered, "spooled still counts");

        // A restart takes the spool up again.
        drop(out);
        let again = outbox(dir.path(), &ledger);
        assert_eq!(again.backlog(), (1, false));
        assert_eq!(again.undelivered(0), undelivered);
    }

    #[test]
    fn acknowledged_batches_count_until_a_snapshot_covers_them_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::new());
        charged_ledger(&ledger, 1.0);
        let out = outbox(dir.path(), &ledger);
        out.charge("key:service", 1.0, 5);
        out.cut();
        // As `deliver` does on a 2xx applied at 5_000 (control plane clock).
        let batch = out.lock().spooled.remove(0);
        let acked = Acked {
            applied_at_ms: 5_000,
            batch,
        };
        out.write(&format!("{}.acked", acked.batch.batch), &acked)
            .unwrap();
        let _ = std::fs::remove_file(
            dir.path()
                .join(SPOOL_DIR)
                .join(format!("{}.json", acked.batch.batch)),
        );
        out.lock().acked.push(acked);
        assert_eq!(
            out.undelivered(4_000).len(),
            1,
            "an older snapshot lacks it"
        );
        assert_eq!(
            out.undelivered(5_000).len(),
            1,
            "same instant: maybe not in it"
        );
        assert!(out.undelivered(5_001).is_empty(), "a later snapshot has it");
        drop(out);
        let again = outbox(dir.path(), &ledger);
        assert_eq!(again.backlog(), (0, false), "nothing to resend");
        assert_eq!(again.undelivered(4_000).len(), 1);
        again.covered_by(6_000);
        assert!(again.undelivered(0).is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join(SPOOL_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn batches_delivered_to_a_shared_store_are_applied_once_even_when_resent() {
        let dir = tempfile::tempdir().unwrap();
        let store = portico_store::SqlStore::open_in_memory(portico_store::MasterKey::generate())
            .await
            .unwrap();
        let ledger = Arc::new(Ledger::new());
        charged_ledger(&ledger, 1.0);
        let out = outbox(dir.path(), &ledger);
        out.charge("key:service", 1.0, 5);
        out.cut();
        // The first answer was lost: the store has the batch, the spool still holds it.
        let batch = out.lock().spooled[0].clone();
        assert!(
            store
                .apply_delivery(&batch.batch, &batch.deltas)
                .await
                .unwrap()
        );
        out.charge("key:service", 0.5, 3);
        assert_eq!(out.deliver_to_store(&store).await.unwrap(), 2);
        assert_eq!(out.backlog(), (0, false));
        let stored = store.load_spend().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].cost_usd, stored[0].tokens), (1.5, 8));
        // Acknowledged on the outbox's clock (NOW): a read of the totals begun then may
        // lack them, one begun later has them.
        assert_eq!(out.undelivered(NOW).len(), 2);
        assert!(out.undelivered(NOW + 1).is_empty());
        assert_eq!(
            out.deliver_to_store(&store).await.unwrap(),
            0,
            "nothing new"
        );
    }

    #[test]
    fn an_unreadable_spool_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join(SPOOL_DIR);
        std::fs::create_dir_all(&spool).unwrap();
        std::fs::write(spool.join("x.json"), b"{cut short").unwrap();
        let out = outbox(dir.path(), &Arc::new(Ledger::new()));
        assert_eq!(out.backlog(), (0, false));
        assert!(spool.join("x.json.bad").exists());
    }

    #[test]
    fn the_ledger_is_restored_from_the_snapshot_plus_own_charges_of_the_current_period() {
        let ledger = Ledger::new();
        let month = Period::Month.start(NOW);
        let spend = vec![
            SpendDoc {
                subject: "key:service".into(),
                period: Period::Month,
                period_start_ms: month,
                cost_usd: 2.0,
                tokens: 20,
            },
            // Last month's spend of another subject: nothing now.
            SpendDoc {
                subject: "budget:team".into(),
                period: Period::Month,
                period_start_ms: Period::Month.start(month - 1),
                cost_usd: 9.0,
                tokens: 90,
            },
        ];
        let own = vec![SpendDelta {
            subject: Subject::Key("service".into()),
            period: Some(Period::Month),
            period_start_ms: month,
            cost_usd: 0.5,
            tokens: 5,
        }];
        restore_ledger(&ledger, &spend, &own, NOW);
        let service = ledger
            .get(&Subject::Key("service".into()))
            .unwrap()
            .budget_status(Period::Month, NOW);
        assert_eq!(service.cost_usd_spent, 2.5);
        assert_eq!(service.tokens_spent, 25);
        let team = ledger
            .get(&Subject::Budget("team".into()))
            .unwrap()
            .budget_status(Period::Month, NOW);
        assert_eq!(team.cost_usd_spent, 0.0);
    }
}
