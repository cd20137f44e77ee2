//! Guardrail results and the `hook_results` JSON Portkey answers with (446 and 246 bodies,
//! and the request log's `guardrails`).

use serde_json::{Value, json};

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The check id (`default.wordCount`).
    pub id: String,
    /// Passed (an error without `failOnError` passes).
    pub verdict: bool,
    /// Why, in one sentence.
    pub explanation: String,
    /// Details.
    pub data: Option<Value>,
    /// Why no verdict could be reached, if none was.
    pub error: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// Whether it rewrote the request or the answer.
    pub transformed: bool,
}

/// One guardrail's result: its checks'.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailResult {
    /// The guardrail id.
    pub id: String,
    /// Every check passed.
    pub verdict: bool,
    /// `deny`.
    pub deny: bool,
    /// `async`.
    pub is_async: bool,
    /// Some check rewrote the request or the answer.
    pub transformed: bool,
    /// The checks, in order.
    pub checks: Vec<CheckResult>,
    /// The whole guardrail's time, in microseconds.
    pub duration_us: u64,
}

impl GuardrailResult {
    /// Failed with `deny: true` (and not `async`): the request is refused (446).
    pub fn denies(&self) -> bool {
        !self.verdict && self.deny && !self.is_async
    }

    /// Failed without denying (and not `async`): the answer is flagged (246).
    pub fn flags(&self) -> bool {
        !self.verdict && !self.deny && !self.is_async
    }
}

/// The results of a request's input and output guardrails.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookResults {
    /// `input_guardrails` (Portkey's `before_request_hooks`).
    pub before: Vec<GuardrailResult>,
    /// `output_guardrails` (Portkey's `after_request_hooks`).
    pub after: Vec<GuardrailResult>,
}

fn ms(us: u64) -> u64 {
    us / 1000
}

impl CheckResult {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "verdict": self.verdict,
            "explanation": self.explanation,
            "data": self.data,
            "error": self.error.as_ref().map(|e| json!({"message": e})),
            "transformed": self.transformed,
            "execution_time": ms(self.duration_us),
            "duration_us": self.duration_us,
        })
    }
}

impl GuardrailResult {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "verdict": self.verdict,
            "deny": self.deny,
            "async": self.is_async,
            "type": "guardrail",
            "transformed": self.transformed,
            "execution_time": ms(self.duration_us),
            "duration_us": self.duration_us,
            "checks": self.checks.iter().map(CheckResult::to_json).collect::<Vec<_>>(),
        })
    }
}

impl HookResults {
    /// Whether nothing ran.
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }

    /// Some guardrail refuses the request.
    pub fn denied(&self) -> bool {
        self.before
            .iter()
            .chain(&self.after)
            .any(GuardrailResult::denies)
    }

    /// Some guardrail flags the answer (246).
    pub fn flagged(&self) -> bool {
        self.before
            .iter()
            .chain(&self.after)
            .any(GuardrailResult::flags)
    }

    /// Portkey's `hook_results` object.
    pub fn to_json(&self) -> Value {
        json!({
            "before_request_hooks": self.before.iter().map(GuardrailResult::to_json).collect::<Vec<_>>(),
            "after_request_hooks": self.after.iter().map(GuardrailResult::to_json).collect::<Vec<_>>(),
        })
    }

    /// Every check result, for metrics: (check id, passed).
    pub fn checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.before
            .iter()
            .chain(&self.after)
            .flat_map(|g| &g.checks)
    }
}
