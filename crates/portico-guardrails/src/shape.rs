//! Portkey's guardrail objects, parsed and compiled once.
//!
//! Two spellings are accepted:
//!
//! - the full shape, as the catalog and the admin API store it:
//!   `{"id", "checks": [{"id": "default.wordCount", "parameters": {...}, "is_enabled"}],
//!   "deny", "async", "on_fail", "on_success"}`;
//! - the config shorthand, inline in `input_guardrails` / `output_guardrails`:
//!   `{"default.wordCount": {"minWords": 1}, "deny": true}`: every key that is not one of the
//!   guardrail's own fields is a check id with its parameters. A check id without a dot means
//!   `default.` (`"wordCount"` is `"default.wordCount"`).
//!
//! Errors name the field path (`checks[1].parameters.rule`) and say what to write instead.

use serde_json::{Map, Value};

use crate::checks::CheckKind;

/// The fields of a guardrail itself (everything else in the shorthand is a check).
const OWN_FIELDS: &[&str] = &[
    "id",
    "name",
    "checks",
    "deny",
    "async",
    "on_fail",
    "on_success",
    "type",
];

/// The most checks one guardrail may hold.
pub(crate) const MAX_CHECKS: usize = 64;

/// Before or after the upstream call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `input_guardrails`: Portkey's `beforeRequestHook`.
    Input,
    /// `output_guardrails`: Portkey's `afterRequestHook`.
    Output,
}

impl Hook {
    /// Portkey's event name.
    pub fn event(self) -> &'static str {
        match self {
            Hook::Input => "beforeRequestHook",
            Hook::Output => "afterRequestHook",
        }
    }
}

/// A compiled guardrail.
#[derive(Debug, Clone)]
pub struct Guardrail {
    /// Its id: the catalog id, or for an inline guardrail the one it gives (else a
    /// position-derived id the policy assigns).
    pub id: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// `deny`: a failed check refuses the request (446) instead of flagging it (246).
    pub deny: bool,
    /// `async`: run for the log only; never denies and never changes the status.
    pub is_async: bool,
    /// The object as given, for the admin API and equality.
    pub raw: Value,
}

impl PartialEq for Guardrail {
    fn eq(&self, other: &Guardrail) -> bool {
        self.raw == other.raw
    }
}

/// One compiled check of a guardrail.
#[derive(Debug, Clone)]
pub struct Check {
    /// The full id, `default.wordCount` or `portico.pii`.
    pub id: String,
    /// What it does, with its parameters compiled.
    pub kind: CheckKind,
    /// `failOnError`: a check that cannot reach a verdict fails instead of passing.
    pub fail_on_error: bool,
}

/// A guardrail that does not parse: where and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailError {
    /// The field path inside the guardrail (`checks[0].parameters.rule`); empty for the whole.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for GuardrailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for GuardrailError {}

impl GuardrailError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> GuardrailError {
        GuardrailError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error under `prefix` (`input_guardrails[0]`).
    pub fn under(mut self, prefix: &str) -> GuardrailError {
        self.path = join(prefix, &self.path);
        self
    }
}

/// `prefix.rest`, or `prefix[0]` style when `rest` starts with a bracket.
pub(crate) fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if rest.starts_with('[') => format!("{prefix}{rest}"),
        _ => format!("{prefix}.{rest}"),
    }
}

impl Guardrail {
    /// Parses a guardrail in the full shape or the shorthand (see the module docs).
    /// `default_id` names a guardrail that gives no `id` (an inline one).
    pub fn parse(value: &Value, default_id: &str) -> Result<Guardrail, GuardrailError> {
        let Value::Object(map) = value else {
            return Err(GuardrailError::new(
                "",
                "a guardrail must be an object: {\"checks\": [...], \"deny\": true} or Portkey's shorthand {\"default.wordCount\": {\"minWords\": 1}, \"deny\": true}",
            ));
        };
        let id = match map.get("id") {
            None | Some(Value::Null) => default_id.to_owned(),
            Some(Value::String(s)) if valid_id(s) => s.clone(),
            Some(_) => {
                return Err(GuardrailError::new(
                    "id",
                    "must be 1 to 64 letters, digits, `-`, `_` or `.`",
                ));
            }
        };
        let deny = flag(map, "deny")?.unwrap_or(false);
        let is_async = flag(map, "async")?.unwrap_or(false);
        let mut checks = Vec::new();
        match map.get("checks") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("checks[{i}]");
                    if let Some(check) = full_check(item).map_err(|e| e.under(&path))? {
                        checks.push(check);
                    }
                }
            }
            Some(_) => {
                return Err(GuardrailError::new(
                    "checks",
                    "must be an array of {\"id\": \"default.wordCount\", \"parameters\": {...}}",
                ));
            }
            None => {}
        }
        for (key, parameters) in map {
            if OWN_FIELDS.contains(&key.as_str()) {
                continue;
            }
            let check = Check::parse(key, parameters, true).map_err(|e| e.under(key))?;
            checks.push(check);
        }
        if checks.is_empty() && !map.contains_key("checks") {
            return Err(GuardrailError::new(
                "",
                "the guardrail has no checks; give `checks: [...]` or a check such as {\"default.wordCount\": {\"minWords\": 1}}",
            ));
        }
        if checks.len() > MAX_CHECKS {
            return Err(GuardrailError::new(
                "checks",
                format!("a guardrail holds at most {MAX_CHECKS} checks"),
            ));
        }
        for field in ["on_fail", "on_success"] {
            if let Some(v) = map.get(field)
                && !(v.is_object() || v.is_null())
            {
                return Err(GuardrailError::new(field, "must be an object"));
            }
        }
        Ok(Guardrail {
            id,
            checks,
            deny,
            is_async,
            raw: value.clone(),
        })
    }
}

