//! The admin API under `/admin/v1` (spec section 10): the catalog (providers, models, keys,
//! configs), request logs and analytics, and its OpenAPI document.
//!
//! Every route needs the admin key (`Authorization: Bearer <admin key>`): none or an unknown
//! one is 401, a gateway key that is not an admin key is 403. Errors are OpenAI-shaped like
//! the data plane's. The contract is in `docs/admin-api.md`.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portico_core::{ApiError, Endpoint, ErrorCode};
use portico_engine::{Family, KeyEntry};
use portico_store::Store;

use crate::AppState;
use crate::error::ErrorResponse;

mod catalog;
mod logs;
mod openapi;

/// The admin API's routes, relative to `/admin/v1`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(catalog::router())
        .merge(logs::router())
        .merge(openapi::router())
}

/// The admin key that authorised a request: extracting it is the admin API's access check.
#[allow(dead_code)]
pub(crate) struct Admin(pub(crate) Arc<KeyEntry>);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ErrorResponse;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = Family::OpenAi(Endpoint::ChatCompletions).secret(&parts.headers);
        Ok(Admin(state.gateway.authenticate_admin(secret)?))
    }
}

/// The store behind the admin API, or 503 when this process serves the data plane only.
#[allow(dead_code)]
pub(crate) fn store(state: &AppState) -> Result<&Arc<dyn Store>, ApiError> {
    state.store.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            "this process serves the data plane only; use the admin API of the control plane",
        )
    })
}
