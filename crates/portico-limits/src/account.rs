//! [`Account`]: one subject's spend, in-flight reservations and rate window, behind its own
//! mutex.
//!
//! Every operation takes the lock, reads the clock value it is given, decides and updates in
//! one step, and lets go: a check and its reservation can never be split by another request
//! (pitfall 1: check-then-increment races). Nothing awaits while holding it, and the work
//! under it is a few comparisons and additions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portico_core::{Limits, Period, SpendState, Subject};

use crate::estimate::{Charge, Estimate};
use crate::refusal::{BudgetDimension, Refusal};
use crate::window::{Window, second_of};

/// One subject's ledger entry.
#[derive(Debug)]
pub struct Account {
    subject: Subject,
    /// `key:backend-service`: the subject as messages, metrics and the admin API show it.
    label: Arc<str>,
    state: Mutex<State>,
    /// Changed since the last time the state was taken for persistence.
    dirty: AtomicBool,
}

/// What an account holds.
#[derive(Debug)]
struct State {
    /// The period `spent_*` counts, and its start; `None` before any budget was checked.
    period: Option<(Period, i64)>,
    spent_usd: f64,
    spent_tokens: u64,
    /// Estimates of the requests admitted and not settled yet (in flight).
    reserved_usd: f64,
    reserved_tokens: u64,
    /// Only subjects with a rate limit have one (it is 1.5 KB).
    window: Option<Box<Window>>,
    /// The limits last checked against: the admin API shows them for subjects the catalog
    /// does not list (JWT users with `auth.jwt.budget`).
    limits: Option<Limits>,
}

/// What one admission put aside on one account, to be settled or taken back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reserved {
    /// USD held against the budget.
    pub cost_usd: f64,
    /// Tokens held against the budget.
    pub tokens: u64,
    /// The window second the request was counted in, and the tokens counted with it.
    window: Option<(i64, u64)>,
}

impl Reserved {
    /// A reservation made elsewhere (a shared ledger): `cost_usd` and `tokens` held against
    /// the budget, and the window second the request was counted in with its tokens.
    pub fn new(cost_usd: f64, tokens: u64, window: Option<(i64, u64)>) -> Reserved {
        Reserved {
            cost_usd,
            tokens,
            window,
        }
    }

    /// The window second the request was counted in, and the tokens counted with it.
    pub fn window(&self) -> Option<(i64, u64)> {
        self.window
    }

    /// The tokens estimated for the request: held against the budget, or counted in the
    /// rate window.
    pub fn estimated_tokens(&self) -> u64 {
        self.tokens.max(self.window.map_or(0, |(_, tokens)| tokens))
    }
}

/// A budget as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetStatus {
    /// The period.
    pub period: Period,
    /// When the current period ends and the spend resets, Unix milliseconds.
    pub resets_at_ms: i64,
    /// USD charged in the period.
    pub cost_usd_spent: f64,
    /// Tokens charged in the period.
    pub tokens_spent: u64,
    /// USD held by requests in flight.
    pub cost_usd_reserved: f64,
    /// Tokens held by requests in flight.
    pub tokens_reserved: u64,
}

/// A rate window as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStatus {
    /// Requests in the last minute.
    pub requests: u64,
    /// Tokens in the last minute (estimates of requests in flight included).
    pub tokens: u64,
    /// When everything counted now has left the window, Unix milliseconds.
    pub clears_at_ms: Option<i64>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent between statements, so a panic elsewhere leaves it usable.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// Starts a new period's spend when `period` has moved on (or changed kind) since the
    /// spend was counted. A clock that went back keeps counting in the newer period.
    fn roll(&mut self, period: Period, now_ms: i64) {
        let start = period.start(now_ms);
        match self.period {
            Some((p, s)) if p == period && s >= start => {}
            _ => {
                self.period = Some((period, start));
                self.spent_usd = 0.0;
                self.spent_tokens = 0;
            }
        }
    }

    fn window(&mut self) -> &mut Window {
        self.window.get_or_insert_with(|| Box::new(Window::new()))
    }
}

impl Account {
    /// A new, empty account for `subject`.
    pub fn new(subject: Subject) -> Account {
        Account {
            label: Arc::from(subject.to_string()),
            subject,
            state: Mutex::new(State {
                period: None,
                spent_usd: 0.0,
                spent_tokens: 0,
                reserved_usd: 0.0,
                reserved_tokens: 0,
                window: None,
                limits: None,
            }),
            dirty: AtomicBool::new(false),
        }
    }

