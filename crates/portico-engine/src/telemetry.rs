//! OpenTelemetry traces of requests: one server span per request, one client span per
//! upstream attempt, with the GenAI semantic conventions' attributes.
//!
//! Off unless the binary gives the gateway a tracer ([`Gateway::with_tracing`]); off, a
//! request pays one `Option` check when it arrives and one when it ends, and nothing else.
//!
//! On, the work happens at the two ends of a request and never in between:
//!
//! - on arrival, [`Tracing::start`] reads the caller's W3C `traceparent` (the request span
//!   becomes a child of the caller's span) and draws the request's span id, keeping them on
//!   the record ([`TraceContext`]). The record's trace id becomes the W3C trace id unless the
//!   client sent its own `x-portkey-trace-id`.
//! - when the record is finished (a whole answer, an error, the end of a stream), [`Tracing::
//!   export`] builds the spans from it, with the times it holds: the record already has each
//!   attempt's provider, model, retry index, start, latency, status and error, and the
//!   request's usage and outcome. The spans go to the SDK's batch processor, which exports in
//!   the background.
//!
//! An attempt's span id is derived from the request's ([`TraceContext::attempt_span_id`]),
//! so the id an upstream is told in its `traceparent` when the attempt is sent is the id its
//! span gets once the request ends.
//!
//! [`Gateway::with_tracing`]: crate::Gateway::with_tracing

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::task::futures::TaskLocalFuture;

use futures::future::Either;
use http::HeaderMap;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
    TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use portico_core::{Attempt, Outcome, ProviderKind, RequestRecord, TraceContext};

use crate::pipeline::request::TRACE_ID;
use crate::snapshot::Snapshot;

/// The W3C Trace Context request header.
const TRACEPARENT: &str = "traceparent";
/// Its vendor-specific companion, passed on unchanged.
const TRACESTATE: &str = "tracestate";

/// The tracer requests' spans are built with; see the module docs.
pub struct Tracing {
    tracer: BoxedTracer,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracing")
    }
}

impl Tracing {
    /// Spans go to `tracer` (the binary's SDK tracer, exporting over OTLP).
    pub fn new(tracer: BoxedTracer) -> Tracing {
        Tracing { tracer }
    }

    /// Places a request that has just arrived in its trace: the caller's, when its
    /// `traceparent` is valid, else a new one. Without `x-portkey-trace-id` the record's
    /// trace id (logged, and echoed in `x-portkey-trace-id`) becomes the W3C trace id, so the
    /// request log and the tracing backend find the request by the same id.
    pub(crate) fn start(
        &self,
        route: &'static str,
        headers: &HeaderMap,
        record: &mut RequestRecord,
    ) {
        let caller = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let (trace_id, parent_span_id, flags) = match caller {
            Some(parent) => (parent.trace_id, Some(parent.span_id), parent.flags),
            None => (random_id(), None, TraceFlags::SAMPLED.to_u8()),
        };
        let trace_state = caller
            .and_then(|_| headers.get(TRACESTATE))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let trace = TraceContext {
            trace_id,
            span_id: random_id(),
            parent_span_id,
            flags,
            trace_state,
            started: SystemTime::now(),
            request_model: None,
            route,
            attempt_seed: rand::random(),
        };
        if !headers.contains_key(TRACE_ID) {
            record.trace_id = trace.trace_id_hex();
        }
        record.trace = Some(Box::new(trace));
    }

