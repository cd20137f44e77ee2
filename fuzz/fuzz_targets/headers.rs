//! The request header parsers (portico-engine `pipeline::request` and `Family::secret`):
//! `x-portkey-trace-id`, `-metadata`, `-config` (and the routing config it carries),
//! `-request-timeout`, `-provider` / `-virtual-key`, `-custom-host`, the gateway key
//! (`x-portkey-api-key`, `x-api-key`, `Authorization: Bearer`), and the JSON body's routing
//! fields (`model`, `stream`, `stream_options`).
//!
//! Input: `name: value` lines (a header each; names and values HTTP rejects are skipped, as
//! the HTTP server would refuse them), a blank line, then the body.
//! Properties: no panic; a refusal is a client error naming the header; an accepted trace id
//! is 1 to 256 visible ASCII characters; accepted metadata is an object of strings.
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portico_core::{Endpoint, ErrorCode};
use portico_engine::Family;
use portico_engine::pipeline::request;
use portico_routing::RoutingConfig;

fn headers(head: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

fn client_error(err: &portico_core::ApiError) {
    assert!(
        (400..500).contains(&err.status),
        "a header refusal is a client error: {err:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &b""[..]),
    };
    let map = headers(head);
    match request::trace_id(&map) {
        Ok(id) => assert!(
            !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic()),
            "an accepted trace id is 1 to 256 visible characters: {id:?}"
        ),
        Err(e) => {
            client_error(&e);
            assert_eq!(e.code, ErrorCode::InvalidHeader);
        }
    }
    match request::metadata(&map) {
        Ok(Some(meta)) => assert!(meta.values().all(serde_json::Value::is_string)),
        Ok(None) => {}
        Err(e) => client_error(&e),
    }
    match request::config_header(&map) {
        Ok(Some(config)) if config.starts_with('{') => {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(config) {
                let _ = RoutingConfig::parse(&json);
            }
        }
        Ok(_) => {}
        Err(e) => client_error(&e),
    }
    match request::request_timeout(&map) {
        Ok(Some(timeout)) => assert!(!timeout.is_zero()),
        Ok(None) => {}
        Err(e) => client_error(&e),
    }
    let _ = request::provider_header(&map);
    if let Err(e) = request::refuse_unsupported(&map) {
        client_error(&e);
    }
    for family in [Family::OpenAi(Endpoint::ChatCompletions), Family::Messages] {
        let _ = family.secret(&map);
    }
    if !body.is_empty() {
        match request::parse_body(Bytes::copy_from_slice(body)) {
            Ok(parsed) => {
                assert!(parsed.model.as_deref().is_none_or(|m| !m.trim().is_empty()));
            }
            Err(e) => client_error(&e),
        }
    }
});
