use std::sync::atomic::{AtomicU32, Ordering};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

fn policy(attempts: u8) -> RetryPolicy {
    RetryPolicy {
        attempts,
        ..RetryPolicy::default()
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn default_statuses_connection_errors_and_timeouts_are_retried() {
    let p = policy(3);
    for s in [429, 500, 502, 503, 504] {
        assert!(p.retries(&Failure::status(s)), "{s}");
    }
    for s in [400, 401, 403, 404, 408, 422, 501] {
        assert!(!p.retries(&Failure::status(s)), "{s}");
    }
    assert!(p.retries(&Failure::Connect));
    assert!(p.retries(&Failure::Timeout));
    assert!(!p.retries(&Failure::Gateway));
    assert!(!p.retries(&Failure::Skipped));
}

#[test]
fn configured_statuses_replace_the_defaults_but_not_transport_errors() {
    let p = RetryPolicy {
        attempts: 2,
        on_status_codes: Some(vec![408, 401]),
        use_retry_after_header: false,
    };
    assert!(p.retries(&Failure::status(408)));
    assert!(p.retries(&Failure::status(401)));
    assert!(!p.retries(&Failure::status(429)));
    assert!(!p.retries(&Failure::status(503)));
    assert!(p.retries(&Failure::Connect));
    assert!(p.retries(&Failure::Timeout));
    let none = RetryPolicy {
        on_status_codes: Some(vec![]),
        ..p
    };
    assert!(!none.retries(&Failure::status(503)));
    assert!(none.retries(&Failure::Connect));
}

#[test]
fn attempts_count_retries_after_the_first_try() {
    let p = policy(2);
    let mut r = rng();
    let f = Failure::status(503);
    assert!(matches!(
        p.decide(0, &f, None, &mut r),
        RetryDecision::Retry { .. }
    ));
    assert!(matches!(
        p.decide(1, &f, None, &mut r),
        RetryDecision::Retry { .. }
    ));
    assert_eq!(
        p.decide(2, &f, None, &mut r),
        RetryDecision::GiveUp(GiveUp::AttemptsExhausted)
    );
    assert_eq!(
        policy(0).decide(0, &f, None, &mut r),
        RetryDecision::GiveUp(GiveUp::AttemptsExhausted)
    );
    assert_eq!(
        p.decide(0, &Failure::status(400), None, &mut r),
        RetryDecision::GiveUp(GiveUp::NotRetryable)
    );
}

#[test]
fn backoff_ceiling_doubles_from_100ms_and_caps_at_10s() {
    let expected_ms = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000];
    for (n, ms) in expected_ms.iter().enumerate() {
        assert_eq!(
            backoff_ceiling(n as u32),
            Duration::from_millis(*ms),
            "n={n}"
        );
    }
    assert_eq!(backoff_ceiling(40), BACKOFF_CAP);
    assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
}

#[test]
fn backoff_is_full_jitter_within_the_ceiling() {
    let mut r = rng();
    for n in 0..8u32 {
        let ceiling = backoff_ceiling(n);
        let draws: Vec<Duration> = (0..2000).map(|_| backoff_delay(n, &mut r)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling), "n={n}");
        // Uniform over [0, ceiling]: the mean is near ceiling / 2, and both ends are reached.
        let mean = draws.iter().sum::<Duration>() / 2000;
        let half = ceiling / 2;
        assert!(
            mean > half.mul_f64(0.9) && mean < half.mul_f64(1.1),
            "n={n}: mean {mean:?}, ceiling {ceiling:?}"
        );
        assert!(draws.iter().any(|d| *d < ceiling / 10), "n={n}");
        assert!(draws.iter().any(|d| *d > ceiling.mul_f64(0.9)), "n={n}");
    }
}

