//! Admin API: the request log (`/logs`, `/logs/{id}`) and its analytics (`/analytics`).
//!
//! Thin: the query string is parsed by `portico_logs` (which names a bad parameter), the
//! store answers, the answer is rendered as is. Contract: the Logs and Analytics sections of
//! `docs/admin-api.md`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use portico_core::{ApiError, ErrorCode};
use portico_logs::{
    Analytics, AnalyticsQuery, LogDetail, LogError, LogPage, LogQuery, LogStore, ParamError,
};

use super::Admin;
use crate::AppState;
use crate::error::ErrorResponse;

/// The logs routes, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/logs", get(list))
        .route("/logs/{id}", get(one))
        .route("/analytics", get(analytics))
}

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /admin/v1/logs`
async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    query: Pairs,
) -> Result<Json<LogPage>, ErrorResponse> {
    let pairs = pairs(query)?;
    let query =
        LogQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(bad_param)?;
    let page = logs(&state)?.search(&query).await.map_err(internal)?;
    Ok(Json(page))
}

/// `GET /admin/v1/logs/{id}`
async fn one(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<LogDetail>, ErrorResponse> {
    match logs(&state)?.get(&id).await.map_err(internal)? {
        Some(detail) => Ok(Json(detail)),
        None => {
            let mut err = ApiError::new(
                ErrorCode::RouteNotFound,
                format!("no request log with id `{id}`; it may be older than the retention period"),
            )
            .with_param("id");
            err.code_str = Some("log_not_found".into());
            Err(err.into())
        }
    }
}

/// `GET /admin/v1/analytics`
async fn analytics(
    _admin: Admin,
    State(state): State<AppState>,
    query: Pairs,
) -> Result<Json<Analytics>, ErrorResponse> {
    let pairs = pairs(query)?;
    let query = AnalyticsQuery::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        portico_core::now_ms(),
    )
    .map_err(bad_param)?;
    let answer = logs(&state)?.analytics(&query).await.map_err(internal)?;
    Ok(Json(answer))
}

fn pairs(query: Pairs) -> Result<Vec<(String, String)>, ApiError> {
    query.map(|Query(pairs)| pairs).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("the query string could not be read: {}", err.body_text()),
        )
    })
}

/// The request log, or 503 when this process has none (a data-plane-only gateway).
fn logs(state: &AppState) -> Result<&Arc<dyn LogStore>, ApiError> {
    state.logs.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "this process keeps no request log; use the admin API of the control plane",
        )
    })
}

fn bad_param(err: ParamError) -> ErrorResponse {
    ApiError::new(ErrorCode::InvalidParameter, err.message)
        .with_param(err.param)
        .into()
}

fn internal(err: LogError) -> ErrorResponse {
    tracing::error!("admin API: request log: {err}");
    ApiError::new(
        ErrorCode::Internal,
        "the request log could not be read; the server log has the cause",
    )
    .into()
}
