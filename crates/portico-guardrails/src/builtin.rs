//! The ready-made guardrails every gateway has: the seed's `pii-check` and
//! `content-moderation`. A catalog or admin guardrail with the same id replaces one.

use serde_json::json;

use crate::shape::Guardrail;

/// `pii-check`: `portico.pii` redacting every kind (the request goes on, redacted), and
/// `content-moderation`: `portico.moderation` at its default threshold, denying (446).
pub fn builtin_guardrails() -> Vec<Guardrail> {
    let specs = [
        json!({"id": "pii-check", "checks": [{"id": "portico.pii", "parameters": {"redact": true}}], "deny": false}),
        json!({"id": "content-moderation", "checks": [{"id": "portico.moderation", "parameters": {}}], "deny": true}),
    ];
    specs
        .iter()
        .filter_map(|spec| Guardrail::parse(spec, "builtin").ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_parse() {
        let ids: Vec<String> = super::builtin_guardrails()
            .into_iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(ids, ["pii-check", "content-moderation"]);
    }
}
