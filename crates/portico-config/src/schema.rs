//! The shape of the file: which fields each object may have, which fields the spec defines but
//! this version rejects, and where lists and mappings are expected.
//!
//! This runs on the parsed document *before* `${VAR}` substitution and before the typed raw
//! structs are deserialized, for two reasons:
//!
//! - messages: serde's `deny_unknown_fields` cannot tell "not implemented yet" from "typo", and
//!   its "expected struct ProviderFile" leaks internal names. Here an unknown field gets the list
//!   of allowed ones, and a spec section this version lacks (`configs`, `budget`, ...) says so.
//! - order: a `budget:` section whose `${VAR}` is unset should be reported as unsupported, not
//!   as a missing variable.
//!
//! The raw structs in `file.rs` keep `deny_unknown_fields` as a backstop; the full-file test
//! uses every field listed here, which keeps the two in step.

use crate::error::{ConfigError, field_path, item_path, key_segment};
use crate::yaml::{Mapping, Value};

/// The fields of one kind of object in the file.
struct Shape {
    /// Fields this version reads.
    allowed: &'static [&'static str],
    /// Fields the spec defines that this version does not implement yet.
    unsupported: &'static [&'static str],
    /// Names people plausibly write for a field (`kind` on a key means `type`), to suggest it.
    aliases: &'static [(&'static str, &'static str)],
}

const TOP: Shape = Shape {
    allowed: &[
        "listen",
        "data_dir",
        "admin_key",
        "auto_providers",
        "providers",
        "configs",
        "keys",
        "budgets",
        "auth",
        "guardrails",
        "webhook_allow",
    ],
    unsupported: &[],
    aliases: &[],
};

const PROVIDER: Shape = Shape {
    allowed: &[
        "slug",
        "kind",
        "api_key",
        "base_url",
        "models",
        "mock",
        "aws_region",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "azure_api_version",
        "azure_tenant_id",
        "azure_client_id",
        "azure_client_secret",
        "vertex_project_id",
        "vertex_region",
        "vertex_service_account_json",
        "anthropic_version",
        "anthropic_beta",
        "budget",
        "rate_limit",
    ],
    unsupported: &[],
    aliases: &[
        ("name", "slug"),
        ("type", "kind"),
        ("key", "api_key"),
        ("url", "base_url"),
    ],
};

const MODEL: Shape = Shape {
    allowed: &["id", "name", "pricing"],
    unsupported: &[],
    aliases: &[("model", "id")],
};

const PRICING: Shape = Shape {
    allowed: &[
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
        "cache_write_per_mtok",
    ],
    unsupported: &[],
    aliases: &[],
};

/// An entry of `configs:`. What is inside `config` is checked by `portico_routing`, which
/// knows Portkey's schema.
const CONFIG: Shape = Shape {
    allowed: &["id", "config"],
    unsupported: &[],
    aliases: &[("name", "id")],
};

const MOCK: Shape = Shape {
    allowed: &["latency_ms", "chunk_delay_ms", "failure_rate"],
    unsupported: &[],
    aliases: &[],
};

const KEY: Shape = Shape {
    allowed: &[
        "name",
        "type",
        "user",
        "key",
        "allowed_models",
        "log_payloads",
        "config",
        "budget",
        "rate_limit",
        "expires_at",
    ],
    unsupported: &[],
    aliases: &[
        ("kind", "type"),
        ("expires", "expires_at"),
        ("expiry", "expires_at"),
        ("models", "allowed_models"),
        ("secret", "key"),
    ],
};

/// `budget:` of a provider, a key, a `budgets:` entry (or `auth.jwt.budget`).
const BUDGET: Shape = Shape {
    allowed: &["cost_usd", "tokens", "period"],
    unsupported: &[],
    aliases: &[
        ("usd", "cost_usd"),
        ("cost", "cost_usd"),
        ("interval", "period"),
    ],
};

/// `rate_limit:` of a provider, a key or a `budgets:` entry.
const RATE_LIMIT: Shape = Shape {
    allowed: &["requests_per_minute", "tokens_per_minute"],
    unsupported: &[],
    aliases: &[("rpm", "requests_per_minute"), ("tpm", "tokens_per_minute")],
};

/// An entry of `budgets:`.
const BUDGET_ENTRY: Shape = Shape {
    allowed: &["name", "match", "budget", "rate_limit"],
    unsupported: &[],
    aliases: &[("id", "name"), ("matches", "match"), ("where", "match")],
};

/// `auth:`: how callers other than gateway keys authenticate.
const AUTH: Shape = Shape {
    allowed: &["jwt"],
    unsupported: &[],
    aliases: &[],
};

/// `auth.jwt:`: JWTs of an identity provider.
const JWT: Shape = Shape {
    allowed: &["jwks_url", "issuer", "audience", "user_claim", "budget"],
    unsupported: &[],
    aliases: &[
        ("jwks_uri", "jwks_url"),
        ("jwks", "jwks_url"),
        ("iss", "issuer"),
        ("aud", "audience"),
        ("claim", "user_claim"),
    ],
};

