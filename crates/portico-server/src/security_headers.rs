//! Headers every answer of the listener carries (data plane, admin API, `/gateway/v1`,
//! `/metrics`, errors), unless the route set its own (the dashboard's page sets a policy that
//! lets it load its own scripts and styles).
//!
//! None of these answers is meant to be rendered by a browser: they are JSON, server-sent
//! events or audio. So the policy allows nothing (`default-src 'none'`), no answer may be
//! framed (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older browsers), a
//! browser must not guess a type other than the one sent (`nosniff`: an error quoting a path
//! with `<script>` in it stays JSON), and no URL leaks through `Referer`.
//!
//! What it is not: CORS. No answer carries `Access-Control-Allow-Origin`, so a page of
//! another origin cannot read any of them (docs/security.md).

use axum::http::header::{self, HeaderMap, HeaderValue};

/// The Content-Security-Policy of answers that set none.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds each header `headers` does not have yet.
pub(crate) fn add(headers: &mut HeaderMap) {
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CONTENT_SECURITY_POLICY));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_headers_are_added_and_a_routes_own_are_kept() {
        let mut headers = HeaderMap::new();
        add(&mut headers);
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            DEFAULT_CONTENT_SECURITY_POLICY
        );
        let mut own = HeaderMap::new();
        own.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("script-src 'self'"),
        );
        add(&mut own);
        assert_eq!(own[header::CONTENT_SECURITY_POLICY], "script-src 'self'");
        assert_eq!(
            own.get_all(header::CONTENT_SECURITY_POLICY).iter().count(),
            1
        );
    }
}
