//! OpenAI chat completion → Anthropic message, for `/v1/messages` answered by a provider that
//! does not speak Anthropic's API. Pure.

use portico_providers::ProviderError;
use portico_providers::chat::{ChatResponse, ThinkingBlock, ToolCall};
use serde_json::{Map, Value, json};

use crate::wire::{ContentBlock, MessagesResponse, WireUsage, stop_reason};

/// An Anthropic-looking message id for an upstream id: kept when it is one already,
/// prefixed with `msg_` otherwise.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Anthropic's usage for OpenAI counts: `input_tokens` leaves out the cache reads and
/// writes, which have their own fields.
pub fn wire_usage(prompt: u64, completion: u64, cached: u64, cache_written: u64) -> WireUsage {
    WireUsage {
        input_tokens: prompt.saturating_sub(cached).saturating_sub(cache_written),
        output_tokens: completion,
        cache_creation_input_tokens: Some(cache_written),
        cache_read_input_tokens: Some(cached),
        extra: Map::new(),
    }
}

/// A tool call's `arguments` text as Anthropic's `input` object. Text that is not a JSON
/// object (a model's malformed output) is kept under `_raw_arguments` rather than lost.
pub fn tool_input(arguments: &str) -> Value {
    let trimmed = arguments.trim();
    if trimmed.is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({ "_raw_arguments": arguments }),
    }
}

/// Reads an OpenAI chat completion body and translates it.
///
/// # Errors
///
/// [`ProviderError::Malformed`] when the body is not a chat completion.
pub fn from_chat_body(body: &[u8]) -> Result<MessagesResponse, ProviderError> {
    let chat: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        ProviderError::Malformed(format!("the answer is not a chat completion: {e}"))
    })?;
    Ok(to_messages_response(&chat))
}

/// Translates a chat completion (its first choice).
pub fn to_messages_response(chat: &ChatResponse) -> MessagesResponse {
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(choice) = chat.choices.first() {
        let message = &choice.message;
        finish = choice.finish_reason.as_deref();
        content.extend(thinking(
            message.thinking_blocks.as_deref(),
            message.reasoning_content.as_deref(),
        ));
        let text = message
            .content
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(message.refusal.as_deref());
        if let Some(text) = text {
            content.push(ContentBlock::text(text));
        }
        content.extend(message.tool_calls.iter().flatten().map(tool_use));
    }
    let usage = chat.usage.map_or_else(WireUsage::default, |u| {
        let details = u.prompt_tokens_details.unwrap_or_default();
        wire_usage(
            u.prompt_tokens,
            u.completion_tokens,
            details.cached_tokens,
            details.cache_creation_tokens,
        )
    });
    MessagesResponse {
        id: message_id(&chat.id),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        model: chat.model.clone(),
        content,
        stop_reason: Some(stop_reason(finish).to_owned()),
        stop_sequence: None,
        usage,
        extra: Map::new(),
    }
}

/// Thinking blocks with their signatures; visible reasoning without any becomes one
/// unsigned thinking block (shown to the client, not verifiable by Anthropic).
fn thinking(blocks: Option<&[ThinkingBlock]>, reasoning: Option<&str>) -> Vec<ContentBlock> {
    let mut out: Vec<ContentBlock> = blocks
        .unwrap_or_default()
        .iter()
        .filter_map(|b| match b.kind.as_str() {
            "thinking" => Some(ContentBlock::Thinking {
                thinking: b.thinking.clone().unwrap_or_default(),
                signature: b.signature.clone().unwrap_or_default(),
            }),
            "redacted_thinking" => Some(ContentBlock::RedactedThinking {
                data: b.data.clone().unwrap_or_default(),
            }),
            _ => None,
        })
        .collect();
    if out.is_empty()
        && let Some(text) = reasoning.filter(|t| !t.is_empty())
    {
        out.push(ContentBlock::Thinking {
            thinking: text.to_owned(),
            signature: String::new(),
        });
    }
    out
}

fn tool_use(call: &ToolCall) -> ContentBlock {
    ContentBlock::ToolUse {
        id: call.id.clone(),
        name: call.function.name.clone(),
        input: tool_input(&call.function.arguments),
        cache_control: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_arguments_are_kept_not_lost() {
        assert_eq!(tool_input(""), json!({}));
        assert_eq!(tool_input("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(tool_input("[1]"), json!({"_raw_arguments": "[1]"}));
        assert_eq!(tool_input("{oops"), json!({"_raw_arguments": "{oops"}));
    }

    #[test]
    fn ids_look_like_anthropics() {
        assert_eq!(message_id("chatcmpl-1"), "msg_chatcmpl-1");
        assert_eq!(message_id("msg_1"), "msg_1");
    }
}
