//! Errors: Google's error bodies read into [`ProviderError::Status`], and the 400s Portico
//! itself answers when a request cannot be expressed in Gemini's API.

use portico_providers::ProviderError;

use serde_json::Value;

use crate::wire::ErrorDetail;

/// Error bodies larger than this are cut before parsing.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;

/// A request Gemini cannot take, refused before it is sent: a 400 in OpenAI's shape, naming
/// the request field (`param`) at fault.
pub(crate) fn invalid_request(message: impl Into<String>, param: &str) -> ProviderError {
    ProviderError::Status {
        status: 400,
        message: message.into(),
        error_type: Some("invalid_request_error".to_owned()),
        code: Some("unsupported_by_gemini".to_owned()),
        param: (!param.is_empty()).then(|| param.to_owned()),
        retry_after: None,
    }
}

/// OpenAI's error `type` for an HTTP status, so SDKs raise their usual exception.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

/// [`ProviderError::Status`] from one of Google's error details, with the message kept and the
/// gRPC status name (`RESOURCE_EXHAUSTED`, ...) as the `code`.
pub(crate) fn from_detail(status: u16, detail: ErrorDetail) -> ProviderError {
    let message = detail
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| format!("Gemini answered HTTP {status} without a message"));
    ProviderError::Status {
        status,
        message,
        error_type: Some(error_type(status).to_owned()),
        code: detail.status,
        param: None,
        retry_after: None,
    }
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
        .and_then(|e| serde_json::from_value::<ErrorDetail>(e.clone()).ok())
        .ok_or(());
    match detail {
        Ok(detail) => from_detail(status, detail),
        Err(()) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("Gemini answered HTTP {status} with an empty body")
            } else {
                format!(
                    "Gemini answered HTTP {status}: {}",
                    portico_providers::error::quote(text)
                )
            };
            from_detail(
                status,
                ErrorDetail {
                    message: Some(message),
                    ..ErrorDetail::default()
                },
            )
        }
    }
}

/// Turns an error answer into [`ProviderError::Status`], with its `Retry-After`.
pub(crate) async fn from_response(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = portico_providers::openai::retry_after(response.headers());
    let body = portico_providers::openai::read_capped(response, MAX_ERROR_BODY).await;
    let mut err = parse_error_body(status, &body);
    if let ProviderError::Status {
        retry_after: ra, ..
    } = &mut err
    {
        *ra = retry_after;
    }
    err
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
