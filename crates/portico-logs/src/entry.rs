//! [`LogEntry`]: a request record in the form the log stores it (and spills it as a JSON line).
//!
//! Built from a [`RequestRecord`] when the request path hands it over. This is where the
//! payload policy is applied: payloads are kept only when the key allows it
//! (`record.log_payloads`) and are cut to a maximum size. Headers are not part of a record,
//! so no `Authorization`, `x-api-key` or provider key can reach the log.

use bytes::Bytes;
use portico_core::{Attempt, RequestRecord};
use serde::{Deserialize, Serialize};

use crate::time::rfc3339_ms;

/// The default cap on one stored payload (request or response): 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// One request as the log stores it. Every field of spec section 8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The request id, a UUID v7.
    pub id: String,
    /// Arrival, in Unix milliseconds.
    pub created_at_ms: i64,
    /// The trace id.
    pub trace_id: String,
    /// `x-portkey-metadata`.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The gateway key's name.
    pub key_name: Option<String>,
    /// The hybrid gateway that served the request: the name of its `type: gateway` key on
    /// the control plane; `None` for a request this process served itself. Absent from
    /// spill lines and deliveries written before the field existed, which still read back.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The end user.
    pub user: Option<String>,
    /// The provider slug that answered, without `@`.
    pub provider: Option<String>,
    /// The model name sent upstream.
    pub model: Option<String>,
    /// The API called (`chat.completions`, `messages`, ...).
    pub endpoint: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// How the request ended (`completed`, `failed`, ...).
    pub outcome: String,
    /// Arrival to the end of the answer, in ms.
    pub latency_ms: u64,
    /// Time spent waiting on upstreams, in ms.
    pub upstream_latency_ms: Option<u64>,
    /// Arrival to the first streamed event, in ms.
    pub ttft_ms: Option<u64>,
    /// Input tokens.
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    pub completion_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: Option<u64>,
    /// The price, in USD; `None` when unknown.
    pub cost_usd: Option<f64>,
    /// How the response cache answered: `hit`, `semantic_hit`, `miss`, `semantic_miss`,
    /// `refresh`; `None` when no cache applied.
    pub cache_status: Option<String>,
    /// A cache hit: what the replayed answer had cost, in USD.
    pub cache_saved_usd: Option<f64>,
    /// A semantic cache hit: the similarity of the question to the cached one.
    pub cache_similarity: Option<f64>,
    /// Retries after first tries.
    pub retry_count: u32,
    /// The routing config's option that answered.
    pub target: Option<String>,
    /// The routing config's id.
    pub config_id: Option<String>,
    /// The error code of a failed request.
    pub error_code: Option<String>,
    /// The error message of a failed request.
    pub error: Option<String>,
    /// One entry per upstream try.
    pub attempts: Vec<LoggedAttempt>,
    /// Guardrail verdicts.
    pub guardrails: Option<serde_json::Value>,
    /// The request body, when payloads are logged.
    pub request: Option<Payload>,
    /// The response body (a stream: its event-stream text), when payloads are logged.
    pub response: Option<Payload>,
}

/// One upstream try, with the admin API's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedAttempt {
    /// The provider slug tried.
    pub provider: String,
    /// The model name sent upstream.
    pub model: String,
    /// The routing config's option, if any.
    pub target: Option<String>,
    /// 0 for a first try.
    pub retry: u32,
    /// When the try started (RFC 3339).
    pub started_at: String,
    /// From sending to the answer, in ms.
    pub latency_ms: u64,
    /// The upstream's status; `None` when no answer came.
    pub status: Option<u16>,
    /// Why the try failed.
    pub error: Option<String>,
}

/// A stored payload: its first bytes (at most the configured cap) and its full size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The bytes kept (base64 in a spill line).
    #[serde(with = "base64_bytes")]
    pub bytes: Bytes,
    /// The payload's size before it was cut.
    pub size: u64,
}

