//! Errors: Google's error bodies read into [`ProviderError::Status`], and the requests
//! Portico refuses itself ([`ProviderError::Rejected`]) when Gemini's API cannot express them.

use portico_providers::ProviderError;
use portico_providers::error::unreadable_answer;
use serde_json::Value;

use crate::wire::ErrorDetail;

/// A request Gemini cannot take, refused before it is sent ([`ProviderError::Rejected`]),
/// naming the request field (`param`; empty for none) at fault.
pub(crate) fn invalid_request(message: impl Into<String>, param: &str) -> ProviderError {
    ProviderError::rejected(message, Some(param).filter(|p| !p.is_empty()))
}

/// [`ProviderError::Status`] from one of Google's error details, with the message kept and the
/// gRPC status name (`RESOURCE_EXHAUSTED`, ...) as the `code`.
pub(crate) fn from_detail(status: u16, detail: ErrorDetail) -> ProviderError {
    let message = detail
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("Gemini answered HTTP {status} without a message"));
    ProviderError::upstream(status, message, None, detail.status)
}

/// Reads an error answer: `{"error": {...}}`, the same inside a one-element array (how the
/// non-SSE stream reports errors), or anything else as text.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> ProviderError {
    let json = serde_json::from_slice::<Value>(body).ok();
    // The body, or the first element of an array body.
    let object = match &json {
        Some(Value::Array(items)) => items.first(),
        other => other.as_ref(),
    };
    let detail = object
        .and_then(|o| o.get("error"))
        .filter(|e| e.is_object())
        .and_then(|e| serde_json::from_value::<ErrorDetail>(e.clone()).ok());
    let detail = detail.unwrap_or_else(|| ErrorDetail {
        message: Some(unreadable_answer("Gemini", status, body)),
        ..ErrorDetail::default()
    });
    from_detail(status, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: ProviderError) -> (u16, String, Option<String>, Option<String>) {
        match err {
            ProviderError::Status {
                status,
                message,
                error_type,
                code,
                ..
            } => (status, message, error_type, code),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_googles_error_shapes() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(
            fields(parse_error_body(429, body)),
            (
                429,
                "Resource has been exhausted (e.g. check quota).".to_owned(),
                Some("rate_limit_error".to_owned()),
                Some("RESOURCE_EXHAUSTED".to_owned())
            )
        );
        let array = br#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#;
        let (status, message, kind, code) = fields(parse_error_body(400, array));
        assert_eq!((status, message.as_str()), (400, "API key not valid."));
        assert_eq!(kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(code.as_deref(), Some("INVALID_ARGUMENT"));
        let (_, text, kind, _) = fields(parse_error_body(503, b"<html>down</html>"));
        assert_eq!(text, "Gemini answered HTTP 503: <html>down</html>");
        assert_eq!(kind.as_deref(), Some("server_error"));
        assert!(fields(parse_error_body(500, b"")).1.contains("empty body"));
    }
}
