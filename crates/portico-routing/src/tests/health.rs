use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn registry() -> HealthRegistry {
    HealthRegistry::new(BreakerConfig {
        failure_threshold: 3,
        cool_down: Duration::from_secs(30),
        probe_timeout: Duration::from_secs(60),
    })
}

#[test]
fn unknown_targets_are_closed_and_available() {
    let h = registry();
    let t0 = Instant::now();
    assert_eq!(h.try_acquire("a", t0), Admission::Allowed);
    assert!(h.is_available("a", t0));
    assert_eq!(h.latency("a"), None);
    assert_eq!(
        h.state("a", t0),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(HealthRegistry::default().config(), BreakerConfig::default());
}

#[test]
fn closed_open_half_open_closed() {
    let h = registry();
    let t0 = Instant::now();
    // Closed: two failures are not enough.
    h.record_failure("a", t0);
    h.record_failure("a", t0);
    assert_eq!(
        h.state("a", t0),
        BreakerState::Closed {
            consecutive_failures: 2
        }
    );
    assert_eq!(h.try_acquire("a", t0), Admission::Allowed);
    // The third consecutive failure opens it for the cool-down.
    h.record_failure("a", t0 + SEC);
    let until = t0 + SEC + 30 * SEC;
    assert_eq!(h.state("a", t0 + SEC), BreakerState::Open { until });
    assert!(!h.is_available("a", t0 + 2 * SEC));
    assert_eq!(h.try_acquire("a", t0 + 2 * SEC), Admission::Rejected);
    assert_eq!(
        h.try_acquire("a", until - Duration::from_millis(1)),
        Admission::Rejected
    );
    // Cool-down over: half-open, and exactly one probe goes through.
    assert_eq!(
        h.state("a", until),
        BreakerState::HalfOpen { probe_since: None }
    );
    assert!(h.is_available("a", until));
    assert_eq!(h.try_acquire("a", until), Admission::Probe);
    assert_eq!(
        h.state("a", until + SEC),
        BreakerState::HalfOpen {
            probe_since: Some(until)
        }
    );
    assert!(!h.is_available("a", until + SEC));
    assert_eq!(h.try_acquire("a", until + SEC), Admission::Rejected);
    assert_eq!(h.try_acquire("a", until + 2 * SEC), Admission::Rejected);
    // The probe succeeds: closed, traffic flows, the failure count starts over.
    h.record_success("a", Some(Duration::from_millis(200)));
    assert_eq!(
        h.state("a", until + 3 * SEC),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(h.try_acquire("a", until + 3 * SEC), Admission::Allowed);
    h.record_failure("a", until + 4 * SEC);
    assert_eq!(h.try_acquire("a", until + 4 * SEC), Admission::Allowed);
}

#[test]
fn a_failed_probe_reopens_for_a_full_cool_down() {
    let h = registry();
    let t0 = Instant::now();
    for _ in 0..3 {
        h.record_failure("a", t0);
    }
    let t1 = t0 + 30 * SEC;
    assert_eq!(h.try_acquire("a", t1), Admission::Probe);
    h.record_failure("a", t1 + 5 * SEC);
    let until = t1 + 35 * SEC;
    assert_eq!(h.state("a", t1 + 5 * SEC), BreakerState::Open { until });
    assert_eq!(h.try_acquire("a", until - SEC), Admission::Rejected);
    assert_eq!(h.try_acquire("a", until), Admission::Probe);
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let h = registry();
    let t0 = Instant::now();
    for _ in 0..10 {
        h.record_failure("a", t0);
        h.record_failure("a", t0);
        h.record_success("a", None);
    }
    assert_eq!(h.try_acquire("a", t0), Admission::Allowed);
}

#[test]
fn a_lost_probe_frees_the_slot_after_the_probe_timeout() {
    let h = registry();
    let t0 = Instant::now();
    for _ in 0..3 {
        h.record_failure("a", t0);
    }
    let t1 = t0 + 30 * SEC;
    assert_eq!(h.try_acquire("a", t1), Admission::Probe);
    // The probe's request was cancelled: no result ever comes.
    assert_eq!(h.try_acquire("a", t1 + 59 * SEC), Admission::Rejected);
    assert!(h.is_available("a", t1 + 60 * SEC));
    assert_eq!(h.try_acquire("a", t1 + 60 * SEC), Admission::Probe);
    assert_eq!(h.try_acquire("a", t1 + 61 * SEC), Admission::Rejected);
}

#[test]
fn failures_while_open_extend_the_cool_down() {
    let h = registry();
    let t0 = Instant::now();
    for _ in 0..3 {
        h.record_failure("a", t0);
    }
    // Tried anyway (every target was open) and failed again 20 s later.
    h.record_failure("a", t0 + 20 * SEC);
    assert_eq!(
        h.state("a", t0 + 20 * SEC),
        BreakerState::Open {
            until: t0 + 50 * SEC
        }
    );
}

#[test]
fn record_classifies_outcomes() {
    let h = registry();
    let t0 = Instant::now();
    // 429 / 5xx / connect / timeout count.
    h.record("a", t0, Err(&Failure::status(503)));
    h.record("a", t0, Err(&Failure::Connect));
    h.record("a", t0, Err(&Failure::status(429)));
    assert!(matches!(h.state("a", t0), BreakerState::Open { .. }));
    // A 400 proves the target alive: it closes a half-open breaker like a success.
    let t1 = t0 + 30 * SEC;
    assert_eq!(h.try_acquire("a", t1), Admission::Probe);
    h.record("a", t1, Err(&Failure::status(400)));
    assert_eq!(
        h.state("a", t1),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(h.latency("a"), None);
    // A gateway-side failure is no verdict: the probe slot is freed for the next request.
    for _ in 0..3 {
        h.record("a", t1, Err(&Failure::Timeout));
    }
    let t2 = t1 + 30 * SEC;
    assert_eq!(h.try_acquire("a", t2), Admission::Probe);
    h.record("a", t2, Err(&Failure::Gateway));
    assert_eq!(h.try_acquire("a", t2), Admission::Probe);
    h.record("a", t2, Ok(Duration::from_millis(80)));
    assert_eq!(h.try_acquire("a", t2), Admission::Allowed);
    assert_eq!(h.latency("a"), Some(Duration::from_millis(80)));
    // Gateway failures and skips never open a closed breaker.
    for _ in 0..10 {
        h.record("b", t0, Err(&Failure::Gateway));
        h.record("b", t0, Err(&Failure::Skipped));
    }
    assert_eq!(h.try_acquire("b", t0), Admission::Allowed);
}

#[test]
fn targets_are_independent() {
    let h = registry();
    let t0 = Instant::now();
    for _ in 0..3 {
        h.record_failure("a", t0);
    }
    assert_eq!(h.try_acquire("a", t0), Admission::Rejected);
    assert_eq!(h.try_acquire("b", t0), Admission::Allowed);
}

#[test]
fn exactly_one_probe_under_contention() {
    let h = registry();
    let t0 = Instant::now();
    for _ in 0..3 {
        h.record_failure("a", t0);
    }
    let t1 = t0 + 30 * SEC;
    let probes = AtomicU32::new(0);
    let allowed = AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    match h.try_acquire("a", t1) {
                        Admission::Probe => probes.fetch_add(1, Ordering::SeqCst),
                        Admission::Allowed => allowed.fetch_add(1, Ordering::SeqCst),
                        Admission::Rejected => 0,
                    };
                    h.record_failure("other", t1);
                }
            });
        }
    });
    assert_eq!(probes.load(Ordering::SeqCst), 1);
    assert_eq!(allowed.load(Ordering::SeqCst), 0);
}

