//! A request's record from arrival until the sink takes it, and the headers an answer
//! carries from it.
//!
//! Every request leaves exactly one record, whatever ends it. [`PendingRecord`] holds it
//! (with the request's policy runs) while the pipeline works: the pipeline finishes it with
//! the answer or the error, or hands it to the answer's stream, which finishes it when the
//! stream ends or the client leaves. If the request is dropped before either (the client went
//! away while the gateway was still working on the answer, and the server dropped the
//! request), dropping the pending record finishes it as a client disconnect.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};
use portico_core::{ApiError, ErrorCode, Outcome, RequestRecord};

use crate::gateway::Gateway;
use crate::pipeline::Family;
use crate::pipeline::policy::{Output, Runs};
use crate::pipeline::request::{
    CACHE_STATUS, LAST_USED_OPTION, PROVIDER, REQUEST_ID, RETRY_COUNT, TRACE_ID,
};

/// The status logged for a request whose client left before its answer (nginx's
/// "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request's record while the pipeline works on it; see the module docs.
pub(crate) struct PendingRecord {
    pub(crate) record: RequestRecord,
    /// The policies at work on this request; settled with the record.
    pub(crate) runs: Runs,
    /// `x-portkey-retry-attempt-count`, once the request was dispatched.
    pub(crate) retry_count: Option<i32>,
    pub(crate) started: Instant,
    /// A streamed request's place under `--max-streams`, handed on to its stream.
    pub(crate) stream_slot: Option<crate::request_limits::StreamSlot>,
    gateway: Arc<Gateway>,
    /// Whether the record was finished or handed on (to a stream).
    done: bool,
}

impl PendingRecord {
    /// A request of `family` that has just arrived.
    pub(crate) fn begin(gateway: &Arc<Gateway>, family: Family) -> PendingRecord {
        let record = RequestRecord::new(
            uuid::Uuid::now_v7().to_string(),
            gateway.clock().now_ms(),
            family.log_endpoint(),
        );
        PendingRecord {
            record,
            runs: Runs::default(),
            retry_count: None,
            started: Instant::now(),
            stream_slot: None,
            gateway: Arc::clone(gateway),
            done: false,
        }
    }

    /// The headers an answer to this request carries.
    pub(crate) fn reply_headers(&self) -> ReplyHeaders {
        ReplyHeaders::of(&self.record, self.retry_count)
    }

    /// Hands the record and the policy runs on, to the stream that will finish them.
    pub(crate) fn hand_on(&mut self) -> (RequestRecord, Runs) {
        self.done = true;
        (
            std::mem::replace(&mut self.record, RequestRecord::new(String::new(), 0, "")),
            std::mem::take(&mut self.runs),
        )
    }

    /// Finishes the record with a whole answer (`status`, and its body for the policies) or
    /// an error, and hands it to the sink.
    pub(crate) fn finish(mut self, result: Result<(u16, Output<'_>), &ApiError>) {
        self.done = true;
        let record = &mut self.record;
        let output = match result {
            Ok((status, output)) => {
                record.status = status;
                output
            }
            Err(err) => {
                record.status = err.status;
                record.outcome = Outcome::Failed;
                record.error_code = Some(err.code_string().to_owned());
                record.error = Some(err.log_text().to_owned());
                tracing::debug!(id = %record.id, status = err.status, "request failed: {}", err.message);
                Output::None
            }
        };
        record.latency_ms = elapsed_ms(self.started);
        let record = std::mem::replace(record, RequestRecord::new(String::new(), 0, ""));
        self.gateway.finish(record, &mut self.runs, output);
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let record = &mut self.record;
        record.outcome = Outcome::ClientDisconnected;
        record.status = CLIENT_CLOSED_REQUEST;
        record.error_code = Some("client_disconnected".to_owned());
        record.error =
            Some("the client closed the connection before the answer was ready".to_owned());
        record.latency_ms = elapsed_ms(self.started);
        let record = std::mem::replace(record, RequestRecord::new(String::new(), 0, ""));
        self.gateway.finish(record, &mut self.runs, Output::None);
    }
}

/// The error answered to requests still pending at the shutdown deadline.
pub(crate) fn shutting_down() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the gateway is shutting down and this request did not finish before the shutdown deadline (PORTICO_SHUTDOWN_TIMEOUT_SECS); send it again",
    )
}

/// The response headers that identify a request and say how it was routed
/// (`x-portkey-request-id`, `-trace-id`, `-provider`, `-last-used-option-index`,
/// `-retry-attempt-count`, `-cache-status`), taken from its record.
#[derive(Debug, Default)]
pub struct ReplyHeaders {
    request_id: Option<HeaderValue>,
    trace_id: Option<HeaderValue>,
    provider: Option<HeaderValue>,
    last_used_option: Option<HeaderValue>,
    retry_count: Option<HeaderValue>,
    cache_status: Option<HeaderValue>,
}

impl ReplyHeaders {
    pub(crate) fn of(record: &RequestRecord, retry_count: Option<i32>) -> ReplyHeaders {
        let value = |text: &str| HeaderValue::from_str(text).ok();
        ReplyHeaders {
            request_id: value(&record.id),
            trace_id: Some(&record.trace_id)
                .filter(|t| !t.is_empty())
                .and_then(|t| value(t)),
            provider: record
                .provider
                .as_ref()
                .and_then(|slug| value(&format!("@{slug}"))),
            last_used_option: record.target.as_deref().and_then(value),
            retry_count: retry_count.map(HeaderValue::from),
            cache_status: Some(cache_status_header(record.cache_status)),
        }
    }

    /// Sets these headers on an answer.
    pub fn apply(self, headers: &mut HeaderMap) {
        // Inserting under a `&str` name copies the name into a new allocation every time;
        // these names are built once, at compile time.
        const NAMES: [HeaderName; 6] = [
            HeaderName::from_static(REQUEST_ID),
            HeaderName::from_static(TRACE_ID),
            HeaderName::from_static(PROVIDER),
            HeaderName::from_static(LAST_USED_OPTION),
            HeaderName::from_static(RETRY_COUNT),
            HeaderName::from_static(CACHE_STATUS),
        ];
        let values = [
            self.request_id,
            self.trace_id,
            self.provider,
            self.last_used_option,
            self.retry_count,
            self.cache_status,
        ];
        for (name, value) in NAMES.into_iter().zip(values) {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
    }
}

/// `x-portkey-cache-status` for a record's cache status (Portkey's values; `DISABLED` when
/// no cache applied to the request).
fn cache_status_header(status: Option<&str>) -> HeaderValue {
    HeaderValue::from_static(match status {
        Some("hit") => "HIT",
        Some("semantic_hit") => "SEMANTIC HIT",
        Some("miss") => "MISS",
        Some("semantic_miss") => "SEMANTIC MISS",
        Some("refresh") => "REFRESH",
        _ => "DISABLED",
    })
}

/// Milliseconds since `started`.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
