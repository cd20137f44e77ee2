//! The chat-completions answer and its usage block.

use portico_core::Usage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::request::{ThinkingBlock, ToolCall};

/// A whole chat completion (`object: "chat.completion"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// `chatcmpl-...` or the provider's own id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// One choice per `n`.
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageWire>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatResponse {
    /// A response with one choice.
    pub fn new(
        id: String,
        created: u64,
        model: String,
        choice: Choice,
        usage: Option<UsageWire>,
    ) -> ChatResponse {
        ChatResponse {
            id,
            object: "chat.completion".to_owned(),
            created,
            model,
            choices: vec![choice],
            usage,
            extra: Map::new(),
        }
    }
}

/// One choice of a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position among the choices.
    pub index: u32,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// Why generation stopped (see [`super::finish`]).
    pub finish_reason: Option<String>,
    /// Log probabilities (passed through when a provider has them).
    #[serde(default)]
    pub logprobs: Option<Value>,
}

/// The assistant message of a choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// The text; `null` when the model only called tools.
    pub content: Option<String>,
    /// Tool calls, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A refusal message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The model's visible reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Reasoning blocks with signatures, to send back in the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
}

/// OpenAI's `usage` block. `prompt_tokens` includes cached tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageWire {
    /// Input tokens, cached and cache-written ones included.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// The sum.
    pub total_tokens: u64,
    /// Input details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Output details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic and Bedrock report them; OpenAI
    /// has no such field, so clients ignore it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Reasoning tokens among the output tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl UsageWire {
    /// Builds OpenAI's usage from counts where `uncached_input` excludes cache reads and
    /// writes (as Anthropic and Bedrock report input), adding them back in.
    pub fn from_parts(
        uncached_input: u64,
        cache_read: u64,
        cache_write: u64,
        output: u64,
        reasoning: u64,
    ) -> UsageWire {
        let prompt = uncached_input + cache_read + cache_write;
        UsageWire {
            prompt_tokens: prompt,
            completion_tokens: output,
            total_tokens: prompt + output,
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: cache_read,
                cache_creation_tokens: cache_write,
            }),
            completion_tokens_details: (reasoning > 0).then_some(CompletionTokensDetails {
                reasoning_tokens: reasoning,
            }),
        }
    }

    /// The gateway's own usage record.
    pub fn to_usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_tokens: self.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_write_tokens: self
                .prompt_tokens_details
                .map_or(0, |d| d.cache_creation_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_and_cache_write_tokens_are_added_back_into_prompt_tokens() {
        let u = UsageWire::from_parts(100, 2000, 300, 50, 0);
        assert_eq!(u.prompt_tokens, 2400);
        assert_eq!(u.total_tokens, 2450);
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, 2000);
        assert_eq!(u.to_usage().cached_tokens, 2000);
        let json = serde_json::to_value(u).unwrap();
        assert_eq!(json["prompt_tokens_details"]["cache_creation_tokens"], 300);
        assert!(json.get("completion_tokens_details").is_none());
    }
}
