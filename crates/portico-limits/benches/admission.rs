//! The cost of the limits on one request: admission (check and reserve) and settlement, on
//! one subject with a budget and a rate limit, and on three subjects at once (a key, its
//! user and a metadata budget). The clock moves 10 ms per request, so the window slides as
//! under load.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_core::{BudgetSpec, Limits, Period, RateLimitSpec, Subject};
use portico_limits::{Charge, Estimate, Hold, Ledger, reserve_all};

/// Limits no benchmark request reaches: the check runs in full and admits.
fn roomy() -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(1e12),
            tokens: Some(u64::MAX / 2),
            period: Period::Month,
        }),
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(u64::MAX / 2),
            tokens_per_minute: Some(u64::MAX / 2),
        }),
    }
}

fn admission(c: &mut Criterion) {
    let ledger = Ledger::new();
    let key = ledger.account(&Subject::Key("bench".into()));
    let user = ledger.account(&Subject::User("alice@example.com".into()));
    let team = ledger.account(&Subject::Budget("team-backend".into()));
    let limits = roomy();
    let estimate = Estimate::tokens(40, 32).priced(0.000_05);
    let charged = Charge {
        cost_usd: 0.000_01,
        tokens: 20,
    };
    let mut now = 1_796_562_000_000_i64;

    c.bench_function("limits/reserve+settle, 1 subject", |b| {
        b.iter(|| {
            now += 10;
            let hold = Hold::reserve(Arc::clone(&key), limits, now, black_box(&estimate)).unwrap();
            hold.settle(black_box(charged), now);
        })
    });
    c.bench_function("limits/reserve_all+settle, 3 subjects", |b| {
        b.iter(|| {
            now += 10;
            let holds = reserve_all(
                [
                    (Arc::clone(&key), limits),
                    (Arc::clone(&user), limits),
                    (Arc::clone(&team), limits),
                ],
                now,
                black_box(&estimate),
            )
            .unwrap();
            for hold in holds {
                hold.settle(black_box(charged), now);
            }
        })
    });
}

criterion_group!(benches, admission);
criterion_main!(benches);
