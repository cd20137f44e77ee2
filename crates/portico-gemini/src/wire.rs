//! Gemini's own JSON shapes (`generateContent`, `streamGenerateContent`, `batchEmbedContents`,
//! Vertex AI's `predict` for embeddings), typed for serde.
//!
//! Only the fields Portico reads or writes are declared; unknown fields of an answer are
//! ignored, so a new Gemini field never breaks a request. Field names follow Gemini's JSON
//! (camelCase), documented at <https://ai.google.dev/api/generate-content>.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST .../models/{model}:generateContent` (and `:streamGenerateContent`) body.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation: `user` and `model` turns.
    pub(crate) contents: Vec<Content>,
    /// System and developer messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) system_instruction: Option<Content>,
    /// Function declarations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<ToolWire>,
    /// Whether and which function the model must call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig>,
    /// Sampling, limits, JSON mode, thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) generation_config: Option<GenerationConfig>,
    /// Gemini's safety settings, passed through from the request's `safety_settings`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) safety_settings: Option<Value>,
    /// A context cache name, passed through from the request's `cached_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cached_content: Option<String>,
}

/// One turn (or the system instruction): a role and its parts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Content {
    /// `user` or `model`; absent on the system instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
    /// The parts, in order.
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

/// One part of a turn. Gemini's `Part` is a union: exactly one data field is set, plus the
/// `thought` flag and `thoughtSignature` that any part may carry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    /// Whether this text is the model's (summarised) reasoning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) thought: bool,
    /// The opaque signature of the model's reasoning, to be sent back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought_signature: Option<String>,
    /// Inline bytes (base64), such as an image from a `data:` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) inline_data: Option<Blob>,
    /// A file by URI, which Gemini fetches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file_data: Option<FileData>,
    /// A call the model makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_call: Option<FunctionCall>,
    /// A function's result, sent back to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_response: Option<FunctionResponse>,
}

impl Part {
    /// A text part.
    pub(crate) fn text(text: impl Into<String>) -> Part {
        Part {
            text: Some(text.into()),
            ..Part::default()
        }
    }
}

/// `inlineData`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blob {
    /// The media type, e.g. `image/png`.
    pub(crate) mime_type: String,
    /// Base64 data.
    pub(crate) data: String,
}

/// `fileData`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileData {
    /// The media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<String>,
    /// The file's URI.
    pub(crate) file_uri: String,
}

/// `functionCall`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCall {
    /// Gemini's id for the call, when it sends one. Never sent back: Gemini matches results
    /// to calls by name and order.
    #[serde(default, skip_serializing)]
    pub(crate) id: Option<String>,
    /// The function's name.
    pub(crate) name: String,
    /// The arguments, a JSON object.
    #[serde(default)]
    pub(crate) args: Option<Value>,
}

/// `functionResponse`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionResponse {
    /// The name of the function that was called.
    pub(crate) name: String,
    /// Its result, a JSON object.
    pub(crate) response: Value,
}

/// One entry of `tools`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolWire {
    /// The functions.
    pub(crate) function_declarations: Vec<FunctionDeclaration>,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionDeclaration {
    /// Its name.
    pub(crate) name: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// Its parameters as JSON Schema (Gemini's `parametersJsonSchema`, not the OpenAPI-subset
    /// `parameters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parameters_json_schema: Option<Value>,
}

/// `toolConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig {
    /// The calling mode.
    pub(crate) function_calling_config: FunctionCallingConfig,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfig {
    /// `AUTO`, `ANY` or `NONE`.
    pub(crate) mode: &'static str,
    /// With `ANY`: the functions the model may choose from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_function_names: Option<Vec<String>>,
}

/// `generationConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig {
    /// Stop sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stop_sequences: Option<Vec<String>>,
    /// Output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_output_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_k: Option<u64>,
    /// Number of candidates (OpenAI's `n`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) candidate_count: Option<u32>,
    /// Sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<i64>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) frequency_penalty: Option<f64>,
    /// `application/json` for JSON mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_mime_type: Option<String>,
    /// The JSON Schema the answer must follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_json_schema: Option<Value>,
    /// Reasoning settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_config: Option<ThinkingConfig>,
}

/// `generationConfig.thinkingConfig`. Gemini 3 takes a level, Gemini 2.5 a token budget;
/// never both.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfig {
    /// Reasoning tokens allowed (Gemini 2.5); 0 turns thinking off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_budget: Option<u64>,
    /// `minimal`, `low`, `medium` or `high` (Gemini 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) thinking_level: Option<&'static str>,
    /// Return thought summaries as `thought` parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) include_thoughts: Option<bool>,
}

