//! OpenAI's chat-completions shapes, typed: the interlingua every translating adapter speaks.
//!
//! Requests arrive in OpenAI's shape and answers leave in it. An OpenAI-style upstream gets the
//! request bytes untouched (see [`portico_core::JsonBody`]); an adapter that translates
//! (Anthropic, Gemini, Bedrock) deserialises the body into [`ChatRequest`], builds its own wire
//! request, and turns the answer back into a [`ChatResponse`] or a sequence of
//! [`ChatChunk`]s, usually through a [`ChunkWriter`].
//!
//! The types are lenient where OpenAI's are: unknown fields are kept in `extra` maps rather
//! than rejected, so a new OpenAI parameter does not break a request. Two fields follow the
//! convention other gateways use for what OpenAI's schema lacks: `reasoning_content` (the
//! model's visible reasoning, as DeepSeek and LiteLLM send it) and `thinking_blocks` on an
//! assistant message (reasoning blocks with their signatures, which Anthropic needs back in a
//! multi-turn tool conversation).

mod chunk;
mod lenient;
mod request;
mod response;

pub use chunk::{ChatChunk, ChunkChoice, ChunkWriter, Delta, FunctionDelta, ToolCallDelta};
pub use lenient::{LenientChoice, LenientChunk};
pub use request::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, JsonSchemaFormat,
    Message, NamedFunction, ResponseFormat, Role, Stop, StreamOptions, ThinkingBlock, Tool,
    ToolCall, ToolChoice,
};
pub use response::{
    AssistantMessage, ChatResponse, Choice, CompletionTokensDetails, PromptTokensDetails, UsageWire,
};

/// `created` of an answer made now: Unix seconds, from the one clock
/// ([`portico_core::now_ms`]).
pub fn created_now() -> u64 {
    u64::try_from(portico_core::now_ms() / 1000).unwrap_or(0)
}

/// OpenAI's `finish_reason` values.
pub mod finish {
    /// The model ended its turn or hit a stop sequence.
    pub const STOP: &str = "stop";
    /// The token limit cut the answer.
    pub const LENGTH: &str = "length";
    /// The model called tools.
    pub const TOOL_CALLS: &str = "tool_calls";
    /// A safety filter withheld or cut the answer.
    pub const CONTENT_FILTER: &str = "content_filter";
}
