//! SSE helpers for tests: split a full SSE body into its `data:` payloads, and assemble an
//! OpenAI chat stream into the message it describes (content, tool calls by index, usage).
//!
//! These read a whole body at once; they are for asserting on results, not for production
//! parsing (that lives in `portico-providers`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::defaults::{CREATED, MOCK_CHAT_MODEL};

/// The `data:` payloads of a complete SSE body, in order, including a final `[DONE]`.
///
/// Events are separated by blank lines; an event with several `data:` lines yields them
/// joined by `\n`; one space after `data:` is stripped; `\r\n` line endings are accepted;
/// comments (`:`), `event:`, `id:` and `retry:` lines are ignored.
pub fn parse_sse_data(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in body.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            out.extend(current.take());
            continue;
        }
        let Some(rest) = line.strip_prefix("data:") else {
            continue;
        };
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match &mut current {
            Some(data) => {
                data.push('\n');
                data.push_str(rest);
            }
            None => current = Some(rest.to_owned()),
        }
    }
    out.extend(current);
    out
}

/// An OpenAI chat stream put back together (choice 0 only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssembledChat {
    /// The `id` of the first chunk that had one.
    pub id: Option<String>,
    /// The `model` of the first chunk that had one.
    pub model: Option<String>,
    /// The `delta.role` seen (normally `assistant`, in the first chunk).
    pub role: Option<String>,
    /// All `delta.content` fragments concatenated.
    pub content: String,
    /// Tool calls assembled by `index`, in index order.
    pub tool_calls: Vec<AssembledToolCall>,
    /// The last non-null `finish_reason`.
    pub finish_reason: Option<String>,
    /// The `usage` of the last chunk where it was not null.
    pub usage: Option<Value>,
    /// An in-band `{"error": ...}` event, if one arrived.
    pub error: Option<Value>,
    /// Number of JSON chunks (excluding `[DONE]`).
    pub chunks: usize,
    /// Whether `data: [DONE]` arrived.
    pub done: bool,
}

/// One tool call of an [`AssembledChat`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssembledToolCall {
    /// The `index` the fragments were keyed by.
    pub index: u64,
    /// The `id` (sent in the first fragment).
    pub id: Option<String>,
    /// The function name (sent in the first fragment).
    pub name: String,
    /// All `function.arguments` fragments concatenated.
    pub arguments: String,
}

/// Assemble a complete OpenAI chat SSE body. Fails if a payload other than `[DONE]` is not
/// JSON.
pub fn collect_chat_stream(body: &str) -> Result<AssembledChat, serde_json::Error> {
    let mut chat = AssembledChat::default();
    let mut tools: BTreeMap<u64, AssembledToolCall> = BTreeMap::new();
    for data in parse_sse_data(body) {
        if data == "[DONE]" {
            chat.done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&data)?;
        chat.chunks += 1;
        if let Some(error) = chunk.get("error") {
            chat.error = Some(error.clone());
            continue;
        }
        if chat.id.is_none() {
            chat.id = str_field(&chunk, "id");
        }
        if chat.model.is_none() {
            chat.model = str_field(&chunk, "model");
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            chat.usage = Some(usage.clone());
        }
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| {
                choices
                    .iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        let Some(choice) = choice else { continue };
        if let Some(reason) = str_field(choice, "finish_reason") {
            chat.finish_reason = Some(reason);
        }
        let Some(delta) = choice.get("delta") else {
            continue;
        };
        if let Some(role) = str_field(delta, "role") {
            chat.role = Some(role);
        }
        if let Some(content) = delta.get("content").and_then(Value::as_str) {
            chat.content.push_str(content);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let entry = tools.entry(index).or_insert_with(|| AssembledToolCall {
                index,
                ..AssembledToolCall::default()
            });
            if let Some(id) = str_field(call, "id") {
                entry.id = Some(id);
            }
            if let Some(function) = call.get("function") {
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    entry.name.push_str(name);
                }
                if let Some(args) = function.get("arguments").and_then(Value::as_str) {
                    entry.arguments.push_str(args);
                }
            }
        }
    }
    chat.tool_calls = tools.into_values().collect();
    Ok(chat)
}

fn str_field(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A `chat.completion.chunk` with one choice (index 0) carrying `delta`, in the same shape
/// (id `chatcmpl-mock`, model `mock-chat`) the mock's default streams use. For scripts.
pub fn chat_chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MOCK_CHAT_MODEL,
        "system_fingerprint": "fp_mock",
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_data_payloads() {
        let body = ": comment\r\nevent: x\r\ndata: {\"a\":1}\r\n\r\ndata:one\ndata: two\n\ndata: [DONE]\n\n";
        assert_eq!(parse_sse_data(body), ["{\"a\":1}", "one\ntwo", "[DONE]"]);
        assert_eq!(parse_sse_data("data: tail"), ["tail"]);
    }

    #[test]
    fn assembles_content_and_tool_calls() {
        let chunks = [
            chat_chunk(json!({"role": "assistant", "content": ""}), None),
            chat_chunk(json!({"content": "Hel"}), None),
            chat_chunk(json!({"content": "lo"}), None),
            chat_chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                    "function": {"name": "b", "arguments": ""}}]}),
                None,
            ),
            chat_chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                    "function": {"name": "a", "arguments": "{\"x\""}}]}),
                None,
            ),
            chat_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                None,
            ),
            chat_chunk(json!({}), Some("tool_calls")),
            json!({"id": "chatcmpl-mock", "choices": [], "usage": {"total_tokens": 3}}),
        ];
        let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        body.push_str("data: [DONE]\n\n");
        let chat = collect_chat_stream(&body).unwrap();
        assert_eq!(chat.role.as_deref(), Some("assistant"));
        assert_eq!(chat.content, "Hello");
        assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(chat.usage, Some(json!({"total_tokens": 3})));
        assert_eq!(chat.chunks, 8);
        assert!(chat.done);
        let calls: Vec<_> = chat
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.index,
                    c.id.as_deref(),
                    c.name.as_str(),
                    c.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                (0, Some("call_a"), "a", "{\"x\":1}"),
                (1, Some("call_b"), "b", "")
            ]
        );
    }

    #[test]
    fn records_in_band_error() {
        let body = "data: {\"error\":{\"message\":\"boom\"}}\n\n";
        let chat = collect_chat_stream(body).unwrap();
        assert_eq!(chat.error, Some(json!({"message": "boom"})));
        assert!(!chat.done);
    }
}