    /// Builds and ends the spans of a finished request from its record (see the module
    /// docs); `snapshot` names the providers' kinds (`gen_ai.provider.name`).
    pub(crate) fn export(&self, record: &RequestRecord, snapshot: &Snapshot) {
        let Some(trace) = record.trace.as_deref() else {
            return;
        };
        let parent = match trace.parent_span_id {
            Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(trace.trace_id),
                SpanId::from_bytes(parent),
                TraceFlags::new(trace.flags),
                true,
                trace
                    .trace_state
                    .as_deref()
                    .and_then(|s| s.parse::<TraceState>().ok())
                    .unwrap_or_default(),
            )),
            None => Context::new(),
        };
        let start = trace.started;
        let end = start + Duration::from_millis(record.latency_ms);
        let kind_of = |slug: &str| snapshot.provider(slug).map(|p| p.kind);
        // The HTTP server conventions' name, `{method} {route}`; the GenAI `chat {model}`
        // names are the attempts' (client spans).
        let server = SpanBuilder::from_name(format!("POST {}", trace.route))
            .with_kind(SpanKind::Server)
            .with_trace_id(TraceId::from_bytes(trace.trace_id))
            .with_span_id(SpanId::from_bytes(trace.span_id))
            .with_start_time(start)
            .with_attributes(request_attributes(record, trace, &kind_of))
            .with_status(request_status(record))
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(server);
        let answered = record.outcome != Outcome::Failed;
        let last = record.attempts.len().saturating_sub(1);
        for (index, attempt) in record.attempts.iter().enumerate() {
            // The attempt that answered; for a stream it lasts until the stream ends.
            let answering = answered && index == last && attempt.error.is_none();
            let (from, to) = attempt_times(attempt, start, end, answering && record.stream);
            let span = SpanBuilder::from_name(attempt_name(record.endpoint, &attempt.model))
                .with_kind(SpanKind::Client)
                .with_span_id(SpanId::from_bytes(trace.attempt_span_id(index)))
                .with_start_time(from)
                .with_attributes(attempt_attributes(
                    record, attempt, index, answering, &kind_of,
                ))
                .with_status(match &attempt.error {
                    Some(error) => Status::error(error.clone()),
                    None => Status::Unset,
                })
                .start_with_context(&self.tracer, &cx);
            let mut span = span;
            span.end_with_timestamp(to);
        }
        cx.span().end_with_timestamp(end);
    }
}

/// What an upstream attempt is told of the trace: its `traceparent`, naming the attempt's
/// span (derived from the request's, [`TraceContext::attempt_span_id`]) as the parent.
pub(crate) struct UpstreamTrace {
    /// `None`: tracing is off, attempts are sent as they are.
    trace: Option<UpstreamIds>,
}

/// The fields of a request's trace an attempt's `traceparent` is made of.
struct UpstreamIds {
    context: TraceContext,
    /// Attempts sent so far: the dispatcher records exactly one attempt per call, in order,
    /// so this is the index of the next one in the record.
    sent: usize,
}

impl UpstreamTrace {
    /// The trace of the request `record` is of; off when it has none.
    pub(crate) fn of(record: &RequestRecord) -> UpstreamTrace {
        UpstreamTrace {
            trace: record.trace.as_deref().map(|trace| UpstreamIds {
                // Only the ids are needed for the header: no strings copied.
                context: TraceContext {
                    trace_id: trace.trace_id,
                    span_id: trace.span_id,
                    parent_span_id: trace.parent_span_id,
                    flags: trace.flags,
                    trace_state: None,
                    started: trace.started,
                    request_model: None,
                    route: trace.route,
                    attempt_seed: trace.attempt_seed,
                },
                sent: 0,
            }),
        }
    }

    /// `attempt`, sending the next attempt's `traceparent` upstream when tracing is on.
    pub(crate) fn propagate<F: Future>(
        &mut self,
        attempt: F,
    ) -> Either<F, TaskLocalFuture<http::HeaderValue, F>> {
        let Some(ids) = &mut self.trace else {
            return Either::Left(attempt);
        };
        let index = ids.sent;
        ids.sent += 1;
        match http::HeaderValue::from_str(&ids.context.attempt_traceparent(index)) {
            Ok(header) => Either::Right(portico_providers::http::with_traceparent(header, attempt)),
            Err(_) => Either::Left(attempt),
        }
    }
}

/// `gen_ai.operation.name` for a logged endpoint.
fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "completions" => "text_completion",
        "embeddings" => "embeddings",
        // Chat completions, Messages, and any conversational endpoint added later.
        _ => "chat",
    }
}

/// An attempt span's name, per the GenAI conventions: `{operation} {model}`.
fn attempt_name(endpoint: &str, model: &str) -> String {
    format!("{} {model}", operation(endpoint))
}

/// `gen_ai.provider.name`: the conventions' well-known value for a provider kind where there
/// is one.
fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        // Servers that speak OpenAI's API are reached as OpenAI's API.
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "openai",
        ProviderKind::AzureOpenAi => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Bedrock => "aws.bedrock",
        // AI Studio or Vertex AI: "any Google generative AI endpoint".
        ProviderKind::Gemini => "gcp.gen_ai",
        ProviderKind::Mistral => "mistral_ai",
        ProviderKind::Groq => "groq",
        ProviderKind::DeepSeek => "deepseek",
        ProviderKind::Together => "together_ai",
        ProviderKind::Ollama => "ollama",
        ProviderKind::Mock => "portico.mock",
    }
}

