//! Liveness, readiness, and the answers for unknown routes.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use portico_core::{ApiError, ErrorCode};

use crate::AppState;
use crate::error::ErrorResponse;

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the gateway takes traffic (503 once shutdown has started).
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.lifecycle.is_ready() {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "shutting_down"})),
        )
    }
}

/// Any unknown path.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ErrorResponse {
    ErrorResponse(ApiError::new(
        ErrorCode::RouteNotFound,
        format!(
            "no route for {method} {}; the gateway serves POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings and GET /v1/models",
            uri.path()
        ),
    ))
}

/// A known path with the wrong method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ErrorResponse {
    ErrorResponse(ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    ))
}
