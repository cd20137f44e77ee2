//! `/admin/v1/keys`: gateway keys. Keys are addressed by id or by name.
//!
//! A new key's secret is generated here (`portico_core::generate_key`) and answered once; the
//! store keeps its hash only. So is a rotated key's (`POST /keys/{id}/rotate`): the key keeps
//! its id, name and settings, and so its spend, and its old secret stops working at once.
//! `expires_at` is RFC 3339 in and out; the data plane refuses a key from that time on.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_core::{ApiError, ErrorCode, KeyHash, generate_key, key_hint};
use portico_store::{KeyPatch, KeyRecord, KeyType, NewKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{audit, json_body, no_content, page, present, reload, rfc3339, store, store_error};
use crate::AppState;
use crate::error::ErrorResponse;
use crate::routes::admin::Admin;

/// Longest key name.
const MAX_NAME_CHARS: usize = 128;

/// A key as answered: never its secret or hash.
fn key_json(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "type": k.key_type.as_str(),
        "user": k.user,
        "hint": k.hint,
        "allowed_models": k.allowed_models,
        "config": k.config,
        "log_payloads": k.log_payloads,
        "budget": k.limits.budget,
        "rate_limit": k.limits.rate_limit,
        "source": k.source.as_str(),
        "created_at": rfc3339(k.created_at_ms),
        "revoked_at": k.revoked_at_ms.and_then(rfc3339),
        "expires_at": k.expires_at_ms.and_then(rfc3339),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no key with id or name `{id}`; GET /admin/v1/keys lists them"),
    )
    .with_param("id")
}

/// `GET /admin/v1/keys`: newest first, revoked keys included.
pub(super) async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ErrorResponse> {
    let mut keys = store(&state)?.list_keys().await.map_err(store_error)?;
    keys.sort_by(|a, b| {
        b.created_at_ms
            .cmp(&a.created_at_ms)
            .then_with(|| b.id.cmp(&a.id))
    });
    Ok(Json(page(keys.iter().map(key_json).collect(), &query)?))
}

/// `GET /admin/v1/keys/{id}`: by id or name.
pub(super) async fn one(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorResponse> {
    let key = store(&state)?
        .get_key(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(key_json(&key)))
}

/// The body of `POST /admin/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(rename = "type")]
    key_type: String,
    user: Option<String>,
    allowed_models: Option<Vec<String>>,
    config: Option<String>,
    log_payloads: Option<bool>,
    budget: Option<Value>,
    rate_limit: Option<Value>,
    expires_at: Option<String>,
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message).with_param(param.to_owned())
}

/// The catalog file's rules for a key name.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(invalid(
            "name",
            "`name` is required: a unique name, like backend-service",
        ));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "`name` has leading or trailing spaces or control characters; use plain text",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("`name` is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

/// `allowed_models`: a non-empty list of `@slug` / `@slug/model` patterns.
fn check_patterns(patterns: &[String]) -> Result<(), ApiError> {
    if patterns.is_empty() {
        return Err(invalid(
            "allowed_models",
            "`allowed_models` is an empty list, which would allow nothing; send null to allow \
             every model, or patterns like @openai or @openai/gpt-4o-mini",
        ));
    }
    for (i, pattern) in patterns.iter().enumerate() {
        portico_config::check_model_pattern(pattern)
            .map_err(|m| invalid(&format!("allowed_models[{i}]"), m))?;
    }
    Ok(())
}

/// A blank user counts as none, as in the catalog file.
fn user_of(user: Option<String>) -> Option<String> {
    user.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty())
}

/// `POST /admin/v1/keys`: 201 with the key and its `secret`, answered this once.
pub(super) async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    let body: CreateBody = json_body(&body)?;
    check_name(&body.name)?;
    let key_type = match KeyType::parse(&body.key_type) {
        Some(t @ (KeyType::Service | KeyType::User | KeyType::Gateway)) => t,
        _ => {
            return Err(invalid(
                "type",
                format!(
                    "{:?} is not a key type this API creates; use service, user or gateway (the \
                     admin key is set with PORTICO_ADMIN_KEY)",
                    body.key_type
                ),
            )
            .into());
        }
    };
    let expires_at_ms = body
        .expires_at
        .as_deref()
        .map(|t| expiry(&state, t))
        .transpose()?;
    if let Some(patterns) = &body.allowed_models {
        check_patterns(patterns)?;
    }
    let limits = limits_of(body.budget.as_ref(), body.rate_limit.as_ref())?;
    let secret = generate_key(label(key_type));
    let new = NewKey {
        name: body.name,
        key_type,
        user: user_of(body.user),
        hash: KeyHash::of(&secret),
        hint: key_hint(&secret),
        allowed_models: body.allowed_models,
        config: body.config,
        log_payloads: body.log_payloads.unwrap_or(true),
        limits,
        expires_at_ms,
    };
    let record = store.create_key(&new).await.map_err(store_error)?;
    audit("key created", &record.name);
    reload(&state, store.as_ref()).await?;
    let mut answer = key_json(&record);
    answer["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The body of `PATCH /admin/v1/keys/{id}`: absent fields stay, `null` clears.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    config: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    log_payloads: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    user: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    budget: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
}