impl Payload {
    /// Keeps at most `max` bytes of `bytes`, always as a copy of its own: `bytes` is often a
    /// view into a larger buffer (the connection's read buffer, the upstream's body), which a
    /// queued entry would otherwise keep alive whole. One copy of the kept bytes costs less
    /// than holding those buffers for every queued entry (it cut the gateway's peak memory
    /// under saturation; docs/performance.md).
    pub fn capped(bytes: Bytes, max: usize) -> Payload {
        let size = bytes.len() as u64;
        let kept = bytes.len().min(max);
        Payload {
            bytes: Bytes::copy_from_slice(&bytes[..kept]),
            size,
        }
    }

    /// Whether the stored bytes are only the start of the payload.
    pub fn truncated(&self) -> bool {
        (self.bytes.len() as u64) < self.size
    }
}

impl LogEntry {
    /// About how many bytes this entry holds in memory: its own size, its strings, its
    /// payloads and its attempts. What the write queue's byte bound counts; an estimate
    /// (allocator overhead is not counted), but one that grows with everything that can be
    /// large.
    pub fn memory_size(&self) -> usize {
        fn opt(s: &Option<String>) -> usize {
            s.as_ref().map_or(0, String::len)
        }
        fn payload(p: &Option<Payload>) -> usize {
            p.as_ref().map_or(0, |p| p.bytes.len())
        }
        let strings = self.id.len()
            + self.trace_id.len()
            + opt(&self.key_name)
            + opt(&self.gateway)
            + opt(&self.user)
            + opt(&self.provider)
            + opt(&self.model)
            + self.endpoint.len()
            + self.outcome.len()
            + opt(&self.cache_status)
            + opt(&self.target)
            + opt(&self.config_id)
            + opt(&self.error_code)
            + opt(&self.error);
        let attempts: usize = self
            .attempts
            .iter()
            .map(|a| {
                std::mem::size_of::<LoggedAttempt>()
                    + a.provider.len()
                    + a.model.len()
                    + opt(&a.target)
                    + a.started_at.len()
                    + opt(&a.error)
            })
            .sum();
        let metadata = self.metadata.as_ref().map_or(0, |m| {
            m.iter()
                .map(|(k, v)| JSON_NODE + k.len() + json_size(v))
                .sum()
        });
        let guardrails = self.guardrails.as_ref().map_or(0, json_size);
        std::mem::size_of::<LogEntry>()
            + strings
            + attempts
            + metadata
            + guardrails
            + payload(&self.request)
            + payload(&self.response)
    }

    /// The stored form of `record`: payloads only when `record.log_payloads`, each cut to
    /// `max_payload_bytes`.
    pub fn from_record(mut record: RequestRecord, max_payload_bytes: usize) -> LogEntry {
        let allowed = record.log_payloads;
        let keep = |payload: Option<Bytes>| {
            payload
                .filter(|_| allowed)
                .map(|bytes| Payload::capped(bytes, max_payload_bytes))
        };
        let request = keep(record.request.take());
        let response = keep(record.response.take());
        LogEntry {
            id: record.id,
            created_at_ms: record.created_at_ms,
            trace_id: record.trace_id,
            metadata: record.metadata,
            key_name: record.key_name,
            // Set by the control plane when a gateway delivers the entry, never by the
            // process that served the request.
            gateway: None,
            user: record.user,
            provider: record.provider,
            model: record.model,
            endpoint: record.endpoint.to_owned(),
            status: record.status,
            stream: record.stream,
            outcome: outcome_str(record.outcome).to_owned(),
            latency_ms: record.latency_ms,
            upstream_latency_ms: record.upstream_latency_ms,
            ttft_ms: record.ttft_ms,
            prompt_tokens: record.prompt_tokens,
            completion_tokens: record.completion_tokens,
            cached_tokens: record.cached_tokens,
            cache_write_tokens: record.cache_write_tokens,
            cost_usd: record.cost_usd.filter(|c| c.is_finite()),
            cache_status: record.cache_status.map(str::to_owned),
            cache_saved_usd: record.cache_saved_usd.filter(|c| c.is_finite()),
            cache_similarity: record.cache_similarity.filter(|c| c.is_finite()),
            retry_count: record.retry_count,
            target: record.target,
            config_id: record.config_id,
            error_code: record.error_code,
            error: record.error,
            attempts: record
                .attempts
                .into_iter()
                .map(LoggedAttempt::from)
                .collect(),
            guardrails: record.guardrails,
            request,
            response,
        }
    }
}

