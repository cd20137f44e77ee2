//! portico-redis against a real Redis: each test starts its own `redis-server` on a Unix
//! socket (`portico_testkit::TestRedis`), and plays several gateway processes by connecting
//! several [`Redis`] values to it. Stopping and restarting the server shows what the gateway
//! does while Redis is away and after it comes back, without restarting the client.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support code: a panic is how a test reports failure"
)]

mod breakers;
mod bus;
mod cache;
mod limits;

use std::sync::Arc;
use std::time::Duration;

use portico_core::{Clock, ManualClock};
use portico_redis::{Redis, RedisLimits, RedisOptions};
use portico_testkit::TestRedis;

/// 2026-12-06 13:00 UTC, a Sunday.
const SUNDAY_1PM: i64 = 1_796_562_000_000;
const HOUR: i64 = 3_600_000;

/// One gateway process's view of Redis.
struct Process {
    redis: Redis,
    limits: RedisLimits,
}

async fn process(server: &TestRedis, clock: &Arc<ManualClock>) -> Process {
    process_with(RedisOptions::new(server.url()), clock).await
}

async fn process_with(options: RedisOptions, clock: &Arc<ManualClock>) -> Process {
    let redis = Redis::connect(options).await.unwrap();
    let limits = redis.limits(Arc::clone(clock) as Arc<dyn Clock>);
    Process { redis, limits }
}

/// A plain connection for looking at what the gateway wrote.
async fn raw(server: &TestRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits until `check` holds, polling every 10 ms, at most `within`; returns whether it did.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let until = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
