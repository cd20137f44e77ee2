//! Leaf fields of a config node: provider references, weights, `override_params`, `retry`,
//! `request_timeout`, `cache`, guardrail lists, and the small typed readers they share.
//!
//! Each function reads one JSON value at a known path and answers a typed value or a
//! [`ConfigPathError`] at that path that says what to write instead.

use std::time::Duration;

use portico_core::is_valid_slug;
use serde_json::{Map, Value};

use crate::config::{
    CacheConfig, CacheMode, ConfigPathError, FieldPath, GuardrailRef, ProviderRef,
};
use crate::query::kind;
use crate::retry::{MAX_ATTEMPTS, RetryPolicy};

/// `provider` (`"@slug"`) and/or `virtual_key` (`"slug"`, Portkey's older alias).
pub(super) fn parse_provider(
    map: &Map<String, Value>,
    path: &FieldPath,
) -> Result<Option<ProviderRef>, ConfigPathError> {
    let provider = map
        .get("provider")
        .map(|v| non_empty_string(v, &path.key("provider")))
        .transpose()?;
    let virtual_key = map
        .get("virtual_key")
        .map(|v| non_empty_string(v, &path.key("virtual_key")))
        .transpose()?;
    match (provider, virtual_key) {
        (None, None) => Ok(None),
        (Some(p), None) => Ok(Some(ProviderRef {
            slug: slug_of(&p, &path.key("provider"))?,
            kind_hint: None,
        })),
        (None, Some(vk)) => Ok(Some(ProviderRef {
            slug: slug_of_virtual_key(&vk, &path.key("virtual_key"))?,
            kind_hint: None,
        })),
        (Some(p), Some(_)) if p.starts_with('@') => Err(path.key("virtual_key").err(
            "give either `provider: \"@slug\"` or `virtual_key`, not both (they both name a catalog provider)",
        )),
        (Some(p), Some(vk)) => Ok(Some(ProviderRef {
            slug: slug_of_virtual_key(&vk, &path.key("virtual_key"))?,
            kind_hint: Some(p),
        })),
    }
}

fn slug_of(s: &str, path: &FieldPath) -> Result<String, ConfigPathError> {
    let Some(slug) = s.strip_prefix('@') else {
        return Err(path.err(format!(
            "`{s}` is not a catalog reference; write \"@{s}\" (an `@` and the slug of a catalog provider)"
        )));
    };
    if let Some((p, model)) = slug.split_once('/') {
        return Err(path.err(format!(
            "`{s}` names a model; `provider` names the provider only: write \"provider\": \"@{p}\" and \"override_params\": {{\"model\": \"{model}\"}}"
        )));
    }
    if !is_valid_slug(slug) {
        return Err(path.err(format!(
            "`{s}` has an invalid slug; slugs use lowercase letters, digits, `-` and `_`"
        )));
    }
    Ok(slug.to_owned())
}

fn slug_of_virtual_key(s: &str, path: &FieldPath) -> Result<String, ConfigPathError> {
    let slug = s.strip_prefix('@').unwrap_or(s);
    if !is_valid_slug(slug) {
        return Err(path.err(format!(
            "`{s}` is not a provider slug; `virtual_key` names a catalog provider by its slug (lowercase letters, digits, `-` and `_`)"
        )));
    }
    Ok(slug.to_owned())
}

pub(super) fn parse_weight(v: &Value, path: &FieldPath) -> Result<f64, ConfigPathError> {
    match v.as_f64() {
        Some(w) if w.is_finite() && w >= 0.0 => Ok(w),
        _ => Err(path.err(format!("must be a number ≥ 0, got {}", kind(v)))),
    }
}

pub(super) fn parse_override_params(
    v: &Value,
    path: &FieldPath,
) -> Result<Map<String, Value>, ConfigPathError> {
    let map = object(v, path)?;
    if let Some(model) = map.get("model")
        && !model.is_string()
    {
        return Err(path
            .key("model")
            .err(format!("must be a model name string, got {}", kind(model))));
    }
    Ok(map.clone())
}

