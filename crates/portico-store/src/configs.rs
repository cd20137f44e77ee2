//! Routing configs as the store checks them: a sane id, a config that
//! `portico_routing::RoutingConfig::parse` accepts, and the providers it names.
//!
//! The store refuses to write a config the data plane could not use, so that a bad config is
//! reported to whoever wrote it (the file's author at apply time, the admin API's caller), not
//! to every request of the keys it is attached to.

use std::collections::HashSet;

use portico_routing::{Route, RoutingConfig, Target};

use crate::StoreError;

/// Longest config id.
const MAX_ID_CHARS: usize = 64;

/// Whether `id` is an acceptable config id: 1 to 64 ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit (so it can never be mistaken for the inline JSON that
/// `x-portkey-config` also accepts).
pub fn is_valid_config_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Every provider a config routes to, as `(field path, slug)` in tree order: `("provider",
/// "openai")` for a root provider, `("targets[1].targets[0].provider", "openai-eu")` for a
/// nested one.
pub fn provider_refs(config: &RoutingConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(&config.root, "", &mut out);
    out
}

fn walk(target: &Target, path: &str, out: &mut Vec<(String, String)>) {
    let join = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    match &target.route {
        Route::Request => {}
        Route::Provider(p) => out.push((join("provider"), p.slug.clone())),
        Route::Strategy(strategy) => {
            for (i, child) in strategy.targets.iter().enumerate() {
                walk(child, &join(&format!("targets[{i}]")), out);
            }
        }
    }
}

/// Checks the id and parses the config; errors are [`StoreError::InvalidConfig`] (for the
/// config) or [`StoreError::Invalid`] (for the id).
pub fn validate_config(id: &str, config: &serde_json::Value) -> Result<RoutingConfig, StoreError> {
    if !is_valid_config_id(id) {
        return Err(StoreError::Invalid(format!(
            "{id:?} is not a valid config id; use 1 to {MAX_ID_CHARS} letters, digits, `-`, `_` \
             and `.`, starting with a letter or digit"
        )));
    }
    RoutingConfig::parse(config).map_err(|e| StoreError::InvalidConfig {
        id: id.to_owned(),
        path: e.path,
        message: e.message,
    })
}

/// Checks that every provider `config` names is one of `slugs`.
pub(crate) fn check_providers(
    id: &str,
    config: &RoutingConfig,
    slugs: &HashSet<String>,
) -> Result<(), StoreError> {
    for (path, slug) in provider_refs(config) {
        if !slugs.contains(&slug) {
            let mut known: Vec<&str> = slugs.iter().map(String::as_str).collect();
            known.sort_unstable();
            let known: Vec<String> = known.iter().map(|s| format!("@{s}")).collect();
            return Err(StoreError::InvalidConfig {
                id: id.to_owned(),
                path,
                message: format!(
                    "no provider `@{slug}` in the catalog; add it first, or name one of: {}",
                    if known.is_empty() {
                        "(the catalog has no providers)".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids() {
        for ok in ["reliable", "pc-abc_1.2", "9x"] {
            assert!(is_valid_config_id(ok), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "-x", "{\"a\":1}", "a b", "ä", long.as_str()] {
            assert!(!is_valid_config_id(bad), "{bad}");
        }
    }

    #[test]
    fn provider_refs_have_paths() {
        let config = RoutingConfig::parse(&json!({
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "@a"},
                {"strategy": {"mode": "loadbalance"},
                 "targets": [{"provider": "@b"}, {"virtual_key": "c"}]}
            ]
        }))
        .unwrap();
        assert_eq!(
            provider_refs(&config),
            vec![
                ("targets[0].provider".to_owned(), "a".to_owned()),
                ("targets[1].targets[0].provider".to_owned(), "b".to_owned()),
                ("targets[1].targets[1].provider".to_owned(), "c".to_owned()),
            ]
        );
        let root = RoutingConfig::parse(&json!({"provider": "@x"})).unwrap();
        assert_eq!(
            provider_refs(&root),
            vec![("provider".to_owned(), "x".to_owned())]
        );
        let none = RoutingConfig::parse(&json!({"retry": {"attempts": 2}})).unwrap();
        assert!(provider_refs(&none).is_empty());
    }

    #[test]
    fn unknown_providers_are_named_with_their_path() {
        let config = RoutingConfig::parse(&json!({
            "strategy": {"mode": "fallback"},
            "targets": [{"provider": "@a"}, {"provider": "@nope"}]
        }))
        .unwrap();
        let slugs: HashSet<String> = ["a".to_owned(), "mock".to_owned()].into();
        let err = check_providers("reliable", &config, &slugs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config `reliable`: targets[1].provider: no provider `@nope` in the catalog; add it \
             first, or name one of: @a, @mock"
        );
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let err = validate_config(
            "r",
            &json!({"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "@a", "weight": -1}]}),
        )
        .unwrap_err();
        match err {
            StoreError::InvalidConfig { id, path, .. } => {
                assert_eq!(id, "r");
                assert_eq!(path, "targets[0].weight");
            }
            other => panic!("{other}"),
        }
        assert!(matches!(
            validate_config("{x", &json!({"retry": {"attempts": 1}})),
            Err(StoreError::Invalid(_))
        ));
    }
}
