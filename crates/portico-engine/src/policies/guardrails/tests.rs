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

/// Async guardrails take a slot in the background when the request ends; beyond the bound
/// they are recorded as not run and the record needs no waiting.
#[tokio::test]
async fn async_guardrails_run_deferred_within_their_bound() {
    use std::sync::Arc;

    use arc_swap::{ArcSwap, ArcSwapOption};
    use portico_core::{JsonBody, RequestRecord};
    use portico_guardrails::AddressGuard;

    use super::Shared;
    use super::run::GuardrailsRun;
    use crate::pipeline::policy::{Finished, Output, PolicyRequest, PolicyRun};
    use crate::snapshot::KeyEntry;

    let shared = Arc::new(Shared {
        client: portico_providers::http::build_client(Default::default()).unwrap(),
        guard: ArcSwap::from_pointee(AddressGuard::default()),
        snapshot: ArcSwapOption::empty(),
        async_slots: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    let guardrail = Arc::new(
        Guardrail::parse(
            &json!({"default.wordCount": {"maxWords": 1}, "deny": true, "async": true}),
            "input_guardrails[0]",
        )
        .unwrap(),
    );
    let key = KeyEntry::for_jwt("u".to_owned(), Default::default());
    let headers = http::HeaderMap::new();
    let mut runs = Vec::new();
    let mut records = Vec::new();
    for _ in 0..2 {
        let mut record = RequestRecord::new("r".to_owned(), 0, "chat.completions");
        let mut body = JsonBody::parse(bytes::Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"two words"}]}"#,
        ))
        .unwrap();
        let mut request = PolicyRequest {
            family: Family::OpenAi(Endpoint::ChatCompletions),
            key: &key,
            record: &mut record,
            headers: &headers,
            config: None,
            body: &mut body,
            model: None,
        };
        let mut run = GuardrailsRun::new(
            Arc::clone(&shared),
            &request,
            vec![Arc::clone(&guardrail)],
            Vec::new(),
            None,
        );
        run.before(&mut request).await.unwrap();
        assert!(!run.checks_output());
        // Nothing ran on the request path.
        run.annotate(&mut record);
        runs.push(run);
        records.push(record);
    }
    let first = runs[0]
        .deferred(&Finished {
            record: &records[0],
            output: Output::None,
        })
        .expect("the first request has a slot");
    assert_eq!(records[0].guardrails, None);
    // The second found the background full: recorded at once as not run.
    assert!(
        runs[1]
            .deferred(&Finished {
                record: &records[1],
                output: Output::None,
            })
            .is_none()
    );
    let skipped = &records[1].guardrails.as_ref().unwrap()["before_request_hooks"][0];
    assert_eq!(skipped["verdict"], true, "{skipped}");
    assert!(
        skipped["checks"][0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not run")),
        "{skipped}"
    );
    assert_eq!(shared.async_slots.available_permits(), 0);
    let amend = first.await;
    assert_eq!(shared.async_slots.available_permits(), 1);
    amend(&mut records[0]);
    let ran = &records[0].guardrails.as_ref().unwrap()["before_request_hooks"][0];
    assert_eq!(ran["verdict"], false, "{ran}");
    assert_eq!(ran["async"], true, "{ran}");
}
