//! Admin API: logs routes.

use axum::Router;

use crate::AppState;

/// The logs routes, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
}
