//! Shared circuit breakers: opened in one process's registry, open in the other's, and in a
//! process that starts while it is still open.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_core::ManualClock;
use portico_routing::{BreakerConfig, BreakerState, HealthRegistry, health_key};
use portico_testkit::TestRedis;

use super::*;

fn registry() -> Arc<HealthRegistry> {
    Arc::new(HealthRegistry::new(BreakerConfig {
        failure_threshold: 2,
        cool_down: Duration::from_secs(30),
        probe_timeout: Duration::from_secs(60),
    }))
}

fn share(p: &Process, registry: &Arc<HealthRegistry>) {
    let weak = Arc::downgrade(registry);
    let shared = p.redis.share_breakers(registry, move |key, until| {
        if let Some(registry) = weak.upgrade() {
            registry.force_open(key, until);
        }
    });
    assert!(shared.is_some());
}

fn is_open(registry: &HealthRegistry, key: &str) -> bool {
    matches!(
        registry.state(key, Instant::now()),
        BreakerState::Open { .. }
    )
}

#[tokio::test]
async fn a_breaker_opened_in_one_process_is_open_in_the_others() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let (ra, rb) = (registry(), registry());
    share(&a, &ra);
    share(&b, &rb);
    let key = health_key("openai", "gpt-4o");
    // The subscriptions are made in the background: fail until B hears of it.
    let heard = eventually(Duration::from_secs(5), || async {
        ra.record_failure(&key, Instant::now());
        ra.record_failure(&key, Instant::now());
        // Re-arm: a later opening is published again.
        if !is_open(&rb, &key) {
            ra.record_success(&key, None);
        }
        is_open(&rb, &key)
    })
    .await;
    assert!(heard);
    let BreakerState::Open { until } = rb.state(&key, Instant::now()) else {
        panic!("open");
    };
    let left = until.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(25) && left <= Duration::from_secs(30),
        "{left:?}"
    );
    // Another model of the same provider is untouched.
    assert!(!is_open(&rb, &health_key("openai", "gpt-4o-mini")));

    // A process starting now learns it from the kept key.
    let c = process(&server, &clock).await;
    let rc = registry();
    share(&c, &rc);
    assert!(
        eventually(Duration::from_secs(5), || async { is_open(&rc, &key) }).await,
        "a late process learns the open breakers"
    );
}
