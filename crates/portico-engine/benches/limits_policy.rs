//! The limits policy's whole cost on one request, as the pipeline drives it: `begin`, `before`
//! (estimate and admission on the key), `before_attempt` (admission on the provider), `after`
//! (settlement with the reported usage); and what a request that no limit applies to pays.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt as _;
use portico_core::{
    BudgetSpec, Endpoint, JsonBody, KeyHash, Limits, Period, ProviderKind, RateLimitSpec,
    RequestRecord, Secret, SystemClock,
};
use portico_engine::Family;
use portico_engine::pipeline::policy::{Finished, Output, Policy, PolicyRequest};
use portico_engine::policies::limits::LimitsPolicy;
use portico_engine::{AccessLog, Gateway, Snapshot};
use portico_limits::Ledger;
use portico_store::{KeyRecord, KeyType, ModelRecord, Pricing, ProviderRecord, RecordSource};

/// Limits the benchmark never reaches: every check runs in full and admits.
fn roomy() -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(1e12),
            tokens: Some(u64::MAX / 2),
            period: Period::Month,
        }),
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(u64::MAX / 2),
            tokens_per_minute: Some(u64::MAX / 2),
        }),
    }
}

fn key(name: &str, limits: Limits) -> KeyRecord {
    KeyRecord {
        id: format!("id-{name}"),
        name: name.to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(&format!("prt-bench-{name}-0000")),
        hint: String::new(),
        allowed_models: None,
        log_payloads: false,
        config: None,
        source: RecordSource::File,
        created_at_ms: 0,
        revoked_at_ms: None,
        expires_at_ms: None,
        limits,
    }
}

/// A gateway with the limits policy over one priced provider (with `provider_limits`) and a
/// key with and one without limits.
fn setup(provider_limits: Limits) -> (Gateway, Arc<LimitsPolicy>) {
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let provider = ProviderRecord {
        slug: "openai".to_owned(),
        kind: ProviderKind::OpenAi,
        base_url: Some("http://127.0.0.1:9/v1".to_owned()),
        api_key: Some(Secret::new("sk-bench")),
        settings: serde_json::json!({}),
        credentials: Default::default(),
        models: Some(vec![ModelRecord {
            id: "gpt-4o-mini".to_owned(),
            name: None,
            pricing: Some(Pricing {
                input_per_mtok: Some(0.15),
                output_per_mtok: Some(0.6),
                cache_read_per_mtok: None,
                cache_write_per_mtok: None,
            }),
        }]),
        source: RecordSource::File,
        limits: provider_limits,
    };
    let snapshot = Snapshot::build(
        vec![provider],
        vec![key("limited", roomy()), key("free", Limits::default())],
        Vec::new(),
        &client,
    )
    .unwrap();
    let policy = Arc::new(LimitsPolicy::new(
        Arc::new(Ledger::new()),
        Arc::new(SystemClock),
    ));
    let gateway = Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
        .with_policy(Arc::clone(&policy) as Arc<dyn Policy>);
    (gateway, policy)
}

fn bench_limits(c: &mut Criterion) {
    let family = Family::OpenAi(Endpoint::ChatCompletions);
    let mut body = JsonBody::parse(Bytes::from_static(
        br#"{"model":"@openai/gpt-4o-mini","max_tokens":32,"messages":[{"role":"user","content":"Say hello."}]}"#,
    ))
    .unwrap();
    let mut record = RequestRecord::new("r".to_owned(), 0, "chat.completions");
    let headers = http::HeaderMap::new();
    record.metadata = serde_json::json!({"team": "backend"}).as_object().cloned();
    let mut done = record.clone();
    done.status = 200;
    done.provider = Some("openai".to_owned());
    done.model = Some("gpt-4o-mini".to_owned());
    done.prompt_tokens = Some(12);
    done.completion_tokens = Some(9);
    done.cost_usd = Some(0.000_007);

    let (gateway, policy) = setup(roomy());
    let limited = gateway
        .authenticate(Some("prt-bench-limited-0000"))
        .now_or_never()
        .unwrap()
        .unwrap();
    let route = gateway
        .route(&limited, "@openai/gpt-4o-mini", None)
        .unwrap();
    c.bench_function("limits policy/key and provider limits, one request", |b| {
        b.iter(|| {
            let mut request = PolicyRequest {
                family,
                key: &limited,
                record: &mut record,
                headers: &headers,
                config: None,
                body: &mut body,
                model: Some("@openai/gpt-4o-mini"),
            };
            let mut run = policy.begin(&request).unwrap();
            run.before(&mut request).now_or_never().unwrap().unwrap();
            run.before_attempt(black_box(&route)).unwrap();
            run.after(&Finished {
                record: black_box(&done),
                output: Output::None,
            });
        })
    });

    let (gateway, policy) = setup(Limits::default());
    let free = gateway
        .authenticate(Some("prt-bench-free-0000"))
        .now_or_never()
        .unwrap()
        .unwrap();
    c.bench_function("limits policy/no limit applies (begin only)", |b| {
        b.iter(|| {
            let request = PolicyRequest {
                family,
                key: black_box(&free),
                record: &mut record,
                headers: &headers,
                config: None,
                body: &mut body,
                model: Some("@openai/gpt-4o-mini"),
            };
            assert!(policy.begin(&request).is_none());
        })
    });
}

criterion_group!(benches, bench_limits);
criterion_main!(benches);
