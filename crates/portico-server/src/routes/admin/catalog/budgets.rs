//! `/admin/v1/budgets`: every budget and rate limit in force with its spend (spec section 6),
//! and the named budgets of the catalog's `budgets:` list (create, read, replace, delete).
//!
//! The list is the ledger's view (`portico_engine::policies::limits::LimitsPolicy::status`):
//! one entry per budget and per rate limit of every subject, whether declared on a provider, a
//! key, a user key, a named budget or given to JWT users. A named budget's body is the
//! catalog file's `budgets:` entry, checked by the same rules
//! (`portico_config::parse_budget_json`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_core::{ApiError, ErrorCode, NamedBudget};
use portico_engine::policies::limits::{LimitStatus, LimitsPolicy};
use portico_store::BudgetRecord;
use serde_json::{Value, json};

use super::{
    audit, json_value, no_content, page, pinned_object, reload, rfc3339, store, store_error,
};
use crate::AppState;
use crate::error::ErrorResponse;
use crate::routes::admin::Admin;

/// The limits policy, or 503 on a process that enforces none.
fn limits(state: &AppState) -> Result<&LimitsPolicy, ApiError> {
    state.limits.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "this process enforces no budgets or rate limits",
        )
    })
}

/// One budget or rate limit as listed.
fn status_json(s: &LimitStatus) -> Value {
    json!({
        "subject": s.subject,
        "kind": s.kind.as_str(),
        "period": s.period,
        "cost_usd_limit": s.cost_usd_limit,
        "tokens_limit": s.tokens_limit,
        "requests_limit": s.requests_limit,
        "cost_usd_spent": s.cost_usd_spent,
        "tokens_spent": s.tokens_spent,
        "requests_spent": s.requests_spent,
        "cost_usd_reserved": s.cost_usd_reserved,
        "tokens_reserved": s.tokens_reserved,
        "resets_at": s.resets_at_ms.and_then(rfc3339),
    })
}

/// A named budget as answered.
fn budget_json(record: &BudgetRecord, status: &[LimitStatus]) -> Value {
    let b = &record.budget;
    let subject = format!("budget:{}", b.name);
    json!({
        "name": b.name,
        "match": b.match_json(),
        "budget": b.limits.budget,
        "rate_limit": b.limits.rate_limit,
        "source": record.source.as_str(),
        "created_at": rfc3339(record.created_at_ms),
        "updated_at": rfc3339(record.updated_at_ms),
        "status": status
            .iter()
            .filter(|s| s.subject == subject)
            .map(status_json)
            .collect::<Vec<_>>(),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no budget `{name}`; GET /admin/v1/budgets lists the budgets in force"),
    )
    .with_param("name")
}

/// `GET /admin/v1/budgets`: every budget and rate limit in force, by subject.
pub(super) async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ErrorResponse> {
    let items = limits(&state)?.status().iter().map(status_json).collect();
    Ok(Json(page(items, &query)?))
}

/// The named budget of a body, validated like a `budgets:` entry of the catalog file.
fn parse(value: &Value) -> Result<NamedBudget, ApiError> {
    portico_config::parse_budget_json(value, "request body").map_err(|e| {
        let mut err = ApiError::new(ErrorCode::InvalidParameter, e.to_string());
        if let Some(path) = e.path().filter(|p| !p.is_empty()) {
            err = err.with_param(path.to_owned());
        }
        err
    })
}

/// The status entries of the budget now in force, for its answer.
fn status_of(state: &AppState) -> Vec<LimitStatus> {
    state
        .limits
        .as_deref()
        .map(LimitsPolicy::status)
        .unwrap_or_default()
}

/// `POST /admin/v1/budgets`: adds a named budget; 201 with it.
pub(super) async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    let budget = parse(&json_value(&body)?)?;
    let record = store.create_budget(&budget).await.map_err(store_error)?;
    audit("budget created", &budget.name);
    reload(&state, store.as_ref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(budget_json(&record, &status_of(&state))),
    )
        .into_response())
}

/// `GET /admin/v1/budgets/{name}`: one named budget, with its status.
pub(super) async fn one(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ErrorResponse> {
    let record = store(&state)?
        .get_budget(&name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(budget_json(&record, &status_of(&state))))
}

/// `PUT /admin/v1/budgets/{name}`: replaces a named budget created through the API (its
/// spend is kept).
pub(super) async fn replace(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let mut value = json_value(&body)?;
    pinned_object(
        &mut value,
        "name",
        &name,
        "budget",
        "{\"match\", \"budget\", \"rate_limit\"}",
    )?;
    if store
        .get_budget(&name)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(not_found(&name).into());
    }
    let budget = parse(&value)?;
    let record = store.replace_budget(&budget).await.map_err(store_error)?;
    audit("budget replaced", &name);
    reload(&state, store.as_ref()).await?;
    Ok(Json(budget_json(&record, &status_of(&state))))
}

/// `DELETE /admin/v1/budgets/{name}`: removes a named budget created through the API; 204.
pub(super) async fn delete(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    store.delete_budget(&name).await.map_err(store_error)?;
    audit("budget deleted", &name);
    reload(&state, store.as_ref()).await?;
    Ok(no_content())
}
