//! The shared budgets and rate limits: two processes on one Redis, the overspend bound under
//! concurrency, rollover on a manual clock, settlement, fail modes and recovery, the bound on
//! reservations of a process that died, the mirror and seeding.

use std::sync::Arc;
use std::time::Duration;

use portico_core::{
    BudgetSpec, Clock, Limits, ManualClock, Period, RateLimitSpec, SpendState, Subject,
};
use portico_limits::{
    Account, Charge, Estimate, Hold, Ledger, SharedHold, SharedLimits, SharedRefusal,
};
use portico_redis::{FailMode, RedisOptions};
use portico_testkit::TestRedis;
use redis::AsyncCommands as _;

use super::*;

fn tokens_per_day(tokens: u64) -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: None,
            tokens: Some(tokens),
            period: Period::Day,
        }),
        rate_limit: None,
    }
}

fn per_minute(requests: u64) -> Limits {
    Limits {
        budget: None,
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(requests),
            tokens_per_minute: None,
        }),
    }
}

fn account(subject: Subject) -> Arc<Account> {
    Arc::new(Account::new(subject))
}

fn key_ci() -> Subject {
    Subject::Key("ci".into())
}

fn charge(tokens: u64) -> Charge {
    Charge {
        cost_usd: 0.0,
        tokens,
    }
}

async fn admit(
    p: &Process,
    subjects: &[(Arc<Account>, Limits)],
    now_ms: i64,
    estimate: Estimate,
) -> Result<SharedHold, SharedRefusal> {
    let backend: Arc<dyn SharedLimits> = Arc::new(p.limits.clone());
    SharedHold::reserve(&backend, subjects.to_vec(), now_ms, &estimate).await
}

fn limit_refusal(result: Result<SharedHold, SharedRefusal>) -> portico_limits::Refusal {
    match result {
        Err(SharedRefusal::Limit(refusal)) => refusal,
        other => panic!("expected a limit's refusal, got {other:?}"),
    }
}

fn unavailable(result: Result<SharedHold, SharedRefusal>) -> portico_core::ApiError {
    match result {
        Err(SharedRefusal::Unavailable(error)) => *error,
        other => panic!("expected a 503, got {other:?}"),
    }
}

/// The budget hash of `key:ci`.
async fn budget_fields(server: &TestRedis) -> std::collections::HashMap<String, String> {
    raw(server)
        .await
        .hgetall("portico:budget:key:ci")
        .await
        .unwrap()
}

#[tokio::test]
async fn two_processes_share_a_budget_and_a_rate_limit_with_the_in_memory_refusals() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    assert_ne!(a.redis.process_id(), b.redis.process_id());
    // What one process in memory would do with the same requests: the reference.
    let reference = account(key_ci());
    let limits = tokens_per_day(100);
    let estimate = Estimate::tokens(10, 30);
    let now = clock.now_ms();

    let in_a = [(account(key_ci()), limits)];
    let in_b = [(account(key_ci()), limits)];
    let held_a = admit(&a, &in_a, now, estimate).await.unwrap();
    let held_b = admit(&b, &in_b, now, estimate).await.unwrap();
    let r1 = Hold::reserve(Arc::clone(&reference), limits, now, &estimate).unwrap();
    let r2 = Hold::reserve(Arc::clone(&reference), limits, now, &estimate).unwrap();
    // 80 held across the two processes: a third 40 does not fit, in either.
    let refused = limit_refusal(admit(&a, &in_a, now, estimate).await);
    let expected = Hold::reserve(Arc::clone(&reference), limits, now, &estimate).unwrap_err();
    assert_eq!(refused, expected);
    assert_eq!(refused.to_api_error().status, 412);
    held_a.settle(Some(charge(25)), now, |_, _| {});
    held_b.settle(Some(charge(25)), now, |_, _| {});
    r1.settle(charge(25), now);
    r2.settle(charge(25), now);
    assert!(a.limits.flush(Duration::from_secs(5)).await);
    assert!(b.limits.flush(Duration::from_secs(5)).await);
    // 50 spent, nothing held: 40 fits again, then 50 + 40 + 40 > 100 does not.
    let fits = admit(&b, &in_b, now, estimate).await.unwrap();
    let last = limit_refusal(admit(&a, &in_a, now, estimate).await);
    let fits_ref = Hold::reserve(Arc::clone(&reference), limits, now, &estimate).unwrap();
    assert_eq!(
        last,
        Hold::reserve(Arc::clone(&reference), limits, now, &estimate).unwrap_err()
    );
    drop(fits);
    drop(fits_ref);

    // A rate limit of 3 a minute, across both, refused with the same Retry-After.
    let team = Subject::Budget("team".into());
    let rate = per_minute(3);
    let reference = account(team.clone());
    let (in_a, in_b) = ([(account(team.clone()), rate)], [(account(team), rate)]);
    for (i, p) in [&a, &b, &a].into_iter().enumerate() {
        let at = now + i64::try_from(i).unwrap() * 10_000;
        admit(p, if i == 1 { &in_b } else { &in_a }, at, estimate)
            .await
            .unwrap()
            .settle(Some(charge(1)), at, |_, _| {});
        Hold::reserve(Arc::clone(&reference), rate, at, &estimate)
            .unwrap()
            .settle(charge(1), at);
    }
    let at = now + 25_400;
    let refused = limit_refusal(admit(&b, &in_b, at, estimate).await);
    let expected = Hold::reserve(Arc::clone(&reference), rate, at, &estimate).unwrap_err();
    assert_eq!(refused, expected);
    let error = refused.to_api_error();
    assert_eq!((error.status, error.retry_after), (429, Some(35)));
    // The first request leaves the window a minute after its second.
    let later = now + 60_000;
    admit(&b, &in_b, later, estimate).await.unwrap();
}

