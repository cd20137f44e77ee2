//! OpenAI requests → Gemini requests.

use portico_providers::chat::ChatRequest;
use serde_json::{Value, json};

use super::fixture;
use crate::request::to_gemini;

fn translate(body: &Value) -> Result<Value, String> {
    let req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
    to_gemini(&req, &req.model, req.stream.unwrap_or(false))
        .map(|wire| serde_json::to_value(wire).unwrap())
        .map_err(|e| e.to_string())
}

fn snapshot(name: &str) -> Value {
    translate(&fixture(&format!("requests/{name}.json"))).unwrap()
}

#[test]
fn system_and_multi_turn() {
    insta::assert_json_snapshot!(snapshot("system_multi_turn"));
}

#[test]
fn images_audio_and_files() {
    insta::assert_json_snapshot!(snapshot("images"));
}

#[test]
fn tools_with_json_schema() {
    insta::assert_json_snapshot!(snapshot("tools"));
}

#[test]
fn parallel_tool_results_with_rewritten_ids() {
    let out = snapshot("parallel_tool_results");
    insta::assert_json_snapshot!(out);
    // The three results of the first turn travel in one user turn, named from the calls.
    let names: Vec<&str> = out["contents"][2]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["functionResponse"]["name"].as_str())
        .collect();
    assert_eq!(names, ["get_weather", "get_weather", "now"]);
    assert_eq!(
        out["contents"][2]["parts"][3],
        json!({"text": "Thanks. Summarise."})
    );
}

#[test]
fn json_mode() {
    insta::assert_json_snapshot!(snapshot("json_mode"));
}

#[test]
fn json_schema() {
    insta::assert_json_snapshot!(snapshot("json_schema"));
}

#[test]
fn thinking_levels_and_budgets() {
    insta::assert_json_snapshot!("thinking_gemini3", snapshot("thinking_gemini3"));
    insta::assert_json_snapshot!("thinking_gemini25", snapshot("thinking_gemini25"));
}

#[test]
fn reasoning_effort_table() {
    let mut table = serde_json::Map::new();
    for model in ["gemini-2.5-flash", "gemini-3-flash-preview"] {
        for effort in ["none", "minimal", "low", "medium", "high"] {
            let body = json!({"model": model, "reasoning_effort": effort,
                              "messages": [{"role": "user", "content": "hi"}]});
            let out = translate(&body).unwrap();
            table.insert(
                format!("{model} {effort}"),
                out["generationConfig"]["thinkingConfig"].clone(),
            );
        }
    }
    insta::assert_json_snapshot!(table);
}

#[test]
fn tool_choice_variants() {
    let base = fixture("requests/tools.json");
    let mut configs = Vec::new();
    for choice in [
        json!("auto"),
        json!("none"),
        json!("required"),
        json!({"type": "function", "function": {"name": "now"}}),
    ] {
        let mut body = base.clone();
        body["tool_choice"] = choice.clone();
        configs.push(
            json!({"tool_choice": choice, "toolConfig": translate(&body).unwrap()["toolConfig"]}),
        );
    }
    let mut without = base.clone();
    without.as_object_mut().unwrap().remove("tool_choice");
    configs.push(
        json!({"tool_choice": null, "toolConfig": translate(&without).unwrap()["toolConfig"]}),
    );
    insta::assert_json_snapshot!(configs);
}

#[test]
fn only_system_messages_become_a_user_turn() {
    let body = json!({"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Say hi."}]});
    let out = translate(&body).unwrap();
    assert_eq!(
        out["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hi."}]}])
    );
    assert!(out.get("systemInstruction").is_none());
}

#[test]
fn gemini_specific_fields_pass_through() {
    let body = json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}],
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cached_content": "cachedContents/abc",
        "thinking": {"type": "enabled", "budget_tokens": 2048}});
    let out = translate(&body).unwrap();
    assert_eq!(out["safetySettings"][0]["threshold"], "BLOCK_NONE");
    assert_eq!(out["cachedContent"], "cachedContents/abc");
    assert_eq!(
        out["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
}

#[test]
fn what_gemini_cannot_take_is_a_clear_400() {
    let user = |content: Value| json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": content}]});
    let cases = [
        (
            json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]}),
            "no earlier assistant message has a tool call with that id",
        ),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])),
            "must be an https://, http:// or gs:// URL",
        ),
        (
            user(json!([{"type": "file", "file": {"file_id": "file-abc"}}])),
            "file_id cannot be read by Gemini",
        ),
        (
            user(json!([{"type": "video", "video": {}}])),
            "has type \"video\"",
        ),
        (
            json!({"model": "m", "stream": true, "n": 2, "messages": [{"role": "user", "content": "x"}]}),
            "n > 1 cannot be streamed",
        ),
        (
            json!({"model": "m", "reasoning_effort": "max", "messages": [{"role": "user", "content": "x"}]}),
            "reasoning_effort \"max\"",
        ),
        (
            json!({"model": "m", "tool_choice": "sometimes", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tool_choice \"sometimes\"",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters":
                       {"type": "object", "properties": {"next": {"$ref": "#"}}}}}]}),
            "the parameters of tool \"f\" has a $ref \"#\" that cannot be resolved",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}),
            "messages[0].tool_calls[0].function.arguments is not valid JSON",
        ),
    ];
    for (body, expected) in cases {
        let err = translate(&body).unwrap_err();
        assert!(
            err.contains(expected),
            "{err}\n does not contain: {expected}"
        );
        // Refused by the gateway before anything was sent: never passed off as an upstream
        // status (a 400 `invalid_parameter` for the client).
        assert!(
            err.starts_with("the request cannot be sent to this provider"),
            "{err}"
        );
    }
}
