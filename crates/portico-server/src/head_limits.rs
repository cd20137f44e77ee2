//! How many request headers, and how many bytes of them, a request may carry: past either
//! limit it is answered 431 with a JSON error before it is routed, and its connection closed.
//!
//! hyper has limits of its own on a request head (a count, 100 by default, and the size of
//! its read buffer, about 400 KB), past which it answers a bare 431 with no body and closes
//! the connection. Those are set above these ([`HeadLimits::hyper_max_headers`],
//! [`HeadLimits::hyper_max_buf_size`]) as a backstop, so that a client over our limit but
//! under hyper's gets an error that says which limit and which flag; only a head past hyper's
//! gets the bare 431. hyper's count is kept at its default of 100 while ours is below it,
//! because above 100 hyper moves its header buffers from the stack to the heap for every
//! request.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use portico_core::{ApiError, Endpoint, ErrorCode, ServerLimit};
use portico_engine::Family;

/// Default [`HeadLimits::max_count`]: three times a heavy real request (an SDK's headers,
/// a dozen `x-portkey-*` ones, a proxy's forwarding headers), and under hyper's own 100.
pub const DEFAULT_MAX_HEADER_COUNT: usize = 64;
/// Default [`HeadLimits::max_bytes`]: Envoy's default (60 KiB) rounded up; four times
/// Node.js's (16 KiB), which Portkey's gateway runs on, and twice nginx's 32 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// hyper's own default header count, kept on the stack.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;
/// hyper's own default read-buffer bound (8 KiB + 100 × 4 KiB).
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// The limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Most request headers (`--max-header-count`).
    pub max_count: usize,
    /// Most bytes of header names and values together (`--max-header-bytes`).
    pub max_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_count: DEFAULT_MAX_HEADER_COUNT,
            max_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

impl HeadLimits {
    /// The header count hyper is set to: half again ours, at least its default of 100.
    pub(crate) fn hyper_max_headers(&self) -> usize {
        HYPER_DEFAULT_MAX_HEADERS.max(self.max_count.saturating_add(self.max_count / 2))
    }

    /// hyper's read-buffer bound: room for twice our header bytes plus a request line,
    /// at least its default.
    pub(crate) fn hyper_max_buf_size(&self) -> usize {
        HYPER_DEFAULT_MAX_BUF.max(self.max_bytes.saturating_mul(2).saturating_add(16 * 1024))
    }

    /// The refusal of a request whose headers are over a limit; `None` passes it. A loop
    /// over the headers, no allocation.
    pub fn check(&self, headers: &HeaderMap) -> Option<(ServerLimit, ApiError)> {
        let count = headers.len();
        if count > self.max_count {
            return Some((
                ServerLimit::MaxHeaderCount,
                ApiError::new(
                    ErrorCode::HeadersTooLarge,
                    format!(
                        "the request has {count} headers; the gateway accepts at most {} (--max-header-count / PORTICO_MAX_HEADER_COUNT)",
                        self.max_count
                    ),
                ),
            ));
        }
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if bytes > self.max_bytes {
            return Some((
                ServerLimit::MaxHeaderBytes,
                ApiError::new(
                    ErrorCode::HeadersTooLarge,
                    format!(
                        "the request's headers are {bytes} bytes (names and values); the gateway accepts at most {} (--max-header-bytes / PORTICO_MAX_HEADER_BYTES)",
                        self.max_bytes
                    ),
                ),
            ));
        }
        None
    }
}

/// The 431 answer: in Anthropic's shape on `/v1/messages`, OpenAI's elsewhere; the
/// connection closes after it (the body, if any, is not read).
pub(crate) fn refusal(path: &str, error: &ApiError) -> Response {
    let family = if path == "/v1/messages" {
        Family::Messages
    } else {
        Family::OpenAi(Endpoint::ChatCompletions)
    };
    let mut response = crate::error::render(family, error);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(count: usize, value_len: usize) -> HeaderMap {
        let mut map = HeaderMap::new();
        for i in 0..count {
            map.insert(
                axum::http::HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from_str(&"v".repeat(value_len)).unwrap(),
            );
        }
        map
    }

    #[test]
    fn refuses_too_many_headers_or_too_many_bytes() {
        let limits = HeadLimits {
            max_count: 4,
            max_bytes: 100,
        };
        assert!(limits.check(&headers(4, 10)).is_none());
        let (limit, err) = limits.check(&headers(5, 1)).unwrap();
        assert_eq!(limit, ServerLimit::MaxHeaderCount);
        assert_eq!(err.status, 431);
        assert_eq!(err.code_string(), "request_header_fields_too_large");
        assert!(err.message.contains("has 5 headers"), "{}", err.message);
        assert!(
            err.message.contains("--max-header-count"),
            "{}",
            err.message
        );
        let (limit, err) = limits.check(&headers(2, 60)).unwrap();
        assert_eq!(limit, ServerLimit::MaxHeaderBytes);
        // Two names of 4 bytes and two values of 60.
        assert!(err.message.contains("are 128 bytes"), "{}", err.message);
        assert!(
            err.message.contains("--max-header-bytes"),
            "{}",
            err.message
        );
    }

    #[test]
    fn hyper_backstops_sit_above_ours() {
        let default = HeadLimits::default();
        assert_eq!(default.hyper_max_headers(), 100, "hyper's stack default");
        assert!(default.hyper_max_buf_size() > default.max_bytes);
        let raised = HeadLimits {
            max_count: 200,
            max_bytes: 1024 * 1024,
        };
        assert_eq!(raised.hyper_max_headers(), 300);
        assert!(raised.hyper_max_buf_size() > 2 * 1024 * 1024);
    }
}