#[test]
fn latency_is_an_exponentially_weighted_average() {
    let h = registry();
    h.record_success("a", Some(Duration::from_millis(100)));
    assert_eq!(h.latency("a"), Some(Duration::from_millis(100)));
    h.record_success("a", Some(Duration::from_millis(600)));
    // 0.2 × 600 + 0.8 × 100 = 200 ms.
    let l = h.latency("a").unwrap();
    assert!((l.as_secs_f64() - 0.2).abs() < 1e-9, "{l:?}");
    // Converges to a steady value.
    for _ in 0..100 {
        h.record_success("a", Some(Duration::from_millis(50)));
    }
    let l = h.latency("a").unwrap();
    assert!((l.as_secs_f64() - 0.05).abs() < 1e-6, "{l:?}");
    // A success without a latency leaves the average alone.
    h.record_success("a", None);
    assert!((h.latency("a").unwrap().as_secs_f64() - 0.05).abs() < 1e-6);
}

#[test]
fn latency_factor_scales_by_relative_speed_within_bounds() {
    let ms = Duration::from_millis;
    assert_eq!(latency_factor(Some(ms(100)), Some(ms(100))), 1.0);
    assert_eq!(latency_factor(Some(ms(200)), Some(ms(100))), 0.5);
    assert_eq!(latency_factor(Some(ms(400)), Some(ms(100))), 0.25);
    assert_eq!(
        latency_factor(Some(ms(100_000)), Some(ms(100))),
        MIN_LATENCY_FACTOR
    );
    assert_eq!(latency_factor(None, Some(ms(100))), 1.0);
    assert_eq!(latency_factor(Some(ms(100)), None), 1.0);
    assert_eq!(latency_factor(Some(Duration::ZERO), Some(ms(1))), 1.0);
    assert_eq!(latency_factor(Some(ms(5)), Some(Duration::ZERO)), 1.0);
}