/// The limits of a key as the admin API receives them.
const LIMITS: Shape = Shape {
    allowed: &["budget", "rate_limit"],
    unsupported: &[],
    aliases: &[],
};

/// Checks one `budgets:` entry (the admin API's body), with paths relative to it.
pub(crate) fn check_budget_entry(value: &Value, origin: &str) -> Result<(), ConfigError> {
    Cx { origin }.budget_entry(value, "")
}

/// Checks `{budget, rate_limit}` (a key's limits in the admin API's body).
pub(crate) fn check_limits(value: &Value, origin: &str) -> Result<(), ConfigError> {
    let cx = Cx { origin };
    let map = cx.mapping(value, "", "a mapping with budget and rate_limit")?;
    cx.fields(map, "", &LIMITS)?;
    cx.limits(map, "")
}

/// The fields a provider entry may have (for a test that keeps other tables in step).
#[cfg(test)]
pub(crate) fn provider_fields() -> &'static [&'static str] {
    PROVIDER.allowed
}

/// Checks one provider object (the admin API's body) like an entry of `providers:`, with
/// paths relative to the object (`base_url`, `models[0].id`).
pub(crate) fn check_provider(value: &Value, origin: &str) -> Result<(), ConfigError> {
    Cx { origin }.provider(value, "")
}

/// Checks the document's structure; the first problem in file order is returned.
pub(crate) fn check(doc: &Value, origin: &str) -> Result<(), ConfigError> {
    let cx = Cx { origin };
    match doc {
        // An empty file is an empty catalog.
        Value::Null => Ok(()),
        Value::Mapping(map) => {
            cx.fields(map, "", &TOP)?;
            cx.list(map, "", "providers", "provider entries", |v, path| {
                cx.provider(v, path)
            })?;
            cx.list(map, "", "configs", "config entries", |v, path| {
                let config = cx.mapping(v, path, "a config entry (id, config)")?;
                cx.fields(config, path, &CONFIG)
            })?;
            cx.list(map, "", "keys", "key entries", |v, path| {
                let key = cx.mapping(v, path, "a key entry (name, type, ...)")?;
                cx.fields(key, path, &KEY)?;
                cx.limits(key, path)
            })?;
            cx.list(map, "", "budgets", "budget entries", |v, path| {
                cx.budget_entry(v, path)
            })?;
            cx.auth(map)
        }
        other => Err(ConfigError::invalid(
            origin,
            "",
            format!(
                "the file must be a mapping of sections (listen, providers, keys, ...), found {}",
                describe(other)
            ),
        )),
    }
}

struct Cx<'a> {
    origin: &'a str,
}

impl Cx<'_> {
    fn provider(&self, value: &Value, path: &str) -> Result<(), ConfigError> {
        let provider = self.mapping(value, path, "a provider entry (slug, kind, ...)")?;
        self.fields(provider, path, &PROVIDER)?;
        self.list(provider, path, "models", "models", |v, path| match v {
            Value::String(_) => Ok(()),
            Value::Mapping(model) => {
                self.fields(model, path, &MODEL)?;
                self.optional_mapping(model, path, "pricing", &PRICING)
            }
            other => Err(ConfigError::invalid(
                self.origin,
                path,
                format!(
                    "a model is an id string or a mapping with id, name and pricing, found {}",
                    describe(other)
                ),
            )),
        })?;
        self.limits(provider, path)?;
        self.optional_mapping(provider, path, "mock", &MOCK)
    }

    /// `auth:` with its `jwt:` (whose `budget:` is a budget's shape), when present.
    fn auth(&self, top: &Mapping) -> Result<(), ConfigError> {
        self.optional_mapping(top, "", "auth", &AUTH)?;
        let Some(Value::Mapping(auth)) = top.get("auth") else {
            return Ok(());
        };
        self.optional_mapping(auth, "auth", "jwt", &JWT)?;
        if let Some(Value::Mapping(jwt)) = auth.get("jwt") {
            self.optional_mapping(jwt, "auth.jwt", "budget", &BUDGET)?;
        }
        Ok(())
    }

    /// `budget:` and `rate_limit:` of an object, when present.
    fn limits(&self, map: &Mapping, path: &str) -> Result<(), ConfigError> {
        self.optional_mapping(map, path, "budget", &BUDGET)?;
        self.optional_mapping(map, path, "rate_limit", &RATE_LIMIT)
    }

    /// One `budgets:` entry; `match` is a mapping of free-form `metadata.<key>` fields.
    fn budget_entry(&self, value: &Value, path: &str) -> Result<(), ConfigError> {
        let entry = self.mapping(
            value,
            path,
            "a budget entry (name, match, budget, rate_limit)",
        )?;
        self.fields(entry, path, &BUDGET_ENTRY)?;
        if let Some(matches) = entry.get("match").filter(|v| !matches!(v, Value::Null)) {
            self.mapping(
                matches,
                &field_path(path, "match"),
                "a mapping of metadata.<key>: <value>, like { metadata.team: backend }",
            )?;
        }
        self.limits(entry, path)
    }

    /// Rejects unsupported and unknown field names of one object.
    fn fields(&self, map: &Mapping, path: &str, shape: &Shape) -> Result<(), ConfigError> {
        for key in map.keys() {
            let name = key_segment(key);
            let field = field_path(path, &name);
            let is_text = matches!(key, Value::String(_));
            if is_text && shape.unsupported.contains(&name.as_str()) {
                return Err(ConfigError::Unsupported {
                    origin: self.origin.to_owned(),
                    path: field,
                });
            }
            if !is_text || !shape.allowed.contains(&name.as_str()) {
                return Err(ConfigError::UnknownField {
                    origin: self.origin.to_owned(),
                    path: field,
                    allowed: shape.allowed,
                    suggestion: shape
                        .aliases
                        .iter()
                        .find(|(alias, _)| *alias == name)
                        .map(|(_, field)| *field)
                        .or_else(|| closest(&name, shape.allowed)),
                });
            }
        }
        Ok(())
    }

    /// `map[field]`, when present and not null, must be a list; `each` checks its items.
    fn list(
        &self,
        map: &Mapping,
        path: &str,
        field: &str,
        items: &str,
        each: impl Fn(&Value, &str) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        let path = field_path(path, field);
        match map.get(field) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Sequence(seq)) => seq
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| each(v, &item_path(&path, i))),
            Some(other) => Err(ConfigError::invalid(
                self.origin,
                &path,
                format!(
                    "must be a list of {items} (lines starting with `- `), found {}",
                    describe(other)
                ),
            )),
        }
    }

    /// `map[field]`, when present and not null, must be a mapping of `shape`.
    fn optional_mapping(
        &self,
        map: &Mapping,
        path: &str,
        field: &str,
        shape: &Shape,
    ) -> Result<(), ConfigError> {
        let path = field_path(path, field);
        match map.get(field) {
            None | Some(Value::Null) => Ok(()),
            Some(value) => {
                let what = format!("a mapping with {}", shape.allowed.join(", "));
                let inner = self.mapping(value, &path, &what)?;
                self.fields(inner, &path, shape)
            }
        }
    }

    fn mapping<'v>(
        &self,
        value: &'v Value,
        path: &str,
        what: &str,
    ) -> Result<&'v Mapping, ConfigError> {
        match value {
            Value::Mapping(map) => Ok(map),
            other => Err(ConfigError::invalid(
                self.origin,
                path,
                format!("expected {what}, found {}", describe(other)),
            )),
        }
    }
}

