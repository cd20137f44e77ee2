//! The response cache's hot functions: deriving the key of the 36 kB request the OpenClaw
//! agent really sends and looking it up (a hit and a miss) in a store of 10,000 entries,
//! and the semantic cache's brute-force search over 100,000 vectors in one scope (the worst
//! case: a search only scans the asking request's scope).

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_cache::{CachedAnswer, KeyBuilder, MemoryStore, Payload, VectorIndex, normalize};

fn openclaw_body() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/openclaw/turn1-request.json"
    );
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).unwrap();
    Bytes::from(serde_json::to_vec(&recorded["body_json"]).unwrap())
}

/// The parts the engine's cache policy keys a request by.
fn key_of(body: &[u8], n: u64) -> portico_cache::CacheKey {
    let mut key = KeyBuilder::new("simple");
    key.part("family", b"/v1/chat/completions")
        .optional("provider", None)
        .optional("config", Some(b"cached"))
        .optional("config_header", None)
        .optional(
            "metadata",
            Some(br#"{"team":"backend","project":"api-v2"}"#),
        )
        .optional("namespace", None)
        .part("n", &n.to_le_bytes())
        .part("body", body);
    key.finish()
}

fn bench_simple(c: &mut Criterion) {
    let body = openclaw_body();
    let mut group = c.benchmark_group("simple_cache/openclaw_36k");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("key", |b| b.iter(|| black_box(key_of(black_box(&body), 0))));
    let store = MemoryStore::new(1 << 30);
    let answer = CachedAnswer {
        status: 200,
        payload: Payload::Whole(Bytes::from(vec![b'x'; 1000])),
        provider: Some("openai".into()),
        model: Some("gpt-4o".into()),
        prompt_tokens: Some(9000),
        completion_tokens: Some(100),
        cost_usd: Some(0.03),
        stored_at_ms: 0,
    };
    for n in 0..10_000 {
        store.insert(key_of(b"other", n), answer.clone(), i64::MAX);
    }
    store.insert(key_of(&body, 0), answer, i64::MAX);
    group.bench_function("key_and_hit", |b| {
        b.iter(|| black_box(store.lookup(&key_of(black_box(&body), 0), 1).unwrap()))
    });
    group.bench_function("key_and_miss", |b| {
        b.iter(|| black_box(store.lookup(&key_of(black_box(&body), 1), 1)))
    });
    group.finish();
}

/// A deterministic pseudo-random unit vector.
fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let raw: Vec<f64> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1_u64 << 53) as f64 - 0.5
        })
        .collect();
    normalize(&raw).unwrap()
}

fn bench_semantic(c: &mut Criterion) {
    let mut group = c.benchmark_group("semantic_search/100k");
    group.sample_size(20);
    for dims in [256, 1536] {
        let mut index = VectorIndex::new(100_000);
        let scope = KeyBuilder::new("scope").finish();
        for n in 0..100_000_u64 {
            let mut key = KeyBuilder::new("entry");
            key.part("n", &n.to_le_bytes());
            index.insert(scope, key.finish(), &vector(n, dims), i64::MAX, 0);
        }
        let query = vector(u64::MAX, dims);
        group.throughput(Throughput::Elements(100_000));
        group.bench_function(format!("{dims}_dims"), |b| {
            b.iter(|| black_box(index.search(&scope, black_box(&query), 0.95, 1)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_simple, bench_semantic);
criterion_main!(benches);
