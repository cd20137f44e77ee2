//! OpenTelemetry traces through the real binary, to OTLP collectors inside the test that
//! decode what arrives: protobuf over HTTP (an axum server on `/v1/traces`) and gRPC (a tonic
//! server implementing the TraceService), with `opentelemetry-proto`'s message types.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use portico_testkit::{MockReply, MockUpstream, SseScript};
use prost::Message as _;
use serde_json::{Value, json};

use crate::support::{Gateway, PROVIDER_KEY, SERVICE_KEY, access_record, chat};

/// The caller's trace and span, as its `traceparent` names them.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// What a collector received: every span with its resource's `service.name`, and the
/// headers of each export request.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<(String, Span)>,
    headers: Vec<HeaderMap>,
}

type Shared = Arc<Mutex<Received>>;

fn keep(received: &Shared, request: ExportTraceServiceRequest, headers: HeaderMap) {
    let mut received = received.lock().unwrap();
    received.headers.push(headers);
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.spans.push((service.clone(), span));
            }
        }
    }
}

/// An OTLP/HTTP collector: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
async fn http_collector() -> (SocketAddr, Shared) {
    async fn export(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Vec<u8> {
        let request = ExportTraceServiceRequest::decode(body).unwrap();
        keep(&received, request, headers);
        ExportTraceServiceResponse::default().encode_to_vec()
    }
    let received = Shared::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// An OTLP/gRPC collector: the `TraceService`.
struct GrpcCollector(Shared);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        keep(&self.0, request.into_inner(), headers);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_collector() -> (SocketAddr, Shared) {
    let received = Shared::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(GrpcCollector(Arc::clone(&received)));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (addr, received)
}

/// Waits until the collector holds `n` spans of `trace` (hex), and returns them.
async fn spans_of(received: &Shared, trace: &str, n: usize, gw: &Gateway) -> Vec<(String, Span)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<(String, Span)> = received
            .lock()
            .unwrap()
            .spans
            .iter()
            .filter(|(_, s)| hex(&s.trace_id) == trace)
            .cloned()
            .collect();
        if spans.len() >= n {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} spans of trace {trace}, have {}:\n{}",
            spans.len(),
            gw.portico.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(AnyValue::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(AnyValue::IntValue(n)) => Some(*n),
        _ => None,
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()[name].to_str().unwrap().to_owned()
}

/// `@primary` and `@backup` (kind openai) on two mock upstreams, with OTLP export to
/// `endpoint` and the other `env`.
async fn pair(env: &[(&str, &str)]) -> (Gateway, MockUpstream) {
    let primary = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let catalog = format!(
        r#"
providers:
  - slug: primary
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {primary}
  - slug: backup
    kind: openai
    api_key: {PROVIDER_KEY}
    base_url: {backup}
keys:
  - name: service
    key: {SERVICE_KEY}
"#,
        primary = primary.base_url(),
        backup = backup.base_url(),
    );
    (
        Gateway::start_with_env(primary, &catalog, env).await,
        backup,
    )
}

fn completion(model: &str, prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-otel", "object": "chat.completion", "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "traced"}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
    })
}

