//! The cost of one finished request to the metrics: a hot `(provider, model)` pair.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_core::{Attempt, RequestRecord};
use portico_metrics::Metrics;

fn record(c: &mut Criterion) {
    let metrics = Metrics::new().unwrap();
    let mut r = RequestRecord::new("r".into(), 0, "chat.completions");
    r.provider = Some("openai-prod".into());
    r.model = Some("gpt-4o-mini".into());
    r.status = 200;
    r.latency_ms = 420;
    r.ttft_ms = Some(80);
    r.prompt_tokens = Some(1200);
    r.completion_tokens = Some(300);
    r.cached_tokens = Some(1000);
    r.cache_write_tokens = Some(0);
    r.cost_usd = Some(0.0004);
    r.attempts = vec![Attempt {
        provider: "openai-prod".into(),
        model: "gpt-4o-mini".into(),
        target: None,
        retry: 0,
        started_at_ms: 0,
        latency_ms: 400,
        status: Some(200),
        error: None,
    }];
    c.bench_function("metrics/observe", |b| {
        b.iter(|| metrics.observe(black_box(&r)))
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
