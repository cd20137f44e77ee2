//! OpenAI chat request → Converse request. Pure: no I/O, no clock.
//!
//! What changes on the way, and why:
//! - `system` and `developer` messages, wherever they stand, become `system` blocks (Converse
//!   has one system prompt).
//! - Converse wants strictly alternating user and assistant turns, so consecutive messages of
//!   the same side are merged: the results of parallel tool calls, and the user text that
//!   follows them, become one user turn.
//! - `tool` messages become `toolResult` blocks; a tool message with `"is_error": true` gets
//!   `status: "error"` (the field is left out otherwise, because only some models take it).
//! - Tool-call ids are kept, except characters Bedrock refuses (its ids match
//!   `[a-zA-Z0-9_-]{1,64}`), which become `_` the same way on both sides of a call.
//! - Blank text is dropped (Bedrock refuses empty text blocks), and so is a message left with
//!   nothing.
//! - `cache_control` on a part (or a message) adds a `cachePoint` after it.
//! - Images must be inline (`data:` URLs): Bedrock cannot fetch a URL.

use portico_providers::ProviderError;
use portico_providers::chat::{
    ChatRequest, Content, ContentPart, Message as ChatMessage, ResponseFormat, Role, ThinkingBlock,
    ToolChoice as ChatToolChoice,
};
use serde_json::{Map, Value, json};

use crate::error::invalid_request;
use crate::media::{document, image};
use crate::wire::{
    Block, CachePoint, ConverseRequest, Empty, InferenceConfig, InputSchema, Message, NamedTool,
    ReasoningContent, ReasoningText, SystemBlock, ToolChoice, ToolConfig, ToolEntry, ToolResult,
    ToolResultContent, ToolSpec, ToolUse,
};

/// Top-level Converse fields a client may send as they are (Bedrock's own names).
const NATIVE_FIELDS: [&str; 6] = [
    "guardrailConfig",
    "performanceConfig",
    "requestMetadata",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "serviceTier",
];

/// Request extras passed to the model in `additionalModelRequestFields` under their own name.
const MODEL_FIELDS: [&str; 2] = ["top_k", "thinking"];

/// The system instruction that stands in for JSON mode, which Converse does not have.
pub(crate) const JSON_MODE_INSTRUCTION: &str =
    "Answer with one valid JSON object and nothing else: no prose, no code fences.";

/// Translates an OpenAI chat request into a Converse request.
///
/// Fails with a 400 that says what to change when the request asks for something Bedrock
/// cannot do (image URLs, audio, several choices, ...).
pub(crate) fn to_converse(req: &ChatRequest) -> Result<ConverseRequest, ProviderError> {
    if req.n.is_some_and(|n| n != 1) {
        return Err(invalid_request(
            "Bedrock returns one choice per request; leave `n` unset or set it to 1",
            Some("n"),
        ));
    }
    let mut out = ConverseRequest::default();
    for (i, message) in req.messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        match message.role {
            Role::System | Role::Developer => system_blocks(message, &at, &mut out.system)?,
            Role::User => push(&mut out.messages, "user", user_blocks(message, &at)?),
            Role::Assistant => push(
                &mut out.messages,
                "assistant",
                assistant_blocks(message, &at)?,
            ),
            Role::Tool => push(&mut out.messages, "user", vec![tool_result(message, &at)?]),
            Role::Function => {
                return Err(invalid_request(
                    "legacy `function` messages are not supported for Bedrock; send tool calls with `tools` and answer them with `role: \"tool\"` messages",
                    Some(&at),
                ));
            }
        }
    }
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema.schema.clone().unwrap_or_else(|| json!({}));
            let mut definition = Map::new();
            definition.insert("schema".into(), Value::String(schema.to_string()));
            if !json_schema.name.is_empty() {
                definition.insert("name".into(), Value::String(json_schema.name.clone()));
            }
            if let Some(description) = &json_schema.description {
                definition.insert("description".into(), Value::String(description.clone()));
            }
            out.output_config = Some(json!({
                "textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}
            }));
        }
        Some(ResponseFormat::JsonObject) => out
            .system
            .push(SystemBlock::Text(JSON_MODE_INSTRUCTION.to_owned())),
        Some(ResponseFormat::Text) | None => {}
    }
    let inference = InferenceConfig {
        max_tokens: req.max_output_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
    };
    out.inference_config = (!inference.is_empty()).then_some(inference);
    out.tool_config = tool_config(req, &out.messages)?;
    out.additional_model_request_fields = model_fields(req)?;
    for name in NATIVE_FIELDS {
        if let Some(value) = req.extra.get(name).filter(|v| !v.is_null()) {
            out.native.insert(name.to_owned(), value.clone());
        }
    }
    Ok(out)
}

