//! [`RedisLimits`]: the key, user and budget subjects' budgets and rate limits, shared by
//! every process through Redis (`portico_limits::SharedLimits`).
//!
//! **One round trip per request.** Admission is one Lua script (`EVALSHA`, `EVAL` when Redis
//! does not know it yet) over all of the request's shared subjects: for each, it rolls the
//! budget's period, checks spent + held + estimate against each budget figure and one more
//! request (and the estimated tokens) against the window, and only if every subject has room
//! reserves the estimate on all of them. A refusal takes nothing. The refusals are built by
//! `portico_limits` from what the script saw, so a client gets the same 412 / 429 (and
//! `Retry-After`) as from the in-memory ledger.
//!
//! **Keys** (prefix `portico:` by default; the Lua in `scripts` has the field layout):
//! `budget:<subject>` a hash per budget (period, spent, and what each live process holds per
//! epoch), kept until a day after its period ends; `window:<subject>` a hash per rate window
//! (requests and tokens per second of the last minute), kept 61 s after its last write;
//! `proc:<pid>` one key per live process (30 s TTL, refreshed every second); `done:<pid>:<n>`
//! one marker per settlement batch (2 h TTL), so a retried batch is applied once.
//!
//! **Reservations are bounded.** Each process holds its requests' estimates under its own
//! fields, and they count only while its `proc:<pid>` key lives: a process killed mid-request
//! stops holding anything 30 s later at most (the next script that reads the budget drops its
//! fields). A live process takes back holds it lost track of (a reply that timed out after
//! Redis ran the script) once their minute is over: see `epochs`.
//!
//! **Settlement** is queued and applied off the request path, in order, in batches; retried
//! while Redis is away, counted and logged when given up (see `queue`).
//!
//! **Failure.** When Redis cannot be asked (unreachable, or slower than the timeout), a
//! subject with a budget follows `budgets_fail`, one with a rate limit `limits_fail`: closed
//! refuses the request with a 503 saying what failed and how to change the mode; open admits
//! it unchecked (its usage is still charged once Redis is back).
//!
//! **Provider subjects stay per process.** The engine admits an attempt on its provider in a
//! synchronous hook, which cannot wait for Redis; each process enforces its providers'
//! budgets and limits on its own traffic (N processes may together send up to N times a
//! provider's rate limit, and spend up to N times its budget unless the provider's own
//! limits stop them first).
//!
//! **Clocks.** Periods and windows are computed from the calling process's clock, as in
//! memory: processes should agree on the time (NTP). A second counted by a process whose
//! clock is ahead still counts; a period rolled by a process ahead is not rolled back.
//!
//! The local ledger's accounts of the shared subjects are kept at the shared figures by the
//! mirror ([`RedisLimits::mirror`]), for the admin API and persistence.

mod epochs;
mod mirror;
mod queue;
mod scripts;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use portico_core::{ApiError, Clock, ErrorCode, Limits, Period, WindowBucket};
use portico_limits::{
    Account, BudgetDimension, Estimate, Ledger, Reserved, SharedAdmission, SharedEnd, SharedLimits,
    SharedRefusal, budget_refusal, rate_refusal,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use queue::SettleStats;

use crate::conn::{Conn, Script, Unavailable};
use crate::options::{ENV_BUDGETS_FAIL, ENV_LIMITS_FAIL, FailMode};
use epochs::Epochs;
use mirror::{finite, number, whole};
use queue::{Op, OpKind, Queue};

/// How long a process's holds count after its last sign of life.
pub(crate) const PROC_TTL_MS: i64 = 30_000;
/// How long a budget's state is kept after its period ends (a process with a slow clock may
/// still settle into it).
const BUDGET_GRACE_MS: i64 = 86_400_000;
/// How often the mirror runs (and the process says it is alive).
const TICK: Duration = Duration::from_secs(1);
/// The largest token count sent to Redis: Lua counts in doubles, exact up to 2^53.
const MAX_TOKENS: u64 = 1 << 53;

/// The TTL of a budget key written at `now_ms`: until a day after its period ends.
pub(crate) fn budget_ttl_ms(period: Period, now_ms: i64) -> i64 {
    (period.end(now_ms) - now_ms).max(0) + BUDGET_GRACE_MS
}

/// The shared budgets and rate limits; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct RedisLimits {
    inner: Arc<LimitsInner>,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("pid", &self.inner.pid)
            .field("settle", &self.inner.queue.stats())
            .finish_non_exhaustive()
    }
}

