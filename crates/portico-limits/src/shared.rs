//! A ledger shared by many gateway processes: the [`SharedLimits`] trait a backend (Redis,
//! in `portico-redis`) implements, and [`SharedHold`], one request's reservation on it.
//!
//! The contract is the in-memory ledger's (docs/budgets.md): a request is admitted on all of
//! its subjects or on none, in one step; its estimate is held while it is in flight; its
//! settlement releases the estimate and charges the reported usage; the refusals are the
//! same [`Refusal`] values, so a client sees the same 412 and 429. What differs:
//!
//! - **Admission awaits the backend** (one round trip for all the request's subjects), and
//!   may fail for the backend's own reasons: [`SharedRefusal::Unavailable`] (a 503 saying
//!   what failed and in which mode), or, when the backend fails open, an admission with
//!   nothing reserved ([`SharedAdmission::Unchecked`]) that is still charged when it
//!   settles.
//! - **Settlement returns at once**: the backend queues it and applies it off the request
//!   path ([`SharedLimits::end`]).
//! - **A pricier attempt raises the hold without a check** ([`SharedHold::raise_cost_to`]):
//!   the attempt hook is synchronous, so it cannot ask the backend; the extra is held (other
//!   processes see it) but never refuses. A fallback to a pricier target can overshoot a
//!   shared budget by the difference, as one to a target of unknown price already can.
//!
//! The local [`Account`]s still exist for the shared subjects: the backend copies the shared
//! figures into them ([`Account::replace_shared`]) so that the admin API and the persistence
//! of the ledger show them; nothing is checked against them.

use std::sync::Arc;

use async_trait::async_trait;
use portico_core::{ApiError, Limits, Period, RateLimitSpec, WindowBucket};

use crate::account::{self, Account, Reserved};
use crate::estimate::{Charge, Estimate};
use crate::refusal::{BudgetDimension, Refusal};
use crate::window::{WINDOW_SECS, Window, second_of};

/// Why a shared admission refused a request.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedRefusal {
    /// A budget or rate limit has no room: the same 412 or 429 as the in-memory ledger's.
    Limit(Refusal),
    /// The backend could not be asked and fails closed for this limit: a 503 whose message
    /// says what failed and how to change the mode.
    Unavailable(Box<ApiError>),
}

/// What a shared admission did.
#[derive(Debug, Clone, PartialEq)]
pub enum SharedAdmission {
    /// Reserved on every subject: one [`Reserved`] per subject, in order, and the backend's
    /// ticket for the reservation (given back when it ends).
    Reserved {
        /// What each subject holds.
        reserved: Vec<Reserved>,
        /// The backend's own handle on the reservation.
        ticket: u64,
    },
    /// Admitted without a check (the backend is away and fails open): nothing is held, the
    /// usage is still charged when the request ends.
    Unchecked,
}

/// How one subject's part of a reservation ends.
#[derive(Debug, Clone)]
pub struct SharedEnd {
    /// The subject's local account (its label names the shared one).
    pub account: Arc<Account>,
    /// The limits the request was admitted under.
    pub limits: Limits,
    /// What was held (nothing when the admission was unchecked).
    pub reserved: Reserved,
    /// What to charge; `None` releases the reservation without charging anything (the
    /// request stays counted in the rate window).
    pub charge: Option<Charge>,
}

/// A ledger shared by many processes; see the module docs.
#[async_trait]
pub trait SharedLimits: Send + Sync + 'static {
    /// Admits a request estimated at `estimate` on every subject of `subjects` or on none,
    /// at `now_ms`, in one step.
    async fn reserve(
        &self,
        subjects: &[(Arc<Account>, Limits)],
        now_ms: i64,
        estimate: &Estimate,
    ) -> Result<SharedAdmission, SharedRefusal>;

    /// Holds `extra_usd` more on `account` for the reservation `ticket`, without a check;
    /// returns at once.
    fn raise(&self, ticket: u64, account: &Account, limits: &Limits, extra_usd: f64);

    /// Ends a reservation (`ticket`, `None` when the admission was unchecked) on each of its
    /// subjects at `now_ms` (`None`: the backend's own clock, for a hold dropped without
    /// settling); returns at once, the backend applies it off the request path.
    fn end(&self, ticket: Option<u64>, ends: Vec<SharedEnd>, now_ms: Option<i64>);
}

