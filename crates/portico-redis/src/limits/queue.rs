//! The settlement queue: what requests leave behind when they end (settlements, releases,
//! raised holds, dropped epochs), applied to Redis off the request path, in order, in
//! batches of one script call each.
//!
//! Nothing is lost silently. A batch that fails (Redis away) is retried with a backoff (0.1 s
//! doubling to 2 s) for [`RETRY_FOR`], in order, the later batches waiting behind it; a
//! retried batch that did reach Redis the first time is not applied twice (the script keeps
//! a marker per batch). What still fails after that, what overflows the queue while Redis is
//! away, and what is left at shutdown past its deadline, is counted ([`SettleStats::lost`])
//! and logged with the subjects and amounts it carried.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::scripts;
use crate::conn::{Conn, Script};

/// How long a batch is retried before what it carries is counted lost.
pub(crate) const RETRY_FOR: Duration = Duration::from_secs(600);
/// Operations waiting at most; beyond, new ones are counted lost (a long outage under load).
pub(crate) const QUEUE_BOUND: usize = 200_000;
/// Operations per script call.
const BATCH: usize = 128;
/// How long a batch's marker is kept: longer than any retry.
const MARKER_TTL_MS: u64 = 2 * 3600 * 1000;
/// The longest wait between two tries of a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One operation on one subject's shared state.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    /// `key:ci`, for the log when it is lost.
    pub(crate) label: Arc<str>,
    pub(crate) budget_key: String,
    pub(crate) window_key: String,
    /// `:<pid>:<epoch>`, or empty when nothing is held.
    pub(crate) suffix: String,
    pub(crate) now_s: i64,
    /// Period kind, its start (ms) and the budget key's TTL (ms), when the subject has a
    /// budget.
    pub(crate) period: Option<(&'static str, i64, i64)>,
    pub(crate) held_usd: f64,
    pub(crate) held_tokens: u64,
    pub(crate) window: Option<(i64, u64)>,
    pub(crate) charged_usd: f64,
    pub(crate) charged_tokens: u64,
}

/// What an [`Op`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// Release the hold and charge.
    Settle,
    /// Release the hold, charge nothing.
    Release,
    /// Hold `held_usd` more.
    Raise,
    /// Drop what an epoch of this process still holds (nothing should; see `epochs`).
    Drop,
}

impl OpKind {
    fn code(self) -> &'static str {
        match self {
            OpKind::Settle => "s",
            OpKind::Release => "r",
            OpKind::Raise => "h",
            OpKind::Drop => "d",
        }
    }
}

/// What the settlement queue did since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleStats {
    /// Operations queued.
    pub queued: u64,
    /// Operations applied to Redis.
    pub applied: u64,
    /// Tries of a batch that failed and were retried.
    pub retried: u64,
    /// Operations given up (Redis away too long, the queue full, or shutdown's deadline):
    /// their usage was not charged to the shared budgets.
    pub lost: u64,
}

impl SettleStats {
    /// Operations queued and not yet applied or given up.
    pub fn pending(&self) -> u64 {
        self.queued.saturating_sub(self.applied + self.lost)
    }
}

/// The queue's sending side and counters, shared with the worker.
#[derive(Debug)]
pub(crate) struct Queue {
    sender: mpsc::Sender<Op>,
    queued: AtomicU64,
    applied: AtomicU64,
    retried: AtomicU64,
    lost: AtomicU64,
    /// When the last overflow was logged (Unix s), so a long outage logs once a minute.
    overflow_logged: AtomicI64,
    progressed: Notify,
    /// Set at shutdown: the worker gives up on what is left past it.
    deadline: Mutex<Option<Instant>>,
}

impl Queue {
    pub(crate) fn new() -> (Arc<Queue>, mpsc::Receiver<Op>) {
        let (sender, receiver) = mpsc::channel(QUEUE_BOUND);
        let queue = Arc::new(Queue {
            sender,
            queued: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            overflow_logged: AtomicI64::new(i64::MIN),
            progressed: Notify::new(),
            deadline: Mutex::new(None),
        });
        (queue, receiver)
    }

