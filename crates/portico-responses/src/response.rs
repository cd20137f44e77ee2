//! Chat completion → Response object, for a Responses request a provider answered in chat
//! completions. Pure.

use portico_providers::ProviderError;
use portico_providers::chat::{ChatResponse, finish};
use serde_json::{Value, json};

use crate::turn::{Turn, usage_json};

/// The Response object answering `turn` from a chat completion's body.
///
/// # Errors
///
/// [`ProviderError::Malformed`] when the body is not a chat completion.
pub fn from_chat_body(body: &[u8], turn: &Turn) -> Result<Value, ProviderError> {
    let chat: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        ProviderError::Malformed(format!("the answer is not a chat completion: {e}"))
    })?;
    Ok(from_chat(&chat, turn))
}

/// The Response object answering `turn` from `chat`: its reasoning, text (or refusal) and
/// tool calls become output items in that order, its finish reason the status.
pub fn from_chat(chat: &ChatResponse, turn: &Turn) -> Value {
    let mut output = Vec::new();
    let mut reason = None;
    if let Some(choice) = chat.choices.first() {
        reason = choice.finish_reason.as_deref();
        let message = &choice.message;
        if let Some(reasoning) = message.reasoning_content.as_ref().filter(|r| !r.is_empty()) {
            output.push(reasoning_item(turn.item_id("rs", output.len()), reasoning));
        }
        let mut content = Vec::new();
        if let Some(text) = message.content.as_ref().filter(|t| !t.is_empty()) {
            content.push(text_part(text));
        }
        if let Some(refusal) = message.refusal.as_ref().filter(|r| !r.is_empty()) {
            content.push(json!({"type": "refusal", "refusal": refusal}));
        }
        if !content.is_empty() {
            output.push(message_item(
                turn.item_id("msg", output.len()),
                content,
                "completed",
            ));
        }
        for call in message.tool_calls.iter().flatten() {
            output.push(json!({
                "type": "function_call",
                "id": turn.item_id("fc", output.len()),
                "call_id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
                "status": "completed",
            }));
        }
    }
    let usage = chat.usage.map(|u| {
        usage_json(
            u.prompt_tokens,
            u.completion_tokens,
            u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            u.completion_tokens_details
                .map_or(0, |d| d.reasoning_tokens),
        )
    });
    let (status, incomplete) = status_of(reason);
    turn.response(&chat.model, status, output, usage, incomplete)
}

/// A response's status, and why it is incomplete, from a chat finish reason.
pub(crate) fn status_of(reason: Option<&str>) -> (&'static str, Option<&'static str>) {
    match reason {
        Some(finish::LENGTH) => ("incomplete", Some("max_output_tokens")),
        Some(finish::CONTENT_FILTER) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// An `output_text` content part.
pub(crate) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": []})
}

/// An assistant message output item.
pub(crate) fn message_item(id: String, content: Vec<Value>, status: &str) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// A reasoning output item carrying the model's visible reasoning as its summary.
pub(crate) fn reasoning_item(id: String, text: &str) -> Value {
    json!({
        "type": "reasoning",
        "id": id,
        "summary": [{"type": "summary_text", "text": text}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResponsesRequest;

    fn turn() -> Turn {
        let req: ResponsesRequest =
            serde_json::from_value(json!({"model": "m", "input": "x"})).unwrap();
        Turn::new(&req)
    }

    #[test]
    fn text_tool_calls_and_usage_become_output_items() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "claude-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me look.", "reasoning_content": "think",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]
            }}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 1}}
        });
        let turn = turn();
        let r = from_chat_body(body.to_string().as_bytes(), &turn).unwrap();
        assert_eq!(r["id"], turn.id.as_str());
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "claude-x");
        let output = r["output"].as_array().unwrap();
        assert_eq!(output.len(), 3);
        assert_eq!(output[0]["type"], "reasoning");
        assert_eq!(output[0]["summary"][0]["text"], "think");
        assert_eq!(output[1]["type"], "message");
        assert_eq!(output[1]["content"][0]["text"], "Let me look.");
        assert_eq!(output[2]["type"], "function_call");
        assert_eq!(output[2]["call_id"], "call_1");
        assert_eq!(output[2]["arguments"], "{\"city\":\"Oslo\"}");
        assert_eq!(r["usage"]["input_tokens"], 12);
        assert_eq!(r["usage"]["output_tokens"], 5);
        assert_eq!(r["usage"]["total_tokens"], 17);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 2);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 1);
    }

    #[test]
    fn a_cut_answer_is_incomplete() {
        let body = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "abc"}}]});
        let r = from_chat_body(body.to_string().as_bytes(), &turn()).unwrap();
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert!(from_chat_body(b"[]", &turn()).is_err());
    }
}