    /// Whom the account belongs to.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The subject as shown: `key:backend-service`.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// Admits a request estimated at `estimate` if it fits every limit of `limits` at
    /// `now_ms`, and reserves the estimate: against the budget (until settled) and in the
    /// rate window (one request, and the estimated tokens until settled). Refuses, changing
    /// nothing, otherwise.
    ///
    /// A budget admits a request only while what is spent, plus what requests in flight hold,
    /// plus this request's estimate stays within the limit; an exhausted budget (nothing left)
    /// refuses even a request estimated at zero.
    pub fn try_reserve(
        &self,
        limits: &Limits,
        now_ms: i64,
        estimate: &Estimate,
    ) -> Result<Reserved, Refusal> {
        let mut state = lock(&self.state);
        state.limits = Some(*limits);
        if let Some(budget) = &limits.budget {
            state.roll(budget.period, now_ms);
            if let Some(limit) = budget.cost_usd {
                let used = state.spent_usd + state.reserved_usd;
                if used >= limit || used + estimate.cost_usd > limit {
                    return Err(self.budget_refusal(
                        budget.period,
                        now_ms,
                        BudgetDimension::Cost {
                            limit,
                            spent: state.spent_usd,
                            reserved: state.reserved_usd,
                            estimate: estimate.cost_usd,
                        },
                    ));
                }
            }
            if let Some(limit) = budget.tokens {
                let used = state.spent_tokens.saturating_add(state.reserved_tokens);
                if used >= limit || used.saturating_add(estimate.tokens) > limit {
                    return Err(self.budget_refusal(
                        budget.period,
                        now_ms,
                        BudgetDimension::Tokens {
                            limit,
                            spent: state.spent_tokens,
                            reserved: state.reserved_tokens,
                            estimate: estimate.tokens,
                        },
                    ));
                }
            }
        }
        let mut reserved = Reserved::default();
        if let Some(rate) = &limits.rate_limit {
            let window = state.window();
            window.advance(second_of(now_ms));
            if let Some(refusal) = rate_check(&self.label, window, rate, now_ms, 1, estimate.tokens)
            {
                return Err(refusal);
            }
            let second = window.add(second_of(now_ms), 1, estimate.tokens);
            reserved.window = Some((second, estimate.tokens));
        }
        if limits.budget.is_some() {
            state.reserved_usd += estimate.cost_usd;
            state.reserved_tokens = state.reserved_tokens.saturating_add(estimate.tokens);
            reserved.cost_usd = estimate.cost_usd;
            reserved.tokens = estimate.tokens;
        }
        drop(state);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(reserved)
    }

    /// Holds `extra_usd` more against the budget for a request already admitted (its attempt
    /// goes to a pricier model than it was estimated at), if that still fits.
    pub fn raise_cost(
        &self,
        limits: &Limits,
        now_ms: i64,
        reserved: &mut Reserved,
        extra_usd: f64,
    ) -> Result<(), Refusal> {
        let Some(budget) = &limits.budget else {
            return Ok(());
        };
        if extra_usd <= 0.0 {
            return Ok(());
        }
        let mut state = lock(&self.state);
        state.roll(budget.period, now_ms);
        if let Some(limit) = budget.cost_usd {
            let used = state.spent_usd + state.reserved_usd;
            if used + extra_usd > limit {
                return Err(self.budget_refusal(
                    budget.period,
                    now_ms,
                    BudgetDimension::Cost {
                        limit,
                        spent: state.spent_usd,
                        reserved: state.reserved_usd,
                        estimate: reserved.cost_usd + extra_usd,
                    },
                ));
            }
        }
        state.reserved_usd += extra_usd;
        reserved.cost_usd += extra_usd;
        Ok(())
    }

