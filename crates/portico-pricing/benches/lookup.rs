//! The per-request price lookup: a listed name, a dated snapshot, a Bedrock profile id, a miss.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_core::{ProviderKind, Usage};
use portico_pricing::PriceTable;

fn lookup(c: &mut Criterion) {
    let table = PriceTable::builtin();
    let cases = [
        ("exact", ProviderKind::OpenAi, "gpt-4o-mini"),
        ("dated", ProviderKind::OpenAi, "gpt-4o-2024-08-06"),
        (
            "bedrock_profile",
            ProviderKind::Bedrock,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("unknown", ProviderKind::Anthropic, "claude-unknown-model"),
    ];
    for (name, kind, model) in cases {
        c.bench_function(&format!("lookup/{name}"), |b| {
            b.iter(|| table.lookup(black_box(kind), black_box(model)))
        });
    }
    let usage = Usage {
        prompt_tokens: 1200,
        completion_tokens: 300,
        cached_tokens: 1000,
        cache_write_tokens: 0,
    };
    c.bench_function("cost_usd/builtin", |b| {
        b.iter(|| {
            portico_pricing::cost_usd(
                None,
                black_box(ProviderKind::Anthropic),
                black_box("claude-sonnet-4-5-20250929"),
                Some(black_box(usage)),
            )
        })
    });
}

criterion_group!(benches, lookup);
criterion_main!(benches);