/// 50 requests at once, 25 through each process, against a budget of 10 estimates: exactly
/// 10 are admitted, and once they settle the spend is the documented bound (docs/budgets.md):
/// `B + Σ max(0, c − e)` when each uses more than estimated, under `B` when not.
#[tokio::test]
async fn fifty_concurrent_admissions_across_two_processes_stay_within_the_bound() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let budget = 1_000;
    let estimate = Estimate::tokens(40, 60);
    for (used, expected) in [(130, 1_000 + 10 * 30), (50, 10 * 50)] {
        let mut raw = raw(&server).await;
        let _: () = raw.del("portico:budget:key:ci").await.unwrap();
        let limits = tokens_per_day(budget);
        let (sa, sb) = ([(account(key_ci()), limits)], [(account(key_ci()), limits)]);
        let now = clock.now_ms();
        let attempts = (0..50).map(|i| {
            let (p, subjects) = if i % 2 == 0 { (&a, &sa) } else { (&b, &sb) };
            admit(p, subjects, now, estimate)
        });
        let results = futures::future::join_all(attempts).await;
        let holds: Vec<SharedHold> = results.into_iter().filter_map(Result::ok).collect();
        assert_eq!(holds.len(), 10, "every admission saw every other's hold");
        for hold in holds {
            hold.settle(Some(charge(used)), now, |_, _| {});
        }
        assert!(a.limits.flush(Duration::from_secs(5)).await);
        assert!(b.limits.flush(Duration::from_secs(5)).await);
        let fields = budget_fields(&server).await;
        assert_eq!(fields["tok"], expected.to_string());
        assert!(
            !fields
                .keys()
                .any(|f| f.starts_with("t:") || f.starts_with("u:")),
            "nothing held once settled: {fields:?}"
        );
    }
}

#[tokio::test]
async fn the_spend_rolls_over_with_the_period_on_the_callers_clock() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let limits = tokens_per_day(10);
    let (sa, sb) = ([(account(key_ci()), limits)], [(account(key_ci()), limits)]);
    let monday = SUNDAY_1PM + 11 * HOUR;
    admit(&a, &sa, clock.now_ms(), Estimate::tokens(5, 5))
        .await
        .unwrap()
        .settle(Some(charge(10)), clock.now_ms(), |_, _| {});
    assert!(a.limits.flush(Duration::from_secs(5)).await);
    clock.set(monday - 1);
    let refusal = limit_refusal(admit(&b, &sb, clock.now_ms(), Estimate::default()).await);
    let portico_limits::Refusal::Budget { resets_at_ms, .. } = refusal else {
        panic!("{refusal:?}");
    };
    assert_eq!(resets_at_ms, monday);
    clock.set(monday);
    admit(&b, &sb, clock.now_ms(), Estimate::tokens(5, 5))
        .await
        .unwrap()
        .settle(Some(charge(3)), clock.now_ms(), |_, _| {});
    assert!(b.limits.flush(Duration::from_secs(5)).await);
    let fields = budget_fields(&server).await;
    assert_eq!(fields["tok"], "3", "a new day's spend");
    assert_eq!(fields["ps"], monday.to_string());
}

