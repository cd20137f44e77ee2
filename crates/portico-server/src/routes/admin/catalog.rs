//! Admin API: catalog routes.

use axum::Router;

use crate::AppState;

/// The catalog routes, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
}
