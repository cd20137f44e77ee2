use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A mint that counts its calls, takes `delay` and hands out `tok-N` valid for `life`, or
/// fails while `fail` is set.
fn counting(
    life: Option<Duration>,
    delay: Duration,
    fail: Arc<std::sync::atomic::AtomicBool>,
) -> (Mint<String>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let mint: Mint<String> = Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = fail.load(Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if fail {
                return Err(MintError::from(
                    "the token endpoint answered 500".to_owned(),
                ));
            }
            let value = format!("minted-token-{n:04}");
            Ok(Minted {
                secrets: vec![Secret::new(value.clone())],
                value,
                expires_in: life,
            })
        })
    });
    (mint, calls)
}

fn no_failure() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch() {
    let (mint, calls) = counting(
        Some(Duration::from_secs(3600)),
        Duration::from_millis(50),
        no_failure(),
    );
    let cache = TokenCache::new(mint, LiveSecrets::new());
    let gets = (0..20).map(|_| cache.get());
    let tokens = futures::future::join_all(gets).await;
    assert!(
        tokens
            .iter()
            .all(|t| t.as_deref() == Ok("minted-token-0001"))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get().await.unwrap(), "minted-token-0001");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a cached token is reused");
}

#[tokio::test]
async fn a_token_in_its_refresh_window_is_used_while_a_new_one_is_fetched() {
    // Lives 1 s: refreshed from 0.5 s on, retired at 0.9 s.
    let (mint, calls) = counting(
        Some(Duration::from_secs(1)),
        Duration::from_millis(100),
        no_failure(),
    );
    let cache = TokenCache::new(mint, LiveSecrets::new());
    assert_eq!(cache.get().await.unwrap(), "minted-token-0001");
    tokio::time::sleep(Duration::from_millis(550)).await;
    let started = Instant::now();
    assert_eq!(
        cache.get().await.unwrap(),
        "minted-token-0001",
        "the valid token is used, not waited for"
    );
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(cache.get().await.unwrap(), "minted-token-0001");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cache.get().await.unwrap(), "minted-token-0002");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one background refresh");
}

#[tokio::test]
async fn a_retired_token_is_waited_for() {
    let (mint, calls) = counting(
        Some(Duration::from_millis(300)),
        Duration::ZERO,
        no_failure(),
    );
    let cache = TokenCache::new(mint, LiveSecrets::new());
    assert_eq!(cache.get().await.unwrap(), "minted-token-0001");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get().await.unwrap(), "minted-token-0002");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn credentials_without_expiry_are_fetched_once() {
    let (mint, calls) = counting(None, Duration::ZERO, no_failure());
    let cache = TokenCache::new(mint, LiveSecrets::new());
    for _ in 0..5 {
        assert_eq!(cache.get().await.unwrap(), "minted-token-0001");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_reach_every_waiter_and_are_not_cached() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (mint, calls) = counting(
        Some(Duration::from_secs(3600)),
        Duration::from_millis(20),
        Arc::clone(&fail),
    );
    let cache = TokenCache::new(mint, LiveSecrets::new());
    let results = futures::future::join_all((0..5).map(|_| cache.get())).await;
    for result in results {
        assert_eq!(
            result.unwrap_err().to_string(),
            "the token endpoint answered 500"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    fail.store(false, Ordering::SeqCst);
    assert_eq!(cache.get().await.unwrap(), "minted-token-0002");
}

#[tokio::test]
async fn minted_secrets_reach_the_redactor() {
    let live = LiveSecrets::new();
    let (mint, _) = counting(
        Some(Duration::from_secs(3600)),
        Duration::ZERO,
        no_failure(),
    );
    let cache = TokenCache::new(mint, Arc::clone(&live));
    assert!(live.redactor().is_none());
    let token = cache.get().await.unwrap();
    let redactor = live.redactor().expect("a redactor once a token is minted");
    assert_eq!(
        redactor.string(format!("bad token Bearer {token}")),
        "bad token Bearer [REDACTED]"
    );
}