/// One subject's part of a [`SharedHold`].
#[derive(Debug)]
struct Entry {
    account: Arc<Account>,
    limits: Limits,
    reserved: Reserved,
}

/// One request's reservation on a shared ledger, across all of its shared subjects.
///
/// Like a [`crate::Hold`], it ends exactly once: settled ([`SharedHold::settle`]), or
/// released when dropped without that (the request is not charged).
pub struct SharedHold {
    backend: Arc<dyn SharedLimits>,
    entries: Vec<Entry>,
    ticket: Option<u64>,
    /// The estimated tokens, charged when the request is cut short before its usage came.
    estimated_tokens: u64,
    done: bool,
}

impl std::fmt::Debug for SharedHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedHold")
            .field("entries", &self.entries)
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl SharedHold {
    /// Admits a request estimated at `estimate` on every `(account, limits)` pair of
    /// `subjects` through `backend`, or on none.
    pub async fn reserve(
        backend: &Arc<dyn SharedLimits>,
        subjects: Vec<(Arc<Account>, Limits)>,
        now_ms: i64,
        estimate: &Estimate,
    ) -> Result<SharedHold, SharedRefusal> {
        for (account, limits) in &subjects {
            account.note_limits(limits);
        }
        let admission = backend.reserve(&subjects, now_ms, estimate).await?;
        let (reserved, ticket) = match admission {
            SharedAdmission::Reserved { reserved, ticket } => (reserved, Some(ticket)),
            SharedAdmission::Unchecked => (
                subjects
                    .iter()
                    .map(|(_, limits)| unchecked(limits, estimate))
                    .collect(),
                None,
            ),
        };
        let entries = subjects
            .into_iter()
            .zip(
                reserved
                    .into_iter()
                    .chain(std::iter::repeat(Reserved::default())),
            )
            .map(|((account, limits), reserved)| Entry {
                account,
                limits,
                reserved,
            })
            .collect();
        Ok(SharedHold {
            backend: Arc::clone(backend),
            entries,
            ticket,
            estimated_tokens: estimate.tokens,
            done: false,
        })
    }

    /// Whether the admission was checked (something is held).
    pub fn is_checked(&self) -> bool {
        self.ticket.is_some()
    }

    /// Raises the USD held to `cost_usd` on every subject with a cost budget that holds
    /// less (an attempt at a pricier model). Never refuses; see the module docs.
    pub fn raise_cost_to(&mut self, cost_usd: f64) {
        for entry in &mut self.entries {
            let has_cost = entry.limits.budget.is_some_and(|b| b.cost_usd.is_some());
            let extra = cost_usd - entry.reserved.cost_usd;
            if !has_cost || !extra.is_finite() || extra <= 0.0 {
                continue;
            }
            entry.reserved.cost_usd = cost_usd;
            if let Some(ticket) = self.ticket {
                self.backend
                    .raise(ticket, &entry.account, &entry.limits, extra);
            }
        }
    }

    /// Ends the reservation with the request's charge, or, with `None` (cut short before
    /// the provider reported its usage), with what was estimated, so that leaving early is
    /// no way around a budget. Calls `charged` with each subject's label and charge.
    pub fn settle(
        mut self,
        charge: Option<Charge>,
        now_ms: i64,
        mut charged: impl FnMut(&Arc<str>, Charge),
    ) {
        self.done = true;
        let ends = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|entry| {
                let charge = charge.unwrap_or(Charge {
                    cost_usd: entry.reserved.cost_usd,
                    tokens: self.estimated_tokens,
                });
                charged(entry.account.label(), charge);
                SharedEnd {
                    account: entry.account,
                    limits: entry.limits,
                    reserved: entry.reserved,
                    charge: Some(charge),
                }
            })
            .collect();
        self.backend.end(self.ticket, ends, Some(now_ms));
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        if self.done || self.entries.is_empty() {
            return;
        }
        // Release only: the request is not charged, its rate-window count stays.
        let ends = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|entry| SharedEnd {
                account: entry.account,
                limits: entry.limits,
                reserved: entry.reserved,
                charge: None,
            })
            .collect();
        // No clock here: the backend ends a release at its own time.
        self.backend.end(self.ticket, ends, None);
    }
}

