//! Rendering an [`ApiError`] as an HTTP response, in the shape of the client's API family:
//! OpenAI's for the OpenAI-compatible routes, the admin API and every other path; Anthropic's
//! on `/v1/messages` ([`Family::error_json`] holds both shapes).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_core::{ApiError, Endpoint, ErrorCode};
use portico_engine::Family;

/// An [`ApiError`] as an axum response in OpenAI's shape: status, `Retry-After` when set,
/// the JSON body.
///
/// Rendering has no side effects; the request's record already holds the error.
#[derive(Debug)]
pub struct ErrorResponse(pub ApiError);

impl From<ApiError> for ErrorResponse {
    fn from(err: ApiError) -> Self {
        ErrorResponse(err)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        render(Family::OpenAi(Endpoint::ChatCompletions), &self.0)
    }
}

/// `err` in `family`'s shape, with its status and `Retry-After` when set.
pub(crate) fn render(family: Family, err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        family.error_json(err).to_string(),
    )
        .into_response();
    if err.code == ErrorCode::InvalidApiKey {
        // A credential was presented and refused: the listener counts it per client address.
        response
            .extensions_mut()
            .insert(crate::auth_throttle::AuthFailed);
    }
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