/// The request span's attributes.
fn request_attributes(
    record: &RequestRecord,
    trace: &TraceContext,
    kind_of: &dyn Fn(&str) -> Option<ProviderKind>,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(20);
    attrs.push(KeyValue::new(
        "gen_ai.operation.name",
        operation(record.endpoint),
    ));
    attrs.push(KeyValue::new("http.request.method", "POST"));
    attrs.push(KeyValue::new("http.route", trace.route));
    attrs.push(KeyValue::new(
        "http.response.status_code",
        i64::from(record.status),
    ));
    if let Some(model) = &trace.request_model {
        attrs.push(KeyValue::new("gen_ai.request.model", model.clone()));
    }
    if let Some(slug) = &record.provider {
        if let Some(kind) = kind_of(slug) {
            attrs.push(KeyValue::new("gen_ai.provider.name", provider_name(kind)));
        }
        attrs.push(KeyValue::new("portico.provider.slug", slug.clone()));
    }
    if record.outcome != Outcome::Failed
        && let Some(model) = &record.model
    {
        attrs.push(KeyValue::new("gen_ai.response.model", model.clone()));
    }
    usage_attributes(record, &mut attrs);
    if let Some(error) = request_error_type(record) {
        attrs.push(KeyValue::new("error.type", error));
    }
    attrs.push(KeyValue::new("portico.request_id", record.id.clone()));
    attrs.push(KeyValue::new("portico.trace_id", record.trace_id.clone()));
    attrs.push(KeyValue::new("portico.stream", record.stream));
    attrs.push(KeyValue::new(
        "portico.attempts",
        record.attempts.len() as i64,
    ));
    attrs.push(KeyValue::new(
        "portico.retry_count",
        i64::from(record.retry_count),
    ));
    if let Some(target) = &record.target {
        attrs.push(KeyValue::new("portico.target", target.clone()));
    }
    if let Some(cache) = record.cache_status {
        attrs.push(KeyValue::new("portico.cache_status", cache));
    }
    if let Some(cost) = record.cost_usd {
        attrs.push(KeyValue::new("portico.cost_usd", cost));
    }
    attrs
}

/// `gen_ai.usage.*`, when the upstream reported usage.
fn usage_attributes(record: &RequestRecord, attrs: &mut Vec<KeyValue>) {
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    if let Some(n) = record.prompt_tokens {
        attrs.push(KeyValue::new("gen_ai.usage.input_tokens", tokens(n)));
    }
    if let Some(n) = record.completion_tokens {
        attrs.push(KeyValue::new("gen_ai.usage.output_tokens", tokens(n)));
    }
}

/// The request span's `error.type`: the error code for a failed request (`rate_limited`,
/// `upstream_error`...), the outcome for a stream cut short.
fn request_error_type(record: &RequestRecord) -> Option<String> {
    match record.outcome {
        Outcome::Completed => None,
        Outcome::Failed => Some(
            record
                .error_code
                .clone()
                .unwrap_or_else(|| record.status.to_string()),
        ),
        Outcome::StreamBroken => Some("stream_broken".to_owned()),
        Outcome::ClientDisconnected => Some("client_disconnected".to_owned()),
    }
}

/// The request span's status: an error when the gateway or an upstream failed it (a 5xx,
/// or a stream that broke), per the HTTP server conventions (a 4xx is the client's).
fn request_status(record: &RequestRecord) -> Status {
    match record.outcome {
        Outcome::Failed if record.status >= 500 => {
            Status::error(record.error.clone().unwrap_or_default())
        }
        Outcome::StreamBroken => Status::error(record.error.clone().unwrap_or_default()),
        _ => Status::Unset,
    }
}

