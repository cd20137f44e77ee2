//! Unit tests of the guardrails policy's pieces that need no gateway (the e2e tests in
//! crates/portico/tests/it/guardrails.rs cover the hooks end to end).

use portico_core::Endpoint;
use portico_guardrails::{Guardrail, HookResults};
use serde_json::json;

use super::respond;
use crate::pipeline::Family;

#[test]
fn refusals_take_each_familys_shape_with_hook_results_beside_error() {
    let results = HookResults::default();
    let openai = respond::refusal(Family::OpenAi(Endpoint::ChatCompletions), &results);
    assert_eq!(openai.status, 446);
    assert_eq!(openai.body["error"]["type"], "hooks_failed");
    assert!(openai.body["hook_results"]["before_request_hooks"].is_array());
    let messages = respond::refusal(Family::Messages, &results);
    assert_eq!(messages.body["type"], "error");
    assert_eq!(messages.body["error"]["type"], "hooks_failed");
    assert!(messages.body["hook_results"].is_object());
}

#[test]
fn flagged_answers_get_hook_results_at_the_top_level() {
    let body = bytes::Bytes::from_static(br#"{"id":"x","choices":[]}"#);
    let out = respond::with_results(&body, &HookResults::default()).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(value["id"], "x");
    assert!(value["hook_results"]["after_request_hooks"].is_array());
    assert!(
        respond::with_results(&bytes::Bytes::from_static(b"[1]"), &HookResults::default())
            .is_none()
    );
    let _ = Guardrail::parse(&json!({"wordCount": {}}), "x").unwrap();
}