pub(crate) struct LimitsInner {
    conn: Arc<Conn>,
    pid: Arc<str>,
    /// `<prefix>budget:`, `<prefix>window:`, `<prefix>proc:`.
    budget_prefix: String,
    window_prefix: String,
    proc_prefix: String,
    limits_fail: FailMode,
    budgets_fail: FailMode,
    clock: Arc<dyn Clock>,
    admit: Script,
    sync: Script,
    epochs: Epochs,
    queue: Arc<Queue>,
    ledger: OnceLock<Arc<Ledger>>,
}

impl LimitsInner {
    pub(crate) fn budget_key(&self, label: &str) -> String {
        format!("{}{label}", self.budget_prefix)
    }

    pub(crate) fn window_key(&self, label: &str) -> String {
        format!("{}{label}", self.window_prefix)
    }

    fn suffix(&self, epoch: i64) -> String {
        format!(":{}:{epoch}", self.pid)
    }
}

/// What `Redis::limits` needs to build a [`RedisLimits`].
pub(crate) struct LimitsSetup {
    pub(crate) conn: Arc<Conn>,
    pub(crate) pid: Arc<str>,
    pub(crate) prefix: String,
    pub(crate) limits_fail: FailMode,
    pub(crate) budgets_fail: FailMode,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
}

impl RedisLimits {
    /// Starts the shared limits: the settlement queue's worker and the heartbeat (and, once
    /// [`RedisLimits::mirror`] is called, the mirror) on `tasks`, until `stop`.
    pub(crate) fn start(setup: LimitsSetup) -> RedisLimits {
        let (queue, receiver) = Queue::new();
        let prefix = setup.prefix;
        let inner = Arc::new(LimitsInner {
            conn: setup.conn,
            budget_prefix: format!("{prefix}budget:"),
            window_prefix: format!("{prefix}window:"),
            proc_prefix: format!("{prefix}proc:"),
            pid: setup.pid,
            limits_fail: setup.limits_fail,
            budgets_fail: setup.budgets_fail,
            clock: setup.clock,
            admit: Script::new(scripts::admit()),
            sync: Script::new(scripts::sync()),
            epochs: Epochs::default(),
            queue: Arc::clone(&queue),
            ledger: OnceLock::new(),
        });
        let done_prefix = format!("{prefix}done:{}:", inner.pid);
        setup.tasks.spawn(queue::work(
            queue,
            receiver,
            Arc::clone(&inner.conn),
            done_prefix,
            setup.stop.clone(),
        ));
        setup
            .tasks
            .spawn(tick_loop(Arc::clone(&inner), setup.stop.clone()));
        RedisLimits { inner }
    }

    /// Keeps `ledger`'s key, user and budget accounts at the shared figures from now on
    /// (every second), having first synced once: seeding Redis from `ledger` where it has no
    /// state (call it after the persisted spend was loaded into `ledger`, before serving).
    /// Returns how many subjects the first sync covered; an error when Redis could not be
    /// reached (the mirror keeps trying every second, seeding when it can).
    pub async fn mirror(&self, ledger: Arc<Ledger>) -> Result<usize, Unavailable> {
        let ledger = self.inner.ledger.get_or_init(|| ledger);
        let now = self.inner.clock.now_ms();
        mirror::sync(&self.inner, &self.inner.sync, Some(ledger), now).await
    }

    /// Syncs once now: the heartbeat, seeding, and the mirror when a ledger is attached.
    pub async fn sync_now(&self) -> Result<usize, Unavailable> {
        let now = self.inner.clock.now_ms();
        let ledger = self.inner.ledger.get().map(|l| &**l);
        mirror::sync(&self.inner, &self.inner.sync, ledger, now).await
    }

    /// What the settlement queue did so far.
    pub fn settle_stats(&self) -> SettleStats {
        self.inner.queue.stats()
    }

    /// Waits until every settlement queued so far is applied (or given up), at most
    /// `within`; returns whether it was.
    pub async fn flush(&self, within: Duration) -> bool {
        self.inner.queue.flush(within).await
    }

