//! SSE parsing and re-framing of an OpenAI chat stream, as the gateway forwards it.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_providers::sse::{SseEvent, SseParser};

/// A 40-chunk chat stream in OpenAI's shape, with a usage chunk and `[DONE]`.
fn chat_stream() -> Vec<u8> {
    let mut body = String::new();
    for i in 0..40 {
        body.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":40,\"total_tokens\":52}}\n\n");
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

fn parse_all(pieces: &[&[u8]]) -> usize {
    let mut parser = SseParser::new();
    let mut events = 0;
    for piece in pieces {
        parser.push(piece);
        while let Some(event) = parser.next_event().unwrap() {
            black_box(&event);
            events += 1;
        }
    }
    while parser.finish().unwrap().is_some() {
        events += 1;
    }
    events
}

fn bench_sse(c: &mut Criterion) {
    let stream = chat_stream();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("parse/one_read", |b| {
        b.iter(|| parse_all(&[black_box(&stream)]))
    });
    // Upstreams usually deliver one event per read; small reads stress line reassembly.
    let small: Vec<&[u8]> = stream.chunks(64).collect();
    group.bench_function("parse/64_byte_reads", |b| {
        b.iter(|| parse_all(black_box(&small)))
    });
    let mut parser = SseParser::new();
    parser.push(&stream);
    let mut events: Vec<SseEvent> = Vec::new();
    while let Some(event) = parser.next_event().unwrap() {
        events.push(event);
    }
    group.bench_function("encode", |b| {
        b.iter(|| {
            for event in &events {
                black_box(event.encode());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench_sse);
criterion_main!(benches);
