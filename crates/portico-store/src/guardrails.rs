//! Named guardrails as stored: the catalog file's and the admin API's.

/// A guardrail as stored: Portkey's guardrail JSON under its id.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailRecord {
    /// Unique id (routing configs name the guardrail by it).
    pub id: String,
    /// The guardrail JSON as given; validated (compiled) before it was written.
    pub guardrail: serde_json::Value,
    /// Where it came from: `file` or `api`.
    pub source: crate::RecordSource,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last change.
    pub updated_at_ms: i64,
}

/// A named guardrail of the catalog file, as an apply declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailSpec {
    /// Unique id.
    pub id: String,
    /// The guardrail JSON as the file gives it; compiled by the caller before the apply.
    pub guardrail: serde_json::Value,
}
