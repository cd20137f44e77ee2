//! The engine's per-request work: key lookup, routing, and encoding the request record.

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt as _;
use portico_core::{Endpoint, KeyHash, ProviderKind, RequestRecord, Secret};
use portico_engine::{AccessLog, Family, Gateway, Snapshot};
use portico_store::{KeyRecord, KeyType, ModelRecord, ProviderRecord, RecordSource};

fn gateway(keys: usize) -> Gateway {
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let providers = (0..50)
        .map(|i| ProviderRecord {
            slug: format!("provider-{i}"),
            kind: ProviderKind::OpenAi,
            base_url: Some("http://127.0.0.1:9/v1".to_owned()),
            api_key: Some(Secret::new("sk-bench")),
            settings: serde_json::json!({}),
            credentials: Default::default(),
            models: Some(
                ["gpt-4o-mini", "gpt-4o", "o3-mini"]
                    .into_iter()
                    .map(|id| ModelRecord {
                        id: id.to_owned(),
                        name: None,
                        pricing: None,
                    })
                    .collect(),
            ),
            source: RecordSource::File,
            limits: Default::default(),
        })
        .collect();
    let keys = (0..keys)
        .map(|i| KeyRecord {
            id: format!("key-{i}"),
            name: format!("service-{i}"),
            key_type: KeyType::Service,
            user: None,
            hash: KeyHash::of(&format!("prt-bench-key-{i:08}")),
            hint: String::new(),
            allowed_models: (i % 2 == 0).then(|| vec!["@provider-25".to_owned()]),
            log_payloads: true,
            config: None,
            source: RecordSource::File,
            created_at_ms: 0,
            revoked_at_ms: None,
            // Odd keys expire (far ahead): their check reads the clock.
            expires_at_ms: (i % 2 == 1).then_some(i64::MAX),
            limits: Default::default(),
        })
        .collect();
    let snapshot = Snapshot::build(providers, keys, Vec::new(), &client).unwrap();
    Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
}

