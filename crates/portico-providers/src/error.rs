//! Provider errors, answering pingora's questions as data: whose fault, may it be retried,
//! after how long.

use std::time::Duration;

use portico_core::{ApiError, Endpoint, ErrorCode};

/// Who is at fault for an error: decides how it is reported and whether another target helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request itself is wrong: another try or target will fail the same way.
    Client,
    /// The upstream failed or refused.
    Upstream,
    /// The gateway could not do its part.
    Gateway,
}

/// An upstream call that did not produce a successful answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The connection could not be made or broke before an answer (DNS, refused, TLS, reset).
    #[error("could not reach the upstream: {0}")]
    Unreachable(String),
    /// No answer within the configured time (the duration, when the adapter knows it).
    #[error("the upstream did not answer in time")]
    Timeout(Option<Duration>),
    /// The upstream answered with an error status.
    #[error("upstream answered {status}: {message}")]
    Status {
        /// The upstream's HTTP status.
        status: u16,
        /// The upstream's message (kept as it was).
        message: String,
        /// The upstream's error `type`, when it sent one.
        error_type: Option<String>,
        /// The upstream's error `code`, when it sent one.
        code: Option<String>,
        /// The upstream's error `param`, when it sent one.
        param: Option<String>,
        /// The `Retry-After` the upstream sent.
        retry_after: Option<Duration>,
    },
    /// The upstream answered something that is not the expected shape.
    #[error("the upstream's answer could not be read: {0}")]
    Malformed(String),
    /// A stream broke after it started (reset, truncated, in-band error).
    #[error("the upstream stream broke: {0}")]
    StreamBroken(String),
    /// This provider kind cannot do this operation.
    #[error("{kind} providers do not support {endpoint}")]
    Unsupported {
        /// The provider kind's name.
        kind: &'static str,
        /// The operation asked for.
        endpoint: Endpoint,
    },
}

impl ProviderError {
    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            ProviderError::Status { status, .. }
                if (400..500).contains(status) && *status != 429 =>
            {
                Fault::Client
            }
            ProviderError::Unsupported { .. } => Fault::Client,
            ProviderError::Unreachable(_)
            | ProviderError::Timeout(_)
            | ProviderError::Status { .. }
            | ProviderError::Malformed(_)
            | ProviderError::StreamBroken(_) => Fault::Upstream,
        }
    }

    /// Whether trying again (the same or another target) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Unreachable(_) | ProviderError::Timeout(_) => true,
            ProviderError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504 | 529)
            }
            ProviderError::Malformed(_)
            | ProviderError::StreamBroken(_)
            | ProviderError::Unsupported { .. } => false,
        }
    }

    /// How long the upstream asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of the upstream's answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error a client sees. An upstream status is passed on with its message, type and
    /// code kept; the gateway's own failures become 502/504.
    pub fn to_api_error(&self, provider_slug: &str) -> ApiError {
        match self {
            ProviderError::Status {
                status,
                message,
                error_type,
                code,
                param,
                retry_after,
            } => {
                let mut err = ApiError::new(ErrorCode::UpstreamError, message.clone());
                err.status = if (400..=599).contains(status) {
                    *status
                } else {
                    502
                };
                err.error_type = error_type.clone();
                err.code_str = code.clone();
                err.param = param.clone();
                err.retry_after = retry_after.map(|d| d.as_secs().max(1));
                err
            }
            ProviderError::Unreachable(detail) => ApiError::new(
                ErrorCode::UpstreamUnreachable,
                format!("could not reach provider @{provider_slug}: {detail}"),
            ),
            ProviderError::Timeout(after) => ApiError::new(
                ErrorCode::UpstreamTimeout,
                match after {
                    Some(after) => format!(
                        "provider @{provider_slug} did not answer within {} ms",
                        after.as_millis()
                    ),
                    None => format!(
                        "provider @{provider_slug} stopped sending for longer than the upstream read timeout (PORTICO_UPSTREAM_READ_TIMEOUT_MS)"
                    ),
                },
            ),
            ProviderError::Malformed(detail) => ApiError::new(
                ErrorCode::UpstreamMalformed,
                format!(
                    "provider @{provider_slug} sent an answer that could not be read: {detail}"
                ),
            ),
            ProviderError::StreamBroken(detail) => ApiError::new(
                ErrorCode::UpstreamUnreachable,
                format!("the stream from provider @{provider_slug} broke: {detail}"),
            ),
            ProviderError::Unsupported { kind, endpoint } => ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!(
                    "provider @{provider_slug} (kind {kind}) does not support {endpoint}; route this request to a provider that does"
                ),
            ),
        }
    }
}
