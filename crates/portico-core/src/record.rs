//! The record of one request: what the request log keeps.

use serde::Serialize;

#[cfg(doc)]
use crate::Endpoint;
use crate::Usage;

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
    /// The end user: `_user` of the metadata, else the user of a user key.
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
    /// The error code, for a failed request.
    pub error_code: Option<String>,
    /// The error message, for a failed request.
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
            error_code: None,
            error: None,
        }
    }

    /// Copies reported usage into the record.
    pub fn set_usage(&mut self, usage: Option<Usage>) {
        if let Some(u) = usage {
            self.prompt_tokens = Some(u.prompt_tokens);
            self.completion_tokens = Some(u.completion_tokens);
            self.cached_tokens = Some(u.cached_tokens);
        }
    }
}
