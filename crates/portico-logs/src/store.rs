//! [`LogStore`]: the request log's storage boundary, and the shapes it answers.
//!
//! The admin API and the write pipeline use only this trait, so [`crate::SqliteLogStore`]
//! and [`crate::PgLogStore`] are interchangeable behind them.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::{Analytics, AnalyticsQuery, LogEntry, LogError, LogQuery, Payload, Retention};

/// Where request log entries are kept.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Writes `entries` in one transaction. An id already stored is skipped, so replaying a
    /// spill file twice is harmless. Answers how many were new. The batch is shared rather
    /// than borrowed so that a store may hand it to a thread of its own (SQLite's does).
    async fn insert(&self, entries: Arc<[LogEntry]>) -> Result<u64, LogError>;

    /// One page of entries matching the query, newest first, without payloads.
    async fn search(&self, query: &LogQuery) -> Result<LogPage, LogError>;

    /// One entry with its payloads; `None` when no entry has that id.
    async fn get(&self, id: &str) -> Result<Option<LogDetail>, LogError>;

    /// Requests, errors, tokens, cost and latency percentiles per bucket (and group).
    async fn analytics(&self, query: &AnalyticsQuery) -> Result<Analytics, LogError>;

    /// Deletes what `retention` no longer keeps, in small transactions. Answers how many
    /// entries were deleted.
    async fn prune(&self, retention: &Retention, now_ms: i64) -> Result<u64, LogError>;

    /// How many entries are stored.
    async fn count(&self) -> Result<u64, LogError>;

    /// Closes the connections, waiting for running queries.
    async fn close(&self);
}

/// A page of the log list: `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, Clone, Serialize)]
pub struct LogPage {
    /// The entries, newest first.
    pub data: Vec<LogSummary>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A list entry: every field of spec section 8 except the payloads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSummary {
    /// The request id.
    pub id: String,
    /// Arrival, RFC 3339.
    pub created_at: String,
    /// The trace id.
    pub trace_id: String,
    /// `x-portkey-metadata`, or null.
    pub metadata: Option<serde_json::Value>,
    /// The gateway key's name.
    pub key_name: Option<String>,
    /// The hybrid gateway that served the request (its key's name); null when this
    /// deployment served it.
    pub gateway: Option<String>,
    /// The end user.
    pub user: Option<String>,
    /// The provider slug, without `@`.
    pub provider: Option<String>,
    /// The model name sent upstream.
    pub model: Option<String>,
    /// The API called.
    pub endpoint: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// How the request ended.
    pub outcome: String,
    /// Arrival to the end of the answer, ms.
    pub latency_ms: u64,
    /// Time spent waiting on upstreams, ms.
    pub upstream_latency_ms: Option<u64>,
    /// Time to the first streamed event, ms.
    pub ttft_ms: Option<u64>,
    /// Input tokens.
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    pub completion_tokens: Option<u64>,
    /// Cache-read input tokens.
    pub cached_tokens: Option<u64>,
    /// Cache-write input tokens.
    pub cache_write_tokens: Option<u64>,
    /// The price in USD; null when unknown.
    pub cost_usd: Option<f64>,
    /// How the response cache answered: `hit`, `semantic_hit`, `miss`, `semantic_miss`,
    /// `refresh`; null when no cache applied.
    pub cache_status: Option<String>,
    /// A cache hit: what the replayed answer had cost, in USD (the request cost nothing).
    pub cache_saved_usd: Option<f64>,
    /// A semantic cache hit: the cosine similarity of the question to the cached one.
    pub cache_similarity: Option<f64>,
    /// Retries after first tries.
    pub retry_count: u32,
    /// The routing config's option that answered.
    pub target: Option<String>,
    /// The routing config's id.
    pub config_id: Option<String>,
    /// One object per upstream try.
    pub attempts: serde_json::Value,
    /// Guardrail verdicts.
    pub guardrails: Option<serde_json::Value>,
    /// The error code of a failed request.
    pub error_code: Option<String>,
    /// The error message of a failed request.
    pub error: Option<String>,
    /// Arrival, Unix ms (for cursors; not answered).
    #[serde(skip)]
    pub created_at_ms: i64,
    /// The storage sequence number (for cursors; not answered).
    #[serde(skip)]
    pub seq: i64,
}

/// One entry with its payloads: `GET /admin/v1/logs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogDetail {
    /// Every other field.
    #[serde(flatten)]
    pub summary: LogSummary,
    /// The request body: JSON as JSON, anything else as a string; null when not logged.
    pub request: Option<serde_json::Value>,
    /// The response body: JSON as JSON, a stream's event-stream text as a string; null when
    /// not logged.
    pub response: Option<serde_json::Value>,
    /// Whether `request` holds only the start of a larger body (answered as a string then).
    pub request_truncated: bool,
    /// Whether `response` holds only the start of a larger body.
    pub response_truncated: bool,
}

/// A stored payload as the admin API answers it: JSON when it is whole JSON, else text.
pub(crate) fn payload_value(payload: &Payload) -> serde_json::Value {
    if !payload.truncated()
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&payload.bytes)
    {
        return json;
    }
    serde_json::Value::String(String::from_utf8_lossy(&payload.bytes).into_owned())
}