impl From<Attempt> for LoggedAttempt {
    fn from(a: Attempt) -> LoggedAttempt {
        LoggedAttempt {
            provider: a.provider,
            model: a.model,
            target: a.target,
            retry: a.retry,
            started_at: rfc3339_ms(a.started_at_ms),
            latency_ms: a.latency_ms,
            status: a.status,
            error: a.error,
        }
    }
}

/// What one JSON value costs beyond its text: its node, roughly.
const JSON_NODE: usize = 32;

/// About how many bytes `value` holds in memory.
fn json_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    JSON_NODE
        + match value {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(json_size).sum(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| JSON_NODE + k.len() + json_size(v))
                .sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

fn outcome_str(outcome: portico_core::Outcome) -> &'static str {
    use portico_core::Outcome;
    match outcome {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::StreamBroken => "stream_broken",
        Outcome::ClientDisconnected => "client_disconnected",
    }
}

/// Payload bytes as base64 text in a spill line (a body need not be UTF-8).
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RequestRecord {
        let mut r = RequestRecord::new("r-1".into(), 1_000, "chat.completions");
        r.request = Some(Bytes::from_static(br#"{"model":"m"}"#));
        r.response = Some(Bytes::from_static(b"data: [DONE]\n\n"));
        r
    }

    #[test]
    fn payloads_are_dropped_when_the_key_says_so() {
        let mut r = record();
        r.log_payloads = false;
        let entry = LogEntry::from_record(r, 100);
        assert_eq!(entry.request, None);
        assert_eq!(entry.response, None);
    }

    #[test]
    fn payloads_are_cut_at_the_cap_and_remember_their_size() {
        let entry = LogEntry::from_record(record(), 5);
        let request = entry.request.unwrap();
        assert_eq!(&request.bytes[..], br#"{"mod"#);
        assert_eq!(request.size, 13);
        assert!(request.truncated());
        let whole = LogEntry::from_record(record(), 100).request.unwrap();
        assert!(!whole.truncated());
    }

    #[test]
    fn memory_size_counts_what_is_kept_of_the_payloads_and_the_metadata() {
        let small = LogEntry::from_record(record(), 1 << 20).memory_size();
        assert!(small < 1024, "a small entry is counted small: {small}");
        let mut big = record();
        big.request = Some(Bytes::from(vec![b'x'; 100_000]));
        let kept = LogEntry::from_record(big.clone(), 1 << 20).memory_size();
        assert!((100_000..101_024).contains(&kept), "{kept}");
        // Only the kept (capped) bytes are held, so only they count.
        let capped = LogEntry::from_record(big, 1_000).memory_size();
        assert!((1_000..2_024).contains(&capped), "{capped}");
        let mut tagged = record();
        tagged.metadata = serde_json::json!({"team": "x".repeat(5_000)})
            .as_object()
            .cloned();
        let with_metadata = LogEntry::from_record(tagged, 1 << 20).memory_size();
        assert!(with_metadata >= small + 5_000, "{with_metadata} vs {small}");
    }

    #[test]
    fn a_spill_line_round_trips() {
        let mut r = record();
        r.attempts.push(Attempt {
            provider: "p".into(),
            model: "m".into(),
            target: None,
            retry: 1,
            started_at_ms: 1_500,
            latency_ms: 7,
            status: Some(500),
            error: Some("boom".into()),
        });
        r.response = Some(Bytes::from_static(&[0xff, 0x00, 0x80]));
        let entry = LogEntry::from_record(r, 100);
        let line = serde_json::to_string(&entry).unwrap();
        let back: LogEntry = serde_json::from_str(&line).unwrap();
        assert_eq!(back, entry);
        assert_eq!(back.attempts[0].started_at, "1970-01-01T00:00:01.500Z");
    }
}