/// A catalog or admin guardrail id: 1 to 64 of `[A-Za-z0-9._-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn flag(map: &Map<String, Value>, field: &str) -> Result<Option<bool>, GuardrailError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(GuardrailError::new(field, "must be true or false")),
    }
}

/// One entry of `checks` in the full shape; `None` when `is_enabled` is false.
fn full_check(item: &Value) -> Result<Option<Check>, GuardrailError> {
    let Value::Object(map) = item else {
        return Err(GuardrailError::new(
            "",
            "must be an object {\"id\": \"default.wordCount\", \"parameters\": {...}}",
        ));
    };
    for key in map.keys() {
        if !matches!(key.as_str(), "id" | "parameters" | "is_enabled" | "name") {
            return Err(GuardrailError::new(
                key.as_str(),
                "unknown field; a check has id, parameters and is_enabled",
            ));
        }
    }
    let Some(Value::String(id)) = map.get("id") else {
        return Err(GuardrailError::new(
            "id",
            "is required: the check's id, such as default.wordCount or portico.pii",
        ));
    };
    if flag(map, "is_enabled")? == Some(false) {
        return Ok(None);
    }
    let parameters = map.get("parameters").cloned().unwrap_or(Value::Null);
    Check::parse(id, &parameters, false)
        .map(Some)
        .map_err(|e| e.under("parameters"))
}

impl Check {
    /// Compiles a check from its id and parameters. `shorthand` says the id came as a key of
    /// the shorthand (errors then name the key, not `parameters`).
    pub(crate) fn parse(
        id: &str,
        parameters: &Value,
        shorthand: bool,
    ) -> Result<Check, GuardrailError> {
        let full = if id.contains('.') {
            id.to_owned()
        } else {
            format!("default.{id}")
        };
        let empty = Map::new();
        let params = match parameters {
            Value::Object(m) => m,
            Value::Null => &empty,
            // The shorthand allows `"default.alluppercase": true`.
            Value::Bool(true) if shorthand => &empty,
            _ => {
                return Err(GuardrailError::new(
                    "",
                    "the check's parameters must be an object",
                ));
            }
        };
        let kind = CheckKind::compile(&full, params)?;
        let fail_on_error = match params.get("failOnError") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(GuardrailError::new("failOnError", "must be true or false")),
        };
        Ok(Check {
            id: full,
            kind,
            fail_on_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_shorthand_and_the_full_shape_parse_alike() {
        let short = Guardrail::parse(
            &json!({"wordCount": {"minWords": 1, "maxWords": 5}, "deny": true}),
            "inline-0",
        )
        .unwrap();
        assert_eq!(short.id, "inline-0");
        assert!(short.deny);
        assert_eq!(short.checks[0].id, "default.wordCount");
        let full = Guardrail::parse(
            &json!({"id": "g", "checks": [{"id": "default.wordCount", "parameters": {"minWords": 1}},
                                          {"id": "default.alluppercase", "is_enabled": false}]}),
            "x",
        )
        .unwrap();
        assert_eq!(full.id, "g");
        assert_eq!(full.checks.len(), 1);
        assert!(!full.deny);
    }

    #[test]
    fn errors_name_the_field() {
        let err = Guardrail::parse(&json!({"default.regexMatch": {"rule": "("}}), "x").unwrap_err();
        assert_eq!(err.path, "default.regexMatch.rule");
        let err = Guardrail::parse(
            &json!({"checks": [{"id": "default.wordCount", "parameters": {"minWords": "a"}}]}),
            "x",
        )
        .unwrap_err();
        assert_eq!(err.path, "checks[0].parameters.minWords");
        let err = Guardrail::parse(&json!({"default.nope": {}}), "x").unwrap_err();
        assert!(err.message.contains("unknown check"), "{err}");
        let err = Guardrail::parse(&json!({"deny": "yes", "wordCount": {}}), "x").unwrap_err();
        assert_eq!(err.path, "deny");
        assert!(Guardrail::parse(&json!({"deny": true}), "x").is_err());
        assert!(Guardrail::parse(&json!([]), "x").is_err());
    }
}
