//! Default replies in OpenAI's Responses API: `POST /v1/responses` (what an OpenAI
//! provider gets from the gateway untouched).
//!
//! The same answers as the chat defaults: `echo: <last user text>`; with `tools` offered
//! and a user message last (and `tool_choice` not `none`), a `function_call` of the first
//! (or the forced) tool with arguments `{}`; after a `function_call_output`,
//! `tool result: <its output>`. `stream: true` gives the typed events in OpenAI's order,
//! each named and numbered, ending with `response.completed` and its usage. Ids are
//! `resp_mock_<seq>`, `msg_mock_<seq>`, `fc_mock_<seq>` and `call_mock_<seq>`; tokens are
//! whitespace-separated words. The mock keeps nothing: `previous_response_id` is recorded,
//! not resolved.

use serde_json::{Map, Value, json};

use crate::defaults::MOCK_CHAT_MODEL;
use crate::script::SseScript;
use crate::{MockReply, RecordedRequest};

/// The default reply for `POST /v1/responses`; `None` for other paths.
pub(super) fn default_reply(req: &RecordedRequest) -> Option<MockReply> {
    if req.method != "POST" || req.path != "/v1/responses" {
        return None;
    }
    let Some(body) = req.json.as_ref().and_then(Value::as_object) else {
        return Some(MockReply::error(
            400,
            "We could not parse the JSON body of your request.",
        ));
    };
    Some(reply(req.seq, body))
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn items(body: &Map<String, Value>) -> Vec<Value> {
    match body.get("input") {
        Some(Value::String(s)) => vec![json!({"role": "user", "content": s})],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

enum Answer {
    Text(String),
    Call(String),
}

fn answer(body: &Map<String, Value>, items: &[Value]) -> Answer {
    let last = items.last();
    let kind = |item: &Value| {
        item.get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_owned()
    };
    if let Some(last) = last.filter(|l| kind(l) == "function_call_output") {
        return Answer::Text(format!("tool result: {}", text_of(last.get("output"))));
    }
    let user_last = last.is_some_and(|l| l.get("role").and_then(Value::as_str) == Some("user"));
    let tools = body.get("tools").and_then(Value::as_array);
    let choice = body.get("tool_choice");
    if user_last
        && tools.is_some_and(|t| !t.is_empty())
        && choice.and_then(Value::as_str) != Some("none")
    {
        let forced = choice.and_then(|c| c.get("name"));
        let first = tools.and_then(|t| t.first()?.get("name"));
        if let Some(name) = forced.or(first).and_then(Value::as_str) {
            return Answer::Call(name.to_owned());
        }
    }
    let user = items
        .iter()
        .rev()
        .find(|i| i.get("role").and_then(Value::as_str) == Some("user"));
    Answer::Text(format!(
        "echo: {}",
        text_of(user.and_then(|u| u.get("content")))
    ))
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn reply(seq: usize, body: &Map<String, Value>) -> MockReply {
    let items = items(body);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(MOCK_CHAT_MODEL);
    let input_tokens = items
        .iter()
        .map(|i| words(&text_of(i.get("content").or_else(|| i.get("output")))))
        .sum::<u64>()
        .max(1);
    let item = match answer(body, &items) {
        Answer::Text(text) => json!({
            "type": "message", "id": format!("msg_mock_{seq}"), "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
        Answer::Call(name) => json!({
            "type": "function_call", "id": format!("fc_mock_{seq}"),
            "call_id": format!("call_mock_{seq}"), "name": name, "arguments": "{}",
            "status": "completed",
        }),
    };
    let output_tokens = words(&text_of(item.get("content"))).max(1);
    let usage = json!({
        "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    });
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": format!("resp_mock_{seq}"), "object": "response", "created_at": 1_700_000_000,
            "status": status, "error": null, "incomplete_details": null, "model": model,
            "output": output, "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store").cloned().unwrap_or(Value::Bool(true)),
            "usage": usage,
        })
    };
    if body.get("stream") != Some(&Value::Bool(true)) {
        return MockReply::json(200, response("completed", json!([item]), usage));
    }
    let mut sequence = 0;
    let mut script = SseScript::new();
    let mut event = |script: SseScript, kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        script.bytes(format!("event: {kind}\ndata: {data}\n\n"))
    };
    script = event(
        script,
        "response.created",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    let id = item["id"].clone();
    if item["type"] == "message" {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        added["content"] = json!([]);
        script = event(
            script,
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
        );
        script = event(
            script,
            "response.content_part.added",
            json!({"item_id": id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        let text = item["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for (i, word) in text.split(' ').enumerate() {
            let delta = if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            };
            script = event(
                script,
                "response.output_text.delta",
                json!({"item_id": id, "output_index": 0, "content_index": 0, "delta": delta}),
            );
        }
        script = event(
            script,
            "response.output_text.done",
            json!({"item_id": id, "output_index": 0, "content_index": 0, "text": text}),
        );
        script = event(
            script,
            "response.content_part.done",
            json!({"item_id": id, "output_index": 0, "content_index": 0, "part": item["content"][0]}),
        );
    } else {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        added["arguments"] = json!("");
        script = event(
            script,
            "response.output_item.added",
            json!({"output_index": 0, "item": added}),
        );
        script = event(
            script,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": 0, "delta": "{}"}),
        );
        script = event(
            script,
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": 0, "arguments": "{}"}),
        );
    }
    script = event(
        script,
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    script = event(
        script,
        "response.completed",
        json!({"response": response("completed", json!([item]), usage)}),
    );
    MockReply::sse(script)
}
