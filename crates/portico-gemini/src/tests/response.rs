//! Gemini answers → chat completions, and the thought signature's round trip.

use portico_providers::chat::ChatRequest;
use serde_json::{Value, json};

use super::fixture;
use crate::request::to_gemini;
use crate::response::to_chat;
use crate::wire::GenerateContentResponse;

const CREATED: u64 = 1_700_000_000;

fn answer(name: &str) -> Result<Value, String> {
    let wire: GenerateContentResponse =
        serde_json::from_value(fixture(&format!("responses/{name}.json"))).unwrap();
    to_chat(wire, "requested-model", CREATED)
        .map(|chat| serde_json::to_value(chat).unwrap())
        .map_err(|e| e.to_string())
}

macro_rules! snapshot_answers {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_json_snapshot!(answer(stringify!($name)).unwrap(), {".created" => "[created]"});
        }
    )*};
}

snapshot_answers!(
    text,
    function_call,
    parallel_function_calls,
    thoughts,
    max_tokens,
    safety,
    prompt_blocked,
    two_candidates,
);

#[test]
fn malformed_function_call_is_a_retryable_error() {
    let err = answer("malformed_function_call").unwrap_err();
    assert!(err.starts_with("upstream answered 502"), "{err}");
    assert!(
        err.contains("MALFORMED_FUNCTION_CALL: Malformed function call"),
        "{err}"
    );
}

#[test]
fn each_finish_reason() {
    let mut table = serde_json::Map::new();
    for reason in [
        "STOP",
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "OTHER",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "FINISH_REASON_UNSPECIFIED",
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "SOMETHING_NEW",
    ] {
        for calls in [false, true] {
            let mut parts = vec![json!({"text": "x"})];
            if calls {
                parts.push(json!({"functionCall": {"name": "f", "args": {}}}));
            }
            let wire: GenerateContentResponse = serde_json::from_value(json!({
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason}],
                "responseId": "r"
            }))
            .unwrap();
            let mapped = match to_chat(wire, "m", CREATED) {
                Ok(chat) => json!(chat.choices[0].finish_reason),
                Err(err) => json!(format!("error {}", err.status().unwrap_or(0))),
            };
            table.insert(format!("{reason} (tool calls: {calls})"), mapped);
        }
    }
    insta::assert_json_snapshot!(table);
}

#[test]
fn an_answer_without_candidates_or_block_reason_is_malformed() {
    let wire: GenerateContentResponse = serde_json::from_value(json!({"responseId": "x"})).unwrap();
    assert!(matches!(
        to_chat(wire, "m", CREATED),
        Err(portico_providers::ProviderError::Malformed(_))
    ));
}

/// The signature Gemini put on a call comes back on that call in the next request, even
/// after the client removed the underscores of the ids (as OpenClaw does).
#[test]
fn thought_signatures_round_trip_through_rewritten_ids() {
    let first = answer("parallel_function_calls").unwrap();
    let calls = first["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .clone();
    let rewritten: Vec<Value> = calls
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["id"] = json!(c["id"].as_str().unwrap().replace('_', ""));
            c
        })
        .collect();
    let mut messages = vec![
        json!({"role": "user", "content": "weather?"}),
        json!({"role": "assistant", "content": "Checking both cities.", "tool_calls": rewritten}),
    ];
    // Results in another order than the calls: matched by id, and sent in the calls' order.
    for (i, result) in [(2, "12:00"), (0, "18C"), (1, "22C")] {
        messages
            .push(json!({"role": "tool", "tool_call_id": rewritten[i]["id"], "content": result}));
    }
    let body = json!({"model": "gemini-3-pro-preview", "messages": messages});
    let req: ChatRequest = serde_json::from_value(body).unwrap();
    let out = serde_json::to_value(to_gemini(&req, &req.model, false).unwrap()).unwrap();
    let model_parts = &out["contents"][1]["parts"];
    assert_eq!(model_parts[0], json!({"text": "Checking both cities."}));
    assert_eq!(model_parts[1]["thoughtSignature"], "c2lnbmF0dXJlLW9uZQ==");
    assert_eq!(
        model_parts[1]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    assert!(model_parts[2].get("thoughtSignature").is_none());
    assert_eq!(
        model_parts[3]["functionCall"],
        json!({"name": "now", "args": {}})
    );
    let results: Vec<(&str, &Value)> = out["contents"][2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["functionResponse"]["name"].as_str().unwrap(),
                &p["functionResponse"]["response"],
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("get_weather", &json!({"output": "18C"})),
            ("get_weather", &json!({"output": "22C"})),
            ("now", &json!({"output": "12:00"}))
        ]
    );
}
