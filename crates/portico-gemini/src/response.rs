//! Gemini answer → OpenAI chat completion. Pure: no I/O.
//!
//! Each candidate becomes a choice: text parts its `content`, thought parts its
//! `reasoning_content`, function calls its `tool_calls` with synthesised ids (see
//! [`crate::ids`]). Usage follows OpenAI's meaning: `prompt_tokens` counts cached and
//! tool-use prompt tokens, `completion_tokens` counts reasoning, reported again as
//! `reasoning_tokens`.

use portico_providers::ProviderError;
use portico_providers::chat::{
    AssistantMessage, ChatResponse, Choice, FunctionCall as ChatFunctionCall, ToolCall, UsageWire,
    finish,
};
use serde_json::Map;

use crate::ids::tool_call_id;
use crate::wire::{Candidate, FunctionCall, GenerateContentResponse, Part, UsageMetadata};

/// The OpenAI id of an answer: `chatcmpl-<Gemini's responseId>`, or a random one.
pub(crate) fn chat_id(response_id: Option<&str>) -> String {
    match response_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
}

/// What seeds the tool call ids of an answer: its `responseId`, or (when Gemini sent none) a
/// random value, so that two answers calling the same function never share an id.
pub(crate) fn id_seed(response_id: Option<&str>) -> String {
    match response_id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// OpenAI's usage from Gemini's `usageMetadata`.
pub(crate) fn usage(meta: &UsageMetadata) -> UsageWire {
    let prompt = meta.prompt_token_count + meta.tool_use_prompt_token_count;
    let cached = meta.cached_content_token_count.min(prompt);
    let output = meta.candidates_token_count + meta.thoughts_token_count;
    UsageWire::from_parts(
        prompt - cached,
        cached,
        0,
        output,
        meta.thoughts_token_count,
    )
}

/// OpenAI's `finish_reason` for Gemini's `finishReason`. `STOP` becomes `tool_calls` when
/// the answer called functions (Gemini says `STOP` either way). A malformed or unexpected
/// function call is an error: the answer holds nothing usable, and another try usually
/// succeeds.
pub(crate) fn finish_reason(
    reason: Option<&str>,
    called_tools: bool,
    message: Option<&str>,
) -> Result<&'static str, ProviderError> {
    let stop = if called_tools {
        finish::TOOL_CALLS
    } else {
        finish::STOP
    };
    match reason {
        Some("MAX_TOKENS") => Ok(finish::LENGTH),
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "LANGUAGE"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => Ok(finish::CONTENT_FILTER),
        Some(
            reason @ ("MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS"),
        ) => {
            let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
            Err(ProviderError::upstream(
                502,
                format!(
                    "Gemini ended its answer with finishReason {reason}{detail}; the model produced a function call it could not complete, and another try usually succeeds"
                ),
                None,
                Some(reason.to_ascii_lowercase()),
            ))
        }
        // STOP, OTHER, unspecified, and reasons newer than this code.
        _ => Ok(stop),
    }
}

/// The refusal text of an answer whose prompt Gemini blocked.
pub(crate) fn blocked_message(reason: &str) -> String {
    format!("Gemini blocked the prompt (blockReason {reason})")
}

/// The arguments of a function call as OpenAI's JSON text.
pub(crate) fn arguments(call: &FunctionCall) -> String {
    match &call.args {
        Some(args) if !args.is_null() => args.to_string(),
        _ => "{}".to_owned(),
    }
}

/// The whole answer as a chat completion.
pub(crate) fn to_chat(
    resp: GenerateContentResponse,
    model: &str,
    created: u64,
) -> Result<ChatResponse, ProviderError> {
    let id = chat_id(resp.response_id.as_deref());
    let seed = id_seed(resp.response_id.as_deref());
    let model = resp
        .model_version
        .clone()
        .unwrap_or_else(|| model.to_owned());
    let usage = resp.usage_metadata.as_ref().map(usage);
    let choices = if resp.candidates.is_empty() {
        let Some(reason) = resp.prompt_feedback.and_then(|f| f.block_reason) else {
            return Err(ProviderError::Malformed(
                "Gemini answered without any candidate and without a blockReason".to_owned(),
            ));
        };
        vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".to_owned(),
                refusal: Some(blocked_message(&reason)),
                ..AssistantMessage::default()
            },
            finish_reason: Some(finish::CONTENT_FILTER.to_owned()),
            logprobs: None,
        }]
    } else {
        resp.candidates
            .iter()
            .enumerate()
            .map(|(position, candidate)| choice(candidate, position, &seed))
            .collect::<Result<_, _>>()?
    };
    Ok(ChatResponse {
        id,
        object: "chat.completion".to_owned(),
        created,
        model,
        choices,
        usage,
        extra: Map::new(),
    })
}

/// One candidate as a choice.
fn choice(candidate: &Candidate, position: usize, seed: &str) -> Result<Choice, ProviderError> {
    let index = candidate
        .index
        .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
    let parts: &[Part] = candidate.content.as_ref().map_or(&[], |c| &c.parts);
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for part in parts {
        if let Some(call) = &part.function_call {
            let args = arguments(call);
            // Calls of other candidates must not share ids: the candidate's index joins the seed.
            let seed = if index == 0 {
                seed.to_owned()
            } else {
                format!("{seed}/{index}")
            };
            let call_index = u32::try_from(tool_calls.len()).unwrap_or(u32::MAX);
            tool_calls.push(ToolCall {
                id: tool_call_id(
                    &seed,
                    call_index,
                    &call.name,
                    &args,
                    part.thought_signature.as_deref(),
                ),
                kind: "function".to_owned(),
                function: ChatFunctionCall {
                    name: call.name.clone(),
                    arguments: args,
                },
            });
        } else if let Some(text) = &part.text {
            if part.thought {
                reasoning.push_str(text);
            } else {
                content.push_str(text);
            }
        }
    }
    let finish_reason = finish_reason(
        candidate.finish_reason.as_deref(),
        !tool_calls.is_empty(),
        candidate.finish_message.as_deref(),
    )?;
    Ok(Choice {
        index,
        message: AssistantMessage {
            role: "assistant".to_owned(),
            content: (!content.is_empty() || tool_calls.is_empty()).then_some(content),
            tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
            refusal: None,
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            thinking_blocks: None,
        },
        finish_reason: Some(finish_reason.to_owned()),
        logprobs: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_cached_tool_use_and_thoughts_openais_way() {
        let meta = UsageMetadata {
            prompt_token_count: 1000,
            candidates_token_count: 50,
            cached_content_token_count: 600,
            thoughts_token_count: 200,
            tool_use_prompt_token_count: 10,
        };
        let u = usage(&meta);
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (1010, 250, 1260)
        );
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 600);
        assert_eq!(u.completion_tokens_details.unwrap().reasoning_tokens, 200);
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("STOP"), false, None).unwrap(), "stop");
        assert_eq!(
            finish_reason(Some("STOP"), true, None).unwrap(),
            "tool_calls"
        );
        assert_eq!(finish_reason(None, true, None).unwrap(), "tool_calls");
        assert_eq!(
            finish_reason(Some("MAX_TOKENS"), true, None).unwrap(),
            "length"
        );
        for filtered in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert_eq!(
                finish_reason(Some(filtered), false, None).unwrap(),
                "content_filter"
            );
        }
        assert_eq!(finish_reason(Some("OTHER"), false, None).unwrap(), "stop");
        let err = finish_reason(Some("MALFORMED_FUNCTION_CALL"), false, Some("bad")).unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("MALFORMED_FUNCTION_CALL: bad"));
    }
}
