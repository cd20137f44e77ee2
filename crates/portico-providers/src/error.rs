//! Provider errors, answering pingora's questions as data: whose fault, may it be retried,
//! after how long.

use std::time::Duration;

use portico_core::{ApiError, Endpoint, ErrorCode};

/// The most characters of an upstream's unparsed error text (an HTML page, a proxy's plain
/// text) that an error message quotes.
pub const MAX_QUOTED_CHARS: usize = 500;

/// Ends upstream text that [`quote`] cut. The secret redactor reads it: the beginning of a
/// secret right before it is redacted too, since the cut may have split the secret (see
/// [`crate::redact`]).
pub const CUT_MARK: &str = "…";

/// Upstream text as an error message quotes it: trimmed, and cut to [`MAX_QUOTED_CHARS`]
/// characters ending in [`CUT_MARK`] when longer. Every adapter quotes through this, so every
/// cut is marked.
pub fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}{CUT_MARK}", &text[..end]),
        None => text.to_owned(),
    }
}

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

/// Why an upstream could not be reached, said twice: a short reason a client may be told,
/// and the whole transport error for the log.
///
/// The split exists because transport errors name the request's URL and the peer's address
/// (reqwest prints `error sending request for url (http://10.0.0.7:8080/v1/...)`): internal
/// addresses the client must not learn, and that the operator needs in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFailure {
    /// What a client is told, such as `connection refused`: no URL, host or address.
    pub reason: String,
    /// The full text for the request log; `None` when the reason says it all.
    pub detail: Option<String>,
}

impl TransportFailure {
    /// A failure with a client-safe `reason` and the full `detail` for the log.
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> TransportFailure {
        TransportFailure {
            reason: reason.into(),
            detail: Some(detail.into()),
        }
    }

    /// The text the log keeps: the detail, else the reason.
    pub fn log_text(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.reason)
    }
}

/// A reason with nothing more to log (it must be safe to show a client).
impl From<String> for TransportFailure {
    fn from(reason: String) -> TransportFailure {
        TransportFailure {
            reason,
            detail: None,
        }
    }
}

/// A reason with nothing more to log (it must be safe to show a client).
impl From<&str> for TransportFailure {
    fn from(reason: &str) -> TransportFailure {
        TransportFailure::from(reason.to_owned())
    }
}

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.log_text())
    }
}

/// An upstream call that did not produce a successful answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The connection could not be made or broke before an answer (DNS, refused, TLS, reset).
    #[error("could not reach the upstream: {0}")]
    Unreachable(TransportFailure),
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
    /// The gateway refused the request before sending it: the target's dialect cannot
    /// express it (a parameter it has no equivalent for, a value it does not take), or the
    /// request is not one the endpoint can read. No upstream was asked, so this is never
    /// reported as an upstream status: the client sees the table's `invalid_parameter`.
    #[error("the request cannot be sent to this provider: {message}")]
    Rejected {
        /// What to change, naming the field.
        message: String,
        /// The request field at fault (`messages[1].tool_calls[0].function.arguments`), when
        /// there is one.
        param: Option<String>,
    },
}

impl ProviderError {
    /// A request the gateway refuses on the target's behalf (see [`ProviderError::Rejected`]),
    /// naming the request field at fault when there is one.
    pub fn rejected(message: impl Into<String>, param: Option<&str>) -> ProviderError {
        ProviderError::Rejected {
            message: message.into(),
            param: param.map(str::to_owned),
        }
    }

    /// An upstream's error, as every translating adapter reports one: the upstream's status
    /// and message, and its own `type` and `code` kept verbatim as strings (Portico maps none
    /// of them into its error table). Where the upstream's API has no error type, the type
    /// is OpenAI's for the status ([`openai_type`]), so a client sees the same `type` for
    /// the same status whichever provider answered.
    pub fn upstream(
        status: u16,
        message: impl Into<String>,
        error_type: Option<String>,
        code: Option<String>,
    ) -> ProviderError {
        ProviderError::Status {
            status,
            message: message.into(),
            error_type: error_type.or_else(|| Some(openai_type(status).to_owned())),
            code,
            param: None,
            retry_after: None,
        }
    }

