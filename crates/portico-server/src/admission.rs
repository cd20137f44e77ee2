//! The admission limit: how many requests the gateway holds at once before it refuses new
//! data-plane requests with a fast 503 `overloaded` and `Retry-After`.
//!
//! Past its capacity a gateway that accepts everything only makes every answer slower (each
//! waits behind all the others) and holds memory for each. Refusing at the door keeps the
//! latency of the requests it does take bounded (about the limit divided by the throughput)
//! and its memory bounded, and tells clients, whose SDKs retry a 503 after `Retry-After`, to
//! come back. The count is the listener's in-flight count ([`crate::Lifecycle::in_flight`]):
//! every request from its arrival until its answer, a stream's included, has been sent. Health
//! checks, `/metrics`, the admin API and the dashboard are counted but never refused, so a
//! gateway at capacity still says so and can still be operated. A refusal closes its
//! connection (`data_plane.rs` says why).

use portico_core::{ApiError, ErrorCode};

/// Default [`Admission::max_in_flight`].
///
/// High enough that a gateway is not refusing long LLM calls while it still has room (4,096
/// streams of several seconds each are a few hundred requests a second), low enough to bound
/// memory: a request in flight holds its connection's buffers and, for the request log, its
/// payloads, about 85 KB each as measured with 1,024 in flight (docs/performance.md), so
/// about 350 MB at this limit.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// Seconds a refused client is told to wait (`Retry-After`).
const RETRY_AFTER_SECS: u32 = 1;

/// The admission limit of the data plane.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// Requests in flight (counting the one arriving) above which a data-plane request is
    /// refused.
    pub max_in_flight: usize,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl Admission {
    /// The refusal for a request that arrives with `in_flight` requests in flight, itself
    /// included; `None` admits it.
    pub fn check(&self, in_flight: usize) -> Option<ApiError> {
        if in_flight <= self.max_in_flight {
            return None;
        }
        let mut error = ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "the gateway is at its limit of {} requests in flight; retry after {RETRY_AFTER_SECS} s, or raise the limit with --max-in-flight (PORTICO_MAX_IN_FLIGHT)",
                self.max_in_flight
            ),
        );
        error.retry_after = Some(RETRY_AFTER_SECS);
        Some(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_refuses_past_it() {
        let admission = Admission { max_in_flight: 2 };
        assert!(admission.check(1).is_none());
        assert!(admission.check(2).is_none());
        let refused = admission
            .check(3)
            .expect("the third request is over the limit");
        assert_eq!(refused.status, 503);
        assert_eq!(refused.code_string(), "overloaded");
        assert_eq!(refused.retry_after, Some(1));
        assert!(refused.message.contains("limit of 2 requests in flight"));
        assert!(refused.message.contains("--max-in-flight"));
    }
}
