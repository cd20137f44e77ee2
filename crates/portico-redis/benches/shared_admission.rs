//! What the shared limits cost a request: one admission round trip to Redis (the Lua script
//! over the request's subjects) plus queuing its settlement, against a private
//! `redis-server` on a Unix socket; and the in-memory admission and settlement of the same
//! subjects, for comparison. Limits no request reaches, so every check runs in full.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_core::{BudgetSpec, Clock, Limits, Period, RateLimitSpec, Subject, SystemClock};
use portico_limits::{Account, Charge, Estimate, Ledger, SharedHold, SharedLimits, reserve_all};
use portico_redis::{Redis, RedisOptions};
use portico_testkit::TestRedis;

fn roomy() -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(1e12),
            tokens: Some(1 << 50),
            period: Period::Month,
        }),
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(1 << 50),
            tokens_per_minute: Some(1 << 50),
        }),
    }
}

fn admission(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = TestRedis::start();
    let limits = runtime.block_on(async {
        let redis = Redis::connect(RedisOptions::new(server.url()))
            .await
            .unwrap();
        redis.limits(Arc::new(SystemClock) as Arc<dyn Clock>)
    });
    let backend: Arc<dyn SharedLimits> = Arc::new(limits.clone());
    let ledger = Ledger::new();
    let subjects: Vec<(Arc<Account>, Limits)> = [
        Subject::Key("bench".into()),
        Subject::User("alice@example.com".into()),
        Subject::Budget("team-backend".into()),
    ]
    .into_iter()
    .map(|s| (ledger.account(&s), roomy()))
    .collect();
    let estimate = Estimate::tokens(40, 32).priced(0.000_05);
    let charged = Charge {
        cost_usd: 0.000_01,
        tokens: 20,
    };
    let clock = SystemClock;

    // The floor: one PING round trip on the same kind of connection.
    let mut raw = runtime.block_on(async {
        redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });
    c.bench_function("redis/PING round trip", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let _: String = redis::cmd("PING").query_async(&mut raw).await.unwrap();
            })
        })
    });

    for n in [1, 3] {
        let chosen = subjects[..n].to_vec();
        c.bench_function(
            &format!("redis/reserve+queue settle, {n} subject(s)"),
            |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let now = clock.now_ms();
                        let hold = SharedHold::reserve(
                            &backend,
                            chosen.clone(),
                            now,
                            black_box(&estimate),
                        )
                        .await
                        .unwrap();
                        hold.settle(Some(black_box(charged)), now, |_, _| {});
                    })
                })
            },
        );
    }
    let settled = runtime.block_on(limits.flush(Duration::from_secs(30)));
    assert!(settled, "the queue kept up: {:?}", limits.settle_stats());
    assert_eq!(limits.settle_stats().lost, 0);

    let mut now = clock.now_ms();
    c.bench_function("memory/reserve_all+settle, 3 subjects", |b| {
        b.iter(|| {
            now += 10;
            let holds = reserve_all(subjects.iter().cloned(), now, black_box(&estimate)).unwrap();
            for hold in holds {
                hold.settle(black_box(charged), now);
            }
        })
    });
}

criterion_group!(benches, admission);
criterion_main!(benches);