    /// Counts one more request of an admitted one (a retry of the same target) against the
    /// requests-per-minute limit, if it fits.
    pub fn count_request(&self, limits: &Limits, now_ms: i64) -> Result<(), Refusal> {
        let Some(rate) = &limits.rate_limit else {
            return Ok(());
        };
        let mut state = lock(&self.state);
        let window = state.window();
        window.advance(second_of(now_ms));
        if let Some(refusal) = rate_check(&self.label, window, rate, now_ms, 1, 0) {
            return Err(refusal);
        }
        window.add(second_of(now_ms), 1, 0);
        drop(state);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Ends a reservation: what was held is released and `charge` (the request's real cost
    /// and tokens) is spent in the period of `now_ms`; in the rate window the estimated
    /// tokens are replaced by the real ones. The request itself stays counted.
    pub fn settle(&self, limits: &Limits, reserved: Reserved, charge: Charge, now_ms: i64) {
        let mut state = lock(&self.state);
        state.reserved_usd = (state.reserved_usd - reserved.cost_usd).max(0.0);
        state.reserved_tokens = state.reserved_tokens.saturating_sub(reserved.tokens);
        if let Some(budget) = &limits.budget {
            state.roll(budget.period, now_ms);
            state.spent_usd += charge.cost_usd.max(0.0);
            state.spent_tokens = state.spent_tokens.saturating_add(charge.tokens);
        }
        if let Some((second, estimated)) = reserved.window {
            let window = state.window();
            window.advance(second_of(now_ms));
            // The request's own second, if it still counts, trades its estimate for the real
            // count; a request longer than the window used its tokens now.
            window.remove(second, 0, estimated);
            window.add_at(second, second_of(now_ms), charge.tokens);
        }
        drop(state);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Releases a reservation without charging anything; the request stays counted in the
    /// rate window (a hold dropped without being settled).
    pub fn release(&self, reserved: Reserved) {
        let mut state = lock(&self.state);
        state.reserved_usd = (state.reserved_usd - reserved.cost_usd).max(0.0);
        state.reserved_tokens = state.reserved_tokens.saturating_sub(reserved.tokens);
        if let (Some((second, tokens)), Some(window)) = (reserved.window, state.window.as_mut()) {
            window.remove(second, 0, tokens);
        }
    }

    /// Takes a reservation back as if the request had never been admitted (another
    /// subject refused it): nothing is charged and the request is not counted.
    pub fn cancel(&self, reserved: Reserved) {
        let mut state = lock(&self.state);
        state.reserved_usd = (state.reserved_usd - reserved.cost_usd).max(0.0);
        state.reserved_tokens = state.reserved_tokens.saturating_sub(reserved.tokens);
        if let (Some((second, tokens)), Some(window)) = (reserved.window, state.window.as_mut()) {
            window.remove(second, 1, tokens);
        }
    }

    /// The budget's spend in the period of `now_ms`.
    pub fn budget_status(&self, period: Period, now_ms: i64) -> BudgetStatus {
        let mut state = lock(&self.state);
        let before = state.period;
        state.roll(period, now_ms);
        let rolled = before != state.period;
        let status = BudgetStatus {
            period,
            resets_at_ms: period.end(now_ms),
            cost_usd_spent: state.spent_usd,
            tokens_spent: state.spent_tokens,
            cost_usd_reserved: state.reserved_usd,
            tokens_reserved: state.reserved_tokens,
        };
        drop(state);
        if rolled {
            self.dirty.store(true, Ordering::Relaxed);
        }
        status
    }

    /// The rate window at `now_ms`.
    pub fn window_status(&self, now_ms: i64) -> WindowStatus {
        let mut state = lock(&self.state);
        let Some(window) = state.window.as_mut() else {
            return WindowStatus {
                requests: 0,
                tokens: 0,
                clears_at_ms: None,
            };
        };
        window.advance(second_of(now_ms));
        WindowStatus {
            requests: window.requests(),
            tokens: window.tokens(),
            clears_at_ms: window.clears_at_ms(),
        }
    }

    /// The limits this account was last checked against.
    pub fn last_limits(&self) -> Option<Limits> {
        lock(&self.state).limits
    }

    /// Remembers `limits` as those last checked against, for an account whose checks run
    /// elsewhere (a shared ledger), so the admin API still lists it.
    pub fn note_limits(&self, limits: &Limits) {
        let mut state = lock(&self.state);
        if state.limits.as_ref() != Some(limits) {
            state.limits = Some(*limits);
        }
    }

    /// Replaces the whole state with one kept elsewhere (a shared ledger's, copied here so
    /// the admin API and persistence show it): the period's spend, what requests in flight
    /// hold, and the rate window's seconds. Marks the account changed when anything did.
    pub fn replace_shared(
        &self,
        shared: &SpendState,
        reserved_usd: f64,
        reserved_tokens: u64,
        now_ms: i64,
    ) {
        let mut state = lock(&self.state);
        let period = shared.period.map(|p| (p, shared.period_start_ms));
        let old_window = state.window.as_mut().map(|w| {
            w.advance(second_of(now_ms));
            w.buckets()
        });
        let window_changed = match &old_window {
            Some(buckets) => *buckets != shared.window,
            None => !shared.window.is_empty(),
        };
        // Exact comparison on purpose: any change at all is what marks it for persistence.
        let changed = state.period != period
            || state.spent_usd != shared.cost_usd
            || state.spent_tokens != shared.tokens
            || state.reserved_usd != reserved_usd
            || state.reserved_tokens != reserved_tokens
            || window_changed;
        if !changed {
            return;
        }
        state.period = period;
        state.spent_usd = shared.cost_usd;
        state.spent_tokens = shared.tokens;
        state.reserved_usd = reserved_usd;
        state.reserved_tokens = reserved_tokens;
        if window_changed {
            let mut window = Window::new();
            window.restore(&shared.window, second_of(now_ms));
            state.window = Some(Box::new(window));
        }
        drop(state);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The state to persist, taken at `now_ms`.
    pub fn spend_state(&self, now_ms: i64) -> SpendState {
        let mut state = lock(&self.state);
        let window = match state.window.as_mut() {
            Some(window) => {
                window.advance(second_of(now_ms));
                window.buckets()
            }
            None => Vec::new(),
        };
        SpendState {
            subject: self.subject.clone(),
            period: state.period.map(|(p, _)| p),
            period_start_ms: state.period.map_or(0, |(_, s)| s),
            cost_usd: state.spent_usd,
            tokens: state.spent_tokens,
            window,
            updated_at_ms: now_ms,
        }
    }

    /// Puts a persisted state back (at start, before any request). A period that has ended
    /// since is dropped at the next check; seconds that left the window are dropped now.
    pub fn restore(&self, saved: &SpendState, now_ms: i64) {
        let mut state = lock(&self.state);
        state.period = saved.period.map(|p| (p, saved.period_start_ms));
        state.spent_usd = saved.cost_usd;
        state.spent_tokens = saved.tokens;
        if !saved.window.is_empty() {
            state.window().restore(&saved.window, second_of(now_ms));
        }
    }

    /// Whether the state changed since the last call (and clears the mark).
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }

    /// Marks the state changed (a write of it failed and must be retried).
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn budget_refusal(&self, period: Period, now_ms: i64, dimension: BudgetDimension) -> Refusal {
        budget_refusal(&self.label, period, now_ms, dimension)
    }
}

/// The refusal of the budget of the subject shown as `label`: `dimension` ran out in the
/// `period` of `now_ms`.
pub(crate) fn budget_refusal(
    label: &Arc<str>,
    period: Period,
    now_ms: i64,
    dimension: BudgetDimension,
) -> Refusal {
    Refusal::Budget {
        subject: Arc::clone(label),
        period,
        resets_at_ms: period.end(now_ms),
        dimension,
    }
}

/// Whether `requests` and `tokens` more fit the rate limit `rate` of the subject shown as
/// `label`, given `window` (advanced to `now_ms`); the refusal if not.
pub(crate) fn rate_check(
    label: &Arc<str>,
    window: &Window,
    rate: &portico_core::RateLimitSpec,
    now_ms: i64,
    requests: u64,
    tokens: u64,
) -> Option<Refusal> {
    let kind = if rate
        .requests_per_minute
        .is_some_and(|l| window.requests().saturating_add(requests) > l)
    {
        portico_core::LimitKind::RequestsPerMinute
    } else if rate
        .tokens_per_minute
        .is_some_and(|l| window.tokens().saturating_add(tokens) > l)
    {
        portico_core::LimitKind::TokensPerMinute
    } else {
        return None;
    };
    let (limit, used, asked) = match kind {
        portico_core::LimitKind::RequestsPerMinute => (
            rate.requests_per_minute.unwrap_or(0),
            window.requests(),
            requests,
        ),
        _ => (rate.tokens_per_minute.unwrap_or(0), window.tokens(), tokens),
    };
    Some(Refusal::Rate {
        subject: Arc::clone(label),
        kind,
        limit,
        used,
        asked,
        retry_after_ms: window.wait_ms(
            now_ms,
            requests,
            tokens,
            rate.requests_per_minute,
            rate.tokens_per_minute,
        ),
    })
}