/// Appends `blocks` as a turn of `role`, merged into the previous turn when that is the same
/// side (Converse refuses two user or two assistant turns in a row).
fn push(messages: &mut Vec<Message>, role: &'static str, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(Message {
            role,
            content: blocks,
        }),
    }
}

/// Whether a message carries a whole-message cache hint (`cache_control` beside `content`).
fn message_cache_hint(message: &ChatMessage) -> bool {
    message
        .extra
        .get("cache_control")
        .is_some_and(|v| !v.is_null())
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

fn system_blocks(
    message: &ChatMessage,
    at: &str,
    system: &mut Vec<SystemBlock>,
) -> Result<(), ProviderError> {
    match &message.content {
        None => {}
        Some(Content::Text(text)) if is_blank(text) => {}
        Some(Content::Text(text)) => system.push(SystemBlock::Text(text.clone())),
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text {
                        text,
                        cache_control,
                    } => {
                        if !is_blank(text) {
                            system.push(SystemBlock::Text(text.clone()));
                        }
                        if cache_control.as_ref().is_some_and(|c| !c.is_null()) {
                            system.push(SystemBlock::CachePoint(CachePoint::DEFAULT));
                        }
                    }
                    _ => {
                        return Err(invalid_request(
                            "system and developer messages may hold only text for Bedrock; move images and files into a user message",
                            Some(&format!("{at}.content[{j}]")),
                        ));
                    }
                }
            }
        }
    }
    if message_cache_hint(message) {
        system.push(SystemBlock::CachePoint(CachePoint::DEFAULT));
    }
    Ok(())
}

fn user_blocks(message: &ChatMessage, at: &str) -> Result<Vec<Block>, ProviderError> {
    let mut blocks = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) if is_blank(text) => {}
        Some(Content::Text(text)) => blocks.push(Block::Text(text.clone())),
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let param = format!("{at}.content[{j}]");
                match part {
                    ContentPart::Text {
                        text,
                        cache_control,
                    } => {
                        if !is_blank(text) {
                            blocks.push(Block::Text(text.clone()));
                        }
                        if cache_control.as_ref().is_some_and(|c| !c.is_null()) {
                            blocks.push(Block::CachePoint(CachePoint::DEFAULT));
                        }
                    }
                    ContentPart::ImageUrl { image_url } => {
                        blocks.push(Block::Image(image(image_url, &param)?));
                    }
                    ContentPart::File { file } => {
                        blocks.push(Block::Document(document(file, &param, j)?));
                    }
                    ContentPart::InputAudio { .. } => {
                        return Err(invalid_request(
                            "Bedrock's Converse API does not take audio input; transcribe it first or route this request to a provider that does",
                            Some(&param),
                        ));
                    }
                    ContentPart::Other(value) => {
                        let kind = value.get("type").and_then(Value::as_str).unwrap_or("?");
                        return Err(invalid_request(
                            format!(
                                "content parts of type `{kind}` cannot be sent to Bedrock; use text, image_url or file parts"
                            ),
                            Some(&param),
                        ));
                    }
                }
            }
        }
    }
    if message_cache_hint(message) && !blocks.is_empty() {
        blocks.push(Block::CachePoint(CachePoint::DEFAULT));
    }
    Ok(blocks)
}

/// A tool-call id as Bedrock accepts it (`[a-zA-Z0-9_-]{1,64}`); valid ids are unchanged.
pub(crate) fn tool_use_id(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "tool_call".to_owned()
    } else {
        clean
    }
}

