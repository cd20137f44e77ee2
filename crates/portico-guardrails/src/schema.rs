//! A small JSON Schema validator for `default.jsonSchema`: the keywords guardrail schemas use.
//!
//! Supported: `type` (a name or a list), `properties`, `required`, `additionalProperties`
//! (a boolean or a schema), `items` (a schema), `minItems`, `maxItems`, `enum`, `const`,
//! `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers), `minLength`,
//! `maxLength`, `pattern` (Rust regex syntax, compiled per validation), `anyOf`, `allOf`,
//! `oneOf`, `not`. Other keywords (`$ref`, `format`, `if`/`then`, ...) are ignored, so a
//! schema relying on them accepts more than a full validator would (docs/guardrails.md).
//! Nesting is bounded ([`MAX_DEPTH`]).

use serde_json::{Map, Value};

/// Deeper schemas are not followed further.
const MAX_DEPTH: usize = 64;
/// The most errors reported.
const MAX_ERRORS: usize = 10;

/// Validates `value` against `schema`; the errors (at most ten) when it does not match.
pub(crate) fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    check(schema, value, "$", 0, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check(schema: &Value, value: &Value, at: &str, depth: usize, errors: &mut Vec<String>) {
    if depth > MAX_DEPTH || errors.len() >= MAX_ERRORS {
        return;
    }
    let s = match schema {
        Value::Bool(false) => {
            errors.push(format!("{at}: not allowed"));
            return;
        }
        Value::Object(s) => s,
        _ => return,
    };
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(name) => is_type(value, name),
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .any(|n| is_type(value, n)),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: expected type {t}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        errors.push(format!("{at}: not one of the enum values"));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        errors.push(format!("{at}: expected {c}"));
    }
    match value {
        Value::Object(obj) => object(s, obj, at, depth, errors),
        Value::Array(items) => {
            bound(s, "minItems", items.len(), at, errors, |n, l| n >= l);
            bound(s, "maxItems", items.len(), at, errors, |n, l| n <= l);
            if let Some(item_schema) = s.get("items").filter(|v| v.is_object() || v.is_boolean()) {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{at}[{i}]"), depth + 1, errors);
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count();
            bound(s, "minLength", len, at, errors, |n, l| n >= l);
            bound(s, "maxLength", len, at, errors, |n, l| n <= l);
            if let Some(Value::String(p)) = s.get("pattern")
                && let Ok(re) = crate::checks::compile_regex(p, "pattern")
                && !re.is_match(text)
            {
                errors.push(format!("{at}: does not match the pattern {p}"));
            }
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                let cmp = |key: &str, ok: fn(f64, f64) -> bool| {
                    s.get(key)
                        .and_then(Value::as_f64)
                        .is_some_and(|l| !ok(x, l))
                };
                for (key, ok) in [
                    ("minimum", (|a, b| a >= b) as fn(f64, f64) -> bool),
                    ("maximum", |a, b| a <= b),
                    ("exclusiveMinimum", |a, b| a > b),
                    ("exclusiveMaximum", |a, b| a < b),
                ] {
                    if cmp(key, ok) {
                        errors.push(format!("{at}: violates {key}"));
                    }
                }
            }
        }
        _ => {}
    }
    combinators(s, value, at, depth, errors);
}

fn object(
    s: &Map<String, Value>,
    obj: &Map<String, Value>,
    at: &str,
    depth: usize,
    errors: &mut Vec<String>,
) {
    if let Some(Value::Array(required)) = s.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                errors.push(format!("{at}: missing required property `{name}`"));
            }
        }
    }
    let properties = s.get("properties").and_then(Value::as_object);
    if let Some(props) = properties {
        for (name, sub) in props {
            if let Some(v) = obj.get(name) {
                check(sub, v, &format!("{at}.{name}"), depth + 1, errors);
            }
        }
    }
    if let Some(extra) = s.get("additionalProperties") {
        for (name, v) in obj {
            if properties.is_some_and(|p| p.contains_key(name)) {
                continue;
            }
            match extra {
                Value::Bool(false) => errors.push(format!("{at}: unexpected property `{name}`")),
                Value::Object(_) => check(extra, v, &format!("{at}.{name}"), depth + 1, errors),
                _ => {}
            }
        }
    }
}

fn combinators(
    s: &Map<String, Value>,
    value: &Value,
    at: &str,
    depth: usize,
    errors: &mut Vec<String>,
) {
    let passes = |sub: &Value| {
        let mut inner = Vec::new();
        check(sub, value, at, depth + 1, &mut inner);
        inner.is_empty()
    };
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            check(sub, value, at, depth + 1, errors);
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf")
        && !any.iter().any(passes)
    {
        errors.push(format!("{at}: matches none of anyOf"));
    }
    if let Some(Value::Array(one)) = s.get("oneOf")
        && one.iter().filter(|sub| passes(sub)).count() != 1
    {
        errors.push(format!("{at}: does not match exactly one of oneOf"));
    }
    if let Some(not) = s.get("not")
        && passes(not)
    {
        errors.push(format!("{at}: matches the `not` schema"));
    }
}

fn bound(
    s: &Map<String, Value>,
    key: &str,
    n: usize,
    at: &str,
    errors: &mut Vec<String>,
    ok: fn(u64, u64) -> bool,
) {
    if let Some(limit) = s.get(key).and_then(Value::as_u64)
        && !ok(n as u64, limit)
    {
        errors.push(format!("{at}: violates {key} {limit}"));
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.as_i64().is_some()
                || value.as_u64().is_some()
                || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validates_the_common_keywords() {
        let schema = json!({"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 2}, "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}}}, "additionalProperties": false});
        assert!(validate(&schema, &json!({"name": "Al", "age": 3, "tags": ["a"]})).is_ok());
        let errors = validate(&schema, &json!({"age": -1, "tags": ["c"], "x": 1})).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            validate(
                &json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
                &json!(1)
            )
            .is_err()
        );
        assert!(validate(&json!({"not": {"type": "string"}}), &json!(1)).is_ok());
    }
}