fn bench_hot_path(c: &mut Criterion) {
    let gateway = gateway(10_000);
    // A gateway key is checked without waiting: the future is ready when first polled.
    c.bench_function("authenticate/10k_keys", |b| {
        b.iter(|| {
            gateway
                .authenticate(black_box(Some("prt-bench-key-00005000")))
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function("authenticate/10k_keys_expiring", |b| {
        b.iter(|| {
            gateway
                .authenticate(black_box(Some("prt-bench-key-00005001")))
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    c.bench_function("authenticate/unknown_key", |b| {
        b.iter(|| {
            gateway
                .authenticate(black_box(Some("prt-not-a-key")))
                .now_or_never()
                .unwrap()
                .unwrap_err()
        })
    });
    let key = gateway
        .authenticate(Some("prt-bench-key-00005000"))
        .now_or_never()
        .unwrap()
        .unwrap();
    c.bench_function("route/slug_model_with_allow_lists", |b| {
        b.iter(|| {
            gateway
                .route(&key, black_box("@provider-25/gpt-4o-mini"), None)
                .unwrap()
        })
    });
    c.bench_function("route/provider_header", |b| {
        b.iter(|| {
            gateway
                .route(&key, black_box("gpt-4o"), Some("@provider-25"))
                .unwrap()
        })
    });

    bench_dispatch(c, &gateway, &key);

    let mut record = RequestRecord::new(
        "019abcde-f012-7345-8678-9abcdef01234".to_owned(),
        1_795_611_147_000,
        Endpoint::ChatCompletions.as_str(),
    );
    record.trace_id = "session-auth-refactor".to_owned();
    record.metadata = serde_json::json!({"team": "backend", "project": "api-v2", "_user": "alice"})
        .as_object()
        .cloned();
    record.key_name = Some("backend-service".to_owned());
    record.user = Some("alice".to_owned());
    record.provider = Some("anthropic-prod".to_owned());
    record.model = Some("claude-sonnet-4-5".to_owned());
    record.status = 200;
    record.stream = true;
    record.latency_ms = 1234;
    record.ttft_ms = Some(321);
    record.prompt_tokens = Some(9100);
    record.completion_tokens = Some(210);
    record.cached_tokens = Some(8000);
    c.bench_function("request_record/encode_json", |b| {
        b.iter(|| serde_json::to_string(black_box(&record)).unwrap())
    });
}

/// An answer the benchmark's attempts return at once.
struct Ready;

impl portico_engine::Answer for Ready {
    fn status(&self) -> u16 {
        200
    }
}

/// Plan and dispatch of one request, with an attempt that answers at once: the cost the
/// routing layer adds around the upstream call, without a config and with a fallback config.
fn bench_dispatch(c: &mut Criterion, gateway: &Gateway, key: &portico_engine::KeyEntry) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = portico_core::JsonBody::parse(bytes::Bytes::from_static(
        br#"{"model":"@provider-25/gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}"#,
    ))
    .unwrap();
    let fallback = serde_json::json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@provider-25"}, {"provider": "@provider-26"}]})
    .to_string();
    for (name, config) in [
        ("direct", None),
        ("fallback_config_header", Some(fallback.as_str())),
    ] {
        c.bench_function(&format!("dispatch/{name}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let dispatch = gateway
                        .plan_request(&portico_engine::RouteRequest {
                            key,
                            model: Some("@provider-25/gpt-4o-mini"),
                            provider_header: None,
                            config_header: config,
                            timeout: None,
                            metadata: None,
                            body: &body,
                            path: "/v1/chat/completions",
                        })
                        .unwrap();
                    let mut record = RequestRecord::new(String::new(), 0, "chat.completions");
                    let outcome = gateway
                        .dispatch(
                            &dispatch,
                            key,
                            &body,
                            &mut record,
                            |_| Ok(()),
                            |_route, body| async move {
                                black_box(body);
                                Ok::<_, portico_engine::AttemptError>(Ready)
                            },
                        )
                        .await;
                    black_box(outcome.result.is_ok())
                })
            })
        });
    }
}

/// A policy that applies to every request and does nothing: what the mechanism itself costs.
struct NoOp;

struct NoOpRun;

impl portico_engine::pipeline::policy::Policy for NoOp {
    fn name(&self) -> &'static str {
        "no-op"
    }

    fn begin(
        &self,
        _request: &portico_engine::pipeline::policy::PolicyRequest<'_>,
    ) -> Option<Box<dyn portico_engine::pipeline::policy::PolicyRun>> {
        Some(Box::new(NoOpRun))
    }
}

impl portico_engine::pipeline::policy::PolicyRun for NoOpRun {}

/// One whole request through the pipeline (`Gateway::handle`: key, body, plan, dispatch,
/// answer, record) to the built-in mock provider, which answers in-process: the engine's own
/// cost per request, without a policy and with one that applies and does nothing.
/// The mock provider and the key every pipeline bench uses.
fn pipeline_records() -> (ProviderRecord, KeyRecord) {
    let provider = ProviderRecord {
        slug: "mock".to_owned(),
        kind: ProviderKind::Mock,
        base_url: None,
        api_key: None,
        settings: serde_json::json!({}),
        credentials: Default::default(),
        models: None,
        source: RecordSource::File,
        limits: Default::default(),
    };
    let key = KeyRecord {
        id: "key".to_owned(),
        name: "service".to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of("prt-bench-key-pipeline"),
        hint: String::new(),
        allowed_models: None,
        log_payloads: true,
        config: None,
        source: RecordSource::File,
        created_at_ms: 0,
        revoked_at_ms: None,
        expires_at_ms: None,
        limits: Default::default(),
    };
    (provider, key)
}

/// Benches `pipeline/{name}`: one request of `family` with `headers` and `body` through
/// `gateway`, answered whole with a 200 (a bench whose requests failed would measure the
/// error path).
fn bench_handle(
    c: &mut Criterion,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    gateway: &Arc<Gateway>,
    (family, headers, body): (Family, &http::HeaderMap, &bytes::Bytes),
) {
    let cut = tokio_util::sync::CancellationToken::new();
    let answered = |reply: &portico_engine::Reply| {
        matches!(reply, portico_engine::Reply::Whole { status: 200, .. })
    };
    let first = runtime.block_on(gateway.handle(
        family,
        headers,
        {
            let body = body.clone();
            async move { Ok(body) }
        },
        &cut,
    ));
    assert!(answered(&first), "pipeline/{name}: {first:?}");
    c.bench_function(&format!("pipeline/{name}"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let body = body.clone();
                let reply = gateway
                    .handle(family, headers, async move { Ok(body) }, &cut)
                    .await;
                black_box(answered(&reply))
            })
        })
    });
}