#[tokio::test]
async fn a_fallback_is_one_server_span_and_two_attempt_spans_in_the_callers_trace() {
    let (collector, received) = http_collector().await;
    let endpoint = format!("http://{collector}");
    // No protocol variable: http/protobuf is the default.
    let (gw, backup) = pair(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-collector-token=otel-test-token",
        ),
        ("OTEL_SERVICE_NAME", "portico-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ])
    .await;
    gw.upstream
        .enqueue(MockReply::error(503, "primary is overloaded"));
    backup.enqueue(MockReply::json(200, completion("gpt-4o-mini", 11, 7)));
    let config = json!({"strategy": {"mode": "fallback", "on_status_codes": [503]},
        "targets": [{"provider": "@primary"}, {"provider": "@backup"}]});
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-config", config.to_string())
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&chat("gpt-4o-mini", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = header(&resp, "x-portkey-request-id");
    // Without x-portkey-trace-id, the trace id answered and logged is the W3C one.
    assert_eq!(header(&resp, "x-portkey-trace-id"), CALLER_TRACE);
    let record = access_record(&gw, &request_id).await;
    assert_eq!(record["trace_id"], CALLER_TRACE);

    let spans = spans_of(&received, CALLER_TRACE, 3, &gw).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(
        spans
            .iter()
            .all(|(service, _)| service == "portico-under-test")
    );
    let servers: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 1, "{spans:#?}");
    let server = servers[0];
    assert_eq!(server.name, "POST /v1/chat/completions");
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    let a = &server.attributes;
    assert_eq!(string_attr(a, "gen_ai.operation.name").unwrap(), "chat");
    assert_eq!(
        string_attr(a, "gen_ai.request.model").unwrap(),
        "gpt-4o-mini"
    );
    assert_eq!(
        string_attr(a, "gen_ai.response.model").unwrap(),
        "gpt-4o-mini"
    );
    assert_eq!(string_attr(a, "gen_ai.provider.name").unwrap(), "openai");
    assert_eq!(int_attr(a, "gen_ai.usage.input_tokens"), Some(11));
    assert_eq!(int_attr(a, "gen_ai.usage.output_tokens"), Some(7));
    assert_eq!(int_attr(a, "http.response.status_code"), Some(200));
    assert_eq!(string_attr(a, "portico.provider.slug").unwrap(), "backup");
    assert_eq!(string_attr(a, "portico.request_id").unwrap(), request_id);
    assert_eq!(string_attr(a, "portico.trace_id").unwrap(), CALLER_TRACE);
    assert_eq!(int_attr(a, "portico.attempts"), Some(2));
    assert_eq!(string_attr(a, "error.type"), None);

    let mut attempts: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| int_attr(&s.attributes, "portico.attempt"));
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    for (index, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.parent_span_id, server.span_id, "attempt {index}");
        assert_eq!(attempt.name, "chat gpt-4o-mini");
        assert_eq!(
            int_attr(&attempt.attributes, "portico.attempt"),
            Some(index as i64)
        );
        assert_eq!(int_attr(&attempt.attributes, "portico.retry"), Some(0));
        assert_eq!(
            string_attr(&attempt.attributes, "gen_ai.request.model").unwrap(),
            "gpt-4o-mini"
        );
        assert!(attempt.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(attempt.end_time_unix_nano <= server.end_time_unix_nano);
    }
    let (failed, answered) = (&attempts[0].attributes, &attempts[1].attributes);
    assert_eq!(
        string_attr(failed, "portico.provider.slug").unwrap(),
        "primary"
    );
    assert_eq!(int_attr(failed, "http.response.status_code"), Some(503));
    assert_eq!(string_attr(failed, "error.type").unwrap(), "503");
    assert_eq!(
        attempts[0].status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(int_attr(failed, "gen_ai.usage.input_tokens"), None);
    assert_eq!(
        string_attr(answered, "portico.provider.slug").unwrap(),
        "backup"
    );
    assert_eq!(int_attr(answered, "http.response.status_code"), Some(200));
    assert_eq!(string_attr(answered, "error.type"), None);
    assert_eq!(int_attr(answered, "gen_ai.usage.input_tokens"), Some(11));
    assert_eq!(int_attr(answered, "gen_ai.usage.output_tokens"), Some(7));

    // Each upstream was told its attempt's span as the parent.
    let told = |upstream: &MockUpstream| {
        upstream
            .last_request()
            .unwrap()
            .header("traceparent")
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        told(&gw.upstream),
        format!("00-{CALLER_TRACE}-{}-01", hex(&attempts[0].span_id))
    );
    assert_eq!(
        told(&backup),
        format!("00-{CALLER_TRACE}-{}-01", hex(&attempts[1].span_id))
    );

    // A client's own x-portkey-trace-id stays the logged one; the spans carry it.
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("x-portkey-trace-id", "session-42")
        .header(
            "traceparent",
            format!("00-{other_trace}-b7ad6b7169203331-01"),
        )
        .json(&chat("@backup/gpt-4o-mini", "again"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-portkey-trace-id"), "session-42");
    let record = access_record(&gw, &header(&resp, "x-portkey-request-id")).await;
    assert_eq!(record["trace_id"], "session-42");
    let spans = spans_of(&received, other_trace, 2, &gw).await;
    let (_, server) = spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(
        string_attr(&server.attributes, "portico.trace_id").unwrap(),
        "session-42"
    );
    assert_eq!(hex(&server.parent_span_id), "b7ad6b7169203331");

    // OTEL_EXPORTER_OTLP_HEADERS went to the collector.
    let headers = &received.lock().unwrap().headers;
    assert!(headers.iter().all(|h| {
        h.get("x-collector-token")
            .is_some_and(|v| v == "otel-test-token")
    }));
}

#[tokio::test]
async fn over_grpc_a_streams_span_carries_its_usage_and_is_flushed_at_shutdown() {
    let (collector, received) = grpc_collector().await;
    let endpoint = format!("http://{collector}");
    // A minute between batches: the spans can only arrive by the flush at shutdown.
    let (mut gw, _backup) = pair(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-token=grpc-token"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
    ])
    .await;
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    gw.upstream.enqueue(MockReply::sse(
        SseScript::new()
            .data(&chunk(json!({"role": "assistant", "content": ""}), None))
            .data(&chunk(json!({"content": "streamed"}), None))
            .data(&chunk(json!({}), Some("stop")))
            .data(
                &json!({"id": "chatcmpl-s", "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": "gpt-4o-mini", "choices": [],
                "usage": {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}}),
            )
            .done(),
    ));
    let mut body = chat("@primary/gpt-4o-mini", "stream please");
    body["stream"] = json!(true);
    let resp = gw.post("/v1/chat/completions", body).await;
    assert_eq!(resp.status(), 200);
    let trace = header(&resp, "x-portkey-trace-id");
    let request_id = header(&resp, "x-portkey-request-id");
    let text = resp.text().await.unwrap();
    assert!(text.contains("streamed"), "{text}");
    // A trace started here: its W3C id (32 hex digits) is the logged trace id.
    assert_eq!(trace.len(), 32, "{trace}");
    assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()));
    let record = access_record(&gw, &request_id).await;
    assert_eq!(record["trace_id"], trace.as_str());
    assert!(received.lock().unwrap().spans.is_empty());

    gw.portico.sigterm().unwrap();
    gw.portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    let spans = spans_of(&received, &trace, 2, &gw).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (_, server) = spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Server as i32)
        .unwrap();
    let (_, attempt) = spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Client as i32)
        .unwrap();
    // No traceparent came: the request's span is the trace's root.
    assert!(server.parent_span_id.is_empty());
    assert_eq!(attempt.parent_span_id, server.span_id);
    // Without OTEL_SERVICE_NAME the service is portico.
    assert!(spans.iter().all(|(service, _)| service == "portico"));
    let a = &server.attributes;
    assert_eq!(
        string_attr(a, "gen_ai.request.model").unwrap(),
        "@primary/gpt-4o-mini"
    );
    assert_eq!(
        string_attr(a, "gen_ai.response.model").unwrap(),
        "gpt-4o-mini"
    );
    assert_eq!(int_attr(a, "gen_ai.usage.input_tokens"), Some(13));
    assert_eq!(int_attr(a, "gen_ai.usage.output_tokens"), Some(5));
    assert_eq!(attr(a, "portico.stream"), Some(&AnyValue::BoolValue(true)));
    assert_eq!(
        int_attr(&attempt.attributes, "gen_ai.usage.output_tokens"),
        Some(5)
    );
    // The attempt that streamed the answer lasts as long as the stream.
    assert_eq!(attempt.end_time_unix_nano, server.end_time_unix_nano);
    let headers = &received.lock().unwrap().headers;
    assert!(headers.iter().any(|h| {
        h.get("x-collector-token")
            .is_some_and(|v| v == "grpc-token")
    }));
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_or_exported() {
    // The exporters' default endpoint: if anything were exported, it would come here. (When
    // the port is taken on this machine, the other checks still hold.)
    let default_collector = tokio::net::TcpListener::bind("127.0.0.1:4318").await.ok();
    let hits = Arc::new(Mutex::new(0usize));
    if let Some(listener) = default_collector {
        let hits = Arc::clone(&hits);
        tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                *hits.lock().unwrap() += 1;
            }
        });
    }
    let (mut gw, _backup) = pair(&[
        ("OTEL_SERVICE_NAME", "portico-off"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "10"),
    ])
    .await;
    let resp = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(SERVICE_KEY)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&chat("@primary/gpt-4o-mini", "hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The trace id is Portico's own (a UUID), the traceparent goes nowhere.
    let trace = header(&resp, "x-portkey-trace-id");
    assert_eq!(trace.len(), 36, "{trace}");
    assert_ne!(trace, CALLER_TRACE);
    assert_eq!(
        gw.upstream.last_request().unwrap().header("traceparent"),
        None
    );
    gw.portico.sigterm().unwrap();
    gw.portico.wait_exit(Duration::from_secs(20)).await.unwrap();
    let log = gw.portico.stderr_text();
    assert!(!log.contains("exporting traces"), "{log}");
    assert!(!log.contains("traces flushed"), "{log}");
    assert_eq!(*hits.lock().unwrap(), 0);
}