#[test]
fn decide_uses_backoff_for_the_retry_number() {
    let p = policy(5);
    for n in 0..5u8 {
        let mut a = StdRng::seed_from_u64(u64::from(n));
        let mut b = StdRng::seed_from_u64(u64::from(n));
        assert_eq!(
            p.decide(n, &Failure::Connect, None, &mut a),
            RetryDecision::Retry {
                after: backoff_delay(u32::from(n), &mut b),
                source: DelaySource::Backoff
            }
        );
    }
}

#[test]
fn retry_after_is_honoured_only_when_asked() {
    let f = Failure::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(2)),
    };
    let honour = RetryPolicy {
        attempts: 3,
        on_status_codes: None,
        use_retry_after_header: true,
    };
    assert_eq!(
        honour.decide(0, &f, None, &mut rng()),
        RetryDecision::Retry {
            after: Duration::from_secs(2),
            source: DelaySource::RetryAfter
        }
    );
    // Without the flag, backoff (≤ 100 ms for the first retry).
    match policy(3).decide(0, &f, None, &mut rng()) {
        RetryDecision::Retry { after, source } => {
            assert_eq!(source, DelaySource::Backoff);
            assert!(after <= 100 * MS);
        }
        other => panic!("{other:?}"),
    }
    // With the flag but no header: backoff.
    assert!(matches!(
        honour.decide(0, &Failure::status(503), None, &mut rng()),
        RetryDecision::Retry {
            source: DelaySource::Backoff,
            ..
        }
    ));
    // Honoured on any retried status, e.g. a 503 with Retry-After.
    let f503 = Failure::Status {
        status: 503,
        retry_after: Some(Duration::from_secs(1)),
    };
    assert_eq!(
        honour.decide(1, &f503, None, &mut rng()),
        RetryDecision::Retry {
            after: Duration::from_secs(1),
            source: DelaySource::RetryAfter
        }
    );
}

#[test]
fn a_retry_after_beyond_the_limit_or_budget_ends_retries() {
    let honour = RetryPolicy {
        attempts: 3,
        on_status_codes: None,
        use_retry_after_header: true,
    };
    let after = |secs| Failure::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(secs)),
    };
    assert_eq!(
        honour.decide(0, &after(61), None, &mut rng()),
        RetryDecision::GiveUp(GiveUp::RetryAfterTooLong(Duration::from_secs(61)))
    );
    assert!(matches!(
        honour.decide(0, &after(60), None, &mut rng()),
        RetryDecision::Retry { .. }
    ));
    // Capped by the remaining request_timeout budget.
    assert_eq!(
        honour.decide(0, &after(5), Some(Duration::from_secs(5)), &mut rng()),
        RetryDecision::GiveUp(GiveUp::RetryAfterTooLong(Duration::from_secs(5)))
    );
    assert!(matches!(
        honour.decide(0, &after(5), Some(Duration::from_secs(6)), &mut rng()),
        RetryDecision::Retry { .. }
    ));
}

#[test]
fn backoff_reaching_the_budget_ends_retries() {
    let p = policy(5);
    assert_eq!(
        p.decide(0, &Failure::Connect, Some(Duration::ZERO), &mut rng()),
        RetryDecision::GiveUp(GiveUp::BudgetExhausted)
    );
    // Property-style: whatever the draw, a retry's wait is below the budget left.
    let mut r = rng();
    for budget_ms in [1u32, 10, 50, 99, 150, 1000] {
        for n in 0..5u8 {
            match p.decide(n, &Failure::Timeout, Some(budget_ms * MS), &mut r) {
                RetryDecision::Retry { after, .. } => assert!(after < budget_ms * MS),
                RetryDecision::GiveUp(g) => assert_eq!(g, GiveUp::BudgetExhausted),
            }
        }
    }
}

/// A scripted attempt: fails with the given failures, then succeeds.
fn script(
    failures: Vec<Failure>,
) -> (
    Arc<AtomicU32>,
    impl FnMut(u8) -> std::future::Ready<Result<u8, Failure>>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let f = move |n: u8| {
        let i = counter.fetch_add(1, Ordering::SeqCst) as usize;
        std::future::ready(match failures.get(i) {
            Some(f) => Err(*f),
            None => Ok(n),
        })
    };
    (calls, f)
}

