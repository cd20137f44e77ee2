//! Bedrock's own JSON shapes: the Converse request and response, the ConverseStream event
//! payloads, and the error body.
//!
//! Requests are built from enums (one variant per block kind) so a block can only hold what
//! Bedrock accepts. Answers are read into structs of optional fields, so a block kind or field
//! this version does not know is skipped rather than failing the whole answer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of `POST /model/{modelId}/converse` and `/converse-stream`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation, alternating user and assistant turns.
    pub(crate) messages: Vec<Message>,
    /// System prompt blocks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) system: Vec<SystemBlock>,
    /// Sampling settings common to every model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) inference_config: Option<InferenceConfig>,
    /// Tools and the tool choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig>,
    /// Model-specific fields (`top_k`, `thinking`, ...), passed to the model as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) additional_model_request_fields: Option<Map<String, Value>>,
    /// Structured output (`textFormat` with a JSON schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_config: Option<Value>,
    /// Bedrock's own top-level fields a client sent as they are (`guardrailConfig`,
    /// `performanceConfig`, `requestMetadata`, ...).
    #[serde(flatten)]
    pub(crate) native: Map<String, Value>,
}

/// One turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Message {
    /// `user` or `assistant`.
    pub(crate) role: &'static str,
    /// Its blocks, never empty.
    pub(crate) content: Vec<Block>,
}

/// A content block of a request message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Block {
    /// Text.
    Text(String),
    /// An inline image.
    Image(Image),
    /// An inline document (PDF, CSV, ...).
    Document(Document),
    /// A tool call of an assistant turn.
    ToolUse(ToolUse),
    /// A tool's answer, in a user turn.
    ToolResult(ToolResult),
    /// Earlier reasoning, sent back with its signature.
    ReasoningContent(ReasoningContent),
    /// A prompt-cache checkpoint after the blocks before it.
    CachePoint(CachePoint),
}

/// A system prompt block.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum SystemBlock {
    /// Text.
    Text(String),
    /// A prompt-cache checkpoint.
    CachePoint(CachePoint),
}

/// `{"type": "default"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CachePoint {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
}

impl CachePoint {
    /// The one kind Bedrock has.
    pub(crate) const DEFAULT: CachePoint = CachePoint { kind: "default" };
}

/// `{format, source: {bytes}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Image {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub(crate) format: String,
    /// The base64 data.
    pub(crate) source: Source,
}

/// `{format, name, source: {bytes}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Document {
    /// `pdf`, `csv`, `doc`, `docx`, `xls`, `xlsx`, `html`, `txt` or `md`.
    pub(crate) format: String,
    /// A name made of the characters Bedrock allows.
    pub(crate) name: String,
    /// The base64 data.
    pub(crate) source: Source,
}

/// Inline bytes, base64 in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Source {
    pub(crate) bytes: String,
}

/// `{toolUseId, name, input}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolUse {
    pub(crate) tool_use_id: String,
    pub(crate) name: String,
    /// The arguments, a JSON object.
    pub(crate) input: Value,
}

/// `{toolUseId, content, status?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolResult {
    pub(crate) tool_use_id: String,
    pub(crate) content: Vec<ToolResultContent>,
    /// `error` when the client flagged the result as a failure; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<&'static str>,
}

/// A block of a tool result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ToolResultContent {
    /// Text.
    Text(String),
    /// An image.
    Image(Image),
}

/// Earlier reasoning: signed text, or the provider's encrypted form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ReasoningContent {
    /// `{text, signature}`.
    ReasoningText(ReasoningText),
    /// Base64 of the encrypted reasoning.
    RedactedContent(String),
}

/// `{text, signature?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ReasoningText {
    pub(crate) text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<String>,
}

/// `inferenceConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InferenceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<String>,
}

impl InferenceConfig {
    /// Whether nothing is set (the field is then left out).
    pub(crate) fn is_empty(&self) -> bool {
        *self == InferenceConfig::default()
    }
}

/// `toolConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig {
    pub(crate) tools: Vec<ToolEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<ToolChoice>,
}

