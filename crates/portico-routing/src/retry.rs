//! The retry schedule of one candidate: whether to retry a failure, and how long to wait.
//!
//! - `attempts` counts retries after the first try (0 to 5, Portkey's limit), so a candidate
//!   is tried at most `attempts + 1` times.
//! - Which failures are retried: the statuses of `on_status_codes`, or by default
//!   [`DEFAULT_RETRY_STATUSES`] (429, 500, 502, 503, 504). Connection errors and timeouts are
//!   always retried; gateway-side failures ([`Failure::Gateway`]) and skips never are.
//! - The wait before retry `n` (0-based) is exponential backoff with *full jitter*: uniform in
//!   `[0, min(BACKOFF_CAP, BACKOFF_BASE × 2^n)]`, i.e. 100 ms × 2^n capped at 10 s. Full
//!   jitter spreads the retries of many clients that failed together (AWS's analysis).
//! - With `use_retry_after_header`, an upstream `Retry-After` replaces the backoff (exactly,
//!   no jitter: the upstream said when). A `Retry-After` above [`MAX_RETRY_AFTER`] (60 s), or
//!   at least the remaining time budget, ends the retries instead: waiting less than asked
//!   would only earn another 429, and waiting longer than the budget would time out anyway.
//! - The time budget is the candidate's `request_timeout`, measured from its first try; a
//!   backoff that would reach the end of the budget ends the retries too.
//!
//! [`RetryPolicy::decide`] is a pure function of the attempt number, the failure, the
//! remaining budget and an RNG. The one loop that acts on it (tries, sleeps, cuts an attempt
//! at the budget) is the engine's dispatcher, `portico_engine::Gateway::dispatch`, which also
//! walks the fallbacks and feeds the circuit breaker; keeping the loop there, and only the
//! decision here, leaves a single place where retries happen.

use std::time::Duration;

use rand::Rng;

use crate::failure::{DEFAULT_RETRY_STATUSES, Failure};

/// Base of the exponential backoff: the ceiling of the first retry's wait.
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The backoff ceiling never exceeds this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// A `Retry-After` longer than this ends the retries (Portkey's limit).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The most retries a config may ask for.
pub const MAX_ATTEMPTS: u8 = 5;

/// A `retry` object: how often and on what one candidate is retried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try, `0..=MAX_ATTEMPTS`.
    pub attempts: u8,
    /// Statuses that are retried; `None`: [`DEFAULT_RETRY_STATUSES`].
    pub on_status_codes: Option<Vec<u16>>,
    /// Whether an upstream `Retry-After` sets the wait.
    pub use_retry_after_header: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait, then try the same candidate again.
    Retry {
        /// How long to wait.
        after: Duration,
        /// Where the wait came from.
        source: DelaySource,
    },
    /// Stop retrying this candidate; the failure goes to the fallback walk.
    GiveUp(GiveUp),
}

/// Where a retry's wait came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelaySource {
    /// Exponential backoff with full jitter.
    Backoff,
    /// The upstream's `Retry-After`.
    RetryAfter,
}

/// Why retries stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The failure is not one the policy retries.
    NotRetryable,
    /// `attempts` retries were made already.
    AttemptsExhausted,
    /// The upstream asked to wait longer than [`MAX_RETRY_AFTER`] or than the budget left.
    RetryAfterTooLong(Duration),
    /// The time budget (`request_timeout`) would run out before the next try.
    BudgetExhausted,
}

impl RetryPolicy {
    /// No retries: what a candidate gets when no node on its path sets `retry`.
    pub fn none() -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Whether this policy retries `failure` at all (attempts left aside).
    pub fn retries(&self, failure: &Failure) -> bool {
        match failure {
            Failure::Status { status, .. } => match &self.on_status_codes {
                Some(codes) => codes.contains(status),
                None => DEFAULT_RETRY_STATUSES.contains(status),
            },
            Failure::Connect | Failure::Timeout => true,
            Failure::Gateway | Failure::Skipped => false,
        }
    }

    /// Decides after the attempt that followed `retries_done` retries failed with `failure`.
    /// `remaining` is what is left of the candidate's time budget (`None`: no
    /// `request_timeout`).
    pub fn decide<R: Rng + ?Sized>(
        &self,
        retries_done: u8,
        failure: &Failure,
        remaining: Option<Duration>,
        rng: &mut R,
    ) -> RetryDecision {
        if !self.retries(failure) {
            return RetryDecision::GiveUp(GiveUp::NotRetryable);
        }
        if retries_done >= self.attempts {
            return RetryDecision::GiveUp(GiveUp::AttemptsExhausted);
        }
        if remaining.is_some_and(|r| r.is_zero()) {
            return RetryDecision::GiveUp(GiveUp::BudgetExhausted);
        }
        if self.use_retry_after_header
            && let Some(wait) = failure.retry_after()
        {
            if wait > MAX_RETRY_AFTER || remaining.is_some_and(|r| wait >= r) {
                return RetryDecision::GiveUp(GiveUp::RetryAfterTooLong(wait));
            }
            return RetryDecision::Retry {
                after: wait,
                source: DelaySource::RetryAfter,
            };
        }
        let wait = backoff_delay(u32::from(retries_done), rng);
        if remaining.is_some_and(|r| wait >= r) {
            return RetryDecision::GiveUp(GiveUp::BudgetExhausted);
        }
        RetryDecision::Retry {
            after: wait,
            source: DelaySource::Backoff,
        }
    }
}

/// The ceiling of the wait before retry `retry_index` (0-based):
/// `min(BACKOFF_CAP, BACKOFF_BASE × 2^retry_index)`.
pub fn backoff_ceiling(retry_index: u32) -> Duration {
    let factor = 1u32.checked_shl(retry_index.min(31)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_CAP)
}

/// The wait before retry `retry_index`: uniform in `[0, backoff_ceiling(retry_index)]`
/// (full jitter), in whole milliseconds (the resolution of `tokio::time`).
pub fn backoff_delay<R: Rng + ?Sized>(retry_index: u32, rng: &mut R) -> Duration {
    let ceiling = u64::try_from(backoff_ceiling(retry_index).as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=ceiling))
}

#[cfg(test)]
#[path = "tests/retry.rs"]
mod tests;
