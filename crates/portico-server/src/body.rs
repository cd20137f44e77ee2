//! Reading a data-plane request's body: only once the caller is authenticated, never more
//! than the limit, and never waiting forever on a client that stops sending.
//!
//! A body announced larger than the limit (`Content-Length`) is refused before a byte of it
//! is read. The rest is read frame by frame into one buffer sized from `Content-Length`, so a
//! body costs its own size while it is read (growing a buffer by doubling, or gathering
//! frames and copying them into one, costs up to twice that). A frame that does not arrive
//! within the stall timeout ends the request with a 408.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use portico_core::{ApiError, ErrorCode};

/// Default [`BodyLimits::max_bytes`]: large enough for several base64 images.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Default [`BodyLimits::stall_timeout`] (spec section 13).
pub const DEFAULT_BODY_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a client's request body may cost.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The largest body accepted, in bytes (`--max-body-bytes`).
    pub max_bytes: usize,
    /// The longest wait for the next piece of a body (`--body-timeout-secs`).
    pub stall_timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: DEFAULT_MAX_BODY_BYTES,
            stall_timeout: DEFAULT_BODY_STALL_TIMEOUT,
        }
    }
}

/// The first buffer for a body that announced no length (chunked): grown as it arrives.
const UNSIZED_START: usize = 16 * 1024;

impl BodyLimits {
    /// Refuses a body whose announced length is over the limit, before reading any of it.
    pub(crate) fn check_announced(&self, headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
        let Some(value) = headers.get(header::CONTENT_LENGTH) else {
            return Ok(None);
        };
        // hyper has already refused a malformed Content-Length; this only reads it.
        let Some(length) = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return Ok(None);
        };
        if length > self.max_bytes as u64 {
            return Err(self.too_large(Some(length)));
        }
        Ok(usize::try_from(length).ok())
    }

    /// Reads the whole body within these limits.
    ///
    /// A body that arrives in one frame (the usual small request) is handed on as that frame,
    /// without a copy; a longer one is copied, frame by frame, into one buffer sized from its
    /// `Content-Length` (or grown, without one), so it costs about its own size while read.
    pub(crate) async fn read(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        let announced = self.check_announced(headers)?;
        let mut body = body;
        let mut first: Option<Bytes> = None;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let frame = match tokio::time::timeout(self.stall_timeout, body.frame()).await {
                Err(_) => {
                    return Err(self.stalled(first.as_ref().map_or(0, Bytes::len) + buf.len()));
                }
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidJson,
                        format!("the request body could not be read: {err}"),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                // Trailers: nothing of the body.
                continue;
            };
            let read = first.as_ref().map_or(0, Bytes::len) + buf.len();
            if read + data.len() > self.max_bytes {
                return Err(self.too_large(None));
            }
            if first.is_none() && buf.is_empty() {
                first = Some(data);
                continue;
            }
            if let Some(first) = first.take() {
                let capacity = announced
                    .unwrap_or(UNSIZED_START)
                    .max(first.len() + data.len())
                    .min(self.max_bytes);
                buf.reserve_exact(capacity);
                buf.extend_from_slice(&first);
            }
            buf.extend_from_slice(&data);
        }
        Ok(match first {
            Some(only) => only,
            None => Bytes::from(buf),
        })
    }

    fn too_large(&self, announced: Option<u64>) -> ApiError {
        let size = match announced {
            Some(length) => format!("is {length} bytes"),
            None => "is larger than that".to_owned(),
        };
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body {size}; the gateway accepts at most {} bytes (--max-body-bytes / PORTICO_MAX_BODY_BYTES)",
                self.max_bytes
            ),
        )
    }

    fn stalled(&self, received: usize) -> ApiError {
        ApiError::new(
            ErrorCode::ClientTimeout,
            format!(
                "the request body stopped arriving: nothing for {} s after {received} bytes (--body-timeout-secs / PORTICO_BODY_TIMEOUT_SECS)",
                self.stall_timeout.as_secs()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use futures::StreamExt as _;

    use super::*;

    fn limits(max_bytes: usize) -> BodyLimits {
        BodyLimits {
            max_bytes,
            stall_timeout: Duration::from_secs(30),
        }
    }

    fn announced(length: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers
    }

    #[tokio::test]
    async fn reads_a_body_within_the_limit_whole() {
        let body = Body::from_stream(futures::stream::iter(
            ["{\"a\":", "1}"].map(|s| Ok::<_, std::io::Error>(Bytes::from(s))),
        ));
        let read = limits(1024).read(&HeaderMap::new(), body).await.unwrap();
        assert_eq!(&read[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn a_body_in_one_frame_is_handed_on_without_a_copy() {
        let frame = Bytes::from_static(b"{\"model\":\"@m/x\"}");
        let body = Body::from(frame.clone());
        let read = limits(1024)
            .read(&announced(frame.len() as u64), body)
            .await
            .unwrap();
        assert_eq!(read, frame);
        assert_eq!(read.as_ptr(), frame.as_ptr(), "the same bytes, not a copy");
    }

    #[tokio::test]
    async fn an_announced_length_over_the_limit_is_refused_unread() {
        // A body that would fail the test if it were polled.
        let body = Body::from_stream(futures::stream::once(async {
            panic!("the body was read");
            #[allow(unreachable_code)]
            Ok::<Bytes, std::io::Error>(Bytes::new())
        }));
        let err = limits(10).read(&announced(11), body).await.unwrap_err();
        assert_eq!(err.status, 413);
        assert!(err.message.contains("is 11 bytes"), "{}", err.message);
        assert!(err.message.contains("at most 10 bytes"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_cut_off() {
        let chunks =
            futures::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 100])));
        let err = limits(1000)
            .read(&HeaderMap::new(), Body::from_stream(chunks))
            .await
            .unwrap_err();
        assert_eq!(err.status, 413);
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_a_408() {
        let stalled = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))])
            .chain(futures::stream::pending());
        let limits = BodyLimits {
            max_bytes: 1000,
            stall_timeout: Duration::from_millis(50),
        };
        let err = limits
            .read(&HeaderMap::new(), Body::from_stream(stalled))
            .await
            .unwrap_err();
        assert_eq!(err.status, 408);
        assert_eq!(err.code, ErrorCode::ClientTimeout);
        assert!(err.message.contains("after 1 bytes"), "{}", err.message);
    }
}