/// One entry of `toolConfig.tools`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ToolEntry {
    /// A tool declaration.
    ToolSpec(ToolSpec),
}

/// `{name, description?, inputSchema: {json}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolSpec {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) input_schema: InputSchema,
}

/// `{json: <JSON Schema>}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct InputSchema {
    pub(crate) json: Value,
}

/// `toolChoice`: `{auto: {}}`, `{any: {}}` or `{tool: {name}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ToolChoice {
    /// The model decides.
    Auto(Empty),
    /// The model must call some tool.
    Any(Empty),
    /// The model must call this tool.
    Tool(NamedTool),
}

/// `{}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Empty {}

/// `{name}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NamedTool {
    pub(crate) name: String,
}

/// The answer of `converse`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    #[serde(default)]
    pub(crate) output: Option<Output>,
    #[serde(default)]
    pub(crate) stop_reason: Option<String>,
    #[serde(default)]
    pub(crate) usage: Option<TokenUsage>,
}

/// `output`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct Output {
    #[serde(default)]
    pub(crate) message: Option<OutMessage>,
}

/// `output.message`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct OutMessage {
    #[serde(default)]
    pub(crate) content: Vec<OutBlock>,
}

/// A content block of an answer; unknown kinds have every field `None`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutBlock {
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) tool_use: Option<OutToolUse>,
    #[serde(default)]
    pub(crate) reasoning_content: Option<OutReasoning>,
}

/// `toolUse` of an answer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutToolUse {
    #[serde(default)]
    pub(crate) tool_use_id: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) input: Value,
}

/// `reasoningContent` of an answer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutReasoning {
    #[serde(default)]
    pub(crate) reasoning_text: Option<OutReasoningText>,
    #[serde(default)]
    pub(crate) redacted_content: Option<String>,
}

/// `reasoningText` of an answer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct OutReasoningText {
    #[serde(default)]
    pub(crate) text: String,
    #[serde(default)]
    pub(crate) signature: Option<String>,
}

/// `usage`: input excludes cache reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenUsage {
    #[serde(default)]
    pub(crate) input_tokens: u64,
    #[serde(default)]
    pub(crate) output_tokens: u64,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: u64,
    #[serde(default)]
    pub(crate) cache_write_input_tokens: u64,
}

/// `contentBlockStart`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockStartEvent {
    #[serde(default)]
    pub(crate) content_block_index: u32,
    #[serde(default)]
    pub(crate) start: Option<BlockStart>,
}

/// `contentBlockStart.start`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockStart {
    #[serde(default)]
    pub(crate) tool_use: Option<OutToolUse>,
}

/// `contentBlockDelta`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockDeltaEvent {
    #[serde(default)]
    pub(crate) content_block_index: u32,
    #[serde(default)]
    pub(crate) delta: BlockDelta,
}

/// `contentBlockDelta.delta`: one of its fields is set.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockDelta {
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) tool_use: Option<ToolUseDelta>,
    #[serde(default)]
    pub(crate) reasoning_content: Option<ReasoningDelta>,
}

/// `delta.toolUse`: a fragment of the arguments' JSON text.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct ToolUseDelta {
    #[serde(default)]
    pub(crate) input: String,
}

/// `delta.reasoningContent`: text, the signature, or encrypted reasoning.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReasoningDelta {
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) signature: Option<String>,
    #[serde(default)]
    pub(crate) redacted_content: Option<String>,
}

/// `contentBlockStop`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BlockStopEvent {
    #[serde(default)]
    pub(crate) content_block_index: u32,
}

/// `messageStop`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageStopEvent {
    #[serde(default)]
    pub(crate) stop_reason: Option<String>,
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct MetadataEvent {
    #[serde(default)]
    pub(crate) usage: Option<TokenUsage>,
}

/// An error body or exception payload: `{"message": ...}` (some services capitalise it).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default, alias = "Message")]
    pub(crate) message: Option<String>,
    /// The error's type, when the body carries it (`__type`).
    #[serde(default, rename = "__type")]
    pub(crate) kind: Option<String>,
}
