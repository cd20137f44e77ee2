//! `GET /admin/v1/openapi.json`: the admin API's OpenAPI 3.1 document.
//!
//! Hand-maintained JSON (`openapi.json` beside this file) rather than generated: the routes
//! answer `serde_json::Value`s built by hand and several crates own them, so a generator would
//! need annotations on every handler and type across crates for a document this size. Drift
//! is caught by tests instead: one here compares the document's paths and methods with the
//! routes the admin modules register, and an end-to-end test probes every documented
//! operation on the real binary.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Admin;
use crate::AppState;

/// The document, embedded at build time.
const DOCUMENT: &str = include_str!("openapi.json");

/// The route of the document, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

/// `GET /admin/v1/openapi.json`
async fn document(_admin: Admin) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::DOCUMENT;

    /// The admin modules' sources, scanned for `.route("path", method(..).method(..))`.
    const SOURCES: &[&str] = &[
        include_str!("catalog.rs"),
        include_str!("logs.rs"),
        include_str!("openapi.rs"),
        include_str!("mod.rs"),
    ];

    const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).unwrap()
    }

    /// `(path, method)` of every operation the document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = document();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(*method).is_some() {
                    out.insert((path.clone(), (*method).to_owned()));
                }
            }
        }
        out
    }

    /// `(path, method)` of every route registered in the sources.
    fn registered() -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for source in SOURCES {
            // The shipped code only, not test modules (this one mentions `.route(` too).
            let mut rest = source.split("#[cfg(test)]").next().unwrap_or(source);
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                // The call's text, up to its balanced closing parenthesis.
                let mut depth = 1usize;
                let mut end = rest.len();
                for (i, c) in rest.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let call = &rest[..end];
                let Some(path) = call
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|s| s.split('"').next())
                    .filter(|p| p.starts_with('/'))
                else {
                    continue;
                };
                // Only the method router's own calls count: `get(handler)` or `.put(handler)`.
                let bytes = call.as_bytes();
                for method in METHODS {
                    let needle = format!("{method}(");
                    let mut from = 0;
                    while let Some(pos) = call[from..].find(&needle) {
                        let at = from + pos;
                        let before = at.checked_sub(1).map(|i| bytes[i]);
                        let is_call = matches!(before, None | Some(b'.' | b' ' | b'\n' | b','));
                        if is_call {
                            out.insert((path.to_owned(), (*method).to_owned()));
                        }
                        from = at + needle.len();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let registered = registered();
        assert!(
            registered.len() >= 16,
            "the source scan found too few routes: {registered:?}"
        );
        let documented = documented();
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&registered).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(missing.is_empty(), "documented but not served: {missing:?}");
    }

    /// Every `$ref` in `value`.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for reference in found {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external reference {reference}"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
        // Every operation has an id, unique across the document.
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}"));
                assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} lacks 401"
                );
            }
        }
    }
}
