//! Liveness, readiness, and the answers for unknown routes.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use portico_core::{ApiError, ErrorCode, LogHealth, rfc3339_utc};

use crate::AppState;
use crate::error::ErrorResponse;

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the gateway takes traffic (503 once shutdown has started).
///
/// While serving it answers 200, `{"status": "ready"}`, or `{"status": "degraded"}` when the
/// request log cannot write (requests are still served and their records spill, so a load
/// balancer must not take the process out of rotation for it); with the request log's state
/// under `log_store` (docs/request-logs.md, "When the log database is in trouble").
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let log_store = state.log_health.as_ref().map(|source| source.log_health());
    let mut body = if !state.lifecycle.is_ready() {
        serde_json::json!({"status": "shutting_down"})
    } else if log_store.as_ref().is_some_and(|h| !h.up) {
        serde_json::json!({"status": "degraded"})
    } else {
        serde_json::json!({"status": "ready"})
    };
    if let Some(health) = &log_store {
        body["log_store"] = log_store_json(health);
    }
    let status = if state.lifecycle.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// The request log's state as `/readyz` shows it.
fn log_store_json(health: &LogHealth) -> serde_json::Value {
    let (last_error, last_error_at) = match &health.last_error {
        Some((message, at)) => (Some(message.as_str()), Some(rfc3339_utc(*at))),
        None => (None, None),
    };
    serde_json::json!({
        "state": if health.up { "ok" } else { "failing" },
        "last_error": last_error,
        "last_error_at": last_error_at,
        "write_errors": health.write_errors,
        "records_spilled": health.spilled,
        "records_replayed": health.replayed,
        "records_lost": health.lost,
        "spill_pending_bytes": health.spill_pending_bytes,
    })
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
