//! [`Failure`]: how one upstream attempt failed, as the routing decisions need to know it.
//!
//! The retry schedule ([`crate::retry`]), the fallback walk ([`crate::plan::Plan::next_after`])
//! and the circuit breaker ([`crate::health`]) all decide from this one small value, so the
//! engine maps its `ProviderError` to a `Failure` once per attempt and nothing here depends on
//! the provider crates.

use std::time::Duration;

/// Statuses retried when a `retry` object has no `on_status_codes` (Portkey's default).
pub const DEFAULT_RETRY_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// How one attempt against one candidate failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The upstream answered with an error status.
    Status {
        /// The upstream's HTTP status.
        status: u16,
        /// The upstream's `Retry-After` (or `retry-after-ms`), when it sent one.
        retry_after: Option<Duration>,
    },
    /// The connection could not be made or broke before an answer (DNS, refused, TLS, reset).
    Connect,
    /// No answer within the time allowed (`request_timeout`, or the adapter's own timeout).
    Timeout,
    /// A gateway-side failure: a malformed upstream answer, an adapter that cannot serve the
    /// operation. Falls through to the next fallback target but is not retried (it would
    /// fail the same way).
    Gateway,
    /// Not attempted: the target's circuit breaker refused it at attempt time (another
    /// request holds the half-open probe, or it opened after the plan was made). Falls
    /// through, is never retried and does not count against the target's health.
    Skipped,
}

impl Failure {
    /// An error status without `Retry-After`.
    pub fn status(status: u16) -> Failure {
        Failure::Status {
            status,
            retry_after: None,
        }
    }

    /// The HTTP status, when the upstream sent one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The upstream's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether a `fallback` strategy with these `on_status_codes` moves on to its next target.
    /// `None` (no list): every failure does. With a list, a status must be listed;
    /// connection errors, timeouts, gateway-side failures and skips always fall through
    /// (Portkey: "gateway exceptions skip to the next target regardless").
    pub fn falls_through(&self, on_status_codes: Option<&[u16]>) -> bool {
        match (self, on_status_codes) {
            (_, None) => true,
            (Failure::Status { status, .. }, Some(codes)) => codes.contains(status),
            (Failure::Connect | Failure::Timeout | Failure::Gateway | Failure::Skipped, _) => true,
        }
    }

    /// Whether this failure counts against the target's health (circuit breaker): connection
    /// errors, timeouts, 429 and 5xx. Other 4xx are the caller's fault, not the target's.
    pub fn counts_against_health(&self) -> bool {
        match self {
            Failure::Connect | Failure::Timeout => true,
            Failure::Status { status, .. } => *status == 429 || *status >= 500,
            Failure::Gateway | Failure::Skipped => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_through_follows_the_listed_codes_but_never_blocks_transport_errors() {
        let codes: &[u16] = &[429, 503];
        assert!(Failure::status(429).falls_through(Some(codes)));
        assert!(!Failure::status(500).falls_through(Some(codes)));
        assert!(!Failure::status(400).falls_through(Some(codes)));
        assert!(Failure::status(400).falls_through(None));
        for f in [
            Failure::Connect,
            Failure::Timeout,
            Failure::Gateway,
            Failure::Skipped,
        ] {
            assert!(f.falls_through(Some(codes)), "{f:?}");
            assert!(f.falls_through(Some(&[])), "{f:?}");
        }
    }

    #[test]
    fn health_counts_upstream_faults_only() {
        assert!(Failure::Connect.counts_against_health());
        assert!(Failure::Timeout.counts_against_health());
        assert!(Failure::status(429).counts_against_health());
        assert!(Failure::status(503).counts_against_health());
        assert!(!Failure::status(400).counts_against_health());
        assert!(!Failure::status(404).counts_against_health());
        assert!(!Failure::Gateway.counts_against_health());
        assert!(!Failure::Skipped.counts_against_health());
    }

    #[test]
    fn accessors() {
        let f = Failure::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(f.http_status(), Some(429));
        assert_eq!(f.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(Failure::Connect.http_status(), None);
        assert_eq!(Failure::Timeout.retry_after(), None);
    }
}
