//! The shared response cache: stored by one process, a hit in another; expiry; the entry
//! cap; Redis away is a miss, never an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portico_cache::{CacheStore, CachedAnswer, CachedEvent, KeyBuilder, Payload};
use portico_core::ManualClock;
use portico_redis::DEFAULT_MAX_ENTRY_BYTES;
use portico_testkit::TestRedis;

use super::*;

fn answer(stored_at_ms: i64) -> CachedAnswer {
    CachedAnswer {
        status: 200,
        payload: Payload::Stream(vec![CachedEvent {
            name: None,
            data: Bytes::from_static(b"{\"choices\":[]}"),
        }]),
        provider: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        prompt_tokens: Some(3),
        completion_tokens: Some(4),
        cost_usd: Some(0.001),
        stored_at_ms,
    }
}

fn key(text: &str) -> portico_cache::CacheKey {
    let mut builder = KeyBuilder::new("test");
    builder.part("body", text.as_bytes());
    builder.finish()
}

#[tokio::test]
async fn an_answer_stored_by_one_process_is_a_hit_in_another_until_it_expires() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let (a, b) = (
        process(&server, &clock).await,
        process(&server, &clock).await,
    );
    let (ca, cb) = (
        a.redis.cache(DEFAULT_MAX_ENTRY_BYTES),
        b.redis.cache(DEFAULT_MAX_ENTRY_BYTES),
    );
    assert!(cb.get(&key("q"), SUNDAY_1PM).await.unwrap().is_none());
    ca.put(key("q"), answer(SUNDAY_1PM), SUNDAY_1PM + 60_000);
    let hit = eventually(Duration::from_secs(5), || async {
        cb.get(&key("q"), SUNDAY_1PM + 1).await.unwrap().is_some()
    })
    .await;
    assert!(hit);
    let got = cb.get(&key("q"), SUNDAY_1PM + 1).await.unwrap().unwrap();
    assert_eq!(*got, answer(SUNDAY_1PM));
    // Expired on the asking clock: a miss.
    assert!(
        cb.get(&key("q"), SUNDAY_1PM + 60_000)
            .await
            .unwrap()
            .is_none()
    );
    // And Redis drops it after its time to live, on its own clock.
    ca.put(key("short"), answer(SUNDAY_1PM), SUNDAY_1PM + 150);
    let dropped = eventually(Duration::from_secs(5), || async {
        let mut raw = raw(&server).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("portico:cache:*")
            .query_async(&mut raw)
            .await
            .unwrap();
        keys.len() == 1
    })
    .await;
    assert!(dropped, "the short-lived entry expired in Redis");
}

#[tokio::test]
async fn an_answer_over_the_cap_is_not_stored() {
    let server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let a = process(&server, &clock).await;
    let cache = a.redis.cache(1_000);
    let mut big = answer(SUNDAY_1PM);
    big.payload = Payload::Whole(Bytes::from(vec![b'x'; 2_000]));
    cache.put(key("big"), big, SUNDAY_1PM + 60_000);
    assert_eq!(cache.skipped(), 1);
    assert!(cache.get(&key("big"), SUNDAY_1PM).await.unwrap().is_none());
}

#[tokio::test]
async fn redis_away_is_a_miss_and_the_cache_works_again_after_a_restart() {
    let mut server = TestRedis::start();
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let a = process(&server, &clock).await;
    let cache = a.redis.cache(DEFAULT_MAX_ENTRY_BYTES);
    server.stop();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert!(cache.get(&key("q"), SUNDAY_1PM).await.unwrap().is_none());
    }
    // Once known away, a lookup fails at once rather than after the timeout.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    cache.put(key("q"), answer(SUNDAY_1PM), SUNDAY_1PM + 60_000);
    server.restart();
    let back = eventually(Duration::from_secs(10), || async {
        cache.put(key("q"), answer(SUNDAY_1PM), SUNDAY_1PM + 60_000);
        cache.get(&key("q"), SUNDAY_1PM).await.unwrap().is_some()
    })
    .await;
    assert!(back);
}
