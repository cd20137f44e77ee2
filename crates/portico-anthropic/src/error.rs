//! Anthropic's error answers and error events → [`ProviderError`].
//!
//! Anthropic answers errors as `{"type": "error", "error": {"type", "message"}}`; the message
//! and type are kept as they are ([`ProviderError::upstream`]), so a client sees what
//! Anthropic said. Whether a retry may help is [`ProviderError::is_retryable`]'s call from the
//! status (529 `overloaded_error` included).

use portico_providers::ProviderError;
use portico_providers::error::unreadable_answer;

use crate::wire::{ErrorBody, ErrorResponse};

/// Parses an error body: Anthropic's shape, or anything else (a proxy's HTML page) quoted.
/// Anthropic's error `type` is kept as it is; its errors have no `code`.
pub fn parse(status: u16, body: &[u8]) -> ProviderError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(parsed) if !parsed.error.message.is_empty() => {
            ProviderError::upstream(status, parsed.error.message, Some(parsed.error.kind), None)
        }
        Ok(parsed) => ProviderError::upstream(
            status,
            format!("Anthropic answered HTTP {status} ({})", parsed.error.kind),
            Some(parsed.error.kind),
            None,
        ),
        Err(_) => ProviderError::upstream(
            status,
            unreadable_answer("Anthropic", status, body),
            None,
            None,
        ),
    }
}

/// An `error` event of a stream that had not started yet (no `message_start`): the status
/// its type stands for, so the gateway answers a real status (and may retry or fall back),
/// as it does for an error answer.
pub(crate) fn from_event(error: ErrorBody) -> ProviderError {
    let status = match error.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        // `api_error` and types newer than this code.
        _ => 500,
    };
    ProviderError::upstream(status, error.message, Some(error.kind), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_anthropics_type_and_message() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        let err = parse(529, body);
        assert!(err.is_retryable(), "529 is retryable");
        match err {
            ProviderError::Status {
                status,
                message,
                error_type,
                ..
            } => {
                assert_eq!(status, 529);
                assert_eq!(message, "Overloaded");
                assert_eq!(error_type.as_deref(), Some("overloaded_error"));
            }
            other => panic!("{other:?}"),
        }
        let bad = parse(400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#);
        assert!(!bad.is_retryable());
    }

    #[test]
    fn other_bodies_are_quoted() {
        let message = |body: &[u8]| match parse(502, body) {
            ProviderError::Status { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message(b"<html>bad gateway</html>"),
            "Anthropic answered HTTP 502: <html>bad gateway</html>"
        );
        assert!(message(b"").contains("empty body"));
    }
}
