//! `/admin/v1/providers` and `/admin/v1/models`.
//!
//! A provider body is the catalog file's provider object, checked by the same rules
//! (`portico_config::parse_provider_json`), so the file and the API cannot drift apart.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_core::{ApiError, ErrorCode, ProviderKind};
use portico_engine::bootstrap::provider_record;
use portico_pricing::{ModelPrice, PriceTable, price_of};
use portico_store::{Pricing, ProviderRecord, RecordSource, RecordTimes};
use serde_json::{Value, json};

use super::{
    audit, json_value, no_content, page, pinned_object, reload, rfc3339, store, store_error,
};
use crate::AppState;
use crate::error::ErrorResponse;
use crate::routes::admin::Admin;

/// Stands in for a kept secret while a body without it is validated; never stored.
const KEPT: &str = "kept-stored-secret";

/// Stands in for a kept `vertex_service_account_json`, which is checked for the form of a
/// service-account key file; never stored.
const KEPT_ACCOUNT: &str =
    r#"{"type":"service_account","client_email":"kept@kept","private_key":"kept"}"#;

/// A provider as answered: no secret, only whether one is set.
fn provider_json(p: &ProviderRecord, times: Option<&RecordTimes>) -> Value {
    let mut credentials: Vec<&str> = p.credentials.keys().map(String::as_str).collect();
    credentials.sort_unstable();
    json!({
        "slug": p.slug,
        "kind": p.kind.as_str(),
        "base_url": p.base_url,
        "api_key_set": p.api_key.is_some(),
        "credentials_set": credentials,
        "settings": p.settings,
        "models": p.models.as_ref().map(|models| models.iter().map(|m| json!({
            "id": m.id,
            "name": m.name,
            "pricing": m.pricing,
        })).collect::<Vec<_>>()),
        "budget": p.limits.budget,
        "rate_limit": p.limits.rate_limit,
        "source": p.source.as_str(),
        "created_at": times.and_then(|t| rfc3339(t.created_at_ms)),
        "updated_at": times.and_then(|t| rfc3339(t.updated_at_ms)),
    })
}

fn not_found(slug: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no provider `@{slug}`; GET /admin/v1/providers lists them"),
    )
    .with_param("slug")
}

/// `GET /admin/v1/providers`: newest first.
pub(super) async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let providers = store.list_providers().await.map_err(store_error)?;
    let times = store.provider_times().await.map_err(store_error)?;
    let mut rows: Vec<(&ProviderRecord, Option<&RecordTimes>)> =
        providers.iter().map(|p| (p, times.get(&p.slug))).collect();
    rows.sort_by(|a, b| {
        let at = |r: &(&ProviderRecord, Option<&RecordTimes>)| r.1.map(|t| t.created_at_ms);
        at(b).cmp(&at(a)).then_with(|| a.0.slug.cmp(&b.0.slug))
    });
    let items = rows.into_iter().map(|(p, t)| provider_json(p, t)).collect();
    Ok(Json(page(items, &query)?))
}

/// `GET /admin/v1/providers/{slug}`
pub(super) async fn one(
    _admin: Admin,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let provider = store
        .get_provider(&slug)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&slug))?;
    let times = store.provider_times().await.map_err(store_error)?;
    Ok(Json(provider_json(&provider, times.get(&slug))))
}

/// The provider object of a body, validated like a catalog file entry.
fn parse(value: &Value) -> Result<ProviderRecord, ApiError> {
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "the body must be a provider object: {\"slug\", \"kind\", \"api_key\", ...}",
        ));
    }
    let config = portico_config::parse_provider_json(value, "request body").map_err(|e| {
        let mut err = ApiError::new(ErrorCode::InvalidParameter, e.to_string());
        if let Some(path) = e.path().filter(|p| !p.is_empty()) {
            err = err.with_param(path.to_owned());
        }
        err
    })?;
    Ok(provider_record(&config, RecordSource::Api))
}

/// 400 when the provider's `base_url` is one `--upstream-allowlist` refuses (the SSRF guard).
fn check_base_url(state: &AppState, record: &ProviderRecord) -> Result<(), ApiError> {
    let Some(url) = record.base_url.as_deref() else {
        return Ok(());
    };
    state
        .gateway
        .upstream_allowlist()
        .check_url_str(url)
        .map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("base_url `{url}`: {e}"),
            )
            .with_param("base_url")
        })
}

