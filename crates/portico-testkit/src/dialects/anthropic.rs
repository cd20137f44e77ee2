//! Default replies in Anthropic's dialect: `POST /v1/messages`.
//!
//! The same answers as the OpenAI defaults: `echo: <last user text>`; with `tools` offered,
//! the last turn the user's own text (no `tool_result`) and `tool_choice` not `none`, a
//! `tool_use` of the first (or the forced) tool with input `{}`; after a `tool_result`,
//! `tool result: <its content>`. `stream: true` gives Anthropic's event sequence
//! (`message_start`, `ping`, per block `content_block_start` / deltas / `content_block_stop`,
//! `message_delta` with the stop reason and output tokens, `message_stop`), the text split
//! over several deltas and the tool input over two `input_json_delta` fragments. Ids are
//! `msg_mock_<seq>` and `toolu_mock_<seq>`; tokens are whitespace-separated words. A body
//! without `max_tokens` gets Anthropic's 400.

use serde_json::{Map, Value, json};

use crate::defaults::MOCK_CHAT_MODEL;
use crate::script::SseScript;
use crate::{MockReply, RecordedRequest};

/// The default reply for a request on one of anthropic's paths; `None` for other paths.
pub(super) fn default_reply(req: &RecordedRequest) -> Option<MockReply> {
    if req.method != "POST" || req.path != "/v1/messages" {
        return None;
    }
    let Some(body) = req.json.as_ref().and_then(Value::as_object) else {
        return Some(error(
            400,
            "invalid_request_error",
            "There was an issue with the formatting of your request: the body is not valid JSON.",
        ));
    };
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return Some(error(
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ));
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Some(error(
            400,
            "invalid_request_error",
            "messages: Field required",
        ));
    };
    Some(reply(req.seq, body, messages))
}

/// An error in Anthropic's shape.
fn error(status: u16, kind: &str, message: &str) -> MockReply {
    MockReply::json(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

enum Answer {
    Text(String),
    Tool(String),
}

/// The text of a content value: a string, or the text blocks (and the text of tool results)
/// joined by a space.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(str::to_owned),
                Some("tool_result") => Some(text_of(b.get("content"))),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn tool_results(message: &Value) -> Vec<&Value> {
    message
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .collect()
        })
        .unwrap_or_default()
}

fn answer(body: &Map<String, Value>, messages: &[Value]) -> Answer {
    let last = messages.last();
    let role = |m: &Value| m.get("role").and_then(Value::as_str) == Some("user");
    if let Some(results) = last.filter(|m| role(m)).map(tool_results)
        && let Some(first) = results.first()
    {
        return Answer::Text(format!("tool result: {}", text_of(first.get("content"))));
    }
    let tools = body.get("tools").and_then(Value::as_array);
    let choice = body.get("tool_choice");
    let choice_type = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    if last.is_some_and(role) && tools.is_some_and(|t| !t.is_empty()) && choice_type != Some("none")
    {
        let forced = choice.and_then(|c| c.get("name"));
        let first = tools.and_then(|t| t.first()?.get("name"));
        if let Some(name) = forced.or(first).and_then(Value::as_str) {
            return Answer::Tool(name.to_owned());
        }
    }
    let user = messages.iter().rev().find(|m| role(m));
    Answer::Text(format!(
        "echo: {}",
        text_of(user.and_then(|m| m.get("content")))
    ))
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn reply(seq: usize, body: &Map<String, Value>, messages: &[Value]) -> MockReply {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(MOCK_CHAT_MODEL);
    let id = format!("msg_mock_{seq}");
    let tool_id = format!("toolu_mock_{seq}");
    let system = text_of(body.get("system"));
    let input_tokens = (words(&system)
        + messages
            .iter()
            .map(|m| words(&text_of(m.get("content"))))
            .sum::<u64>())
    .max(1);
    let answer = answer(body, messages);
    let (block, output_tokens, stop) = match &answer {
        Answer::Text(text) => (
            json!({"type": "text", "text": text}),
            words(text),
            "end_turn",
        ),
        Answer::Tool(name) => (
            json!({"type": "tool_use", "id": tool_id, "name": name, "input": {}}),
            words(name) + 1,
            "tool_use",
        ),
    };
    let usage = json!({"input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    if body.get("stream") != Some(&Value::Bool(true)) {
        return MockReply::json(
            200,
            json!({"id": id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop, "stop_sequence": null, "usage": usage}),
        );
    }
    let event = |script: SseScript, data: Value| {
        let name = data["type"].as_str().unwrap_or_default().to_owned();
        script.bytes(format!("event: {name}\ndata: {data}\n\n"))
    };
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut script = event(
        SseScript::new(),
        json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": start_usage}}),
    );
    script = event(script, json!({"type": "ping"}));
    match &answer {
        Answer::Text(text) => {
            script = event(
                script,
                json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            );
            for (i, word) in text.split(' ').enumerate() {
                let piece = if i == 0 {
                    word.to_owned()
                } else {
                    format!(" {word}")
                };
                script = event(
                    script,
                    json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": piece}}),
                );
            }
        }
        Answer::Tool(name) => {
            script = event(
                script,
                json!({"type": "content_block_start", "index": 0, "content_block":
                    {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}),
            );
            for fragment in ["{", "}"] {
                script = event(
                    script,
                    json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": fragment}}),
                );
            }
        }
    }
    script = event(script, json!({"type": "content_block_stop", "index": 0}));
    script = event(
        script,
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}),
    );
    MockReply::sse(event(script, json!({"type": "message_stop"})))
}
