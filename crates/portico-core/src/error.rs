//! The one table of public error codes.
//!
//! Every error a client can see is an [`ApiError`]: a code from [`ErrorCode`] (which fixes the
//! HTTP status, OpenAI's error `type` and a stable `code` string) and a message that says what
//! to fix. The table is written as plain `match`es so that adding a code is a compile error
//! until every column is filled.

use std::fmt;

/// A public error code. Each maps to one HTTP status, OpenAI error `type` and `code` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not valid JSON, or not the JSON object the endpoint expects.
    InvalidJson,
    /// A parameter is missing, of the wrong type or out of range.
    InvalidParameter,
    /// A request header has an invalid value (for example `x-portkey-metadata`).
    InvalidHeader,
    /// The request body is larger than the gateway accepts.
    PayloadTooLarge,
    /// The request has more headers, or more header bytes, than the gateway accepts (431).
    HeadersTooLarge,
    /// The request body nests JSON arrays and objects deeper than the gateway accepts.
    JsonTooDeep,
    /// An array of the request (`messages`, `input`, `tools`) has more items than the
    /// gateway accepts; OpenAI's own code for the same refusal.
    ArrayTooLong,
    /// No gateway key was sent.
    MissingApiKey,
    /// The gateway key is unknown or revoked.
    InvalidApiKey,
    /// The key is valid but may not use this provider or model.
    Forbidden,
    /// The `@slug` names no provider in the catalog.
    UnknownProvider,
    /// The provider exists but the model is not in its allow-list.
    UnknownModel,
    /// No such route on the gateway.
    RouteNotFound,
    /// The HTTP method is not allowed on this route.
    MethodNotAllowed,
    /// An admin API record (provider, key, config, log) does not exist.
    NotFound,
    /// An admin API change conflicts with what is stored (a taken name, a record still in
    /// use, a record the catalog file owns).
    Conflict,
    /// The provider has no adapter for this operation (for example embeddings on a chat-only kind).
    UnsupportedOperation,
    /// The upstream could not be reached (connect error, reset, TLS).
    UpstreamUnreachable,
    /// The upstream answered something the gateway could not understand.
    UpstreamMalformed,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream answered with an error; its status is passed on.
    UpstreamError,
    /// The routing config's `request_timeout` (or `x-portkey-request-timeout`) ran out.
    RequestTimeout,
    /// The client stopped sending its request (its body stalled).
    ClientTimeout,
    /// A budget (cost or tokens per period) has no room for the request.
    BudgetExceeded,
    /// A rate limit (requests or tokens per minute) is reached; `Retry-After` says when to
    /// try again.
    RateLimited,
    /// The gateway is shutting down or not ready.
    Unavailable,
    /// The gateway has as many requests in flight as its admission limit allows
    /// (`--max-in-flight`); `Retry-After` says when to try again.
    Overloaded,
    /// A bug in the gateway.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is answered with. [`ErrorCode::UpstreamError`] carries the
    /// upstream's own status in [`ApiError::status`] instead; 502 is its fallback.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidParameter | ErrorCode::InvalidHeader => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::JsonTooDeep | ErrorCode::ArrayTooLong => 400,
            ErrorCode::MissingApiKey | ErrorCode::InvalidApiKey => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::UnknownProvider | ErrorCode::UnknownModel | ErrorCode::RouteNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::UnsupportedOperation => 400,
            ErrorCode::UpstreamUnreachable => 502,
            ErrorCode::UpstreamMalformed => 502,
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::UpstreamError => 502,
            ErrorCode::RequestTimeout | ErrorCode::ClientTimeout => 408,
            ErrorCode::BudgetExceeded => 412,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable | ErrorCode::Overloaded => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// OpenAI's error `type`, which OpenAI SDKs read alongside the status.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::InvalidParameter
            | ErrorCode::InvalidHeader
            | ErrorCode::PayloadTooLarge
            | ErrorCode::HeadersTooLarge
            | ErrorCode::JsonTooDeep
            | ErrorCode::ArrayTooLong
            | ErrorCode::UnknownProvider
            | ErrorCode::UnknownModel
            | ErrorCode::RouteNotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::NotFound
            | ErrorCode::Conflict
            | ErrorCode::UnsupportedOperation => "invalid_request_error",
            ErrorCode::MissingApiKey | ErrorCode::InvalidApiKey => "authentication_error",
            ErrorCode::Forbidden => "permission_error",
            ErrorCode::UpstreamUnreachable
            | ErrorCode::UpstreamMalformed
            | ErrorCode::UpstreamTimeout
            | ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::RequestTimeout | ErrorCode::ClientTimeout => "timeout_error",
            // OpenAI's type for a spent quota, which its SDK users already check for.
            ErrorCode::BudgetExceeded => "insufficient_quota",
            // OpenAI's rate-limit errors name the limit's unit: `requests` or `tokens`.
            ErrorCode::RateLimited => "requests",
            ErrorCode::Unavailable | ErrorCode::Overloaded => "service_unavailable",
            ErrorCode::Internal => "server_error",
        }
    }

    /// The stable snake_case code string clients can match on.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidHeader => "invalid_header",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::HeadersTooLarge => "request_header_fields_too_large",
            ErrorCode::JsonTooDeep => "json_too_deep",
            ErrorCode::ArrayTooLong => "array_above_max_length",
            ErrorCode::MissingApiKey => "missing_api_key",
            ErrorCode::InvalidApiKey => "invalid_api_key",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownProvider => "provider_not_found",
            ErrorCode::UnknownModel => "model_not_found",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::UnsupportedOperation => "unsupported_operation",
            ErrorCode::UpstreamUnreachable => "upstream_unreachable",
            ErrorCode::UpstreamMalformed => "upstream_malformed_response",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::ClientTimeout => "client_timeout",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::RateLimited => "rate_limit_exceeded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal_error",
        }
    }
}

