//! The routing config parser (portico-routing), the way `x-portkey-config` reaches it: the
//! header's text, read as JSON when it starts with `{`, parsed alone and also merged over a
//! fixed key config (a key's config with a header's on top, as the gateway does).
//! Property: no panic; a config that parses parses again from its merge with an empty
//! object (merging `{}` changes nothing).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico_routing::{RoutingConfig, merge};
use serde_json::{Value, json};

fn key_config() -> &'static Value {
    static BASE: OnceLock<Value> = OnceLock::new();
    BASE.get_or_init(|| {
        json!({
            "strategy": {"mode": "fallback", "on_status_codes": [429, 503]},
            "retry": {"attempts": 2},
            "targets": [
                {"provider": "@openai-prod", "override_params": {"model": "gpt-4o-mini"}},
                {"provider": "@anthropic", "weight": 0.5}
            ]
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let header = header.trim();
    if !header.starts_with('{') {
        return;
    }
    let Ok(json) = serde_json::from_str::<Value>(header) else {
        return;
    };
    if let Ok(config) = RoutingConfig::parse(&json) {
        let same = RoutingConfig::parse(&merge(&json, &json!({})))
            .expect("a config merged with {} still parses");
        assert_eq!(format!("{config:?}"), format!("{same:?}"));
    }
    let _ = RoutingConfig::parse(&merge(key_config(), &json));
});