fn assistant_blocks(message: &ChatMessage, at: &str) -> Result<Vec<Block>, ProviderError> {
    let mut blocks: Vec<Block> = message
        .thinking_blocks
        .iter()
        .flatten()
        .filter_map(reasoning_block)
        .collect();
    let text = message.text();
    if !is_blank(&text) {
        blocks.push(Block::Text(text));
    }
    for (k, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = call.function.input(
            &format!("{at}.tool_calls[{k}].function.arguments"),
            "Bedrock",
        )?;
        blocks.push(Block::ToolUse(ToolUse {
            tool_use_id: tool_use_id(&call.id),
            name: call.function.name.clone(),
            input,
        }));
    }
    if message_cache_hint(message) && !blocks.is_empty() {
        blocks.push(Block::CachePoint(CachePoint::DEFAULT));
    }
    Ok(blocks)
}

/// An earlier reasoning block sent back: signed text, or encrypted reasoning. Reasoning
/// without a signature cannot be verified by the model, so it is not sent.
fn reasoning_block(block: &ThinkingBlock) -> Option<Block> {
    match block.kind.as_str() {
        "thinking" => {
            let signature = block.signature.clone()?;
            Some(Block::ReasoningContent(ReasoningContent::ReasoningText(
                ReasoningText {
                    text: block.thinking.clone().unwrap_or_default(),
                    signature: Some(signature),
                },
            )))
        }
        "redacted_thinking" => Some(Block::ReasoningContent(ReasoningContent::RedactedContent(
            block.data.clone()?,
        ))),
        _ => None,
    }
}

fn tool_result(message: &ChatMessage, at: &str) -> Result<Block, ProviderError> {
    let Some(id) = message.tool_call_id.as_deref() else {
        return Err(invalid_request(
            "a `tool` message needs the `tool_call_id` of the call it answers",
            Some(&format!("{at}.tool_call_id")),
        ));
    };
    let mut content = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) if is_blank(text) => {}
        Some(Content::Text(text)) => content.push(ToolResultContent::Text(text.clone())),
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let param = format!("{at}.content[{j}]");
                match part {
                    ContentPart::Text { text, .. } if !is_blank(text) => {
                        content.push(ToolResultContent::Text(text.clone()));
                    }
                    ContentPart::Text { .. } => {}
                    ContentPart::ImageUrl { image_url } => {
                        content.push(ToolResultContent::Image(image(image_url, &param)?));
                    }
                    _ => {
                        return Err(invalid_request(
                            "tool results for Bedrock may hold text and images only",
                            Some(&param),
                        ));
                    }
                }
            }
        }
    }
    let failed = message.extra.get("is_error") == Some(&Value::Bool(true));
    Ok(Block::ToolResult(ToolResult {
        tool_use_id: tool_use_id(id),
        content,
        status: failed.then_some("error"),
    }))
}

/// `toolConfig`. Converse has no `tool_choice: "none"`, and refuses tool blocks in the
/// history unless tools are declared; so `none` leaves the tools out only when the history
/// has no tool blocks, and a history with tool blocks but no `tools` gets a plain declaration
/// of each tool it used.
fn tool_config(
    req: &ChatRequest,
    messages: &[Message],
) -> Result<Option<ToolConfig>, ProviderError> {
    let mut used: Vec<&str> = Vec::new();
    let mut history_has_tools = false;
    for block in messages.iter().flat_map(|m| &m.content) {
        match block {
            Block::ToolUse(call) => {
                history_has_tools = true;
                if !used.contains(&call.name.as_str()) {
                    used.push(&call.name);
                }
            }
            Block::ToolResult(_) => history_has_tools = true,
            _ => {}
        }
    }
    let declared = req.tools.as_deref().unwrap_or_default();
    let choice = req.tool_choice.as_ref();
    let none = choice.and_then(ChatToolChoice::mode) == Some("none");
    if declared.is_empty() || none {
        if !history_has_tools {
            return Ok(None);
        }
        if declared.is_empty() {
            let tools = used
                .into_iter()
                .map(|name| {
                    ToolEntry::ToolSpec(ToolSpec {
                        name: name.to_owned(),
                        description: Some("A tool called earlier in this conversation.".into()),
                        input_schema: InputSchema {
                            json: json!({"type": "object", "properties": {}}),
                        },
                    })
                })
                .collect();
            return Ok(Some(ToolConfig {
                tools,
                tool_choice: None,
            }));
        }
    }
    let tools = declared
        .iter()
        .map(|tool| {
            ToolEntry::ToolSpec(ToolSpec {
                name: tool.function.name.clone(),
                description: tool.function.description.clone().filter(|d| !d.is_empty()),
                input_schema: InputSchema {
                    json: tool
                        .function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                },
            })
        })
        .collect();
    let tool_choice = match choice {
        _ if none => None,
        None => None,
        Some(ChatToolChoice::Named { function, .. }) => Some(ToolChoice::Tool(NamedTool {
            name: function.name.clone(),
        })),
        Some(ChatToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(ToolChoice::Auto(Empty {})),
            "required" => Some(ToolChoice::Any(Empty {})),
            other => {
                return Err(invalid_request(
                    format!(
                        "unknown tool_choice `{other}`; use \"none\", \"auto\", \"required\" or a named function"
                    ),
                    Some("tool_choice"),
                ));
            }
        },
    };
    Ok(Some(ToolConfig { tools, tool_choice }))
}