#[tokio::test]
async fn settlement_charges_the_real_usage_and_replaces_the_windows_estimate() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let a = process(&server, &clock).await;
    let limits = Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(1.0),
            tokens: Some(10_000),
            period: Period::Month,
        }),
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(100),
            tokens_per_minute: Some(1_000),
        }),
    };
    let subjects = [(account(key_ci()), limits)];
    let now = clock.now_ms();
    let estimate = Estimate::tokens(100, 200).priced(0.03);
    let hold = admit(&a, &subjects, now, estimate).await.unwrap();
    let mut raw = raw(&server).await;
    let second = (now / 1000).to_string();
    let window: std::collections::HashMap<String, String> =
        raw.hgetall("portico:window:key:ci").await.unwrap();
    assert_eq!(
        window[&format!("t{second}")],
        "300",
        "the estimate, while in flight"
    );
    // 700 more tokens than the window has room for, while this one is in flight.
    let refusal = limit_refusal(admit(&a, &subjects, now, Estimate::tokens(400, 400)).await);
    assert_eq!(refusal.kind(), portico_core::LimitKind::TokensPerMinute);
    hold.settle(
        Some(Charge {
            cost_usd: 0.012,
            tokens: 120,
        }),
        now + 2_000,
        |_, _| {},
    );
    assert!(a.limits.flush(Duration::from_secs(5)).await);
    let fields = budget_fields(&server).await;
    assert_eq!(
        (fields["tok"].as_str(), fields["usd"].as_str()),
        ("120", "0.012")
    );
    assert!(
        !fields
            .keys()
            .any(|f| f.starts_with("u:") || f.starts_with("t:"))
    );
    let window: std::collections::HashMap<String, String> =
        raw.hgetall("portico:window:key:ci").await.unwrap();
    assert_eq!(
        window[&format!("t{second}")],
        "120",
        "the real tokens, in its second"
    );
    assert_eq!(
        window[&format!("r{second}")],
        "1",
        "the refused one is not counted"
    );
    assert_eq!(a.limits.settle_stats().lost, 0);
}

#[tokio::test]
async fn while_redis_is_away_each_limit_follows_its_mode_and_all_recovers_after_a_restart() {
    let mut server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let defaults = process(&server, &clock).await;
    let mut flipped = RedisOptions::new(server.url());
    flipped.limits_fail = FailMode::Closed;
    flipped.budgets_fail = FailMode::Open;
    let flipped = process_with(flipped, &clock).await;
    let budget = [(account(key_ci()), tokens_per_day(1_000))];
    let rate = [(account(Subject::Budget("team".into())), per_minute(10))];
    let now = clock.now_ms();
    let estimate = Estimate::tokens(5, 5);
    admit(&defaults, &budget, now, estimate).await.unwrap();

    server.stop();
    let url = portico_redis::shown_url(&server.url());
    // Budgets fail closed by default, with a message that says why and what to change.
    let error = unavailable(admit(&defaults, &budget, now, estimate).await);
    assert_eq!(error.status, 503);
    // The first call finds the connection lost; the probe then finds it refused.
    let message = error.message;
    assert!(
        message.starts_with(&format!(
            "cannot check the budget of key:ci: Redis ({url}) is unreachable: "
        )),
        "{message}"
    );
    assert!(
        message.ends_with(
            "; budgets fail closed (set PORTICO_REDIS_BUDGETS_FAIL=open to admit requests \
             while Redis is away)"
        ),
        "{message}"
    );
    let settled = eventually(Duration::from_secs(2), || async {
        let error = unavailable(admit(&defaults, &budget, now, estimate).await);
        error.message
            == format!(
                "cannot check the budget of key:ci: Redis ({url}) is unreachable: connection \
                 refused; budgets fail closed (set PORTICO_REDIS_BUDGETS_FAIL=open to admit \
                 requests while Redis is away)"
            )
    })
    .await;
    assert!(settled, "the probe's reason: connection refused");
    // Rate limits fail open by default: admitted, unchecked.
    let open = admit(&defaults, &rate, now, estimate).await.unwrap();
    assert!(!open.is_checked());
    // The other modes.
    let error = unavailable(admit(&flipped, &rate, now, estimate).await);
    assert!(
        error
            .message
            .starts_with("cannot check the rate limit of budget:team: Redis ("),
        "{}",
        error.message
    );
    assert!(error.message.ends_with(
        "rate limits fail closed (set PORTICO_REDIS_LIMITS_FAIL=open to admit requests while \
         Redis is away)"
    ));
    // An unchecked budget admission is still charged once Redis is back.
    let unchecked = admit(&flipped, &budget, now, estimate).await.unwrap();
    assert!(!unchecked.is_checked());
    unchecked.settle(Some(charge(7)), now, |_, _| {});
    assert_eq!(
        flipped.limits.settle_stats().pending(),
        1,
        "kept for a retry"
    );

    server.restart();
    let back = eventually(Duration::from_secs(10), || async {
        admit(&defaults, &budget, now, estimate).await.is_ok()
    })
    .await;
    assert!(back, "the same client admits again once Redis is back");
    assert!(flipped.limits.flush(Duration::from_secs(10)).await);
    let stats = flipped.limits.settle_stats();
    assert_eq!((stats.applied, stats.lost), (1, 0));
    assert!(stats.retried >= 1);
    assert_eq!(budget_fields(&server).await["tok"], "7");
}

