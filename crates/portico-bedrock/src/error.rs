//! Bedrock's errors as [`ProviderError`]s: error answers (`{"message"}` with an
//! `x-amzn-ErrorType` header) and exception frames inside a stream, their exception name kept
//! as the `code` ([`ProviderError::upstream`]); and the requests Portico refuses itself
//! because Bedrock cannot do what they ask ([`ProviderError::Rejected`]).

use portico_providers::ProviderError;
use portico_providers::error::unreadable_answer;

use crate::wire::ErrorBody;

/// A request Bedrock cannot serve as asked, refused before it is sent
/// ([`ProviderError::Rejected`]), saying what to change.
pub(crate) fn invalid_request(message: impl Into<String>, param: Option<&str>) -> ProviderError {
    ProviderError::rejected(message, param)
}

/// The exception name of an `x-amzn-ErrorType` header or `__type` field:
/// `ValidationException:http://internal.amazon.com/...` and
/// `com.amazon.coral.service#ThrottlingException` both give the bare name.
pub(crate) fn exception_name(raw: &str) -> &str {
    let name = raw.split(':').next().unwrap_or(raw);
    name.rsplit('#').next().unwrap_or(name).trim()
}

/// The status an exception name stands for, for exceptions that arrive inside a stream
/// (where there is no HTTP status of their own). Names are matched case-insensitively
/// because stream frames spell them `throttlingException` and error answers
/// `ThrottlingException`.
pub(crate) fn exception_status(name: &str) -> u16 {
    match name.to_ascii_lowercase().as_str() {
        "throttlingexception" => 429,
        "validationexception" => 400,
        "accessdeniedexception" => 403,
        "resourcenotfoundexception" => 404,
        "modeltimeoutexception" => 408,
        "modelnotreadyexception" => 429,
        "servicequotaexceededexception" => 429,
        "modelerrorexception" | "modelstreamerrorexception" => 424,
        "serviceunavailableexception" => 503,
        "internalserverexception" => 500,
        _ => 502,
    }
}

/// An error answer: the status Bedrock sent, its message kept, the exception name as the
/// error `code`.
pub(crate) fn from_response(
    status: u16,
    error_type_header: Option<&str>,
    body: &[u8],
) -> ProviderError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let name = error_type_header
        .or(parsed.kind.as_deref())
        .map(exception_name)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let message = parsed
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| unreadable_answer("Bedrock", status, body));
    // A throttling answer is a 429 whatever status carried it, so it is retried.
    let status = match name.as_deref() {
        Some(n) if n.eq_ignore_ascii_case("ThrottlingException") => 429,
        _ => status,
    };
    ProviderError::upstream(status, message, None, name)
}

/// An exception frame of a stream. Before the client got anything it becomes a status error
/// with a fitting code, so the gateway answers a real status (and may retry or fall back);
/// after that, the stream is broken.
pub(crate) fn from_exception(name: &str, payload: &[u8], started: bool) -> ProviderError {
    // Frames spell names `throttlingException`; error answers `ThrottlingException`, the
    // form clients see in both cases.
    let mut chars = name.chars();
    let name: String = chars
        .next()
        .map(|first| first.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect();
    let name = name.as_str();
    let message = serde_json::from_slice::<ErrorBody>(payload)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| portico_providers::error::quote(&String::from_utf8_lossy(payload)));
    if started {
        ProviderError::StreamBroken(format!("Bedrock sent {name}: {message}"))
    } else {
        ProviderError::upstream(exception_status(name), message, None, Some(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_keep_message_and_name() {
        let err = from_response(
            400,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"The model returned the following errors: messages: roles must alternate"}"#,
        );
        match err {
            ProviderError::Status {
                status,
                message,
                code,
                ..
            } => {
                assert_eq!(status, 400);
                assert!(message.contains("roles must alternate"));
                assert_eq!(code.as_deref(), Some("ValidationException"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn throttling_is_a_retryable_429() {
        let err = from_response(
            400,
            None,
            br#"{"__type":"com.amazon.coral.service#ThrottlingException","Message":"Too many requests"}"#,
        );
        assert_eq!(err.status(), Some(429));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("Too many requests"));
    }

    #[test]
    fn empty_and_non_json_bodies_still_say_something() {
        let msg = |body: &[u8]| from_response(503, None, body).to_string();
        assert!(msg(b"").contains("empty body"));
        assert!(msg(b"<html>oops</html>").contains("<html>oops</html>"));
    }

    #[test]
    fn exceptions_before_and_after_the_first_event() {
        let before = from_exception("throttlingException", br#"{"message":"slow down"}"#, false);
        assert_eq!(before.status(), Some(429));
        assert!(before.is_retryable());
        let after = from_exception("modelStreamErrorException", br#"{"message":"boom"}"#, true);
        assert!(matches!(after, ProviderError::StreamBroken(m) if m.contains("boom")));
        assert_eq!(
            from_exception("validationException", b"{}", false).status(),
            Some(400)
        );
        assert_eq!(exception_status("serviceUnavailableException"), 503);
        assert_eq!(exception_status("internalServerException"), 500);
    }
}
