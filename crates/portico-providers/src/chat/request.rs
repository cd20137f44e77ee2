//! The chat-completions request.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ProviderError;

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model (already the upstream name when an adapter sees it).
    #[serde(default)]
    pub model: String,
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// `false` asks for at most one tool call per turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// JSON mode or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Output token limit (the current name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Output token limit (the deprecated name, still sent by many clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Whether to stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// `low` / `medium` / `high` reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field, kept as sent (provider-specific extras such as `top_k` or
    /// `thinking` live here).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// The output token limit, whichever name the client used.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Whether the client asked for a usage chunk at the end of a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// `stream_options`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a usage chunk before `[DONE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other options, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// A message's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions (older name).
    System,
    /// Instructions (newer name).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
    /// A function's result (the legacy form of `tool`).
    Function,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text or parts; `null` on an assistant message that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Author name (OpenAI's optional participant name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Reasoning text of an earlier assistant turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Reasoning blocks with signatures of an earlier assistant turn (round-tripped to
    /// providers that need them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// The message's text: the string content, or its text parts joined with newlines.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(s)) => s.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A reasoning block: `{type: "thinking", thinking, signature}` or
/// `{type: "redacted_thinking", data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    /// `thinking` or `redacted_thinking`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// The provider's signature over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Encrypted reasoning of a redacted block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl ThinkingBlock {
    /// A `thinking` block: the reasoning text and the provider's signature over it.
    pub fn signed(thinking: String, signature: Option<String>) -> ThinkingBlock {
        ThinkingBlock {
            kind: "thinking".to_owned(),
            thinking: Some(thinking),
            signature,
            data: None,
        }
    }

    /// A `redacted_thinking` block: encrypted reasoning, sent back as it came.
    pub fn redacted(data: String) -> ThinkingBlock {
        ThinkingBlock {
            kind: "redacted_thinking".to_owned(),
            thinking: None,
            signature: None,
            data: Some(data),
        }
    }
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts: text, images, audio, files.
    Parts(Vec<ContentPart>),
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// A prompt-cache hint (`{"type": "ephemeral"}`), passed to providers that have one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// An image by URL or `data:` URL.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
    /// Audio input.
    InputAudio {
        /// `{data, format}`.
        input_audio: Value,
    },
    /// A file.
    File {
        /// `{file_id | file_data, filename}`.
        file: Value,
    },
    /// A part type this version does not know, kept as sent.
    #[serde(untagged)]
    Other(Value),
}

/// `image_url` of an image part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://...` or `data:<mime>;base64,<data>`.
    pub url: String,
    /// `low` / `high` / `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// For a `data:` URL, its media type and base64 data.
    pub fn as_data(&self) -> Option<(&str, &str)> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let media = meta.strip_suffix(";base64")?;
        Some((media, data))
    }
}

/// A tool call of an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed by the tool message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its JSON arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

/// The function of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments as a JSON text (OpenAI's convention), possibly empty.
    #[serde(default)]
    pub arguments: String,
}

impl FunctionCall {
    /// The arguments as the JSON object a translating dialect sends as the call's input
    /// (empty arguments are `{}`). `param` is where the call is in the request
    /// (`messages[1].tool_calls[0].function.arguments`), `who` the dialect's name.
    ///
    /// Every dialect takes tool inputs as objects only, and none guesses at another shape (a
    /// model's truncated JSON, a bare string): the arguments are what the model is told it
    /// called the tool with, so they are refused rather than rewritten.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Rejected`] naming `param`, for arguments that are not valid JSON or
    /// not an object.
    pub fn input(&self, param: &str, who: &str) -> Result<Value, ProviderError> {
        let arguments = self.arguments.trim();
        if arguments.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        let problem = match serde_json::from_str::<Value>(arguments) {
            Ok(value @ Value::Object(_)) => return Ok(value),
            Ok(_) => "is not a JSON object".to_owned(),
            Err(e) => format!("is not valid JSON ({e})"),
        };
        Err(ProviderError::rejected(
            format!("{param} {problem}; {who} takes a tool call's arguments as a JSON object only"),
            Some(param),
        ))
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A function's declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{type: "function", function: {name}}`.
    Named {
        /// Always `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function to call.
        function: NamedFunction,
    },
}

/// The function of a named tool choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}

impl ToolChoice {
    /// `Some("none" | "auto" | "required")` for a mode.
    pub fn mode(&self) -> Option<&str> {
        match self {
            ToolChoice::Mode(m) => Some(m),
            ToolChoice::Named { .. } => None,
        }
    }

    /// The forced function's name, for a named choice.
    pub fn function_name(&self) -> Option<&str> {
        match self {
            ToolChoice::Named { function, .. } => Some(&function.name),
            ToolChoice::Mode(_) => None,
        }
    }
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Plain text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// The schema.
        json_schema: JsonSchemaFormat,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name.
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Strict adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_openclaw_request() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/openclaw/turn2-tool-result-request.json"
        );
        let recorded: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let req: ChatRequest = serde_json::from_value(recorded["body_json"].clone()).unwrap();
        assert_eq!(req.tools.as_ref().unwrap().len(), 11);
        assert_eq!(req.max_output_tokens(), Some(8192));
        assert!(req.include_usage());
        assert_eq!(req.tool_choice.as_ref().unwrap().mode(), Some("auto"));
        let assistant = req
            .messages
            .iter()
            .find(|m| m.role == Role::Assistant)
            .unwrap();
        let call = &assistant.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.function.name, "read");
        let tool = req.messages.iter().find(|m| m.role == Role::Tool).unwrap();
        assert_eq!(tool.tool_call_id.as_deref(), Some(call.id.as_str()));
        let last = req.messages.last().unwrap();
        assert!(matches!(last.content, Some(Content::Parts(_))));
    }

    #[test]
    fn unknown_fields_and_parts_are_kept() {
        let body = json!({"model": "m", "top_k": 5, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video", "video": 1}]}
        ]});
        let req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.extra["top_k"], 5);
        let Some(Content::Parts(parts)) = &req.messages[0].content else {
            panic!()
        };
        assert!(matches!(parts[1], ContentPart::Other(_)));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn data_urls_split() {
        let img = ImageUrl {
            url: "data:image/png;base64,iVBOR".into(),
            detail: None,
        };
        assert_eq!(img.as_data(), Some(("image/png", "iVBOR")));
        let remote = ImageUrl {
            url: "https://x/y.png".into(),
            detail: None,
        };
        assert_eq!(remote.as_data(), None);
    }

    #[test]
    fn tool_choice_forms() {
        let named: ToolChoice =
            serde_json::from_value(json!({"type": "function", "function": {"name": "f"}})).unwrap();
        assert_eq!(named.function_name(), Some("f"));
        let mode: ToolChoice = serde_json::from_value(json!("required")).unwrap();
        assert_eq!(mode.mode(), Some("required"));
    }
}
