//! Converse answer → OpenAI chat completion. Pure.

use portico_providers::chat::{
    AssistantMessage, ChatResponse, Choice, FunctionCall, ThinkingBlock, ToolCall, UsageWire,
    finish,
};

use crate::wire::{ConverseResponse, TokenUsage};

/// OpenAI's `finish_reason` for a Converse `stopReason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => finish::LENGTH,
        Some("tool_use") => finish::TOOL_CALLS,
        Some("guardrail_intervened" | "content_filtered") => finish::CONTENT_FILTER,
        // end_turn, stop_sequence, and anything newer.
        _ => finish::STOP,
    }
}

/// OpenAI's usage for Bedrock's: `prompt_tokens` counts cache reads and writes too.
pub(crate) fn usage(u: &TokenUsage) -> UsageWire {
    UsageWire::from_parts(
        u.input_tokens,
        u.cache_read_input_tokens,
        u.cache_write_input_tokens,
        u.output_tokens,
        0,
    )
}

/// The chat completion for a Converse answer.
pub(crate) fn to_chat_response(
    answer: ConverseResponse,
    id: String,
    created: u64,
    model: &str,
) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    let blocks = answer
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    for block in blocks {
        if let Some(t) = block.text {
            text.push_str(&t);
        }
        if let Some(call) = block.tool_use {
            let arguments = if call.input.is_null() {
                "{}".to_owned()
            } else {
                call.input.to_string()
            };
            tool_calls.push(ToolCall {
                id: call.tool_use_id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: call.name,
                    arguments,
                },
            });
        }
        if let Some(r) = block.reasoning_content {
            if let Some(rt) = r.reasoning_text {
                reasoning.push_str(&rt.text);
                if rt.signature.is_some() {
                    thinking_blocks.push(ThinkingBlock::signed(rt.text, rt.signature));
                }
            }
            if let Some(data) = r.redacted_content {
                thinking_blocks.push(ThinkingBlock::redacted(data));
            }
        }
    }
    let message = AssistantMessage {
        role: "assistant".to_owned(),
        content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        refusal: None,
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
    };
    let choice = Choice {
        index: 0,
        message,
        finish_reason: Some(finish_reason(answer.stop_reason.as_deref()).to_owned()),
        logprobs: None,
    };
    ChatResponse::new(
        id,
        created,
        model.to_owned(),
        choice,
        answer.usage.as_ref().map(usage),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_openai() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(
            finish_reason(Some("guardrail_intervened")),
            "content_filter"
        );
        assert_eq!(finish_reason(Some("content_filtered")), "content_filter");
        assert_eq!(finish_reason(None), "stop");
    }
}
