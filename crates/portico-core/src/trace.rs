//! A request's place in a distributed trace (W3C Trace Context), kept on its record while
//! OpenTelemetry tracing is on.
//!
//! The engine fills a [`TraceContext`] when a request arrives (joining the caller's
//! `traceparent`, or starting a trace) and turns the finished record into spans: one for the
//! request, one per upstream attempt. Nothing here does I/O; with tracing off no record has
//! one.

use std::time::SystemTime;

/// The trace a request belongs to and the ids of its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id: the caller's (from `traceparent`), else a new random one.
    pub trace_id: [u8; 16],
    /// The id of the request's own (server) span.
    pub span_id: [u8; 8],
    /// The caller's span, the parent of the request's span; `None` when no valid
    /// `traceparent` came.
    pub parent_span_id: Option<[u8; 8]>,
    /// The caller's trace flags (bit 0: sampled); `1` for a trace started here.
    pub flags: u8,
    /// The caller's `tracestate`, passed on unchanged.
    pub trace_state: Option<String>,
    /// When the request arrived (the request span's start).
    pub started: SystemTime,
    /// The model the client asked for (`@slug/model`, or what its config chose from), once
    /// the body is read.
    pub request_model: Option<String>,
    /// The request's route (`/v1/chat/completions`), for the request span's name.
    pub route: &'static str,
    /// Random bits the attempt spans' ids are derived from (see
    /// [`TraceContext::attempt_span_id`]).
    pub attempt_seed: u64,
}

impl TraceContext {
    /// The span id of the request's `index`-th upstream attempt (0-based, retries and
    /// fallbacks counted in order), the same whether asked when the attempt is sent (to pass
    /// it upstream in `traceparent`) or when its span is built from the finished record.
    pub fn attempt_span_id(&self, index: usize) -> [u8; 8] {
        // SplitMix64's finaliser: distinct indexes give distinct, well-spread ids.
        let mut z = self.attempt_seed.wrapping_add(
            (index as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // An all-zero span id is invalid in W3C Trace Context.
        if z == 0 { 1 } else { z }.to_be_bytes()
    }

    /// The trace id in lowercase hex (32 characters), as W3C Trace Context writes it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` header of the request's `index`-th upstream attempt: this trace,
    /// with the attempt's span as the parent of whatever the upstream records.
    pub fn attempt_traceparent(&self, index: usize) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.attempt_span_id(index)),
            self.flags
        )
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(seed: u64) -> TraceContext {
        TraceContext {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent_span_id: None,
            flags: 1,
            trace_state: None,
            started: SystemTime::UNIX_EPOCH,
            request_model: None,
            route: "/v1/chat/completions",
            attempt_seed: seed,
        }
    }

    #[test]
    fn attempt_span_ids_are_stable_and_distinct() {
        let cx = context(42);
        let ids: Vec<_> = (0..64).map(|i| cx.attempt_span_id(i)).collect();
        assert_eq!(ids[3], cx.attempt_span_id(3));
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| *id != [0; 8]));
        assert_ne!(context(43).attempt_span_id(0), ids[0]);
    }

    #[test]
    fn an_attempt_traceparent_names_the_trace_and_the_attempt_span() {
        let cx = context(7);
        let header = cx.attempt_traceparent(1);
        assert_eq!(header.len(), 55);
        assert_eq!(&header[..36], "00-abababababababababababababababab-");
        assert_eq!(&header[36..52], hex(&cx.attempt_span_id(1)));
        assert!(header.ends_with("-01"));
    }
}
