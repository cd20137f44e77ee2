//! Admin API: the catalog (providers, models, keys, configs, budgets, guardrails), the Catalog and
//! Budgets sections of `docs/admin-api.md`.
//!
//! Each handler checks the admin key (the [`Admin`](super::Admin) extractor), parses its body
//! strictly (an unknown field is a 400 that names it), calls the store, and after a change
//! rebuilds the gateway's snapshot so the data plane uses the change at once. Answers never
//! carry a secret: provider keys show as `api_key_set`, gateway keys as their hint, and a new
//! key's secret is answered once, by the request that creates it. `POST /apply` takes a
//! whole catalog file at once (`portico apply`).
//!
//! Shared here: strict JSON bodies, store errors as HTTP errors, times, list pages.

mod apply;
mod budgets;
mod configs;
mod guardrails;
mod keys;
mod providers;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use portico_core::{ApiError, ErrorCode};
use portico_store::{Store, StoreError};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;

/// The catalog routes, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/providers", get(providers::list).post(providers::create))
        .route(
            "/providers/{slug}",
            get(providers::one)
                .put(providers::replace)
                .delete(providers::delete),
        )
        .route("/models", get(providers::models))
        .route("/keys", get(keys::list).post(keys::create))
        .route(
            "/keys/{id}",
            get(keys::one).patch(keys::update).delete(keys::revoke),
        )
        .route("/keys/{id}/rotate", post(keys::rotate))
        .route("/configs", get(configs::list).post(configs::create))
        .route(
            "/configs/{id}",
            get(configs::one)
                .put(configs::replace)
                .delete(configs::delete),
        )
        .route(
            "/guardrails",
            get(guardrails::list).post(guardrails::create),
        )
        .route(
            "/guardrails/{id}",
            get(guardrails::one)
                .put(guardrails::replace)
                .delete(guardrails::delete),
        )
        .route("/apply", post(apply::apply))
        .route("/budgets", get(budgets::list).post(budgets::create))
        .route(
            "/budgets/{name}",
            get(budgets::one)
                .put(budgets::replace)
                .delete(budgets::delete),
        )
}

/// The store, or 503 on a data-plane-only process.
fn store(state: &AppState) -> Result<&Arc<dyn Store>, ApiError> {
    super::store(state)
}

/// One snapshot rebuild at a time. Two overlapping rebuilds could otherwise swap in the one
/// that read the store *first* last, hiding the other change until the next rebuild; in turn,
/// a rebuild that starts after a write has committed always sees it.
static RELOAD: std::sync::LazyLock<futures::lock::Mutex<()>> =
    std::sync::LazyLock::new(|| futures::lock::Mutex::new(()));

/// Rebuilds the data plane's snapshot after a change. The change is stored either way; a
/// failed rebuild (which the store's own checks make unlikely) is reported, not hidden.
async fn reload(state: &AppState, store: &dyn Store) -> Result<(), ApiError> {
    let _one_at_a_time = RELOAD.lock().await;
    state.gateway.reload(store).await.map_err(|e| {
        tracing::error!(error = %e, "the admin change was stored, but the snapshot rebuild failed");
        ApiError::new(
            ErrorCode::Internal,
            format!(
                "the change was stored, but the gateway could not load the catalog: {e}; \
                 fix the record it names, or restart"
            ),
        )
    })
}

/// Records an admin change in the server log (names only, never a secret).
fn audit(action: &'static str, target: &str) {
    tracing::info!(action, target, "admin API change");
}

/// 204 No Content.
fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Parses a JSON body into `T` strictly: malformed JSON is `invalid_json`, a wrong type or an
/// unknown field is `invalid_parameter` with `param` naming the field (`models[0].id`).
fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    typed(json_value(body)?)
}

/// The body as JSON, or `invalid_json`.
/// The object of a `PUT` body that replaces the record `id` (a `what`, shaped like `shape`),
/// with its identifying `field` set to `id` when the body leaves it out; a body naming
/// another value is refused, since records are not renamed.
fn pinned_object<'v>(
    value: &'v mut serde_json::Value,
    field: &str,
    id: &str,
    what: &str,
    shape: &str,
) -> Result<&'v mut serde_json::Map<String, serde_json::Value>, ApiError> {
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("the body must be a {what} object: {shape}"),
        ));
    };
    match object.get(field) {
        None => {
            object.insert(field.to_owned(), serde_json::Value::String(id.to_owned()));
        }
        Some(serde_json::Value::String(v)) if v == id => {}
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!(
                    "`{field}` must be `{id}`, the {what} this request replaces; a {what} \
                     cannot be renamed (create the new one, then delete this one)"
                ),
            )
            .with_param(field));
        }
    }
    Ok(object)
}