#[test]
fn all_healthy_view() {
    let t0 = Instant::now();
    assert!(AllHealthy.is_available("x", t0));
    assert_eq!(AllHealthy.latency("x"), None);
}

#[test]
fn the_registry_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HealthRegistry>();
    assert_send_sync::<std::sync::Arc<dyn HealthView + Send + Sync>>();
}

#[test]
fn one_models_failures_leave_the_providers_other_models_closed() {
    let h = registry();
    let t0 = Instant::now();
    let (bad, good) = (health_key("p", "bad"), health_key("p", "good"));
    assert_eq!(bad, "@p/bad");
    for _ in 0..3 {
        h.record_failure(&bad, t0);
    }
    assert!(matches!(h.state(&bad, t0), BreakerState::Open { .. }));
    assert_eq!(h.try_acquire(&bad, t0), Admission::Rejected);
    assert_eq!(h.try_acquire(&good, t0), Admission::Allowed);
    assert!(h.is_available(&good, t0));
    // Latency averages are apart too.
    h.record_success(&good, Some(Duration::from_millis(50)));
    assert_eq!(h.latency(&good), Some(Duration::from_millis(50)));
    assert_eq!(h.latency(&bad), None);
}

/// Records the openings it hears of.
#[derive(Default)]
struct Openings(std::sync::Mutex<Vec<(String, Instant)>>);

impl BreakerObserver for Openings {
    fn opened(&self, key: &str, until: Instant) {
        self.0.lock().unwrap().push((key.to_owned(), until));
    }
}

#[test]
fn an_observer_hears_each_opening_once() {
    let h = registry();
    let seen = Arc::new(Openings::default());
    assert!(
        h.set_observer(Arc::clone(&seen) as Arc<dyn BreakerObserver>)
            .is_ok()
    );
    assert!(
        h.set_observer(Arc::new(Openings::default())).is_err(),
        "one observer per registry"
    );
    let t0 = Instant::now();
    let key = health_key("p", "m");
    for _ in 0..3 {
        h.record_failure(&key, t0);
    }
    // Failures while open extend it without a new opening.
    h.record_failure(&key, t0 + SEC);
    assert_eq!(*seen.0.lock().unwrap(), vec![(key.clone(), t0 + 30 * SEC)]);
    // The probe fails: it opens again.
    let later = t0 + 40 * SEC;
    assert_eq!(h.try_acquire(&key, later), Admission::Probe);
    h.record_failure(&key, later);
    assert_eq!(seen.0.lock().unwrap().len(), 2);
    assert_eq!(seen.0.lock().unwrap()[1], (key, later + 30 * SEC));
}

#[test]
fn a_breaker_forced_open_elsewhere_is_open_here_without_echo() {
    let h = registry();
    let seen = Arc::new(Openings::default());
    assert!(
        h.set_observer(Arc::clone(&seen) as Arc<dyn BreakerObserver>)
            .is_ok()
    );
    let t0 = Instant::now();
    let key = health_key("p", "m");
    h.force_open(&key, t0 + 10 * SEC);
    assert_eq!(
        h.state(&key, t0),
        BreakerState::Open {
            until: t0 + 10 * SEC
        }
    );
    assert_eq!(h.try_acquire(&key, t0 + SEC), Admission::Rejected);
    // A shorter opening does not shorten it.
    h.force_open(&key, t0 + 5 * SEC);
    assert_eq!(
        h.state(&key, t0),
        BreakerState::Open {
            until: t0 + 10 * SEC
        }
    );
    assert!(seen.0.lock().unwrap().is_empty(), "not told back");
    // After it, the usual half-open probe.
    assert_eq!(h.try_acquire(&key, t0 + 10 * SEC), Admission::Probe);
    assert_eq!(split_health_key(&key), Some(("p", "m")));
    assert_eq!(split_health_key("p/m"), None);
}
