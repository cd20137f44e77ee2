//! `/admin/v1/guardrails`: named guardrails in Portkey's shape, compiled with
//! `portico_guardrails` before they are written (a 400 names the field path inside
//! `guardrail`). They join the built-in ones (one with the same id replaces it) and the
//! catalog file's (which the API lists but cannot change: 409). Routing configs name them in
//! `input_guardrails` / `output_guardrails`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_core::{ApiError, ErrorCode};
use portico_store::GuardrailRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{audit, json_body, no_content, page, reload, rfc3339, store, store_error};
use crate::AppState;
use crate::error::ErrorResponse;
use crate::routes::admin::Admin;

fn guardrail_json(g: &GuardrailRecord) -> Value {
    json!({
        "id": g.id,
        "guardrail": g.guardrail,
        "source": g.source.as_str(),
        "created_at": rfc3339(g.created_at_ms),
        "updated_at": rfc3339(g.updated_at_ms),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no guardrail `{id}`; GET /admin/v1/guardrails lists them"),
    )
    .with_param("id")
}

/// Checks an id and compiles the guardrail; the JSON stored has the id set.
fn validate(id: &str, mut guardrail: Value) -> Result<Value, ApiError> {
    if !portico_guardrails::valid_id(id) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "{id:?} is not a valid guardrail id; use 1 to 64 letters, digits, `-`, `_` and `.`"
            ),
        )
        .with_param("id"));
    }
    if let Value::Object(map) = &mut guardrail {
        map.insert("id".to_owned(), Value::String(id.to_owned()));
    }
    portico_guardrails::Guardrail::parse(&guardrail, id).map_err(|e| {
        // The message names the field inside the guardrail, as a config's does (the CLI
        // prints only the message); `param` names it inside the request body.
        let at = e.clone().under("guardrail").path;
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("invalid guardrail `{id}`: {e}"),
        )
        .with_param(at)
    })?;
    Ok(guardrail)
}

/// `GET /admin/v1/guardrails`: the stored ones (the catalog file's and the API's), newest
/// first.
pub(super) async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ErrorResponse> {
    let mut all = store(&state)?
        .list_guardrails()
        .await
        .map_err(store_error)?;
    all.sort_by(|a, b| {
        b.created_at_ms
            .cmp(&a.created_at_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(Json(page(
        all.iter().map(guardrail_json).collect(),
        &query,
    )?))
}

/// `GET /admin/v1/guardrails/{id}`
pub(super) async fn one(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorResponse> {
    let found = store(&state)?
        .get_guardrail(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(guardrail_json(&found)))
}

/// The body of `POST /admin/v1/guardrails`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    id: String,
    guardrail: Value,
}

/// The body of `PUT /admin/v1/guardrails/{id}`; `id`, when sent, must be the path's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceBody {
    id: Option<String>,
    guardrail: Value,
}

/// `POST /admin/v1/guardrails`: 201 with the guardrail.
pub(super) async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    let body: CreateBody = json_body(&body)?;
    let guardrail = validate(&body.id, body.guardrail)?;
    let record = store
        .create_guardrail(&body.id, &guardrail)
        .await
        .map_err(store_error)?;
    audit("guardrail created", &record.id);
    reload(&state, store.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(guardrail_json(&record))).into_response())
}

/// `PUT /admin/v1/guardrails/{id}`: replaces the guardrail.
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
            format!("`id` must be `{id}`, the guardrail this request replaces; ids cannot change"),
        )
        .with_param("id")
        .into());
    }
    let guardrail = validate(&id, body.guardrail)?;
    let record = store
        .replace_guardrail(&id, &guardrail)
        .await
        .map_err(store_error)?;
    audit("guardrail replaced", &id);
    reload(&state, store.as_ref()).await?;
    Ok(Json(guardrail_json(&record)))
}

/// `DELETE /admin/v1/guardrails/{id}`: 204.
pub(super) async fn delete(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    store.delete_guardrail(&id).await.map_err(store_error)?;
    audit("guardrail deleted", &id);
    reload(&state, store.as_ref()).await?;
    Ok(no_content())
}