/// A value's type in words. Never the value itself: it may be a secret.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}

/// The allowed field closest to a misspelt one, if it is plausibly a typo.
fn closest(name: &str, allowed: &'static [&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    allowed
        .iter()
        .map(|candidate| (edit_distance(&lower, candidate), *candidate))
        // A small edit, or a truncation like `latency` for `latency_ms`.
        .filter(|(distance, candidate)| {
            (*distance <= 2 && *distance < name.len())
                || (lower.len() >= 4 && candidate.starts_with(lower.as_str()))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars; field names are short, so the quadratic cost is nothing.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_str(text: &str) -> Result<(), ConfigError> {
        check(&crate::yaml::parse(text, "c.yaml").unwrap(), "c.yaml")
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("base_ur", "base_url"), 1);
        assert_eq!(edit_distance("slug", "slug"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("Slug", PROVIDER.allowed), Some("slug"));
        assert_eq!(closest("apikey", PROVIDER.allowed), Some("api_key"));
        assert_eq!(closest("zzzzzz", PROVIDER.allowed), None);
        assert_eq!(closest("latency", MOCK.allowed), Some("latency_ms"));
        assert_eq!(closest("lat", MOCK.allowed), None);
    }

    #[test]
    fn structure_errors_describe_types_not_values() {
        let err = check_str("providers: sk-secret-value\n").unwrap_err();
        assert_eq!(err.path(), Some("providers"));
        let msg = err.to_string();
        assert!(msg.contains("must be a list of provider entries"), "{msg}");
        assert!(!msg.contains("sk-secret-value"), "{msg}");

        let err = check_str("- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("must be a mapping of sections"));

        let err = check_str("providers: [openai]\n").unwrap_err();
        assert_eq!(err.path(), Some("providers[0]"));
        assert!(err.to_string().contains("expected a provider entry"));

        let err = check_str("providers: [{slug: a, models: [[x]]}]\n").unwrap_err();
        assert_eq!(err.path(), Some("providers[0].models[0]"));

        let err = check_str("providers: [{slug: a, mock: 5}]\n").unwrap_err();
        assert_eq!(err.path(), Some("providers[0].mock"));
        assert!(err.to_string().contains("latency_ms"), "{err}");
    }

    #[test]
    fn non_text_field_names_are_unknown() {
        let err = check_str("1: x\n").unwrap_err();
        assert!(matches!(err, ConfigError::UnknownField { .. }), "{err}");
        assert_eq!(err.path(), Some("1"));
    }

    #[test]
    fn empty_and_null_sections_are_fine() {
        check_str("").unwrap();
        check_str("providers:\nkeys: []\n").unwrap();
        check_str("providers: [{slug: a, models: , mock: }]\n").unwrap();
    }
}