/// `POST /admin/v1/providers`: 201 with the provider.
pub(super) async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    let record = parse(&json_value(&body)?)?;
    check_base_url(&state, &record)?;
    store.create_provider(&record).await.map_err(store_error)?;
    audit("provider created", &record.slug);
    reload(&state, store.as_ref()).await?;
    let stored = store
        .get_provider(&record.slug)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&record.slug))?;
    let times = store.provider_times().await.map_err(store_error)?;
    Ok((
        StatusCode::CREATED,
        Json(provider_json(&stored, times.get(&record.slug))),
    )
        .into_response())
}

/// `PUT /admin/v1/providers/{slug}`: replaces the provider; omitted secrets are kept.
pub(super) async fn replace(
    _admin: Admin,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let mut value = json_value(&body)?;
    let stored = store
        .get_provider(&slug)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&slug))?;
    let object = pinned_object(
        &mut value,
        "slug",
        &slug,
        "provider",
        "{\"kind\", \"api_key\", ...}",
    )?;
    // Secrets are never answered, so an edit cannot send them back: omitted ones are kept.
    // Placeholders let the body pass the rules that require them; they are dropped below.
    let keep_api_key = !object.contains_key("api_key") && stored.api_key.is_some();
    if keep_api_key {
        object.insert("api_key".to_owned(), Value::String(KEPT.to_owned()));
    }
    let keep_credentials = !stored.credentials.is_empty()
        && !stored.credentials.keys().any(|k| object.contains_key(k));
    if keep_credentials {
        for name in stored.credentials.keys() {
            let kept = match name.as_str() {
                "vertex_service_account_json" => KEPT_ACCOUNT,
                _ => KEPT,
            };
            object.insert(name.clone(), Value::String(kept.to_owned()));
        }
    }
    let mut record = parse(&value)?;
    if keep_api_key {
        record.api_key = None;
    }
    if keep_credentials {
        record.credentials = BTreeMap::new();
    }
    check_base_url(&state, &record)?;
    store.replace_provider(&record).await.map_err(store_error)?;
    audit("provider replaced", &slug);
    reload(&state, store.as_ref()).await?;
    let stored = store
        .get_provider(&slug)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(&slug))?;
    let times = store.provider_times().await.map_err(store_error)?;
    Ok(Json(provider_json(&stored, times.get(&slug))))
}

/// `DELETE /admin/v1/providers/{slug}`: 204.
pub(super) async fn delete(
    _admin: Admin,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, ErrorResponse> {
    let store = store(&state)?;
    store.delete_provider(&slug).await.map_err(store_error)?;
    audit("provider deleted", &slug);
    reload(&state, store.as_ref()).await?;
    Ok(no_content())
}

/// A price as answered, per million tokens.
fn price_json(price: &ModelPrice) -> Value {
    json!({
        "input_per_mtok": price.input_per_mtok,
        "output_per_mtok": price.output_per_mtok,
        "cache_read_per_mtok": price.cache_read_per_mtok,
        "cache_write_per_mtok": price.cache_write_per_mtok,
    })
}

/// The price of `model`: the catalog's override laid over the built-in price, or the
/// built-in price alone; `None` when neither knows it (never a guess).
fn pricing(kind: ProviderKind, model: &str, over: Option<&Pricing>) -> (Option<Value>, Value) {
    let price = price_of(kind, model, over);
    let source = match (over, &price) {
        (Some(_), _) => json!("catalog"),
        (None, Some(_)) => json!("builtin"),
        (None, None) => Value::Null,
    };
    (price.as_ref().map(price_json), source)
}

/// `GET /admin/v1/models`: every `@slug/model` of the catalog, ordered by slug then catalog
/// order. A provider with an allow-list lists it; the mock lists its built-in models; any
/// other provider (which passes every model name through) lists the models the built-in
/// price table knows for its kind, marked `allow_listed: false`.
pub(super) async fn models(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let providers = store.list_providers().await.map_err(store_error)?;
    let mut items = Vec::new();
    for p in &providers {
        let mut push = |model: &str, name: Option<&str>, over: Option<&Pricing>, listed: bool| {
            let (price, source) = pricing(p.kind, model, over);
            items.push(json!({
                "id": format!("@{}/{model}", p.slug),
                "provider": p.slug,
                "model": model,
                "name": name,
                "pricing": price,
                "pricing_source": source,
                "allow_listed": listed,
            }));
        };
        match &p.models {
            Some(models) => {
                for m in models {
                    push(&m.id, m.name.as_deref(), m.pricing.as_ref(), true);
                }
            }
            None if p.kind == ProviderKind::Mock => {
                for m in portico_engine::MOCK_MODELS {
                    push(m, None, None, false);
                }
            }
            None => {
                for (kind, model, _) in PriceTable::builtin().entries() {
                    if kind == p.kind {
                        push(model, None, None, false);
                    }
                }
            }
        }
    }
    Ok(Json(page(items, &query)?))
}