/// A `generateContent` answer, or one chunk of a stream.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The candidates (one unless `candidateCount` asked for more).
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    /// Why the prompt was blocked, if it was.
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    /// Token counts; on a stream, repeated and growing: the last one counts.
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
    /// The model version that answered.
    #[serde(default)]
    pub(crate) model_version: Option<String>,
    /// The answer's id.
    #[serde(default)]
    pub(crate) response_id: Option<String>,
    /// An error reported in band (on a stream).
    #[serde(default)]
    pub(crate) error: Option<ErrorDetail>,
}

/// One candidate answer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    /// The answer's parts (absent when it was blocked).
    #[serde(default)]
    pub(crate) content: Option<Content>,
    /// Why generation stopped (on the last chunk of a stream).
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    /// A text explaining the finish reason, when Gemini gives one.
    #[serde(default)]
    pub(crate) finish_message: Option<String>,
    /// The candidate's position.
    #[serde(default)]
    pub(crate) index: Option<u32>,
}

/// `promptFeedback`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    /// Set when the prompt itself was blocked (`SAFETY`, `BLOCKLIST`, ...).
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

/// `usageMetadata`. `promptTokenCount` includes the cached tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    /// Input tokens, cached ones included.
    #[serde(default)]
    pub(crate) prompt_token_count: u64,
    /// Output tokens of the answer, reasoning excluded.
    #[serde(default)]
    pub(crate) candidates_token_count: u64,
    /// Input tokens read from a context cache.
    #[serde(default)]
    pub(crate) cached_content_token_count: u64,
    /// Reasoning tokens (billed as output).
    #[serde(default)]
    pub(crate) thoughts_token_count: u64,
    /// Input tokens of tool-use prompts (built-in tools such as search).
    #[serde(default)]
    pub(crate) tool_use_prompt_token_count: u64,
}

/// Google's error, the object inside `{"error": {"code", "message", "status"}}`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    /// The HTTP status.
    #[serde(default)]
    pub(crate) code: Option<u16>,
    /// What went wrong.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// The gRPC status name (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...).
    #[serde(default)]
    pub(crate) status: Option<String>,
}

/// `POST .../models/{model}:batchEmbedContents` body (AI Studio).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BatchEmbedRequest {
    /// One request per input.
    pub(crate) requests: Vec<EmbedRequest>,
}

/// One input of [`BatchEmbedRequest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmbedRequest {
    /// `models/{model}`, the same as the URL's.
    pub(crate) model: String,
    /// The text.
    pub(crate) content: Content,
    /// `RETRIEVAL_QUERY`, `SEMANTIC_SIMILARITY`, ... (the request's `task_type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_type: Option<String>,
    /// Truncated vector size (OpenAI's `dimensions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_dimensionality: Option<u64>,
}

/// The answer to [`BatchEmbedRequest`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchEmbedResponse {
    /// One vector per input, in order.
    #[serde(default)]
    pub(crate) embeddings: Vec<EmbeddingValues>,
    /// Token counts, when reported.
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
}

/// One vector.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct EmbeddingValues {
    /// The components.
    #[serde(default)]
    pub(crate) values: Vec<f64>,
}

/// Vertex AI's `POST .../models/{model}:predict` body for embeddings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PredictRequest {
    /// One instance per input.
    pub(crate) instances: Vec<PredictInstance>,
    /// `{outputDimensionality}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parameters: Option<Value>,
}

/// One input of [`PredictRequest`] (Vertex spells these fields in snake_case).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PredictInstance {
    /// The text.
    pub(crate) content: String,
    /// The task type, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_type: Option<String>,
}

/// The answer to [`PredictRequest`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct PredictResponse {
    /// One prediction per instance.
    #[serde(default)]
    pub(crate) predictions: Vec<Prediction>,
}

/// One prediction.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct Prediction {
    /// The vector and its statistics.
    #[serde(default)]
    pub(crate) embeddings: PredictionEmbedding,
}

/// `predictions[].embeddings`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub(crate) struct PredictionEmbedding {
    /// The components.
    #[serde(default)]
    pub(crate) values: Vec<f64>,
    /// `{token_count, truncated}`.
    #[serde(default)]
    pub(crate) statistics: Option<PredictionStatistics>,
}

/// `predictions[].embeddings.statistics`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub(crate) struct PredictionStatistics {
    /// Input tokens.
    #[serde(default)]
    pub(crate) token_count: f64,
}