pub(super) fn parse_retry(v: &Value, path: &FieldPath) -> Result<RetryPolicy, ConfigPathError> {
    let map = object(v, path)?;
    if let Some(extra) = map.keys().find(|k| {
        !matches!(
            k.as_str(),
            "attempts" | "on_status_codes" | "use_retry_after_header"
        )
    }) {
        return Err(path.key(extra).err(format!(
            "unknown field `{extra}` in `retry`; it accepts attempts, on_status_codes, use_retry_after_header"
        )));
    }
    let apath = path.key("attempts");
    let attempts = match map.get("attempts") {
        None => {
            return Err(apath.err("`retry` needs `attempts` (retries after the first try, 0 to 5)"));
        }
        Some(a) => match a.as_u64() {
            Some(n) if n <= u64::from(MAX_ATTEMPTS) => n as u8,
            Some(n) => {
                return Err(apath.err(format!(
                    "at most {MAX_ATTEMPTS} retries are allowed, got {n}"
                )));
            }
            None => {
                return Err(apath.err(format!(
                    "must be a whole number from 0 to {MAX_ATTEMPTS}, got {}",
                    kind(a)
                )));
            }
        },
    };
    let use_retry_after_header = match map.get("use_retry_after_header") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(path
                .key("use_retry_after_header")
                .err(format!("must be true or false, got {}", kind(other))));
        }
    };
    Ok(RetryPolicy {
        attempts,
        on_status_codes: map
            .get("on_status_codes")
            .map(|v| parse_status_codes(v, &path.key("on_status_codes")))
            .transpose()?,
        use_retry_after_header,
    })
}

pub(super) fn parse_status_codes(v: &Value, path: &FieldPath) -> Result<Vec<u16>, ConfigPathError> {
    let Value::Array(items) = v else {
        return Err(path.err(format!(
            "must be an array of HTTP status codes such as [429, 503], got {}",
            kind(v)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, c)| match c.as_u64() {
            Some(n @ 100..=599) => Ok(n as u16),
            _ => Err(path.index(i).err(format!(
                "must be an HTTP status code from 100 to 599, got {}",
                kind(c)
            ))),
        })
        .collect()
}

pub(super) fn parse_timeout(v: &Value, path: &FieldPath) -> Result<Duration, ConfigPathError> {
    match v.as_u64() {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(path.err(format!(
            "must be a whole number of milliseconds above 0, got {}",
            kind(v)
        ))),
    }
}

pub(super) fn parse_cache(v: &Value, path: &FieldPath) -> Result<CacheConfig, ConfigPathError> {
    let map = object(v, path)?;
    if let Some(extra) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "mode" | "max_age"))
    {
        return Err(path.key(extra).err(format!(
            "unknown field `{extra}` in `cache`; it accepts mode, max_age"
        )));
    }
    let mode_path = path.key("mode");
    let mode = match map.get("mode").and_then(Value::as_str) {
        Some("simple") => CacheMode::Simple,
        Some("semantic") => CacheMode::Semantic,
        Some(other) => {
            return Err(mode_path.err(format!(
                "unknown cache mode `{other}`; use simple or semantic"
            )));
        }
        None => {
            return Err(mode_path.err("`cache` needs `mode`: \"simple\" or \"semantic\""));
        }
    };
    let max_age = match map.get("max_age") {
        None => None,
        Some(a) => Some(a.as_u64().ok_or_else(|| {
            path.key("max_age").err(format!(
                "must be a whole number of seconds ≥ 0, got {}",
                kind(a)
            ))
        })?),
    };
    Ok(CacheConfig { mode, max_age })
}

pub(super) fn parse_guardrails(
    map: &Map<String, Value>,
    key: &str,
    root: &FieldPath,
) -> Result<Vec<GuardrailRef>, ConfigPathError> {
    let path = root.key(key);
    let items = match map.get(key) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(path.err(format!(
                "must be an array of guardrail ids or inline guardrail objects, got {}",
                kind(other)
            )));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(id) if !id.trim().is_empty() => Ok(GuardrailRef::Id(id.clone())),
            Value::Object(m) if !m.is_empty() => {
                let at = path.index(i);
                portico_guardrails::Guardrail::parse(item, &format!("{key}[{i}]"))
                    .map(|g| GuardrailRef::Inline(std::sync::Arc::new(g)))
                    .map_err(|e| {
                        let inner = at.err(String::new()).path;
                        let full = portico_guardrails::GuardrailError {
                            path: e.path,
                            message: String::new(),
                        }
                        .under(&inner)
                        .path;
                        crate::config::ConfigPathError::new(full, e.message)
                    })
            }
            other => Err(path.index(i).err(format!(
                "must be a guardrail id (a non-empty string) or an inline guardrail object, got {}",
                kind(other)
            ))),
        })
        .collect()
}

pub(super) fn object<'a>(
    v: &'a Value,
    path: &FieldPath,
) -> Result<&'a Map<String, Value>, ConfigPathError> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(path.err(format!("must be an object, got {}", kind(other)))),
    }
}

pub(super) fn non_empty_string(v: &Value, path: &FieldPath) -> Result<String, ConfigPathError> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        other => Err(path.err(format!("must be a non-empty string, got {}", kind(other)))),
    }
}
