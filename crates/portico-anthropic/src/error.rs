//! Anthropic's error answers → [`ProviderError`].
//!
//! Anthropic answers errors as `{"type": "error", "error": {"type", "message"}}`; the message
//! and type are kept as they are, so a client sees what Anthropic said. Whether a retry may
//! help is [`ProviderError::is_retryable`]'s call from the status (529 `overloaded_error`
//! included).

use portico_providers::ProviderError;
use portico_providers::openai::{read_capped, retry_after};

use crate::wire::ErrorResponse;

/// Upstream error bodies larger than this are cut before parsing.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Reads an error answer (status, `retry-after`, body).
pub(crate) async fn from_response(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = read_capped(response, MAX_ERROR_BODY).await;
    let mut err = parse(status, &body);
    if let ProviderError::Status {
        retry_after: ra, ..
    } = &mut err
    {
        *ra = retry_after;
    }
    err
}

/// Parses an error body: Anthropic's shape, or anything else (a proxy's HTML page) quoted.
pub fn parse(status: u16, body: &[u8]) -> ProviderError {
    let (message, error_type) = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(parsed) if !parsed.error.message.is_empty() => {
            (parsed.error.message, Some(parsed.error.kind))
        }
        Ok(parsed) => (
            format!("Anthropic answered HTTP {status} ({})", parsed.error.kind),
            Some(parsed.error.kind),
        ),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("Anthropic answered HTTP {status} with an empty body")
            } else {
                format!(
                    "Anthropic answered HTTP {status}: {}",
                    portico_providers::error::quote(text)
                )
            };
            (message, None)
        }
    };
    ProviderError::Status {
        status,
        message,
        error_type,
        code: None,
        param: None,
        retry_after: None,
    }
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