/// An attempt span's attributes.
fn attempt_attributes(
    record: &RequestRecord,
    attempt: &Attempt,
    index: usize,
    answering: bool,
    kind_of: &dyn Fn(&str) -> Option<ProviderKind>,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(12);
    attrs.push(KeyValue::new(
        "gen_ai.operation.name",
        operation(record.endpoint),
    ));
    attrs.push(KeyValue::new("gen_ai.request.model", attempt.model.clone()));
    if let Some(kind) = kind_of(&attempt.provider) {
        attrs.push(KeyValue::new("gen_ai.provider.name", provider_name(kind)));
    }
    attrs.push(KeyValue::new(
        "portico.provider.slug",
        attempt.provider.clone(),
    ));
    attrs.push(KeyValue::new("portico.attempt", index as i64));
    attrs.push(KeyValue::new("portico.retry", i64::from(attempt.retry)));
    if let Some(target) = &attempt.target {
        attrs.push(KeyValue::new("portico.target", target.clone()));
    }
    if let Some(status) = attempt.status {
        attrs.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    if attempt.error.is_some() {
        // The upstream's status when it answered one; `_OTHER` (the conventions' fallback)
        // for a connection that failed or a timeout.
        let error = attempt
            .status
            .map_or_else(|| "_OTHER".to_owned(), |s| s.to_string());
        attrs.push(KeyValue::new("error.type", error));
    }
    if answering {
        attrs.push(KeyValue::new(
            "gen_ai.response.model",
            attempt.model.clone(),
        ));
        usage_attributes(record, &mut attrs);
    }
    attrs
}

/// An attempt span's start and end, from its record (milliseconds), kept within the request
/// span; a streamed answer's attempt lasts until the request's end.
fn attempt_times(
    attempt: &Attempt,
    request_start: SystemTime,
    request_end: SystemTime,
    until_request_end: bool,
) -> (SystemTime, SystemTime) {
    let started_ms = u64::try_from(attempt.started_at_ms).unwrap_or(0);
    let from = (SystemTime::UNIX_EPOCH + Duration::from_millis(started_ms))
        .clamp(request_start, request_end);
    let to = if until_request_end {
        request_end
    } else {
        (from + Duration::from_millis(attempt.latency_ms)).clamp(from, request_end)
    };
    (from, to)
}

/// A random, valid (not all zero) id of `N` bytes.
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

/// The fields of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// Reads a W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`). `None` for an invalid
/// one, which W3C Trace Context says to ignore (a new trace starts). A later version is read
/// by the version-00 fields it starts with, as the recommendation asks.
fn parse_traceparent(value: &str) -> Option<Parent> {
    let value = value.trim();
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    match version {
        0 if bytes.len() != 55 => return None,
        0xff => return None,
        _ if bytes.len() > 55 && bytes[55] != b'-' => return None,
        _ => {}
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id: [u8; 16] = hex_bytes(&value[3..35])?;
    let span_id: [u8; 8] = hex_bytes(&value[36..52])?;
    let flags = hex_byte(&value[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        flags,
    })
}

/// `N` bytes from `2N` lowercase hex digits.
fn hex_bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex_byte(text.get(2 * i..2 * i + 2)?)?;
    }
    Some(out)
}

/// One byte from two lowercase hex digits (W3C allows no uppercase).
fn hex_byte(pair: &str) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair.as_bytes() {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_valid_traceparent_is_read() {
        let parent = parse_traceparent(VALID).unwrap();
        assert_eq!(parent.trace_id[0], 0x0a);
        assert_eq!(parent.trace_id[15], 0x9c);
        assert_eq!(
            parent.span_id,
            [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
        );
        assert_eq!(parent.flags, 1);
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            // Uppercase hex, all-zero ids, version ff, version 00 with a tail.
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_version_00_fields() {
        let later = format!("01{}-future", &VALID[2..]);
        assert!(parse_traceparent(&later).is_some());
        let glued = format!("01{}x", &VALID[2..]);
        assert_eq!(parse_traceparent(&glued), None);
    }

    #[test]
    fn operations_follow_the_genai_names() {
        assert_eq!(operation("chat.completions"), "chat");
        assert_eq!(operation("messages"), "chat");
        assert_eq!(operation("completions"), "text_completion");
        assert_eq!(operation("embeddings"), "embeddings");
        assert_eq!(attempt_name("chat.completions", "gpt-4o"), "chat gpt-4o");
    }

    #[test]
    fn attempt_times_stay_within_the_request() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000);
        let end = start + Duration::from_millis(100);
        let mut attempt = Attempt {
            provider: "p".into(),
            model: "m".into(),
            target: None,
            retry: 0,
            // Logged in whole milliseconds, so it may read as before the request.
            started_at_ms: 999,
            latency_ms: 500,
            status: Some(200),
            error: None,
        };
        assert_eq!(attempt_times(&attempt, start, end, false), (start, end));
        attempt.started_at_ms = 1_010;
        attempt.latency_ms = 20;
        let from = start + Duration::from_millis(10);
        assert_eq!(
            attempt_times(&attempt, start, end, false),
            (from, from + Duration::from_millis(20))
        );
        assert_eq!(attempt_times(&attempt, start, end, true), (from, end));
    }
}
