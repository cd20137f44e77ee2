//! The router in-process: headers, asset versions, and checks over the embedded sources that
//! keep the page working under its CSP.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::assets::{self, ASSETS};
use crate::{CONTENT_SECURITY_POLICY, router};

async fn fetch(path: &str) -> (StatusCode, http::HeaderMap, String) {
    let res = router::<()>()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_page_is_html_revalidated_and_under_a_strict_csp() {
    let (status, headers, body) = fetch("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    let version = assets::version();
    assert!(
        body.contains(&format!("/assets/{version}/app.js")),
        "{body}"
    );
    assert!(!body.contains("{{version}}"));
}

#[tokio::test]
async fn the_page_has_no_inline_script_or_style() {
    let (_, _, body) = fetch("/").await;
    for (i, _) in body.match_indices("<script") {
        let tag = &body[i..i + body[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    assert!(!body.contains("<style"));
    assert!(!body.contains(" style="));
    assert!(!body.contains(" on"), "inline event handler in the page");
}

#[tokio::test]
async fn every_asset_is_served_with_its_type_and_cached_for_good() {
    let version = assets::version();
    for asset in ASSETS {
        let (status, headers, body) = fetch(&format!("/assets/{version}/{}", asset.name)).await;
        assert_eq!(status, StatusCode::OK, "{}", asset.name);
        assert_eq!(headers[header::CONTENT_TYPE], asset.content_type);
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(body.len(), asset.body.len());
    }
    let (_, headers, _) = fetch(&format!("/assets/{version}/app.js")).await;
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
}

#[tokio::test]
async fn another_version_or_an_unknown_file_is_a_404() {
    let (status, headers, _) = fetch("/assets/0000000000000000/app.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let version = assets::version();
    let (status, _, _) = fetch(&format!("/assets/{version}/secrets.txt")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The relative module imports of one script: `from './x.js'`.
fn imports(source: &str) -> Vec<&str> {
    source
        .split("from './")
        .skip(1)
        .map(|rest| &rest[..rest.find('\'').unwrap()])
        .collect()
}

#[test]
fn every_module_import_is_an_embedded_asset() {
    let mut count = 0;
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        let source = std::str::from_utf8(asset.body).unwrap();
        for name in imports(source) {
            assert!(
                assets::find(name).is_some(),
                "{} imports ./{name}, which is not in the asset table",
                asset.name
            );
            count += 1;
        }
    }
    assert!(count > 10, "found only {count} imports");
}

#[test]
fn every_script_file_is_in_the_asset_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "index.html" {
            assert!(
                assets::find(&name).is_some(),
                "assets/{name} is not embedded"
            );
        }
    }
}

/// Text reaches the page through `textContent` only, and nothing evaluates strings as code:
/// the CSP would block `eval`, and markup built from API answers would be an XSS hole.
#[test]
fn no_script_builds_markup_from_strings_or_evaluates_code() {
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        let source = std::str::from_utf8(asset.body).unwrap();
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('style'",
        ] {
            assert!(!source.contains(banned), "{} uses {banned}", asset.name);
        }
    }
}

#[test]
fn the_version_is_sixteen_hex_digits() {
    let version = assets::version();
    assert_eq!(version.len(), 16);
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()));
}