    /// The error with the upstream's `Retry-After` added (a status error only; the others
    /// carry none).
    pub fn with_retry_after(mut self, after: Option<Duration>) -> ProviderError {
        if let ProviderError::Status { retry_after, .. } = &mut self {
            *retry_after = after;
        }
        self
    }

    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        match self {
            ProviderError::Status { status, .. }
                if (400..500).contains(status) && *status != 429 =>
            {
                Fault::Client
            }
            ProviderError::Unsupported { .. } | ProviderError::Rejected { .. } => Fault::Client,
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
            | ProviderError::Unsupported { .. }
            | ProviderError::Rejected { .. } => false,
        }
    }

    /// How long the upstream asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the client is answered with when the error itself decides it: the
    /// upstream's own for [`ProviderError::Status`], 400 for a request refused before it was
    /// sent ([`ProviderError::Rejected`], [`ProviderError::Unsupported`]). `None` for the
    /// gateway's transport failures, which [`ProviderError::to_api_error`] answers 502/504.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            ProviderError::Rejected { .. } => Some(ErrorCode::InvalidParameter.status()),
            ProviderError::Unsupported { .. } => Some(ErrorCode::UnsupportedOperation.status()),
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
                err.retry_after =
                    retry_after.map(|d| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX));
                err
            }
            ProviderError::Unreachable(failure) => {
                let err = ApiError::new(
                    ErrorCode::UpstreamUnreachable,
                    format!(
                        "could not reach provider @{provider_slug}: {}",
                        failure.reason
                    ),
                );
                match &failure.detail {
                    Some(detail) => err.with_detail(format!(
                        "could not reach provider @{provider_slug}: {detail}"
                    )),
                    None => err,
                }
            }
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
            ProviderError::Unsupported { kind, endpoint } if endpoint.is_passthrough() => {
                ApiError::new(
                    ErrorCode::UnsupportedOperation,
                    format!(
                        "provider @{provider_slug} (kind {kind}) has no equivalent of `POST /v1{path}`; send this request to a provider that serves OpenAI's API (kind openai, openai-compatible, azure-openai, groq, mistral, together, deepseek or ollama), by its `@slug/model` or a routing config target",
                        path = endpoint.path()
                    ),
                )
            }
            ProviderError::Unsupported { kind, endpoint } => ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!(
                    "provider @{provider_slug} (kind {kind}) does not support {endpoint}; route this request to a provider that does"
                ),
            ),
            ProviderError::Rejected { message, param } => {
                let mut err = ApiError::new(ErrorCode::InvalidParameter, message.clone());
                err.param = param.clone();
                err
            }
        }
    }
}

/// `error`, an upstream's error read from a successful (2xx) answer or stream event whose
/// body is an error object: the upstream failed but said so in the body only. Its message
/// says so; its status stays the one given (502: the upstream's own said nothing was wrong).
pub fn answered_error(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Status {
            status,
            message,
            error_type,
            code,
            param,
            retry_after,
        } => ProviderError::Status {
            status,
            message: format!("the upstream answered with an error: {message}"),
            error_type,
            code,
            param,
            retry_after,
        },
        other => other,
    }
}

/// A streamed event (`what`, such as "a stream event `content_block_delta`") whose `data`
/// did not read as the dialect's event, said precisely: not UTF-8, not JSON, or JSON of
/// another shape (`dialect` names it: "an Anthropic event").
pub fn unreadable_event(
    what: &str,
    dialect: &str,
    data: &[u8],
    err: &serde_json::Error,
) -> ProviderError {
    if let Err(utf8) = std::str::from_utf8(data) {
        return ProviderError::Malformed(format!("{what} is not valid UTF-8: {utf8}"));
    }
    if err.is_syntax() || err.is_eof() {
        return ProviderError::Malformed(format!("{what} is not valid JSON: {err}"));
    }
    ProviderError::Malformed(format!("{what} is not {dialect}: {err}"))
}

/// OpenAI's error `type` for an HTTP status, for upstreams whose errors carry none of their
/// own (see [`ProviderError::upstream`]): OpenAI's SDKs and their users know these.
pub fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

/// The message of an error answer whose body says nothing readable: `{who} answered HTTP
/// {status}` with the body quoted ([`quote`]), or saying that it was empty.
pub fn unreadable_answer(who: &str, status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("{who} answered HTTP {status} with an empty body")
    } else {
        format!("{who} answered HTTP {status}: {}", quote(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_upstream_tells_the_client_the_reason_and_the_log_the_address() {
        let err = ProviderError::Unreachable(TransportFailure::new(
            "connection refused",
            "error sending request for url (http://10.1.2.3:8443/v1/chat/completions): tcp connect error: Connection refused (os error 111)",
        ));
        let api = err.to_api_error("internal");
        assert_eq!(
            api.message,
            "could not reach provider @internal: connection refused"
        );
        assert!(!api.to_json().to_string().contains("10.1.2.3"));
        assert!(api.log_text().contains("http://10.1.2.3:8443/v1"));
        assert_eq!(api.code, ErrorCode::UpstreamUnreachable);

        let plain = ProviderError::Unreachable("connection refused".into()).to_api_error("p");
        assert_eq!(plain.log_text(), plain.message);
    }
}
