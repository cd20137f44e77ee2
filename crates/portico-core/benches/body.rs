//! Request rewrite: the `model` field of a body replaced, the rest forwarded.
//!
//! Compares [`JsonBody`] (index the top level, copy byte ranges) with the obvious
//! `serde_json::Value` round trip, on a small chat request and on the 36 kB request the
//! OpenClaw agent really sends (26,000-character system prompt, 11 tools).

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "benchmark set-up")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_core::JsonBody;

fn openclaw_body() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/openclaw/turn1-request.json"
    );
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).unwrap();
    Bytes::from(serde_json::to_vec(&recorded["body_json"]).unwrap())
}

fn bench_rewrite(c: &mut Criterion) {
    let small = Bytes::from_static(
        br#"{"model":"@openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello, how are you today?"}],"temperature":0.2}"#,
    );
    for (name, body) in [("small", small), ("openclaw_36k", openclaw_body())] {
        let mut group = c.benchmark_group(format!("rewrite_model/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("json_body", |b| {
            b.iter(|| {
                let mut parsed = JsonBody::parse(black_box(body.clone())).unwrap();
                let model: String = parsed.get("model").unwrap().unwrap();
                parsed
                    .set("model", &model.rsplit('/').next().unwrap())
                    .unwrap();
                black_box(parsed.to_bytes())
            });
        });
        group.bench_function("value_round_trip", |b| {
            b.iter(|| {
                let mut value: serde_json::Value =
                    serde_json::from_slice(black_box(&body)).unwrap();
                let model = value["model"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned();
                value["model"] = serde_json::Value::String(model);
                black_box(serde_json::to_vec(&value).unwrap())
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench_rewrite);
criterion_main!(benches);