/// `additionalModelRequestFields`: the client's own object, plus `top_k` and `thinking`.
fn model_fields(req: &ChatRequest) -> Result<Option<Map<String, Value>>, ProviderError> {
    let mut fields = match req.extra.get("additionalModelRequestFields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(invalid_request(
                "`additionalModelRequestFields` must be a JSON object",
                Some("additionalModelRequestFields"),
            ));
        }
    };
    for name in MODEL_FIELDS {
        if let Some(value) = req.extra.get(name).filter(|v| !v.is_null()) {
            fields.insert(name.to_owned(), value.clone());
        }
    }
    Ok((!fields.is_empty()).then_some(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(body: Value) -> Value {
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        serde_json::to_value(to_converse(&req).unwrap()).unwrap()
    }

    fn refuse(body: Value) -> ProviderError {
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        to_converse(&req).unwrap_err()
    }

    #[test]
    fn ids_are_kept_or_cleaned_consistently() {
        assert_eq!(tool_use_id("call_abc-123"), "call_abc-123");
        assert_eq!(tool_use_id("toolu.01:x"), "toolu_01_x");
        assert_eq!(tool_use_id(&"a".repeat(80)).len(), 64);
        assert_eq!(tool_use_id(""), "tool_call");
    }

    #[test]
    fn remote_images_are_refused_with_the_fix() {
        let err = refuse(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        );
        assert_eq!(err.status(), Some(400));
        assert!(err.to_string().contains("data:image/png;base64"), "{err}");
    }

    #[test]
    fn several_choices_and_legacy_functions_are_refused() {
        assert_eq!(
            refuse(json!({"model": "m", "n": 2, "messages": []})).status(),
            Some(400)
        );
        assert_eq!(
            refuse(json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]}))
                .status(),
            Some(400)
        );
    }

    #[test]
    fn non_object_tool_arguments_are_refused() {
        let err = refuse(json!({"model": "m", "messages": [
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}));
        assert!(err.to_string().contains("JSON object"), "{err}");
    }

    #[test]
    fn tool_choice_none_without_tool_history_drops_tools() {
        let out = convert(json!({"model": "m", "tool_choice": "none",
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "hi"}]}));
        assert!(out.get("toolConfig").is_none(), "{out}");
    }

    #[test]
    fn tool_history_without_tools_declares_the_used_ones() {
        let out = convert(json!({"model": "m", "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "data"}]}));
        assert_eq!(out["toolConfig"]["tools"][0]["toolSpec"]["name"], "read");
        assert!(out["toolConfig"].get("toolChoice").is_none());
    }

    #[test]
    fn extras_go_to_their_places() {
        let out = convert(json!({"model": "m", "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "additionalModelRequestFields": {"anthropic_beta": ["x"]},
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(out["additionalModelRequestFields"]["top_k"], 5);
        assert_eq!(
            out["additionalModelRequestFields"]["thinking"]["budget_tokens"],
            1024
        );
        assert_eq!(
            out["additionalModelRequestFields"]["anthropic_beta"][0],
            "x"
        );
        assert_eq!(out["guardrailConfig"]["guardrailIdentifier"], "g");
    }
}
