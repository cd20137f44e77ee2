//! Anthropic Messages API shapes, as our own serde types: the request, the answer, the stream
//! events and the error body.
//!
//! Both directions use them: the adapter builds a [`MessagesRequest`] and reads a
//! [`MessagesResponse`] or [`StreamEvent`]s; the `/v1/messages` inbound reads a
//! [`MessagesRequest`] and writes the other two. So they are lenient where Anthropic is
//! (string or block content, unknown block types kept as [`ContentBlock::Other`], unknown
//! fields kept in `extra`), and they write what Anthropic writes (`stop_reason: null`
//! included).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/messages` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Output token limit (required by Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// The conversation: alternating `user` and `assistant` turns.
    #[serde(default)]
    pub messages: Vec<WireMessage>,
    /// Instructions: a string or text blocks (which may carry `cache_control`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<WireTool>>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<WireToolChoice>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Whether to stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{user_id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Extended thinking: `{type: "enabled", budget_tokens}`, `{type: "disabled"}`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// Output settings, such as `format` (structured outputs) or `effort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Map<String, Value>>,
    /// Every other field, kept as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The names of [`MessagesRequest`]'s typed fields: an extra with one of these names would
/// be written twice.
pub const REQUEST_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "metadata",
    "thinking",
    "output_config",
];

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque id of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// `system`: a string or text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum System {
    /// Plain text.
    Text(String),
    /// Text blocks.
    Blocks(Vec<ContentBlock>),
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// A string or blocks.
    pub content: MessageContent,
}

/// A message's content: a string or blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

impl MessageContent {
    /// The content as blocks (a string becomes one text block).
    pub fn into_blocks(self) -> Vec<ContentBlock> {
        match self {
            MessageContent::Text(text) => vec![ContentBlock::text(text)],
            MessageContent::Blocks(blocks) => blocks,
        }
    }
}

/// One content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// A prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
        /// Citations of an answer's text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<Value>,
    },
    /// An image.
    Image {
        /// Where the image is.
        source: ImageSource,
        /// A prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// A document (PDF or text).
    Document {
        /// Where the document is: `{type: base64 | text | url | ..., ...}`.
        source: Value,
        /// Title, context, citations settings, cache_control.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// A tool call of the model.
    ToolUse {
        /// The call's id (`toolu_...`), echoed by the `tool_result` that answers it.
        id: String,
        /// The tool.
        name: String,
        /// The arguments, a JSON object.
        #[serde(default)]
        input: Value,
        /// A prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// A tool's result, in a user turn.
    ToolResult {
        /// The `tool_use` it answers.
        tool_use_id: String,
        /// The result: a string or blocks (text, images).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        /// A prompt-cache breakpoint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// The model's reasoning, signed.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Anthropic's signature over it (needed to send the block back).
        #[serde(default)]
        signature: String,
    },
    /// Reasoning withheld by Anthropic's safety systems, encrypted.
    RedactedThinking {
        /// The encrypted reasoning.
        data: String,
    },
    /// A block type this version does not know, kept as sent.
    #[serde(untagged)]
    Other(Value),
}

impl ContentBlock {
    /// A plain text block.
    pub fn text(text: impl Into<String>) -> ContentBlock {
        ContentBlock::Text {
            text: text.into(),
            cache_control: None,
            citations: None,
        }
    }
}

/// An image's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline data.
    Base64 {
        /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
    /// A URL Anthropic fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// Another source (a Files API id, ...), kept as sent.
    #[serde(untagged)]
    Other(Value),
}

/// A tool result's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    /// Plain text.
    Text(String),
    /// Blocks (text, images).
    Blocks(Vec<ContentBlock>),
}

/// A tool declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireTool {
    /// `custom` (or absent) for a client tool; a versioned type such as
    /// `web_search_20250305` for Anthropic's server tools.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The tool's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its input (client tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Strict schema adherence of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Other fields (`cache_control`, a server tool's settings), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WireTool {
    /// Whether this is a client tool (one the caller runs), not an Anthropic server tool.
    pub fn is_custom(&self) -> bool {
        self.kind.as_deref().is_none_or(|k| k == "custom")
    }
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The forced tool, for `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most one tool call per turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// A whole answer (`type: "message"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_...`.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    /// Always `assistant`.
    #[serde(default = "assistant_role")]
    pub role: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The blocks: text, tool_use, thinking, ...
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Why generation stopped (`null` in `message_start`).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token usage.
    #[serde(default)]
    pub usage: WireUsage,
    /// Other fields (`container`, ...), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

/// Anthropic's usage: `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WireUsage {
    /// Input tokens neither read from nor written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Other fields (`cache_creation` by TTL, `service_tier`, ...), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One streamed event's data (its `type` names the event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message, with empty content and the input usage.
    MessageStart {
        /// The message so far.
        message: MessagesResponse,
    },
    /// A block begins.
    ContentBlockStart {
        /// The block's position in the message's content.
        index: u32,
        /// The block, empty (text `""`, tool input `{}`).
        content_block: ContentBlock,
    },
    /// A piece of a block.
    ContentBlockDelta {
        /// The block.
        index: u32,
        /// The piece.
        delta: BlockDelta,
    },
    /// A block ends.
    ContentBlockStop {
        /// The block.
        index: u32,
    },
    /// The stop reason and the cumulative usage.
    MessageDelta {
        /// Stop reason and sequence.
        delta: MessageDeltaBody,
        /// Cumulative usage (`output_tokens`; newer versions add the input counts).
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    /// The end of the message.
    MessageStop,
    /// A keep-alive.
    Ping,
    /// An error after the stream started (for example `overloaded_error`).
    Error {
        /// What went wrong.
        error: ErrorBody,
    },
    /// An event type this version does not know (ignored, as Anthropic's versioning asks).
    #[serde(other)]
    Unknown,
}

/// A piece of a content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// Text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A fragment of a tool call's JSON input.
    InputJsonDelta {
        /// The fragment (not valid JSON on its own).
        partial_json: String,
    },
    /// Reasoning text.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// The signature of a thinking block, just before it stops.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// A citation of a text block.
    CitationsDelta {
        /// The citation.
        citation: Value,
    },
    /// A delta type this version does not know.
    #[serde(other)]
    Unknown,
}

/// `message_delta.delta`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// `message_delta.usage`: cumulative counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeltaUsage {
    /// Output tokens so far.
    #[serde(default)]
    pub output_tokens: u64,
    /// Uncached input tokens (newer API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Cache writes (newer API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads (newer API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// `{type, message}` of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `invalid_request_error`, `overloaded_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

/// An error answer: `{"type": "error", "error": {type, message}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub error: ErrorBody,
}