/// An error a client sees: answered as OpenAI's `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// What went wrong.
    pub code: ErrorCode,
    /// The HTTP status; the code's own unless an upstream's status is passed on.
    pub status: u16,
    /// What was wrong and how to fix it. Never contains a secret.
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// OpenAI error `type` override: an upstream's own type is kept when it sent one.
    pub error_type: Option<String>,
    /// Code string override: an upstream's own code is kept when it sent one.
    pub code_str: Option<String>,
    /// Seconds the client should wait before retrying (sets `Retry-After`). A `u32` (136
    /// years) keeps `ApiError` within clippy's `result_large_err` bound.
    pub retry_after: Option<u32>,
    /// The fuller text the request log keeps instead of `message`, never sent to the client:
    /// a transport error's URL and address stay in the log (see [`ApiError::log_text`]).
    /// Boxed: it is rare, and a thin pointer keeps `Result<_, ApiError>` small.
    pub detail: Option<Box<String>>,
}

impl ApiError {
    /// An error with the code's own status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
            param: None,
            error_type: None,
            code_str: None,
            retry_after: None,
            detail: None,
        }
    }

    /// Adds the log-only text (see [`ApiError::detail`]).
    pub fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = Some(Box::new(detail.into()));
        self
    }

    /// What the request log and the access log record: the detail when there is one, else
    /// the client's message.
    pub fn log_text(&self) -> &str {
        self.detail.as_deref().unwrap_or(&self.message)
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// The OpenAI `type` sent to the client.
    pub fn type_str(&self) -> &str {
        self.error_type
            .as_deref()
            .unwrap_or_else(|| self.code.error_type())
    }

    /// The `code` string sent to the client.
    pub fn code_string(&self) -> &str {
        self.code_str
            .as_deref()
            .unwrap_or_else(|| self.code.as_str())
    }

    /// Anthropic's shape, `{"type": "error", "error": {"type", "message"}}`, for clients of
    /// the Messages API, whose SDKs parse that to raise their own exception types.
    pub fn to_anthropic_json(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "error",
            "error": { "type": self.anthropic_type(), "message": self.message },
        })
    }

    /// Anthropic's error `type`: the upstream's own when it is one of Anthropic's, else the
    /// one Anthropic uses for the status.
    fn anthropic_type(&self) -> &str {
        /// Anthropic's error types.
        const ANTHROPIC_ERROR_TYPES: &[&str] = &[
            "invalid_request_error",
            "authentication_error",
            "billing_error",
            "permission_error",
            "not_found_error",
            "request_too_large",
            "rate_limit_error",
            "timeout_error",
            "api_error",
            "overloaded_error",
        ];
        if let Some(kind) = self.error_type.as_deref()
            && ANTHROPIC_ERROR_TYPES.contains(&kind)
        {
            return kind;
        }
        if self.code == ErrorCode::Overloaded {
            // Anthropic's own word for a service at capacity, which its SDKs retry.
            return "overloaded_error";
        }
        match self.status {
            400 | 405 | 409 | 422 | 431 => "invalid_request_error",
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            408 | 504 => "timeout_error",
            // A spent budget is the gateway's spend limit: Anthropic's billing kind of error.
            412 => "billing_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The OpenAI-shaped JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.type_str(),
                "param": self.param,
                "code": self.code_string(),
            }
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status,
            self.code_string(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_shape() {
        let err = ApiError::new(ErrorCode::UnknownModel, "no model").with_param("model");
        let body = err.to_json();
        assert_eq!(body["error"]["message"], "no model");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(err.status, 404);
    }

    #[test]
    fn the_detail_is_logged_but_never_rendered() {
        let err = ApiError::new(
            ErrorCode::UpstreamUnreachable,
            "could not reach @p: refused",
        )
        .with_detail("could not reach @p: http://10.0.0.7:8080/v1: refused");
        assert_eq!(
            err.log_text(),
            "could not reach @p: http://10.0.0.7:8080/v1: refused"
        );
        assert!(!err.to_json().to_string().contains("10.0.0.7"));
        assert!(!err.to_string().contains("10.0.0.7"));
        let plain = ApiError::new(ErrorCode::Internal, "boom");
        assert_eq!(plain.log_text(), "boom");
    }

    #[test]
    fn errors_take_anthropics_types_on_the_messages_api() {
        let kind = |status: u16, upstream_type: Option<&str>| {
            let mut e = ApiError::new(ErrorCode::UpstreamError, "m");
            e.status = status;
            e.error_type = upstream_type.map(str::to_owned);
            e.to_anthropic_json()["error"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(kind(529, Some("overloaded_error")), "overloaded_error");
        assert_eq!(kind(429, Some("requests")), "rate_limit_error");
        assert_eq!(kind(404, None), "not_found_error");
        assert_eq!(kind(401, None), "authentication_error");
        assert_eq!(kind(502, Some("upstream_error")), "api_error");
        let body = ApiError::new(ErrorCode::InvalidJson, "bad").to_anthropic_json();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["message"], "bad");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn auth_errors_are_401_authentication_error() {
        for code in [ErrorCode::MissingApiKey, ErrorCode::InvalidApiKey] {
            assert_eq!(code.status(), 401);
            assert_eq!(code.error_type(), "authentication_error");
        }
    }
}