fn bench_pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let build = || {
        let (provider, key) = pipeline_records();
        let snapshot = Snapshot::build(vec![provider], vec![key], Vec::new(), &client).unwrap();
        Gateway::new(snapshot, client.clone(), Arc::new(AccessLog::discard()))
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        http::HeaderValue::from_static("Bearer prt-bench-key-pipeline"),
    );
    let body = bytes::Bytes::from_static(
        br#"{"model":"@mock/echo","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}"#,
    );
    for (name, gateway) in [
        ("no_policy", Arc::new(build())),
        (
            "one_noop_policy",
            Arc::new(build().with_policy(Arc::new(NoOp))),
        ),
    ] {
        let chat = Family::OpenAi(Endpoint::ChatCompletions);
        bench_handle(c, name, &runtime, &gateway, (chat, &headers, &body));
    }

    // The same question on the Responses API, to the mock (a chat-completions kind): the
    // request translated to chat, the answer back to a Response object, and the response
    // kept (in memory: this gateway has no store).
    let gateway = Arc::new(build());
    let responses = bytes::Bytes::from_static(
        br#"{"model":"@mock/echo","input":"Say hello.","max_output_tokens":32}"#,
    );
    let family = Family::OpenAi(Endpoint::Responses);
    bench_handle(
        c,
        "responses_translated",
        &runtime,
        &gateway,
        (family, &headers, &responses),
    );

    // For comparison, the same question on Anthropic's Messages API, translated the same way
    // (the mock does not speak Messages natively).
    let messages = bytes::Bytes::from_static(
        br#"{"model":"@mock/echo","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}"#,
    );
    let family = Family::Messages;
    bench_handle(
        c,
        "messages_translated",
        &runtime,
        &gateway,
        (family, &headers, &messages),
    );

    // The same request answered by the response cache: every iteration after the first is a
    // hit (key derivation, lookup, the canned answer, the record), no upstream call.
    let cache = portico_engine::policies::cache::CachePolicy::new(
        Arc::new(portico_cache::MemoryStore::default()),
        Arc::new(portico_core::SystemClock),
    );
    let gateway = Arc::new(build().with_policy(Arc::new(cache)));
    let mut cached = headers.clone();
    cached.insert(
        "x-portkey-config",
        http::HeaderValue::from_static(r#"{"cache":{"mode":"simple","max_age":3600}}"#),
    );
    let chat = Family::OpenAi(Endpoint::ChatCompletions);
    bench_handle(c, "cache_hit", &runtime, &gateway, (chat, &cached, &body));
}

/// An exporter that drops every batch: the bench measures what tracing costs a request (the
/// spans built and queued), not a collector.
#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// `pipeline/no_policy` with OpenTelemetry tracing on, the caller sending a `traceparent`:
/// the trace context read on arrival, the upstream's `traceparent`, the request's and its
/// attempt's spans built from the record and queued for the batch processor (which runs on
/// a worker thread, as in the binary, and exports nowhere).
fn bench_pipeline_tracing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let provider = {
        let _inside = runtime.enter();
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                Discard,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build()
    };
    let tracer = {
        use opentelemetry::trace::TracerProvider as _;
        opentelemetry::global::BoxedTracer::new(Box::new(provider.tracer("bench")))
    };
    let client = portico_providers::http::build_client(Default::default())
        .unwrap()
        .with_trace_propagation(true);
    let (provider_record, key) = pipeline_records();
    let snapshot = Snapshot::build(vec![provider_record], vec![key], Vec::new(), &client).unwrap();
    let gateway = Arc::new(
        Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
            .with_tracing(Some(portico_engine::Tracing::new(tracer))),
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "authorization",
        http::HeaderValue::from_static("Bearer prt-bench-key-pipeline"),
    );
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let body = bytes::Bytes::from_static(
        br#"{"model":"@mock/echo","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}"#,
    );
    let cut = tokio_util::sync::CancellationToken::new();
    c.bench_function("pipeline/tracing_on", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let body = body.clone();
                let reply = gateway
                    .handle(
                        portico_engine::Family::OpenAi(Endpoint::ChatCompletions),
                        &headers,
                        async move { Ok(body) },
                        &cut,
                    )
                    .await;
                black_box(matches!(reply, portico_engine::Reply::Whole { .. }))
            })
        })
    });
    drop(gateway);
    let _ = provider.shutdown();
}

criterion_group!(
    benches,
    bench_hot_path,
    bench_pipeline,
    bench_pipeline_tracing
);
criterion_main!(benches);