use std::sync::Arc;

#[tokio::test(start_paused = true)]
async fn the_loop_waits_the_decided_delays_on_tokio_time() {
    let p = policy(3);
    let failures = vec![Failure::status(503), Failure::Connect, Failure::status(502)];
    // Replay the same RNG to know the delays the loop will draw.
    let mut replay = rng();
    let expected: Duration = (0..3u32).map(|n| backoff_delay(n, &mut replay)).sum();
    let (calls, attempt) = script(failures.clone());
    let start = tokio::time::Instant::now();
    let out = run_with_retries(&p, None, &mut rng(), |e: &Failure| *e, attempt).await;
    assert_eq!(start.elapsed(), expected);
    assert!(matches!(out.result, Ok(3)));
    assert_eq!(out.retries, 3);
    assert_eq!(out.gave_up, None);
    assert_eq!(out.failures, failures);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn the_loop_honours_retry_after() {
    let p = RetryPolicy {
        attempts: 2,
        on_status_codes: None,
        use_retry_after_header: true,
    };
    let limited = Failure::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(3)),
    };
    let (calls, attempt) = script(vec![limited, limited]);
    let start = tokio::time::Instant::now();
    let out = run_with_retries(&p, None, &mut rng(), |e: &Failure| *e, attempt).await;
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    assert!(matches!(out.result, Ok(2)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn the_loop_gives_up_when_attempts_run_out_or_the_failure_is_not_retryable() {
    let (calls, attempt) = script(vec![Failure::status(500); 10]);
    let out = run_with_retries(&policy(2), None, &mut rng(), |e: &Failure| *e, attempt).await;
    assert!(matches!(out.result, Err(AttemptError::Failed(f)) if f == Failure::status(500)));
    assert_eq!(out.retries, 2);
    assert_eq!(out.gave_up, Some(GiveUp::AttemptsExhausted));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let (calls, attempt) = script(vec![Failure::status(400)]);
    let start = tokio::time::Instant::now();
    let out = run_with_retries(&policy(5), None, &mut rng(), |e: &Failure| *e, attempt).await;
    assert_eq!(out.gave_up, Some(GiveUp::NotRetryable));
    assert_eq!(out.retries, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_budget_cuts_a_slow_attempt_and_counts_waits() {
    // Each attempt hangs for 10 s; the budget is 3 s: the first attempt is cut at 3 s and
    // nothing is left to retry with.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let start = tokio::time::Instant::now();
    let out = run_with_retries(
        &policy(5),
        Some(Duration::from_secs(3)),
        &mut rng(),
        |e: &Failure| *e,
        move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<(), Failure>(())
            }
        },
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert!(matches!(out.result, Err(AttemptError::TimedOut)));
    assert_eq!(out.failures, vec![Failure::Timeout]);
    assert_eq!(out.gave_up, Some(GiveUp::BudgetExhausted));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A Retry-After longer than what is left of the budget ends the retries at once.
    let p = RetryPolicy {
        attempts: 3,
        on_status_codes: None,
        use_retry_after_header: true,
    };
    let (calls, attempt) = script(vec![Failure::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(30)),
    }]);
    let start = tokio::time::Instant::now();
    let out = run_with_retries(
        &p,
        Some(Duration::from_secs(10)),
        &mut rng(),
        |e: &Failure| *e,
        attempt,
    )
    .await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        out.gave_up,
        Some(GiveUp::RetryAfterTooLong(Duration::from_secs(30)))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_loop_is_send_with_a_send_rng_so_handlers_can_await_it() {
    fn assert_send<T: Send>(_: &T) {}
    let p = policy(1);
    let mut r = rng();
    let fut = run_with_retries(
        &p,
        None,
        &mut r,
        |e: &Failure| *e,
        |_| async { Ok::<(), Failure>(()) },
    );
    assert_send(&fut);
}