    /// Queues `op`; returns at once.
    pub(crate) fn push(&self, op: Op) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = self.sender.try_send(op) {
            let op = match err {
                mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => op,
            };
            self.lose(
                std::slice::from_ref(&op),
                "the settlement queue is full",
                false,
            );
        }
    }

    pub(crate) fn stats(&self) -> SettleStats {
        SettleStats {
            queued: self.queued.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// Waits until everything queued so far is applied or given up, at most `within`;
    /// returns whether it was.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let notified = self.progressed.notified();
            if self.stats().pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.stats().pending() == 0;
            }
        }
    }

    pub(crate) fn set_deadline(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = Some(deadline);
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `ops` lost and logs it (`always`, or at most once a minute: a full queue loses
    /// one operation at a time).
    fn lose(&self, ops: &[Op], why: &str, always: bool) {
        self.lost.fetch_add(ops.len() as u64, Ordering::Relaxed);
        self.progressed.notify_waiters();
        let usd: f64 = ops.iter().map(|o| o.charged_usd).sum();
        let tokens: u64 = ops.iter().map(|o| o.charged_tokens).sum();
        let mut subjects: Vec<&str> = ops.iter().map(|o| &*o.label).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let now_s = portico_core::now_ms() / 1000;
        let last = self.overflow_logged.load(Ordering::Relaxed);
        if always || now_s - last >= 60 {
            self.overflow_logged.store(now_s, Ordering::Relaxed);
            tracing::error!(
                lost = ops.len(),
                lost_total = self.lost.load(Ordering::Relaxed),
                usd,
                tokens,
                subjects = %subjects.join(","),
                "shared budgets: {why}; these requests' usage is not charged in Redis"
            );
        }
    }
}

/// Applies queued operations until `stop`, then what is left until the shutdown deadline.
pub(crate) async fn work(
    queue: Arc<Queue>,
    mut receiver: mpsc::Receiver<Op>,
    conn: Arc<Conn>,
    done_prefix: String,
    stop: CancellationToken,
) {
    let script = Script::new(scripts::apply());
    let mut batch = Vec::with_capacity(BATCH);
    let mut seq: u64 = 0;
    loop {
        let got = tokio::select! {
            () = stop.cancelled() => break,
            got = receiver.recv_many(&mut batch, BATCH) => got,
        };
        if got == 0 {
            return;
        }
        seq += 1;
        apply(
            &queue,
            &conn,
            &script,
            &format!("{done_prefix}{seq}"),
            &batch,
            &stop,
        )
        .await;
        batch.clear();
    }
    // Shutdown: the server has stopped and requests have settled; apply what is left.
    receiver.close();
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        seq += 1;
        apply(
            &queue,
            &conn,
            &script,
            &format!("{done_prefix}{seq}"),
            &batch,
            &stop,
        )
        .await;
        batch.clear();
    }
}

/// Applies one batch, retrying as the module docs say.
async fn apply(
    queue: &Queue,
    conn: &Conn,
    script: &Script,
    marker: &str,
    ops: &[Op],
    stop: &CancellationToken,
) {
    let mut call = script.call();
    call.key(marker).arg(MARKER_TTL_MS);
    for op in ops {
        call.key(op.budget_key.as_str()).key(op.window_key.as_str());
        let (period, start, ttl) = op.period.unwrap_or(("", 0, 0));
        let (second, counted) = match op.window {
            Some((s, t)) => (s.to_string(), t),
            None => (String::new(), 0),
        };
        call.arg(op.kind.code())
            .arg(&op.suffix)
            .arg(op.now_s)
            .arg(period)
            .arg(start)
            .arg(ttl)
            .arg(op.held_usd)
            .arg(op.held_tokens)
            .arg(second)
            .arg(counted)
            .arg(op.charged_usd)
            .arg(op.charged_tokens);
    }
    // Off the request path: a slow Redis may take longer than a request could wait.
    let timeout = conn.timeout().max(Duration::from_secs(1));
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut failed = false;
    loop {
        match call.run::<String>(conn, timeout).await {
            Ok(_) => {
                queue.applied.fetch_add(ops.len() as u64, Ordering::Relaxed);
                queue.progressed.notify_waiters();
                if failed {
                    tracing::info!(
                        operations = ops.len(),
                        "shared budgets: settled in Redis after retrying"
                    );
                }
                return;
            }
            Err(error) => {
                let give_up = match (stop.is_cancelled(), queue.deadline()) {
                    (true, Some(deadline)) => Instant::now() >= deadline,
                    (true, None) => true,
                    (false, _) => started.elapsed() >= RETRY_FOR,
                };
                if give_up {
                    queue.lose(
                        ops,
                        &format!(
                            "cannot settle {} operations after {} s ({error})",
                            ops.len(),
                            started.elapsed().as_secs()
                        ),
                        true,
                    );
                    return;
                }
                if !failed {
                    failed = true;
                    tracing::warn!(
                        operations = ops.len(),
                        "shared budgets: cannot settle in Redis ({error}); keeping the \
                         settlements and retrying for up to {} s",
                        RETRY_FOR.as_secs()
                    );
                }
                queue.retried.fetch_add(1, Ordering::Relaxed);
                let pause = match queue.deadline() {
                    Some(deadline) if stop.is_cancelled() => {
                        backoff.min(deadline.saturating_duration_since(Instant::now()))
                    }
                    _ => backoff,
                };
                if stop.is_cancelled() {
                    tokio::time::sleep(pause).await;
                } else {
                    // Shutdown shortens the wait to its deadline.
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => {}
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
