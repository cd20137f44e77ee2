//! Redis as the shared state of many gateway processes (scale-out, spec section 9:
//! `PORTICO_REDIS_URL`): budgets and rate limits, the response cache, catalog-change news and
//! circuit breakers, so that N `portico serve` processes behind a load balancer behave as
//! one gateway.
//!
//! Where it sits: beside the engine, never below it. The engine knows only traits defined by
//! the crates it already uses (`portico_limits::SharedLimits`, `portico_cache::CacheStore`,
//! `portico_routing::BreakerObserver`); this crate implements them over redis-rs, and the
//! binary wires them in when a Redis URL is configured. Without one, nothing here runs.
//!
//! The pieces, one module each:
//!
//! - [`Redis`] (this file): one per process. Its connection (`conn`) is a redis-rs
//!   `ConnectionManager`, which multiplexes every call on one connection and reconnects by
//!   itself; every call is bounded by a short timeout ([`RedisOptions::timeout`], 200 ms), and
//!   an outage is logged once and then fails calls at once until a probe finds Redis back.
//!   [`Redis::connect`] never fails because Redis is down (only for a URL it cannot read).
//! - [`limits`]: [`RedisLimits`], the key, user and `budgets:` subjects checked and reserved
//!   in one Lua script per request, settled off the request path through a retrying queue,
//!   reservations bounded per process, and the mirror that keeps the local ledger (which the
//!   admin API shows and the store persists) at the shared figures. Provider subjects stay
//!   per process.
//! - [`cache`]: [`RedisCache`], the simple response cache shared by all processes; Redis away
//!   is a miss.
//! - [`bus`]: [`ChangeBus`], "the catalog is now at version N" over pub/sub, re-subscribed
//!   after Redis restarts.
//! - [`breakers`]: [`SharedBreakers`], a circuit breaker opened in one process opened in all.
//!
//! Every key and channel starts with [`RedisOptions::prefix`] (`portico:`). Redis Cluster is
//! not supported (the scripts touch keys they compute); a single Redis, with a replica for
//! failover if wanted, is the deployment this is built for (docs/deployment.md).
//!
//! What it is not: a store. Spend is persisted by the SQL store as before (the mirror copies
//! the shared spend into the ledger the store writes); Redis losing its data costs at most
//! the rate windows and the spend of the last second, which the processes write back.

pub mod breakers;
pub mod bus;
pub mod cache;
mod conn;
pub mod limits;
pub mod options;
mod pubsub;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_core::Clock;
use portico_routing::HealthRegistry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use breakers::SharedBreakers;
pub use bus::ChangeBus;
pub use cache::{DEFAULT_MAX_ENTRY_BYTES, RedisCache};
pub use conn::Unavailable;
pub use limits::{RedisLimits, SettleStats};
pub use options::{FailMode, RedisOptions, shown_url};

use conn::Conn;

