//! Target health: a circuit breaker and a latency average per target, shared by all requests.
//!
//! **Keys.** A target is one model of one provider, keyed by [`health_key`] (`@slug/model`).
//! Not the slug alone: a provider whose one model always fails (withdrawn, misconfigured,
//! overloaded) still serves its other models, and a key allowed only the failing model must
//! not be able to eject the provider's healthy models for every other key and config. The
//! price is that a region that is down entirely is learnt once per model in use rather than
//! once; with a handful of models per provider that is a handful of failed requests more.
//!
//! **Circuit breaker.** Each target is in one of three states:
//! - *closed*: requests flow; `failure_threshold` (default 5) *consecutive* failures open it.
//!   Consecutive failures rather than a failure rate over a window: no timers or buckets, no
//!   minimum-volume rule, and the same answer for a target that gets one request a minute as
//!   for one that gets a thousand. Any success resets the count.
//! - *open*: the target is skipped for `cool_down` (default 30 s).
//! - *half-open*: after the cool-down, exactly one request (the *probe*) is let through
//!   ([`HealthRegistry::try_acquire`] answers [`Admission::Probe`] once); its success closes
//!   the breaker, its failure re-opens it for another cool-down. A probe whose result never
//!   arrives (the request was cancelled) frees the slot after `probe_timeout` (default 60 s).
//!
//! What counts as a failure is [`Failure::counts_against_health`]: connection errors,
//! timeouts, 429 and 5xx. Any other answer (a 400, say) proves the target alive and counts as
//! a success; gateway-side failures count as neither.
//!
//! **Latency.** Every success may report its latency; the registry keeps an exponentially
//! weighted moving average per target (`ewma = 0.2 × sample + 0.8 × ewma`, the first sample
//! taken as is). Latency-aware load balancing multiplies a target's static weight by
//! [`latency_factor`]: `clamp(fastest_sibling_ewma / own_ewma, 0.05, 1)`, so a target twice
//! as slow as its fastest sibling gets half its static share, a target with no samples yet
//! counts as fast (it gets traffic, hence samples), and no target drops below 5 % of its
//! share (it keeps getting samples that can show it recovered).
//!
//! **Shared state.** Several gateway processes can share their breakers (scale-out:
//! `portico-redis`): a [`BreakerObserver`] set with [`HealthRegistry::set_observer`] hears of
//! every breaker that opens here, and [`HealthRegistry::force_open`] opens one that opened
//! elsewhere. Without an observer nothing is paid for it: the observer is looked up only when
//! a breaker opens.
//!
//! **Concurrency.** A `RwLock`ed map (read-locked to find a target, write-locked only to add
//! one) of per-target `Mutex`es held for a few field updates; no lock is held across an
//! `.await` (there are none here). Time is always an explicit `Instant` argument, so tests
//! drive the clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::failure::Failure;

/// The key of a target's health: one model of one provider, written `@slug/model` (a slug
/// has no `/`, so the pair reads back unambiguously). The registry treats keys as opaque;
/// the planner and the dispatcher both build them here, so they always agree.
pub fn health_key(slug: &str, model: &str) -> String {
    format!("@{slug}/{model}")
}

/// The provider slug and model of a [`health_key`]; `None` for anything else.
pub fn split_health_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix('@')?.split_once('/')
}

/// Hears of every breaker that opens in a [`HealthRegistry`] (to tell other processes).
/// Called on the request path, after the breaker's lock is released: it must return at once.
pub trait BreakerObserver: Send + Sync + 'static {
    /// The breaker of `key` (a [`health_key`]) opened, until `until`.
    fn opened(&self, key: &str, until: Instant);
}

/// The weight of a new latency sample in the moving average.
pub const EWMA_ALPHA: f64 = 0.2;
/// The smallest [`latency_factor`]: a slow target keeps this share of its static weight.
pub const MIN_LATENCY_FACTOR: f64 = 0.05;

/// Circuit-breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long an open breaker keeps the target out.
    pub cool_down: Duration,
    /// How long a half-open probe may run before another probe is let through.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(60),
        }
    }
}

