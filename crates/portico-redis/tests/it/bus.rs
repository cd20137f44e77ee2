//! The catalog-change bus: a version published by one process reaches the others within a
//! second, and again after Redis restarts.

use std::sync::Arc;
use std::time::Duration;

use portico_core::ManualClock;
use portico_testkit::TestRedis;

use super::*;

/// Publishes `version` from `bus` until `receiver` sees it (the subscription may still be
/// being made), within `within`.
async fn delivered(
    bus: &portico_redis::ChangeBus,
    receiver: &mut tokio::sync::watch::Receiver<i64>,
    version: i64,
    within: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        let _ = bus.publish(version).await;
        let heard = tokio::time::timeout(Duration::from_millis(100), receiver.changed()).await;
        if heard.is_ok() && *receiver.borrow_and_update() == version {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_published_version_reaches_the_other_process_at_once_and_after_a_restart() {
    let mut server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let (bus_a, bus_b) = (a.redis.bus(), b.redis.bus());
    let mut seen_by_b = bus_b.subscribe();
    let seen_by_a = bus_a.subscribe();
    // Wait for B's subscription (made in the background), then time one message.
    assert!(delivered(&bus_a, &mut seen_by_b, 1, Duration::from_secs(5)).await);
    let sent = std::time::Instant::now();
    bus_a.publish(2).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), seen_by_b.changed())
        .await
        .expect("within a second")
        .unwrap();
    assert_eq!(*seen_by_b.borrow_and_update(), 2);
    assert!(sent.elapsed() < Duration::from_secs(1));
    // A does not hear its own news.
    assert!(!seen_by_a.has_changed().unwrap());

    server.restart();
    assert!(
        delivered(&bus_a, &mut seen_by_b, 3, Duration::from_secs(10)).await,
        "subscribed again after the restart"
    );
}
