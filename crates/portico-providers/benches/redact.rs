//! What the secret redactor costs on every answer of a provider with credentials: a typical
//! 1 KB chat completion body and one stream event, clean (the common case) and holding a key.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_providers::SseEvent;
use portico_providers::redact::Redactor;

const KEY: &str = "sk-proj-4f9a1c0b7e2d4c8a9b3e6f1a2c5d8e0b";

/// A provider with an API key and AWS-style credentials: four secrets.
fn four_secrets() -> Redactor {
    Redactor::new([
        KEY,
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "FwoGZXIvYXdzEJr//////////wEaDOPsessiontokenexample",
    ])
    .unwrap()
    .unwrap()
}

/// A chat completion body of about 1 KB.
fn body() -> Bytes {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(17);
    let body = format!(
        r#"{{"id":"chatcmpl-abc123","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":12,"completion_tokens":160,"total_tokens":172}}}}"#
    );
    Bytes::from(body)
}

fn event() -> SseEvent {
    SseEvent::data(Bytes::from_static(
        br#"{"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}"#,
    ))
}

fn bench_redact(c: &mut Criterion) {
    let redactor = four_secrets();
    let clean = body();
    let dirty = Bytes::from(
        String::from_utf8(clean.to_vec())
            .unwrap()
            .replace("lazy dog", KEY),
    );
    assert!(redactor.finds(&dirty));

    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("body_1k_clean", |b| {
        b.iter(|| redactor.bytes(black_box(clean.clone())))
    });
    group.bench_function("body_1k_with_key", |b| {
        b.iter(|| redactor.bytes(black_box(dirty.clone())))
    });
    let event = event();
    group.throughput(Throughput::Bytes(event.data.len() as u64));
    group.bench_function("stream_event_clean", |b| {
        b.iter(|| redactor.event(black_box(event.clone())))
    });
    group.finish();

    c.bench_function("redact/build_4_secrets", |b| b.iter(four_secrets));

    // The load benchmark's case: one 28-character key and the bench mock's 330-byte answer,
    // whose digits and dashes are frequent bytes of the key's encodings.
    let one = Redactor::new(["sk-bench-upstream-key-000000"])
        .unwrap()
        .unwrap();
    let answer = Bytes::from_static(
        br#"{"id":"chatcmpl-portico-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the Portico bench mock upstream."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#,
    );
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Bytes(answer.len() as u64));
    group.bench_function("bench_mock_answer_one_key", |b| {
        b.iter(|| one.bytes(black_box(answer.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench_redact);
criterion_main!(benches);