#[tokio::test]
async fn a_password_in_the_url_is_never_in_a_message() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    // The test server has no password: Redis refuses the AUTH.
    let url = format!("{}?pass=hunter2", server.url());
    let p = process_with(RedisOptions::new(url), &clock).await;
    let budget = [(account(key_ci()), tokens_per_day(1_000))];
    let error = unavailable(admit(&p, &budget, clock.now_ms(), Estimate::default()).await);
    assert!(!error.message.contains("hunter2"), "{}", error.message);
    assert!(error.message.contains(&server.url()), "{}", error.message);
}

#[tokio::test]
async fn the_holds_of_a_process_that_died_stop_counting_when_its_heartbeat_ends() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let limits = tokens_per_day(100);
    let (sa, sb) = ([(account(key_ci()), limits)], [(account(key_ci()), limits)]);
    let now = clock.now_ms();
    let estimate = Estimate::tokens(30, 30);
    // Killed mid-request: its hold is never settled.
    std::mem::forget(admit(&a, &sa, now, estimate).await.unwrap());
    a.redis.shutdown(Duration::ZERO).await;
    limit_refusal(admit(&b, &sb, now, estimate).await);
    // Its heartbeat key expires (30 s after its last beat; here at once).
    let mut raw = raw(&server).await;
    let _: () = raw
        .del(format!("portico:proc:{}", a.redis.process_id()))
        .await
        .unwrap();
    admit(&b, &sb, now, estimate).await.unwrap();
    let fields = budget_fields(&server).await;
    assert!(
        !fields.keys().any(|f| f.contains(a.redis.process_id())),
        "the dead process's holds were dropped: {fields:?}"
    );
}

#[tokio::test]
async fn a_hold_nothing_will_settle_is_dropped_once_its_minute_is_over() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let a = process(&server, &clock).await;
    let subjects = [(account(key_ci()), tokens_per_day(100))];
    let now = clock.now_ms();
    let hold = admit(&a, &subjects, now, Estimate::tokens(5, 5))
        .await
        .unwrap();
    // What an admission whose reply timed out after Redis ran it leaves behind.
    let stray = format!("t:{}:{}", a.redis.process_id(), now / 60_000);
    let mut raw = raw(&server).await;
    let _: () = raw
        .hincr("portico:budget:key:ci", &stray, 40)
        .await
        .unwrap();
    hold.settle(Some(charge(10)), now, |_, _| {});
    assert!(a.limits.flush(Duration::from_secs(5)).await);
    assert_eq!(
        budget_fields(&server).await[&stray],
        "40",
        "its minute is not over"
    );
    clock.advance(61_000);
    let dropped = eventually(Duration::from_secs(5), || async {
        !budget_fields(&server).await.contains_key(&stray)
    })
    .await;
    assert!(dropped, "the next tick drops the epoch's leftovers");
    assert_eq!(budget_fields(&server).await["tok"], "10");
}

fn saved(subject: Subject, tokens: u64) -> SpendState {
    SpendState {
        subject,
        period: Some(Period::Day),
        period_start_ms: Period::Day.start(SUNDAY_1PM),
        cost_usd: 0.0,
        tokens,
        window: Vec::new(),
        updated_at_ms: SUNDAY_1PM,
    }
}