/// Why [`Redis::connect`] could not even start.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL cannot be read as a Redis URL.
    #[error(
        "PORTICO_REDIS_URL is not a Redis URL ({url}): {reason}; use redis://host:6379, \
         rediss://host:6380 or redis+unix:///path/to/redis.sock"
    )]
    InvalidUrl {
        /// The URL as shown (no password).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// One process's use of Redis; see the crate docs. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<Conn>,
    options: RedisOptions,
    pid: Arc<str>,
    tasks: TaskTracker,
    stop: CancellationToken,
    limits: std::sync::Mutex<Vec<RedisLimits>>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("options", &self.inner.options)
            .field("pid", &self.inner.pid)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to Redis as `options` say. Fails only when the URL cannot be read: when
    /// Redis is down it logs a warning, starts anyway, and keeps reconnecting in the
    /// background (meanwhile each piece follows its fail mode). Must be called inside a
    /// Tokio runtime.
    pub async fn connect(options: RedisOptions) -> Result<Redis, RedisError> {
        let shown: Arc<str> = Arc::from(shown_url(&options.url));
        let invalid = |reason: String| RedisError::InvalidUrl {
            url: shown.to_string(),
            reason,
        };
        let client =
            redis::Client::open(options.url.as_str()).map_err(|e| invalid(e.to_string()))?;
        let meanwhile = format!(
            "budgets fail {}, rate limits fail {}, the response cache misses, settlements \
             are kept and retried",
            options.budgets_fail, options.limits_fail
        );
        let conn = Arc::new(
            Conn::new(client, Arc::clone(&shown), options.timeout, meanwhile)
                .map_err(|e| invalid(e.to_string()))?,
        );
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        tasks.spawn(Arc::clone(&conn).probe(stop.clone()));
        // Short and unique: it names this process's reservations in every budget.
        let pid: Arc<str> = Arc::from(&uuid::Uuid::new_v4().simple().to_string()[..16]);
        conn.first_ping().await;
        Ok(Redis {
            inner: Arc::new(Inner {
                conn,
                options,
                pid,
                tasks,
                stop,
                limits: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// The URL as messages show it (no password).
    pub fn shown_url(&self) -> &str {
        self.inner.conn.url()
    }

    /// This process's id in Redis (its reservations, its messages).
    pub fn process_id(&self) -> &str {
        &self.inner.pid
    }

    /// Whether Redis answers now (a `PING` within the timeout); for `/readyz` or a status
    /// page. Never needed before other calls: each piece reconnects on its own.
    pub async fn ping(&self) -> Result<(), Unavailable> {
        self.inner.conn.ping().await
    }

    /// Whether Redis is known to be away now (no call made).
    pub fn is_down(&self) -> bool {
        self.inner.conn.is_down()
    }

    /// The shared budgets and rate limits, on `clock` (the gateway's). For
    /// `LimitsPolicy::with_shared`; call [`RedisLimits::mirror`] with the ledger before
    /// serving.
    pub fn limits(&self, clock: Arc<dyn Clock>) -> RedisLimits {
        let inner = &self.inner;
        let limits = RedisLimits::start(limits::LimitsSetup {
            conn: Arc::clone(&inner.conn),
            pid: Arc::clone(&inner.pid),
            prefix: inner.options.prefix.clone(),
            limits_fail: inner.options.limits_fail,
            budgets_fail: inner.options.budgets_fail,
            clock,
            tasks: inner.tasks.clone(),
            stop: inner.stop.clone(),
        });
        inner
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(limits.clone());
        limits
    }

    /// The shared response cache, storing answers of at most `max_entry_bytes` (encoded).
    pub fn cache(&self, max_entry_bytes: usize) -> RedisCache {
        RedisCache::new(
            Arc::clone(&self.inner.conn),
            &self.inner.options.prefix,
            max_entry_bytes,
            self.inner.tasks.clone(),
        )
    }

    /// The catalog-change bus (subscribed from now on).
    pub fn bus(&self) -> ChangeBus {
        ChangeBus::start(
            Arc::clone(&self.inner.conn),
            &self.inner.options.prefix,
            Arc::clone(&self.inner.pid),
            &self.inner.tasks,
            self.inner.stop.clone(),
        )
    }

    /// Shares `registry`'s circuit breakers with the other processes: openings here are
    /// published, openings elsewhere are applied with `apply` (usually
    /// `move |key, until| gateway.health().force_open(key, until)`, through a `Weak` to the
    /// gateway). Returns `None` when `registry` already has an observer.
    pub fn share_breakers(
        &self,
        registry: &HealthRegistry,
        apply: impl Fn(&str, Instant) + Send + Sync + 'static,
    ) -> Option<SharedBreakers> {
        let breakers = SharedBreakers::new(
            Arc::clone(&self.inner.conn),
            &self.inner.options.prefix,
            Arc::clone(&self.inner.pid),
            Box::new(apply),
            &self.inner.tasks,
        );
        if !breakers.observe(registry) {
            return None;
        }
        breakers.follow(self.inner.stop.clone());
        Some(breakers)
    }

    /// Stops the background work: call it after the server has stopped (every request has
    /// settled) and before the ledger's last write. Settlements still queued are applied
    /// for at most `within` (then counted lost and logged); a last mirror copies the final
    /// shared figures into the ledger.
    pub async fn shutdown(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let limits: Vec<RedisLimits> = self
            .inner
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for limits in &limits {
            limits.queue().set_deadline(deadline);
        }
        self.inner.stop.cancel();
        self.inner.tasks.close();
        // The queue gives up at the deadline; a little more for that last try to end.
        let waited = deadline + Duration::from_millis(500);
        let _ = tokio::time::timeout_at(waited.into(), self.inner.tasks.wait()).await;
        for limits in &limits {
            let _ = limits.sync_now().await;
        }
    }
}
