//! The web dashboard served at `/`: an HTML page, a stylesheet and hand-written JavaScript
//! modules, embedded in the binary and built on the admin API alone (`docs/dashboard.md`).
//!
//! Where it sits: a leaf the server mounts at `/`; it depends on nothing of Portico's and talks
//! to the admin API from the browser.
//!
//! What this crate is: the asset table (the `assets` module) and an axum [`router`] that serves it with
//! the right content types, caching headers and a strict Content-Security-Policy.
//!
//! What it is not: an API. Every number the dashboard shows comes from `/admin/v1`, fetched
//! by the browser with the admin key the user pasted; this crate never sees a secret.
//!
//! Main items: [`router`], [`CONTENT_SECURITY_POLICY`].

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};

mod assets;

/// The policy on every dashboard answer: scripts, styles and images from this origin only, no
/// inline script or style element, API calls to this origin only, and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes: `GET /` (the page) and `GET /assets/{version}/{file}` (the
/// stylesheet, scripts and icon, cached for a year because `version` is the hash of every
/// asset). Merge it into the gateway's router; other paths are left to the caller's fallback.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{version}/{file}", get(asset))
}

/// The page. `no-cache` so a new binary's asset version is picked up at once.
async fn index() -> Response {
    let mut headers = security_headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, assets::index_html()).into_response()
}

/// One asset of this build. Another version's URL is a 404, so a stale page fails loudly
/// rather than running new code against old markup (or the reverse).
async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let found = (version == assets::version())
        .then(|| assets::find(&file))
        .flatten();
    let Some(asset) = found else {
        let mut headers = security_headers();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return (
            StatusCode::NOT_FOUND,
            headers,
            "no such dashboard asset in this build; reload the page",
        )
            .into_response();
    };
    let mut headers = security_headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    (headers, asset.body).into_response()
}

/// Headers every dashboard answer carries.
fn security_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
}

#[cfg(test)]
mod tests;
