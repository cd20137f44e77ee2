//! `GET /metrics`: the Prometheus scrape endpoint, optionally behind a bearer token.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portico_core::{ApiError, ErrorCode};

use crate::Metrics;

#[derive(Clone)]
struct ScrapeState {
    metrics: Arc<Metrics>,
    token: Option<Arc<str>>,
}

/// The `/metrics` route, to merge into the application's router.
///
/// Without a token anyone who reaches the port may scrape (the spec's default); with one
/// (`PORTICO_METRICS_TOKEN`), a scrape needs `Authorization: Bearer <token>` and is otherwise
/// answered 401 with an OpenAI-style error.
pub fn router<S>(metrics: Arc<Metrics>, token: Option<String>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let token = token.filter(|t| !t.is_empty()).map(Arc::from);
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(ScrapeState { metrics, token })
}

async fn scrape(State(state): State<ScrapeState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.token
        && let Err(err) = authorize(&headers, token)
    {
        return unauthorized(&err);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

fn authorize(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            ErrorCode::MissingApiKey,
            "GET /metrics needs `Authorization: Bearer <token>` with the token set in PORTICO_METRICS_TOKEN",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default();
    // Constant time in the token's contents and length (docs/security.md).
    if portico_core::secrets_equal(presented, token) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidApiKey,
            "the bearer token does not match PORTICO_METRICS_TOKEN; send `Authorization: Bearer <token>` with that value",
        ))
    }
}

fn unauthorized(err: &ApiError) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(err.to_json())).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"metrics\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn authorize_takes_the_exact_token_only() {
        let token = "metrics-token-0123456789";
        assert!(authorize(&bearer("Bearer metrics-token-0123456789"), token).is_ok());
        // A prefix, a longer value, one changed last character, another scheme, nothing.
        for wrong in [
            "Bearer metrics-token-012345678",
            "Bearer metrics-token-01234567890",
            "Bearer metrics-token-0123456788",
            "Basic metrics-token-0123456789",
        ] {
            let err = authorize(&bearer(wrong), token).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidApiKey, "{wrong}");
            assert!(!err.message.contains(token), "{}", err.message);
        }
        let err = authorize(&HeaderMap::new(), token).unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingApiKey);
    }
}