/// The label a generated secret of this type carries (`prt-<label>-...`).
fn label(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Admin => "admin",
        KeyType::Service => "svc",
        KeyType::User => "user",
        KeyType::Gateway => "gw",
    }
}

/// `expires_at`: an RFC 3339 time still to come (to stop a key now, revoke it).
fn expiry(state: &AppState, text: &str) -> Result<i64, ApiError> {
    let at = portico_config::parse_rfc3339_ms(text).ok_or_else(|| {
        invalid(
            "expires_at",
            format!(
                "{text:?} is not an RFC 3339 time; send it like 2027-01-31T00:00:00Z (null: \
                 the key does not expire)"
            ),
        )
    })?;
    if at <= state.gateway.clock().now_ms() {
        return Err(invalid(
            "expires_at",
            "`expires_at` is in the past; give a time to come, or revoke the key to stop it now",
        ));
    }
    Ok(at)
}

/// A key's `budget` and `rate_limit`, checked by the catalog file's rules; errors name the
/// field (`budget.period`).
fn limits_of(
    budget: Option<&Value>,
    rate_limit: Option<&Value>,
) -> Result<portico_core::Limits, ApiError> {
    portico_config::parse_limits_json(budget, rate_limit, "request body").map_err(|e| {
        let mut err = ApiError::new(ErrorCode::InvalidParameter, e.to_string());
        if let Some(path) = e.path().filter(|p| !p.is_empty()) {
            err = err.with_param(path.to_owned());
        }
        err
    })
}

/// `PATCH /admin/v1/keys/{id}`: the key as it is now.
pub(super) async fn update(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let body: PatchBody = json_body(&body)?;
    if let Some(Some(patterns)) = &body.allowed_models {
        check_patterns(patterns)?;
    }
    let log_payloads = match body.log_payloads {
        Some(None) => {
            return Err(invalid("log_payloads", "`log_payloads` must be true or false").into());
        }
        Some(Some(b)) => Some(b),
        None => None,
    };
    // Checked together, so that an invalid one is refused before anything changes.
    let limits = limits_of(
        body.budget.as_ref().and_then(Option::as_ref),
        body.rate_limit.as_ref().and_then(Option::as_ref),
    )?;
    let expires_at_ms = match body.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(expiry(&state, &text)?)),
    };
    let patch = KeyPatch {
        allowed_models: body.allowed_models,
        config: body.config,
        log_payloads,
        user: body.user.map(user_of),
        expires_at_ms,
        budget: body.budget.map(|_| limits.budget),
        rate_limit: body.rate_limit.map(|_| limits.rate_limit),
    };
    let record = store.update_key(&id, &patch).await.map_err(store_error)?;
    audit("key changed", &record.name);
    reload(&state, store.as_ref()).await?;
    Ok(Json(key_json(&record)))
}

/// `DELETE /admin/v1/keys/{id}`: revokes the key (kept for its logs); 204.
pub(super) async fn revoke(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    let record = store.revoke_key(&id).await.map_err(store_error)?;
    audit("key revoked", &record.name);
    reload(&state, store.as_ref()).await?;
    Ok(no_content())
}

/// `POST /admin/v1/keys/{id}/rotate`: a new secret for the key, answered this once with the
/// key; the old secret stops working at once. The key keeps its id, name, settings and spend.
pub(super) async fn rotate(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let key = store
        .get_key(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&id))?;
    let secret = generate_key(label(key.key_type));
    let record = store
        .rotate_key(&key.id, KeyHash::of(&secret), &key_hint(&secret))
        .await
        .map_err(store_error)?;
    audit("key rotated", &record.name);
    reload(&state, store.as_ref()).await?;
    let mut answer = key_json(&record);
    answer["secret"] = Value::String(secret);
    Ok(Json(answer))
}