#[tokio::test]
async fn the_mirror_seeds_redis_from_the_store_once_and_shows_every_processs_spend() {
    let mut server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let limits = tokens_per_day(1_000);
    // Process A starts with what the store kept: Redis is empty, so it is seeded.
    let ledger_a = Arc::new(Ledger::new());
    ledger_a.restore(&[saved(key_ci(), 70)], SUNDAY_1PM);
    assert_eq!(a.limits.mirror(Arc::clone(&ledger_a)).await.unwrap(), 1);
    assert_eq!(budget_fields(&server).await["tok"], "70");
    // B starts later with an older figure: Redis has state, so B takes it, not the reverse.
    let ledger_b = Arc::new(Ledger::new());
    ledger_b.restore(&[saved(key_ci(), 30)], SUNDAY_1PM);
    b.limits.mirror(Arc::clone(&ledger_b)).await.unwrap();
    assert_eq!(budget_fields(&server).await["tok"], "70");
    let shown = |ledger: &Ledger| {
        ledger
            .get(&key_ci())
            .unwrap()
            .budget_status(Period::Day, clock.now_ms())
    };
    assert_eq!(shown(&ledger_b).tokens_spent, 70);
    // A spends through the shared ledger; B's page and store see it, held and then spent.
    let subjects = [(ledger_a.account(&key_ci()), limits)];
    let hold = admit(&a, &subjects, clock.now_ms(), Estimate::tokens(10, 10))
        .await
        .unwrap();
    b.limits.sync_now().await.unwrap();
    assert_eq!(shown(&ledger_b).tokens_reserved, 20);
    hold.settle(Some(charge(15)), clock.now_ms(), |_, _| {});
    assert!(a.limits.flush(Duration::from_secs(5)).await);
    b.limits.sync_now().await.unwrap();
    let status = shown(&ledger_b);
    assert_eq!((status.tokens_spent, status.tokens_reserved), (85, 0));
    let changed = ledger_b.take_changed(clock.now_ms());
    assert_eq!(changed[0].tokens, 85, "the store writes the shared figure");

    // Redis restarts empty: the next sync of a process puts the figures back.
    server.restart();
    let back = eventually(Duration::from_secs(10), || async {
        b.limits.sync_now().await.is_ok()
    })
    .await;
    assert!(back);
    assert_eq!(budget_fields(&server).await["tok"], "85");
}

#[tokio::test]
async fn at_shutdown_what_cannot_be_settled_is_counted_lost() {
    let mut server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let mut options = RedisOptions::new(server.url());
    options.budgets_fail = FailMode::Open;
    let p = process_with(options, &clock).await;
    let subjects = [(account(key_ci()), tokens_per_day(1_000))];
    server.stop();
    let hold = admit(&p, &subjects, clock.now_ms(), Estimate::tokens(1, 1))
        .await
        .unwrap();
    hold.settle(Some(charge(2)), clock.now_ms(), |_, _| {});
    p.redis.shutdown(Duration::from_millis(300)).await;
    let stats = p.limits.settle_stats();
    assert_eq!((stats.queued, stats.applied, stats.lost), (1, 0, 1));
}

#[tokio::test]
async fn a_slow_redis_counts_as_away_and_a_late_admission_is_taken_back() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let a = process(&server, &clock).await;
    let subjects = [(account(key_ci()), tokens_per_day(100))];
    let now = clock.now_ms();
    // One admission first, so Redis knows the script (a late EVALSHA of a script it does
    // not know would do nothing).
    admit(&a, &subjects, now, Estimate::tokens(1, 1))
        .await
        .unwrap()
        .settle(Some(charge(0)), now, |_, _| {});
    assert!(a.limits.flush(Duration::from_secs(5)).await);
    // Redis holds every command for 600 ms: longer than the 200 ms timeout.
    let mut raw = raw(&server).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .query_async(&mut raw)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = unavailable(admit(&a, &subjects, now, Estimate::tokens(20, 20)).await);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        error
            .message
            .contains("did not answer within 200 ms; budgets fail closed"),
        "{}",
        error.message
    );
    // Redis ran the admission once the pause was over: 40 tokens held that no settlement
    // will take back, until its minute is over.
    let held = eventually(Duration::from_secs(5), || async {
        budget_fields(&server)
            .await
            .keys()
            .any(|f| f.starts_with("t:"))
    })
    .await;
    assert!(held);
    clock.advance(61_000);
    let dropped = eventually(Duration::from_secs(5), || async {
        !budget_fields(&server)
            .await
            .keys()
            .any(|f| f.starts_with("t:"))
    })
    .await;
    assert!(dropped, "the late admission's hold is dropped");
    // And the same client admits again.
    admit(&a, &subjects, clock.now_ms(), Estimate::tokens(20, 20))
        .await
        .unwrap();
}

