//! What a cached run-time credential costs a request of a keyless provider (Entra ID, Vertex
//! AI, AWS's default chain): the lock-free read of the cached token and its clone.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt as _;
use http::HeaderValue;
use portico_core::Secret;
use portico_providers::redact::LiveSecrets;
use portico_providers::token::{Mint, Minted, TokenCache};

fn bench_token(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mint: Mint<HeaderValue> = Arc::new(|| {
        Box::pin(async {
            Ok(Minted {
                value: HeaderValue::from_static(
                    "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.bench",
                ),
                expires_in: Some(Duration::from_secs(3600)),
                secrets: vec![Secret::new("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.bench")],
            })
        })
    });
    let cache = TokenCache::new(mint, LiveSecrets::new());
    runtime.block_on(cache.get()).unwrap();
    // A cached token is ready at the first poll: polled once, no executor in the measure.
    c.bench_function("token/get_cached", |b| {
        b.iter(|| cache.get().now_or_never().unwrap().unwrap())
    });
}

criterion_group!(benches, bench_token);
criterion_main!(benches);