impl ErrorResponse {
    /// An error of `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            kind: "error".to_owned(),
            error: ErrorBody {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
///
/// `end_turn`, `stop_sequence` and `pause_turn` (a server tool paused a long turn) end the
/// turn normally; `model_context_window_exceeded` is a length limit like `max_tokens`; an
/// unknown reason counts as a normal stop.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    use portico_providers::chat::finish;
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => finish::LENGTH,
        Some("tool_use") => finish::TOOL_CALLS,
        Some("refusal") => finish::CONTENT_FILTER,
        _ => finish::STOP,
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_round_trip_and_unknown_ones_are_kept() {
        let blocks = json!([
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "enc"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
        ]);
        let parsed: Vec<ContentBlock> = serde_json::from_value(blocks.clone()).unwrap();
        assert!(matches!(parsed[6], ContentBlock::Other(_)));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), blocks);
    }

    #[test]
    fn stream_events_parse_and_unknown_ones_are_ignored() {
        let ev: StreamEvent = serde_json::from_value(json!({"type": "content_block_delta",
            "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a"}}))
        .unwrap();
        assert_eq!(
            ev,
            StreamEvent::ContentBlockDelta {
                index: 1,
                delta: BlockDelta::InputJsonDelta {
                    partial_json: "{\"a".into()
                }
            }
        );
        let unknown: StreamEvent =
            serde_json::from_value(json!({"type": "brand_new", "x": 1})).unwrap();
        assert_eq!(unknown, StreamEvent::Unknown);
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            assert_eq!(finish_reason(Some(stop)), finish, "{stop}");
        }
        assert_eq!(stop_reason(Some("length")), "max_tokens");
        assert_eq!(stop_reason(Some("tool_calls")), "tool_use");
        assert_eq!(stop_reason(Some("content_filter")), "refusal");
        assert_eq!(stop_reason(None), "end_turn");
    }
}