/// A small deterministic generator (no test should depend on a seed it cannot print).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The shared ledger against the in-memory one, step by step on the same clock: 300 random
/// admissions, settlements (with more or less than estimated, or cut short), releases and
/// pauses across a day's rollover, with a budget and a rate limit tight enough to refuse
/// often. Every admission must get the same answer, refusals the same values (message,
/// figures, `Retry-After`).
#[tokio::test]
async fn the_shared_ledger_answers_as_the_in_memory_one_step_by_step() {
    let server = TestRedis::start();
    // 23:55 UTC: the day rolls over during the run.
    let start = Period::Day.end(SUNDAY_1PM) - 5 * 60_000;
    let clock = Arc::new(ManualClock::at(start));
    let p = process(&server, &clock).await;
    let limits = Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(0.25),
            tokens: Some(15_000),
            period: Period::Day,
        }),
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(8),
            tokens_per_minute: Some(2_500),
        }),
    };
    let reference = account(key_ci());
    let subjects = [(account(key_ci()), limits)];
    let mut rng = Lcg(17);
    let mut in_flight: Vec<(Hold, SharedHold)> = Vec::new();
    let mut admitted = 0;
    let mut refused = std::collections::HashMap::new();
    for step in 0..300 {
        clock.advance(i64::try_from(rng.below(12_000)).unwrap());
        let now = clock.now_ms();
        if rng.below(10) < 6 {
            let tokens = 1 + rng.below(400);
            // Costs in multiples of 2^-16 dollars add up exactly in both.
            let estimate =
                Estimate::tokens(tokens / 2, tokens - tokens / 2).priced(tokens as f64 / 65_536.0);
            let local = Hold::reserve(Arc::clone(&reference), limits, now, &estimate);
            let shared = admit(&p, &subjects, now, estimate).await;
            match (local, shared) {
                (Ok(local), Ok(shared)) => {
                    admitted += 1;
                    in_flight.push((local, shared));
                }
                (Err(local), Err(SharedRefusal::Limit(shared))) => {
                    *refused.entry(local.kind().as_str()).or_insert(0) += 1;
                    assert_eq!(shared, local, "step {step}");
                }
                (local, shared) => panic!("step {step}: {local:?} against {shared:?}"),
            }
        }
        if !in_flight.is_empty() && rng.below(10) < 5 {
            let i = usize::try_from(rng.below(in_flight.len() as u64)).unwrap();
            let (local, shared) = in_flight.swap_remove(i);
            match rng.below(10) {
                0 => {
                    drop(local);
                    drop(shared);
                }
                1 => {
                    local.settle_as_estimated(now);
                    shared.settle(None, now, |_, _| {});
                }
                _ => {
                    let tokens = rng.below(500);
                    let charge = Charge {
                        cost_usd: tokens as f64 / 65_536.0,
                        tokens,
                    };
                    local.settle(charge, now);
                    shared.settle(Some(charge), now, |_, _| {});
                }
            }
            assert!(p.limits.flush(Duration::from_secs(5)).await);
        }
    }
    assert!(
        clock.now_ms() > Period::Day.end(start),
        "the day rolled over"
    );
    // Every kind of answer was compared.
    assert!(admitted > 50, "{admitted} admitted");
    assert!(refused.len() == 3, "refused: {refused:?}");
}

#[tokio::test]
async fn a_process_started_while_redis_is_down_starts_and_connects_when_it_comes() {
    let mut server = TestRedis::start();
    server.stop();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let p = process(&server, &clock).await;
    assert!(p.redis.is_down());
    let subjects = [(account(key_ci()), tokens_per_day(100))];
    let error = unavailable(admit(&p, &subjects, clock.now_ms(), Estimate::default()).await);
    assert!(
        error.message.contains("is unreachable"),
        "{}",
        error.message
    );
    server.restart();
    let back = eventually(Duration::from_secs(10), || async {
        admit(&p, &subjects, clock.now_ms(), Estimate::default())
            .await
            .is_ok()
    })
    .await;
    assert!(back);
    assert!(!p.redis.is_down());
}