    /// The process id this process holds its reservations under.
    pub fn process_id(&self) -> &str {
        &self.inner.pid
    }

    pub(crate) fn queue(&self) -> &Arc<Queue> {
        &self.inner.queue
    }

    /// The 503 for a subject that fails closed, or `None` for open.
    fn closed(&self, account: &Account, limits: &Limits, why: &Unavailable) -> Option<ApiError> {
        let inner = &self.inner;
        let (what, modes, var) =
            if limits.budget.is_some() && inner.budgets_fail == FailMode::Closed {
                ("budget", "budgets", ENV_BUDGETS_FAIL)
            } else if limits.rate_limit.is_some() && inner.limits_fail == FailMode::Closed {
                ("rate limit", "rate limits", ENV_LIMITS_FAIL)
            } else {
                return None;
            };
        Some(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "cannot check the {what} of {}: {why}; {modes} fail closed (set {var}=open to \
                 admit requests while Redis is away)",
                account.label()
            ),
        ))
    }

    /// Reads the script's refusal of subject `index`.
    fn refusal(
        subjects: &[(Arc<Account>, Limits)],
        reply: &[String],
        now_ms: i64,
        estimate: &Estimate,
    ) -> Option<SharedRefusal> {
        let index: usize = reply.get(1)?.parse().ok()?;
        let (account, limits) = subjects.get(index.checked_sub(1)?)?;
        let label = account.label();
        let refusal = match reply.get(2)?.as_str() {
            "usd" | "tok" => {
                let budget = limits.budget?;
                let (spent, held) = (reply.get(3)?, reply.get(4)?);
                let dimension = if reply[2] == "usd" {
                    BudgetDimension::Cost {
                        limit: budget.cost_usd?,
                        spent: number(spent),
                        reserved: number(held),
                        estimate: estimate.cost_usd,
                    }
                } else {
                    BudgetDimension::Tokens {
                        limit: budget.tokens?,
                        spent: whole(spent),
                        reserved: whole(held),
                        estimate: estimate.tokens,
                    }
                };
                budget_refusal(label, budget.period, now_ms, dimension)
            }
            _ => {
                let rate = limits.rate_limit?;
                let buckets: Vec<WindowBucket> = reply[3..]
                    .chunks_exact(3)
                    .map(|c| WindowBucket {
                        second: number(&c[0]) as i64,
                        requests: whole(&c[1]),
                        tokens: whole(&c[2]),
                    })
                    .collect();
                rate_refusal(label, &rate, &buckets, now_ms, estimate.tokens).unwrap_or_else(
                    // The script's totals and its seconds disagree (they never should): the
                    // script's verdict stands, with a second's wait.
                    || portico_limits::Refusal::Rate {
                        subject: Arc::clone(label),
                        kind: portico_core::LimitKind::RequestsPerMinute,
                        limit: rate.requests_per_minute.unwrap_or(0),
                        used: buckets.iter().map(|b| b.requests).sum(),
                        asked: 1,
                        retry_after_ms: Some(1000),
                    },
                )
            }
        };
        Some(SharedRefusal::Limit(refusal))
    }

    fn op(
        &self,
        kind: OpKind,
        account: &Account,
        suffix: &str,
        now_ms: i64,
        limits: &Limits,
    ) -> Op {
        let label = account.label();
        Op {
            kind,
            label: Arc::clone(label),
            budget_key: self.inner.budget_key(label),
            window_key: self.inner.window_key(label),
            suffix: suffix.to_owned(),
            now_s: now_ms.div_euclid(1000),
            period: limits.budget.map(|b| {
                (
                    b.period.as_str(),
                    b.period.start(now_ms),
                    budget_ttl_ms(b.period, now_ms),
                )
            }),
            held_usd: 0.0,
            held_tokens: 0,
            window: None,
            charged_usd: 0.0,
            charged_tokens: 0,
        }
    }

    fn close_epochs(&self, closed: Vec<(i64, Vec<Arc<str>>)>, now_ms: i64) {
        for (epoch, budgets) in closed {
            let suffix = self.inner.suffix(epoch);
            for label in budgets {
                self.inner.queue.push(Op {
                    kind: OpKind::Drop,
                    budget_key: self.inner.budget_key(&label),
                    window_key: self.inner.window_key(&label),
                    label,
                    suffix: suffix.clone(),
                    now_s: now_ms.div_euclid(1000),
                    period: None,
                    held_usd: 0.0,
                    held_tokens: 0,
                    window: None,
                    charged_usd: 0.0,
                    charged_tokens: 0,
                });
            }
        }
    }
}