fn json_value(body: &Bytes) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the request body is empty; send a JSON object (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// A JSON value as `T`; errors name the field.
fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let message = err.inner().to_string();
        // The path of an unknown field ends with that field.
        let mut path = err.path().to_string();
        if path == "." {
            path.clear();
        }
        if path.is_empty() {
            ApiError::new(ErrorCode::InvalidParameter, message)
        } else {
            ApiError::new(ErrorCode::InvalidParameter, format!("{path}: {message}"))
                .with_param(path)
        }
    })
}

/// For `PATCH` fields where `null` means "clear" and absence means "leave": present fields
/// become `Some(value)`, `null` included.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// A store error as the client sees it. Store messages never carry secrets.
fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
        StoreError::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
        StoreError::Invalid(m) => ApiError::new(ErrorCode::InvalidParameter, m),
        StoreError::InvalidConfig { id, path, message } => {
            let param = if path.is_empty() {
                "config".to_owned()
            } else {
                format!("config.{path}")
            };
            let at = if path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("invalid routing config `{id}`: {at}{message}"),
            )
            .with_param(param)
        }
        other => {
            tracing::error!(error = %other, "admin API store error");
            ApiError::new(ErrorCode::Internal, format!("store error: {other}"))
        }
    }
}

/// A Unix-milliseconds time as RFC 3339 in UTC with milliseconds (`2026-11-25T15:04:05.123Z`).
fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Default and largest page size.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// One page of `items` (already in answer order): `{"data": [...], "next_cursor": ...}`.
/// The cursor is the offset of the next item; catalog lists are small and read whole.
fn page(
    items: Vec<serde_json::Value>,
    query: &[(String, String)],
) -> Result<serde_json::Value, ApiError> {
    let (mut limit, mut cursor) = (None, None);
    for (name, value) in query {
        match name.as_str() {
            "limit" => limit = Some(value.as_str()),
            "cursor" => cursor = Some(value.as_str()),
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("unknown query parameter `{other}`; this list takes limit and cursor"),
                )
                .with_param(other.to_owned()));
            }
        }
    }
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}"),
                )
                .with_param("limit")
            })?,
    };
    let start = match cursor {
        None | Some("") => 0,
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "`cursor` is not one this API answered; pass the `next_cursor` of the previous page",
            )
            .with_param("cursor")
        })?,
    };
    let total = items.len();
    let data: Vec<serde_json::Value> = items.into_iter().skip(start).take(limit).collect();
    let end = start.saturating_add(data.len());
    let next = (end < total).then(|| end.to_string());
    Ok(serde_json::json!({"data": data, "next_cursor": next}))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Inner {
        n: u32,
    }

    #[test]
    fn bodies_are_strict_and_errors_name_the_field() {
        let err = json_body::<Body>(&Bytes::from_static(br#"{"name":"a","nmae":1}"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
        assert_eq!(err.param.as_deref(), Some("nmae"));
        assert!(
            err.message.starts_with("nmae: unknown field `nmae`"),
            "{}",
            err.message
        );

        let err = json_body::<Body>(&Bytes::from_static(
            br#"{"name":"a","inner":{"n":1,"x":2}}"#,
        ))
        .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("inner.x"));

        let err = json_body::<Body>(&Bytes::from_static(br#"{"name":"a","inner":{"n":"1"}}"#))
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("inner.n"));

        let err = json_body::<Body>(&Bytes::from_static(br#"{"name":"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        let err = json_body::<Body>(&Bytes::from_static(b"")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        let err = json_body::<Body>(&Bytes::from_static(br#"{"name":"a"} x"#)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        let err = json_body::<Body>(&Bytes::from_static(b"{}")).unwrap_err();
        assert!(
            err.message.contains("missing field `name`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn pages_follow_the_cursor() {
        let items: Vec<serde_json::Value> = (0..5).map(|i| json!(i)).collect();
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let first = page(items.clone(), &q(&[("limit", "2")])).unwrap();
        assert_eq!(first, json!({"data": [0, 1], "next_cursor": "2"}));
        let last = page(items.clone(), &q(&[("limit", "2"), ("cursor", "4")])).unwrap();
        assert_eq!(last, json!({"data": [4], "next_cursor": null}));
        assert_eq!(
            page(items.clone(), &[]).unwrap()["next_cursor"],
            json!(null)
        );
        for bad in [
            ("limit", "0"),
            ("limit", "501"),
            ("cursor", "x"),
            ("sort", "1"),
        ] {
            let err = page(items.clone(), &q(&[bad])).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(bad.0));
        }
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(
            rfc3339(1_795_619_045_123).as_deref(),
            Some("2026-11-25T15:04:05.123Z")
        );
    }
}