/// A breaker's state, as reported to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; the count of consecutive failures so far.
    Closed {
        /// Consecutive failures since the last success.
        consecutive_failures: u32,
    },
    /// The target is skipped until `until`.
    Open {
        /// When the cool-down ends.
        until: Instant,
    },
    /// Cool-down over: the next [`HealthRegistry::try_acquire`] gets the probe.
    HalfOpen {
        /// Whether a probe is running (and since when).
        probe_since: Option<Instant>,
    },
}

/// The answer of [`HealthRegistry::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// Half-open: go ahead, as the one probe; report the result.
    Probe,
    /// Open, or another request holds the probe: skip this target.
    Rejected,
}

/// What the planner reads of target health. Keys are [`health_key`]s.
pub trait HealthView {
    /// Whether `key` may be tried now (closed, cooled down, or half-open with the probe free).
    fn is_available(&self, key: &str, now: Instant) -> bool;
    /// The moving average of `key`'s latency, once it has samples.
    fn latency(&self, key: &str) -> Option<Duration>;
}

/// A [`HealthView`] where every target is healthy and nothing has a latency (tests, and
/// routing without health tracking).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllHealthy;

impl HealthView for AllHealthy {
    fn is_available(&self, _key: &str, _now: Instant) -> bool {
        true
    }

    fn latency(&self, _key: &str) -> Option<Duration> {
        None
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_since: Instant },
}

#[derive(Debug)]
struct TargetHealth {
    state: State,
    ewma_secs: Option<f64>,
}

impl Default for TargetHealth {
    fn default() -> TargetHealth {
        TargetHealth {
            state: State::Closed { failures: 0 },
            ewma_secs: None,
        }
    }
}

/// The health of every target (provider and model, by [`health_key`]), shared across
/// requests.
#[derive(Default)]
pub struct HealthRegistry {
    config: BreakerConfig,
    targets: RwLock<HashMap<String, Arc<Mutex<TargetHealth>>>>,
    observer: OnceLock<Arc<dyn BreakerObserver>>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("config", &self.config)
            .field("targets", &self.targets)
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
}

impl HealthRegistry {
    /// A registry with these breaker settings; targets appear as they are reported on.
    pub fn new(config: BreakerConfig) -> HealthRegistry {
        HealthRegistry {
            config,
            targets: RwLock::new(HashMap::new()),
            observer: OnceLock::new(),
        }
    }

    /// Tells `observer` of every breaker that opens from now on. One observer per registry:
    /// a second is refused (and returned).
    pub fn set_observer(
        &self,
        observer: Arc<dyn BreakerObserver>,
    ) -> Result<(), Arc<dyn BreakerObserver>> {
        self.observer.set(observer)
    }

    /// Opens the breaker of `key` until `until` (it opened in another process), unless it is
    /// already open longer. The observer is not told: the news came from elsewhere. A
    /// half-open breaker's probe, if running, still reports (its success closes the breaker
    /// again, as it would have here).
    pub fn force_open(&self, key: &str, until: Instant) {
        let entry = self.get_or_insert(key);
        let mut t = lock(&entry);
        t.state = match t.state {
            State::Open { until: longer } if longer >= until => return,
            _ => State::Open { until },
        };
    }