/// Ends an admission's count in its epoch if the admission is dropped before its outcome
/// is known (the request went away mid-call).
struct EpochGuard<'a> {
    limits: &'a RedisLimits,
    epoch: i64,
    armed: bool,
}

impl Drop for EpochGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let now = self.limits.inner.clock.now_ms();
            let closed = self.limits.inner.epochs.end(self.epoch, now);
            self.limits.close_epochs(closed, now);
        }
    }
}

#[async_trait]
impl SharedLimits for RedisLimits {
    async fn reserve(
        &self,
        subjects: &[(Arc<Account>, Limits)],
        now_ms: i64,
        estimate: &Estimate,
    ) -> Result<SharedAdmission, SharedRefusal> {
        let inner = &self.inner;
        let tokens = estimate.tokens.min(MAX_TOKENS);
        let cost = finite(estimate.cost_usd);
        let budgets = subjects
            .iter()
            .filter(|(_, l)| l.budget.is_some())
            .map(|(a, _)| a.label());
        let epoch = inner.epochs.begin(now_ms, budgets);
        let mut guard = EpochGuard {
            limits: self,
            epoch,
            armed: true,
        };
        let mut call = inner.admit.call();
        call.arg(now_ms.div_euclid(1000))
            .arg(&inner.pid)
            .arg(epoch)
            .arg(&inner.proc_prefix)
            .arg(PROC_TTL_MS)
            .arg(cost)
            .arg(tokens);
        let opt = |x: Option<u64>| x.map(|v| v.to_string()).unwrap_or_default();
        for (account, limits) in subjects {
            let label = account.label();
            call.key(inner.budget_key(label))
                .key(inner.window_key(label));
            match limits.budget {
                Some(b) => call
                    .arg(b.period.as_str())
                    .arg(b.period.start(now_ms))
                    .arg(budget_ttl_ms(b.period, now_ms))
                    .arg(b.cost_usd.map(|c| c.to_string()).unwrap_or_default())
                    .arg(opt(b.tokens)),
                None => call.arg("").arg(0).arg(0).arg("").arg(""),
            };
            let rate = limits.rate_limit.unwrap_or_default();
            call.arg(opt(rate.requests_per_minute))
                .arg(opt(rate.tokens_per_minute));
        }
        let reply = call
            .run::<Vec<String>>(&inner.conn, inner.conn.timeout())
            .await;
        match reply {
            Ok(reply) if reply.first().is_some_and(|r| r == "1") => {
                guard.armed = false;
                let now_s = now_ms.div_euclid(1000);
                let reserved = subjects
                    .iter()
                    .enumerate()
                    .map(|(i, (_, limits))| {
                        let (usd, held) = match limits.budget {
                            Some(_) => (cost, tokens),
                            None => (0.0, 0),
                        };
                        // The second the window counted it in (the newest, if this clock
                        // is behind another process's).
                        let second = reply
                            .get(i + 1)
                            .and_then(|s| s.parse::<i64>().ok())
                            .unwrap_or(now_s);
                        let window = limits.rate_limit.map(|_| (second, tokens));
                        Reserved::new(usd, held, window)
                    })
                    .collect();
                Ok(SharedAdmission::Reserved {
                    reserved,
                    ticket: u64::try_from(epoch).unwrap_or(0),
                })
            }
            Ok(reply) => {
                // Nothing was reserved: the count ends now (the guard does it).
                match Self::refusal(subjects, &reply, now_ms, estimate) {
                    Some(refusal) => Err(refusal),
                    None => {
                        tracing::error!(?reply, "unexpected reply from the admission script");
                        Err(SharedRefusal::Unavailable(Box::new(ApiError::new(
                            ErrorCode::Internal,
                            "the shared limits gave an unexpected answer; see the gateway log",
                        ))))
                    }
                }
            }
            Err(why) => {
                // The script may have run (a reply that came too late): the epoch takes back
                // whatever it held once the minute is over.
                for (account, limits) in subjects {
                    if let Some(error) = self.closed(account, limits, &why) {
                        return Err(SharedRefusal::Unavailable(Box::new(error)));
                    }
                }
                Ok(SharedAdmission::Unchecked)
            }
        }
    }

