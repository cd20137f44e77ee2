//! `/admin/v1/configs`: routing configs (Portkey's config JSON), validated by the store with
//! `portico_routing` before they are written; a 400 names the field path inside `config`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_core::{ApiError, ErrorCode};
use portico_store::ConfigRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{audit, json_body, no_content, page, reload, rfc3339, store, store_error};
use crate::AppState;
use crate::error::ErrorResponse;
use crate::routes::admin::Admin;

/// A config as answered.
fn config_json(c: &ConfigRecord) -> Value {
    json!({
        "id": c.id,
        "config": c.config,
        "source": c.source.as_str(),
        "created_at": rfc3339(c.created_at_ms),
        "updated_at": rfc3339(c.updated_at_ms),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no config `{id}`; GET /admin/v1/configs lists them"),
    )
    .with_param("id")
}

/// `GET /admin/v1/configs`: newest first.
pub(super) async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ErrorResponse> {
    let mut configs = store(&state)?.list_configs().await.map_err(store_error)?;
    configs.sort_by(|a, b| {
        b.created_at_ms
            .cmp(&a.created_at_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(Json(page(
        configs.iter().map(config_json).collect(),
        &query,
    )?))
}

/// `GET /admin/v1/configs/{id}`
pub(super) async fn one(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorResponse> {
    let config = store(&state)?
        .get_config(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(config_json(&config)))
}

/// The body of `POST /admin/v1/configs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    config: Value,
}

/// The body of `PUT /admin/v1/configs/{id}`; `id`, when sent, must be the path's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceBody {
    id: Option<String>,
    config: Value,
}

/// `POST /admin/v1/configs`: 201 with the config.
pub(super) async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    let body: CreateBody = json_body(&body)?;
    let record = store
        .create_config(&body.id, &body.config)
        .await
        .map_err(|e| with_id_param(store_error(e)))?;
    audit("config created", &record.id);
    reload(&state, store.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(config_json(&record))).into_response())
}

/// `PUT /admin/v1/configs/{id}`: replaces the config JSON.
pub(super) async fn replace(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let body: ReplaceBody = json_body(&body)?;
    if body.id.as_ref().is_some_and(|given| *given != id) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`id` must be `{id}`, the config this request replaces; ids cannot change"),
        )
        .with_param("id")
        .into());
    }
    let record = store
        .replace_config(&id, &body.config)
        .await
        .map_err(store_error)?;
    audit("config replaced", &id);
    reload(&state, store.as_ref()).await?;
    Ok(Json(config_json(&record)))
}

/// `DELETE /admin/v1/configs/{id}`: 204; 409 while a key uses it.
pub(super) async fn delete(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    store.delete_config(&id).await.map_err(store_error)?;
    audit("config deleted", &id);
    reload(&state, store.as_ref()).await?;
    Ok(no_content())
}

/// An invalid id is the `id` field's fault.
fn with_id_param(err: ApiError) -> ApiError {
    if err.code == ErrorCode::InvalidParameter && err.param.is_none() {
        err.with_param("id")
    } else {
        err
    }
}