/// What an unchecked admission would have held on a subject under `limits` (nothing is
/// held; this is what a cut-short request is charged).
fn unchecked(limits: &Limits, estimate: &Estimate) -> Reserved {
    match limits.budget {
        Some(_) => Reserved::new(estimate.cost_usd, estimate.tokens, None),
        None => Reserved::default(),
    }
}

/// The refusal of a budget of the subject shown as `label` (`key:ci`): the same value the
/// in-memory ledger gives, for a backend that checked elsewhere.
pub fn budget_refusal(
    label: &Arc<str>,
    period: Period,
    now_ms: i64,
    dimension: BudgetDimension,
) -> Refusal {
    account::budget_refusal(label, period, now_ms, dimension)
}

/// The refusal of the rate limit `rate` of the subject shown as `label`, for a request of
/// one more request and `tokens` more tokens at `now_ms`, given the window's seconds as a
/// backend counted them; `None` when it fits. `Retry-After` is computed as the in-memory
/// window computes it. Seconds a process with a clock ahead counted in the future count as
/// now.
pub fn rate_refusal(
    label: &Arc<str>,
    rate: &RateLimitSpec,
    buckets: &[WindowBucket],
    now_ms: i64,
    tokens: u64,
) -> Option<Refusal> {
    let now_s = second_of(now_ms);
    let clamped: Vec<WindowBucket> = buckets
        .iter()
        .filter(|b| b.second > now_s - WINDOW_SECS)
        .map(|b| WindowBucket {
            second: b.second.min(now_s),
            ..*b
        })
        .collect();
    let mut window = Window::new();
    window.restore(&clamped, now_s);
    account::rate_check(label, &window, rate, now_ms, 1, tokens)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use portico_core::{BudgetSpec, Subject};

    use super::*;

    /// A backend that admits (or not) and records what it was told.
    #[derive(Default)]
    struct Recorder {
        unchecked: bool,
        raised: Mutex<Vec<(u64, f64)>>,
        ended: Mutex<Vec<(Option<u64>, Vec<SharedEnd>)>>,
    }

    #[async_trait]
    impl SharedLimits for Recorder {
        async fn reserve(
            &self,
            subjects: &[(Arc<Account>, Limits)],
            _now_ms: i64,
            estimate: &Estimate,
        ) -> Result<SharedAdmission, SharedRefusal> {
            if self.unchecked {
                return Ok(SharedAdmission::Unchecked);
            }
            Ok(SharedAdmission::Reserved {
                reserved: subjects
                    .iter()
                    .map(|_| Reserved::new(estimate.cost_usd, estimate.tokens, Some((7, 3))))
                    .collect(),
                ticket: 42,
            })
        }

        fn raise(&self, ticket: u64, _account: &Account, _limits: &Limits, extra_usd: f64) {
            self.raised.lock().unwrap().push((ticket, extra_usd));
        }

        fn end(&self, ticket: Option<u64>, ends: Vec<SharedEnd>, _now_ms: Option<i64>) {
            self.ended.lock().unwrap().push((ticket, ends));
        }
    }

    fn cost_budget() -> Limits {
        Limits {
            budget: Some(BudgetSpec {
                cost_usd: Some(10.0),
                tokens: None,
                period: Period::Month,
            }),
            rate_limit: None,
        }
    }

    fn subjects() -> Vec<(Arc<Account>, Limits)> {
        vec![
            (
                Arc::new(Account::new(Subject::Key("a".into()))),
                cost_budget(),
            ),
            (
                Arc::new(Account::new(Subject::Budget("b".into()))),
                Limits {
                    budget: None,
                    rate_limit: Some(RateLimitSpec {
                        requests_per_minute: Some(5),
                        tokens_per_minute: None,
                    }),
                },
            ),
        ]
    }

    #[tokio::test]
    async fn a_hold_raises_settles_and_releases_through_its_backend() {
        let recorder = Arc::new(Recorder::default());
        let backend: Arc<dyn SharedLimits> = Arc::clone(&recorder) as Arc<dyn SharedLimits>;
        let estimate = Estimate::tokens(10, 10).priced(0.5);
        let mut hold = SharedHold::reserve(&backend, subjects(), 0, &estimate)
            .await
            .unwrap();
        assert!(hold.is_checked());
        hold.raise_cost_to(0.75);
        hold.raise_cost_to(0.6);
        // Only the subject with a cost budget holds more.
        assert_eq!(*recorder.raised.lock().unwrap(), vec![(42, 0.25)]);
        let mut seen = Vec::new();
        hold.settle(None, 5, |label, charge| {
            seen.push((label.to_string(), charge));
        });
        // Cut short: each subject is charged what it held, and the estimated tokens.
        assert_eq!(
            seen,
            vec![
                (
                    "key:a".to_owned(),
                    Charge {
                        cost_usd: 0.75,
                        tokens: 20
                    }
                ),
                (
                    "budget:b".to_owned(),
                    Charge {
                        cost_usd: 0.5,
                        tokens: 20
                    }
                ),
            ]
        );
        let hold = SharedHold::reserve(&backend, subjects(), 0, &estimate)
            .await
            .unwrap();
        drop(hold);
        let ended = recorder.ended.lock().unwrap();
        assert_eq!(ended.len(), 2);
        assert!(ended[0].1.iter().all(|e| e.charge.is_some()));
        assert!(
            ended[1].1.iter().all(|e| e.charge.is_none()),
            "dropped: released"
        );
        assert_eq!(ended[1].1[0].reserved.window(), Some((7, 3)));
    }

    #[tokio::test]
    async fn an_unchecked_admission_holds_nothing_but_is_charged() {
        let recorder = Arc::new(Recorder {
            unchecked: true,
            ..Recorder::default()
        });
        let backend: Arc<dyn SharedLimits> = Arc::clone(&recorder) as Arc<dyn SharedLimits>;
        let estimate = Estimate::tokens(10, 10).priced(0.5);
        let mut hold = SharedHold::reserve(&backend, subjects(), 0, &estimate)
            .await
            .unwrap();
        assert!(!hold.is_checked());
        hold.raise_cost_to(1.0);
        assert!(recorder.raised.lock().unwrap().is_empty());
        hold.settle(
            Some(Charge {
                cost_usd: 0.1,
                tokens: 3,
            }),
            5,
            |_, _| {},
        );
        let ended = recorder.ended.lock().unwrap();
        assert_eq!(ended[0].0, None);
        assert_eq!(ended[0].1[0].reserved.window(), None);
        // The subjects remember their limits for the admin API.
        assert_eq!(ended[0].1[0].account.last_limits(), Some(cost_budget()));
    }

    #[test]
    fn a_rate_refusal_from_a_backends_seconds_is_the_in_memory_one() {
        let label: Arc<str> = Arc::from("key:k");
        let rate = RateLimitSpec {
            requests_per_minute: Some(3),
            tokens_per_minute: None,
        };
        let account = Account::new(Subject::Key("k".into()));
        let limits = Limits {
            budget: None,
            rate_limit: Some(rate),
        };
        let mut buckets = Vec::new();
        for t in [100_000, 110_000, 120_000] {
            account
                .try_reserve(&limits, t, &Estimate::tokens(1, 1))
                .unwrap();
            buckets.push(WindowBucket {
                second: t / 1000,
                requests: 1,
                tokens: 2,
            });
        }
        let now = 125_400;
        let local = account
            .try_reserve(&limits, now, &Estimate::tokens(1, 1))
            .unwrap_err();
        let shared = rate_refusal(&label, &rate, &buckets, now, 2).unwrap();
        assert_eq!(shared, local);
        // A second counted ahead of this clock counts now.
        let ahead = [WindowBucket {
            second: 200,
            requests: 3,
            tokens: 0,
        }];
        assert!(rate_refusal(&label, &rate, &ahead, now, 0).is_some());
        assert!(rate_refusal(&label, &rate, &buckets[..2], now, 2).is_none());
    }
}