    /// The breaker settings.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Asks to send a request to `key` now. Closed: [`Admission::Allowed`]. Open and cooled
    /// down, or half-open with an expired probe: this caller becomes the probe
    /// ([`Admission::Probe`]). Otherwise [`Admission::Rejected`].
    pub fn try_acquire(&self, key: &str, now: Instant) -> Admission {
        let Some(entry) = self.get(key) else {
            return Admission::Allowed;
        };
        let mut t = lock(&entry);
        match t.state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Rejected,
            State::HalfOpen { probe_since }
                if now.saturating_duration_since(probe_since) < self.config.probe_timeout =>
            {
                Admission::Rejected
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                t.state = State::HalfOpen { probe_since: now };
                Admission::Probe
            }
        }
    }

    /// A success: closes the breaker and, with a `latency`, feeds the moving average.
    pub fn record_success(&self, key: &str, latency: Option<Duration>) {
        let entry = self.get_or_insert(key);
        let mut t = lock(&entry);
        t.state = State::Closed { failures: 0 };
        if let Some(l) = latency {
            let sample = l.as_secs_f64();
            t.ewma_secs = Some(match t.ewma_secs {
                Some(avg) => EWMA_ALPHA * sample + (1.0 - EWMA_ALPHA) * avg,
                None => sample,
            });
        }
    }

    /// A failure that counts against health: opens the breaker at the threshold, re-opens a
    /// half-open one, extends an open one (a target tried while open because every target
    /// was open).
    pub fn record_failure(&self, key: &str, now: Instant) {
        let entry = self.get_or_insert(key);
        let mut t = lock(&entry);
        let until = now + self.config.cool_down;
        let reopen = State::Open { until };
        let (state, opened) = match t.state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    (reopen, true)
                } else {
                    (State::Closed { failures }, false)
                }
            }
            State::HalfOpen { .. } => (reopen, true),
            State::Open { until: open } => (
                State::Open {
                    until: open.max(until),
                },
                false,
            ),
        };
        t.state = state;
        drop(t);
        if opened && let Some(observer) = self.observer.get() {
            observer.opened(key, until);
        }
    }

    /// Records an attempt's outcome: `Ok(latency)` on success, `Err(failure)` otherwise (see
    /// the module docs for what counts).
    pub fn record(&self, key: &str, now: Instant, outcome: Result<Duration, &Failure>) {
        match outcome {
            Ok(latency) => self.record_success(key, Some(latency)),
            Err(f) if f.counts_against_health() => self.record_failure(key, now),
            Err(Failure::Status { .. }) => self.record_success(key, None),
            Err(_) => self.release_probe(key, now),
        }
    }

    /// Frees a half-open probe slot without a verdict (the next request probes at once).
    fn release_probe(&self, key: &str, now: Instant) {
        if let Some(entry) = self.get(key) {
            let mut t = lock(&entry);
            if let State::HalfOpen { .. } = t.state {
                t.state = State::Open { until: now };
            }
        }
    }

    /// The breaker's state at `now` (an open breaker whose cool-down is over reads as
    /// half-open with no probe).
    pub fn state(&self, key: &str, now: Instant) -> BreakerState {
        let Some(entry) = self.get(key) else {
            return BreakerState::Closed {
                consecutive_failures: 0,
            };
        };
        let t = lock(&entry);
        match t.state {
            State::Closed { failures } => BreakerState::Closed {
                consecutive_failures: failures,
            },
            State::Open { until } if now < until => BreakerState::Open { until },
            State::Open { .. } => BreakerState::HalfOpen { probe_since: None },
            State::HalfOpen { probe_since }
                if now.saturating_duration_since(probe_since) < self.config.probe_timeout =>
            {
                BreakerState::HalfOpen {
                    probe_since: Some(probe_since),
                }
            }
            State::HalfOpen { .. } => BreakerState::HalfOpen { probe_since: None },
        }
    }

    fn get(&self, key: &str) -> Option<Arc<Mutex<TargetHealth>>> {
        self.targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn get_or_insert(&self, key: &str) -> Arc<Mutex<TargetHealth>> {
        if let Some(entry) = self.get(key) {
            return entry;
        }
        self.targets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }
}

impl HealthView for HealthRegistry {
    fn is_available(&self, key: &str, now: Instant) -> bool {
        match self.state(key, now) {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { probe_since } => probe_since.is_none(),
        }
    }

    fn latency(&self, key: &str) -> Option<Duration> {
        let entry = self.get(key)?;
        let secs = lock(&entry).ewma_secs?;
        Duration::try_from_secs_f64(secs).ok()
    }
}

/// A poisoned lock only means another thread panicked mid-update of a few plain fields;
/// the state is still usable.
fn lock(m: &Mutex<TargetHealth>) -> std::sync::MutexGuard<'_, TargetHealth> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The multiplier of a target's static weight in latency-aware load balancing:
/// `clamp(fastest / own, MIN_LATENCY_FACTOR, 1)`; 1 when either latency is unknown or zero.
pub fn latency_factor(own: Option<Duration>, fastest: Option<Duration>) -> f64 {
    match (own, fastest) {
        (Some(own), Some(fastest)) if !own.is_zero() && !fastest.is_zero() => {
            (fastest.as_secs_f64() / own.as_secs_f64()).clamp(MIN_LATENCY_FACTOR, 1.0)
        }
        _ => 1.0,
    }
}

#[cfg(test)]
#[path = "tests/health.rs"]
mod tests;