    fn raise(&self, ticket: u64, account: &Account, limits: &Limits, extra_usd: f64) {
        let extra = finite(extra_usd);
        if extra <= 0.0 || limits.budget.is_none() {
            return;
        }
        let now = self.inner.clock.now_ms();
        let suffix = self.inner.suffix(i64::try_from(ticket).unwrap_or(0));
        let mut op = self.op(OpKind::Raise, account, &suffix, now, limits);
        op.held_usd = extra;
        self.inner.queue.push(op);
    }

    fn end(&self, ticket: Option<u64>, ends: Vec<SharedEnd>, now_ms: Option<i64>) {
        let now = now_ms.unwrap_or_else(|| self.inner.clock.now_ms());
        let epoch = ticket.map(|t| i64::try_from(t).unwrap_or(0));
        let suffix = epoch.map(|e| self.inner.suffix(e)).unwrap_or_default();
        for end in ends {
            let kind = match end.charge {
                Some(_) => OpKind::Settle,
                None => OpKind::Release,
            };
            let mut op = self.op(kind, &end.account, &suffix, now, &end.limits);
            op.held_usd = finite(end.reserved.cost_usd);
            op.held_tokens = end.reserved.tokens.min(MAX_TOKENS);
            op.window = end.reserved.window().map(|(s, t)| (s, t.min(MAX_TOKENS)));
            if let Some(charge) = end.charge {
                op.charged_usd = finite(charge.cost_usd).max(0.0);
                op.charged_tokens = charge.tokens.min(MAX_TOKENS);
            }
            self.inner.queue.push(op);
        }
        if let Some(epoch) = epoch {
            let closed = self.inner.epochs.end(epoch, now);
            self.close_epochs(closed, now);
        }
    }
}

/// Every second: the mirror (or the heartbeat alone) and the epochs that closed.
async fn tick_loop(inner: Arc<LimitsInner>, stop: CancellationToken) {
    let limits = RedisLimits {
        inner: Arc::clone(&inner),
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = inner.clock.now_ms();
        let closed = inner.epochs.tick(now);
        limits.close_epochs(closed, now);
        if inner.conn.is_down() {
            // The connection's probe says when it is back; the outage was logged once.
            continue;
        }
        let ledger = inner.ledger.get().map(|l| &**l);
        if let Err(error) = mirror::sync(&inner, &inner.sync, ledger, now).await {
            tracing::debug!(%error, "shared limits: sync skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_key_lives_until_a_day_after_its_period() {
        // 2026-12-06 13:00 UTC; the day ends 11 h later.
        let now = 1_796_562_000_000;
        assert_eq!(
            budget_ttl_ms(Period::Day, now),
            11 * 3_600_000 + BUDGET_GRACE_MS
        );
    }

    #[test]
    fn refusals_read_back_from_the_script() {
        let account = Arc::new(Account::new(portico_core::Subject::Key("ci".into())));
        let limits = Limits {
            budget: Some(portico_core::BudgetSpec {
                cost_usd: Some(1.0),
                tokens: None,
                period: Period::Month,
            }),
            rate_limit: None,
        };
        let subjects = vec![(account, limits)];
        let reply: Vec<String> = ["0", "1", "usd", "1.25", "0"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let estimate = Estimate::tokens(1, 1).priced(0.1);
        let Some(SharedRefusal::Limit(refusal)) =
            RedisLimits::refusal(&subjects, &reply, 1_796_562_000_000, &estimate)
        else {
            panic!("a refusal");
        };
        assert!(
            refusal
                .to_api_error()
                .message
                .starts_with("budget `key:ci` is exhausted: $1.25 of $1.00 spent this month"),
        );
        let bad: Vec<String> = vec!["0".into(), "9".into(), "usd".into()];
        assert!(RedisLimits::refusal(&subjects, &bad, 0, &estimate).is_none());
    }
}
