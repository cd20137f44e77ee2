//! The record of one request: what the request log keeps.

use bytes::Bytes;
use serde::Serialize;

#[cfg(doc)]
use crate::Endpoint;
use crate::{TraceContext, Usage};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The answer was delivered whole.
    #[default]
    Completed,
    /// The gateway or the upstream answered an error.
    Failed,
    /// A stream broke after it had started.
    StreamBroken,
    /// The client went away before the answer ended.
    ClientDisconnected,
}

/// One request as the log records it. Field names follow the admin API's (spec section 8).
///
/// Built along the request path and handed to the request sink once, when the answer has
/// ended (for a stream: at its end or when the client goes away).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// The request id (`x-portkey-request-id`), a UUID v7.
    pub id: String,
    /// Unix milliseconds at arrival.
    pub created_at_ms: i64,
    /// The trace id (`x-portkey-trace-id`).
    pub trace_id: String,
    /// `x-portkey-metadata`.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The gateway key's name.
    pub key_name: Option<String>,
    /// The end user: the authenticated person (a user key's user, a JWT's user claim), else
    /// `_user` of the metadata.
    pub user: Option<String>,
    /// The slug that answered, without `@`.
    pub provider: Option<String>,
    /// The model name sent upstream.
    pub model: Option<String>,
    /// The API the client called: `chat.completions`, `completions`, `embeddings` or
    /// `messages` (see [`Endpoint::as_str`] for the OpenAI ones).
    pub endpoint: &'static str,
    /// The HTTP status answered.
    pub status: u16,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// How the request ended.
    pub outcome: Outcome,
    /// Arrival to the end of the answer, in milliseconds.
    pub latency_ms: u64,
    /// Arrival to the first streamed event, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// Tokens, when the upstream reported usage.
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    pub completion_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: Option<u64>,
    /// The error code, for a failed request.
    pub error_code: Option<String>,
    /// The error message, for a failed request.
    pub error: Option<String>,
    /// Time spent waiting on upstreams (every attempt, retries' waits excluded), in
    /// milliseconds; `None` when no upstream was called.
    pub upstream_latency_ms: Option<u64>,
    /// The price of the tokens used, in USD; `None` when no usage was reported or the
    /// model's price is unknown (never a guess).
    pub cost_usd: Option<f64>,
    /// How the response cache answered: `hit`, `semantic_hit`, `miss`, `semantic_miss` or
    /// `refresh`; `None` when no cache applied to the request (its header says `DISABLED`).
    pub cache_status: Option<&'static str>,
    /// A cache hit: what the answer it replayed cost when it was fetched, in USD (the
    /// request itself costs nothing); `None` otherwise or when that price was unknown.
    pub cache_saved_usd: Option<f64>,
    /// A semantic cache hit: the cosine similarity of the question to the cached one.
    pub cache_similarity: Option<f64>,
    /// Retries made after first tries, summed over the targets tried.
    pub retry_count: u32,
    /// The routing config's option that answered (`config.targets[1]`), as in
    /// `x-portkey-last-used-option-index`; `None` without a routing config.
    pub target: Option<String>,
    /// One entry per upstream try, in order (retries and fallbacks included).
    pub attempts: Vec<Attempt>,
    /// Guardrail verdicts (`hook_results`), once guardrails exist.
    pub guardrails: Option<serde_json::Value>,
    /// The id of the routing config that applied (a key's or a header's catalog config).
    pub config_id: Option<String>,
    /// Whether this request's payloads may be stored (the key's `log_payloads`).
    #[serde(skip)]
    pub log_payloads: bool,
    /// The request body as the client sent it. Never written to the access log.
    #[serde(skip)]
    pub request: Option<Bytes>,
    /// The response body as the client received it (a stream: its event-stream text). Never
    /// written to the access log.
    #[serde(skip)]
    pub response: Option<Bytes>,
    /// The request's W3C trace context, only while OpenTelemetry tracing is on (boxed: a
    /// record without one stays as small as before). Never written to a log.
    #[serde(skip)]
    pub trace: Option<Box<TraceContext>>,
}

/// One upstream try of a request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    /// The provider slug tried, without `@`.
    pub provider: String,
    /// The model name sent upstream.
    pub model: String,
    /// The routing config's option (`config.targets[0]`); `None` without a config.
    pub target: Option<String>,
    /// 0 for a target's first try, n for its n-th retry.
    pub retry: u32,
    /// Unix milliseconds when the try started.
    pub started_at_ms: i64,
    /// From sending to the upstream's answer (for a stream: its first event), in ms.
    pub latency_ms: u64,
    /// The upstream's HTTP status; `None` when no answer came (connection error, timeout).
    pub status: Option<u16>,
    /// Why the try failed; `None` for the try that answered.
    pub error: Option<String>,
}

impl RequestRecord {
    /// A record for a request that has just arrived.
    pub fn new(id: String, created_at_ms: i64, endpoint: &'static str) -> RequestRecord {
        RequestRecord {
            id,
            created_at_ms,
            trace_id: String::new(),
            metadata: None,
            key_name: None,
            user: None,
            provider: None,
            model: None,
            endpoint,
            status: 0,
            stream: false,
            outcome: Outcome::Completed,
            latency_ms: 0,
            ttft_ms: None,
            prompt_tokens: None,
            completion_tokens: None,
            cached_tokens: None,
            cache_write_tokens: None,
            error_code: None,
            error: None,
            upstream_latency_ms: None,
            cost_usd: None,
            cache_status: None,
            cache_saved_usd: None,
            cache_similarity: None,
            retry_count: 0,
            target: None,
            attempts: Vec::new(),
            guardrails: None,
            config_id: None,
            log_payloads: true,
            request: None,
            response: None,
            trace: None,
        }
    }

    /// Copies reported usage into the record.
    pub fn set_usage(&mut self, usage: Option<Usage>) {
        if let Some(u) = usage {
            self.prompt_tokens = Some(u.prompt_tokens);
            self.completion_tokens = Some(u.completion_tokens);
            self.cached_tokens = Some(u.cached_tokens);
            self.cache_write_tokens = Some(u.cache_write_tokens);
        }
    }
}
