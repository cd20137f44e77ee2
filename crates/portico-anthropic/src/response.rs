//! Anthropic message → OpenAI chat completion, and Anthropic usage → OpenAI usage. Pure.

use portico_providers::chat::{
    AssistantMessage, ChatResponse, Choice, FunctionCall, ThinkingBlock, ToolCall, UsageWire,
};

use crate::wire::{ContentBlock, MessagesResponse, WireUsage, finish_reason};

/// OpenAI's usage for Anthropic's: `prompt_tokens` adds the cache reads and writes back in
/// (Anthropic's `input_tokens` excludes them); `cached_tokens` is the cache reads.
pub fn usage(usage: &WireUsage) -> UsageWire {
    UsageWire::from_parts(
        usage.input_tokens,
        usage.cache_read_input_tokens.unwrap_or(0),
        usage.cache_creation_input_tokens.unwrap_or(0),
        usage.output_tokens,
        0,
    )
}

/// What an assistant turn's content blocks say, in OpenAI's terms: text, tool calls and
/// reasoning. Shared by answers (here) and by earlier assistant turns of an inbound request.
#[derive(Debug, Default)]
pub(crate) struct AssistantParts {
    /// The text blocks, concatenated; `None` when there was none.
    pub(crate) text: Option<String>,
    /// The thinking text, concatenated.
    pub(crate) reasoning: Option<String>,
    /// Thinking blocks with their signatures, in order.
    pub(crate) thinking_blocks: Vec<ThinkingBlock>,
    /// `tool_use` blocks as tool calls, ids kept.
    pub(crate) tool_calls: Vec<ToolCall>,
}

impl AssistantParts {
    /// Takes a text, `tool_use`, thinking or redacted-thinking block; returns `false` for any
    /// other block, which is left to the caller (an answer ignores it, a request refuses it).
    pub(crate) fn take(&mut self, block: &ContentBlock) -> bool {
        match block {
            ContentBlock::Text { text, .. } => {
                self.text.get_or_insert_with(String::new).push_str(text);
            }
            ContentBlock::ToolUse {
                id, name, input, ..
            } => self.tool_calls.push(ToolCall {
                id: id.clone(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: input.to_string(),
                },
            }),
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                self.reasoning
                    .get_or_insert_with(String::new)
                    .push_str(thinking);
                self.thinking_blocks.push(ThinkingBlock::signed(
                    thinking.clone(),
                    Some(signature.clone()),
                ));
            }
            ContentBlock::RedactedThinking { data } => self
                .thinking_blocks
                .push(ThinkingBlock::redacted(data.clone())),
            _ => return false,
        }
        true
    }
}

/// Translates a whole answer; `created` is the Unix time to stamp it with (Anthropic's
/// answer has none).
pub fn to_chat_response(message: &MessagesResponse, created: u64) -> ChatResponse {
    let mut parts = AssistantParts::default();
    for block in &message.content {
        // Server tool blocks, documents and images in an answer have no OpenAI place.
        parts.take(block);
    }
    let AssistantParts {
        mut text,
        reasoning,
        thinking_blocks,
        tool_calls,
    } = parts;
    if text.is_none() && tool_calls.is_empty() {
        text = Some(String::new());
    }
    let choice = Choice {
        index: 0,
        message: AssistantMessage {
            role: "assistant".to_owned(),
            content: text,
            tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
            refusal: None,
            reasoning_content: reasoning,
            thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
        },
        finish_reason: Some(finish_reason(message.stop_reason.as_deref()).to_owned()),
        logprobs: None,
    };
    ChatResponse::new(
        message.id.clone(),
        created,
        message.model.clone(),
        choice,
        Some(usage(&message.usage)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_adds_cache_tokens_back_into_the_prompt() {
        let wire: WireUsage = serde_json::from_value(json!({"input_tokens": 10,
            "output_tokens": 5, "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000}))
        .unwrap();
        let u = usage(&wire);
        assert_eq!(u.prompt_tokens, 1110);
        assert_eq!(u.total_tokens, 1115);
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 1000);
    }

    #[test]
    fn an_empty_answer_has_empty_text() {
        let message: MessagesResponse = serde_json::from_value(json!({"id": "msg_1",
            "type": "message", "role": "assistant", "model": "m", "content": [],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 0}}))
        .unwrap();
        let chat = to_chat_response(&message, 7);
        assert_eq!(chat.choices[0].message.content.as_deref(), Some(""));
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("stop"));
    }
}
