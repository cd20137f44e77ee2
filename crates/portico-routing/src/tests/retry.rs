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

/// What the loop (the engine's dispatcher) meets when a try was cut at the end of the
/// candidate's `request_timeout`: a timeout with nothing left of the budget. Timeouts are
/// retried, but not with no time to retry in, however many attempts are left; and a
/// `Retry-After` does not change that.
#[test]
fn a_cut_attempt_with_no_budget_left_is_not_retried() {
    let honour = RetryPolicy {
        attempts: 5,
        on_status_codes: None,
        use_retry_after_header: true,
    };
    for retries_done in 0..5u8 {
        assert_eq!(
            honour.decide(
                retries_done,
                &Failure::Timeout,
                Some(Duration::ZERO),
                &mut rng()
            ),
            RetryDecision::GiveUp(GiveUp::BudgetExhausted)
        );
    }
    let limited = Failure::Status {
        status: 429,
        retry_after: Some(Duration::from_secs(1)),
    };
    assert_eq!(
        honour.decide(0, &limited, Some(Duration::ZERO), &mut rng()),
        RetryDecision::GiveUp(GiveUp::BudgetExhausted)
    );
    // Which failures are retried is decided first: a 400 is not retryable, budget or not.
    assert_eq!(
        honour.decide(0, &Failure::status(400), Some(Duration::ZERO), &mut rng()),
        RetryDecision::GiveUp(GiveUp::NotRetryable)
    );
}

/// Each retry waits what `decide` drew for its own retry number: the loop passes the
/// number of retries made, so the waits of one candidate follow the ceilings 100, 200,
/// 400 ms, ... (the dispatcher's tests check the waits it sleeps stay under them).
#[test]
fn successive_retries_draw_from_growing_ceilings() {
    let p = policy(5);
    let mut a = rng();
    let mut b = rng();
    let failures = [Failure::status(503), Failure::Connect, Failure::status(502)];
    for (n, failure) in failures.iter().enumerate() {
        let n = u8::try_from(n).unwrap();
        match p.decide(n, failure, None, &mut a) {
            RetryDecision::Retry { after, source } => {
                assert_eq!(source, DelaySource::Backoff);
                assert_eq!(after, backoff_delay(u32::from(n), &mut b));
                assert!(after <= backoff_ceiling(u32::from(n)));
            }
            other => panic!("retry {n}: {other:?}"),
        }
    }
}
