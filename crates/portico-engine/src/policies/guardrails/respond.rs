//! The bodies guardrails answer with: 446 (refused, `hooks_failed`) and the `hook_results`
//! added to a flagged (246) answer, in each API family's shape.

use bytes::Bytes;
use portico_guardrails::HookResults;
use serde_json::{Value, json};

use crate::pipeline::Family;
use crate::pipeline::policy::Refusal;

/// The status of a refused request (Portkey's).
pub(crate) const REFUSED: u16 = 446;
/// The status of a flagged answer (Portkey's).
pub(crate) const FLAGGED: u16 = 246;
/// The log's error code for a refusal.
pub(crate) const HOOKS_FAILED: &str = "hooks_failed";
/// What a refusal says.
pub(crate) const MESSAGE: &str = "The guardrail checks defined in the config failed. You can find more information in the `hook_results` object.";

/// A 446 body: the family's error shape with `hook_results` beside `error`.
pub(crate) fn refusal(family: Family, results: &HookResults) -> Refusal {
    let hook_results = results.to_json();
    let body = match family {
        Family::OpenAi(_) => json!({
            "error": {"message": MESSAGE, "type": HOOKS_FAILED, "param": null, "code": null},
            "hook_results": hook_results,
        }),
        Family::Messages => json!({
            "type": "error",
            "error": {"type": HOOKS_FAILED, "message": MESSAGE},
            "hook_results": hook_results,
        }),
    };
    Refusal {
        status: REFUSED,
        body,
        code: HOOKS_FAILED.to_owned(),
        message: MESSAGE.to_owned(),
    }
}

/// A whole answer with `hook_results` added at its top level; unchanged when it is not a
/// JSON object.
pub(crate) fn with_results(body: &Bytes, results: &HookResults) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    object.insert("hook_results".to_owned(), results.to_json());
    serde_json::to_vec(&value).ok().map(Bytes::from)
}
