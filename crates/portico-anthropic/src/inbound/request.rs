//! Anthropic Messages request → OpenAI chat request, for providers that do not speak
//! Anthropic's API. Pure.
//!
//! What has no chat-completions equivalent is refused with a 400 that says so (server tools,
//! unknown block types) or dropped and documented (`top_k`, `cache_control`, `container`);
//! `docs/messages-api.md` has the table.

use portico_core::{ApiError, ErrorCode, ProviderKind};
use portico_providers::chat::{
    ChatRequest, Content, ContentPart, FunctionDef, ImageUrl, JsonSchemaFormat, Message,
    NamedFunction, ResponseFormat, Role, Stop, StreamOptions, Tool, ToolChoice,
};
use serde_json::{Map, Value};

use crate::response::AssistantParts;
use crate::wire::{
    ContentBlock, ImageSource, MessageContent, MessagesRequest, System, ToolResultContent,
    WireMessage, WireToolChoice,
};

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message).with_param(param)
}

/// Translates a Messages request for a provider of kind `target` (which decides whether the
/// token limit is sent as `max_completion_tokens`, as OpenAI's newer models require, or as
/// `max_tokens`, which every other OpenAI-compatible server reads).
///
/// # Errors
///
/// A 400 [`ApiError`] naming the field when the request has no chat-completions equivalent.
pub fn to_chat_request(
    req: &MessagesRequest,
    target: ProviderKind,
) -> Result<ChatRequest, ApiError> {
    let Some(max_tokens) = req.max_tokens else {
        return Err(invalid(
            "max_tokens",
            "`max_tokens` is required: the most tokens the answer may have, for example 1024",
        ));
    };
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        let text = match system {
            System::Text(text) => text.clone(),
            System::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        if !text.is_empty() {
            messages.push(message(Role::System, Some(Content::Text(text))));
        }
    }
    for (i, turn) in req.messages.iter().enumerate() {
        match turn.role.as_str() {
            "user" => user_turn(turn, i, &mut messages)?,
            "assistant" => messages.push(assistant_turn(turn, i)?),
            other => {
                return Err(invalid(
                    "messages",
                    format!(
                        "messages[{i}].role `{other}` is not `user` or `assistant`; put instructions in `system`"
                    ),
                ));
            }
        }
    }
    let mut chat = ChatRequest {
        model: req.model.clone(),
        messages,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.clone().map(Stop::Many),
        user: req.metadata.as_ref().and_then(|m| m.user_id.clone()),
        ..ChatRequest::default()
    };
    if matches!(target, ProviderKind::OpenAi | ProviderKind::AzureOpenAi) {
        chat.max_completion_tokens = Some(max_tokens);
    } else {
        chat.max_tokens = Some(max_tokens);
    }
    if req.stream == Some(true) {
        chat.stream = Some(true);
        chat.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let mut out = Vec::new();
        for tool in tools {
            if !tool.is_custom() {
                return Err(invalid(
                    "tools",
                    format!(
                        "tool `{}` is an Anthropic server tool (`{}`), which only Anthropic providers run; route this request to an Anthropic provider or drop the tool",
                        tool.name,
                        tool.kind.as_deref().unwrap_or_default()
                    ),
                ));
            }
            out.push(Tool {
                kind: "function".to_owned(),
                function: FunctionDef {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    parameters: tool.input_schema.clone(),
                    strict: tool.strict,
                },
            });
        }
        chat.tools = Some(out);
        if let Some(choice) = &req.tool_choice {
            tool_choice(choice, &mut chat)?;
        }
    }
    chat.reasoning_effort = reasoning_effort(req);
    if let Some(format) = req.output_config.as_ref().and_then(|c| c.get("format")) {
        chat.response_format = Some(response_format(format)?);
    }
    Ok(chat)
}

fn message(role: Role, content: Option<Content>) -> Message {
    Message {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        reasoning_content: None,
        thinking_blocks: None,
        extra: Map::new(),
    }
}

fn tool_choice(choice: &WireToolChoice, chat: &mut ChatRequest) -> Result<(), ApiError> {
    chat.tool_choice = Some(match choice.kind.as_str() {
        "auto" => ToolChoice::Mode("auto".to_owned()),
        "any" => ToolChoice::Mode("required".to_owned()),
        "none" => ToolChoice::Mode("none".to_owned()),
        "tool" => {
            let Some(name) = choice.name.clone() else {
                return Err(invalid(
                    "tool_choice",
                    "`tool_choice` of type `tool` needs the tool's `name`",
                ));
            };
            ToolChoice::Named {
                kind: "function".to_owned(),
                function: NamedFunction { name },
            }
        }
        other => {
            return Err(invalid(
                "tool_choice",
                format!("`tool_choice.type` `{other}` is not one of auto, any, tool, none"),
            ));
        }
    });
    if choice.disable_parallel_tool_use == Some(true) {
        chat.parallel_tool_calls = Some(false);
    }
    Ok(())
}

/// `thinking` (or `output_config.effort`) as an OpenAI `reasoning_effort`: a budget under
/// 4,096 tokens is `low`, under 16,384 `medium`, more `high`; adaptive thinking is `medium`.
fn reasoning_effort(req: &MessagesRequest) -> Option<String> {
    let effort = match req.thinking.as_ref() {
        Some(thinking) => match thinking.get("type").and_then(Value::as_str) {
            Some("enabled") => match thinking.get("budget_tokens").and_then(Value::as_u64) {
                Some(b) if b < 4096 => "low",
                Some(b) if b < 16_384 => "medium",
                Some(_) => "high",
                None => "medium",
            },
            Some("adaptive") => "medium",
            _ => return None,
        },
        None => match req
            .output_config
            .as_ref()
            .and_then(|c| c.get("effort"))
            .and_then(Value::as_str)?
        {
            "max" => "high",
            other => other,
        },
    };
    Some(effort.to_owned())
}

fn response_format(format: &Value) -> Result<ResponseFormat, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => Ok(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "output".to_owned(),
                description: None,
                schema: format.get("schema").cloned(),
                strict: Some(true),
            },
        }),
        _ => Err(invalid(
            "output_config",
            "`output_config.format.type` must be `json_schema`",
        )),
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, in order), the rest
/// one user message.
fn user_turn(turn: &WireMessage, i: usize, out: &mut Vec<Message>) -> Result<(), ApiError> {
    let blocks = match &turn.content {
        MessageContent::Text(text) => {
            out.push(message(Role::User, Some(Content::Text(text.clone()))));
            return Ok(());
        }
        MessageContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => {
                let (text, extra_parts) = tool_result_content(content.as_ref(), i)?;
                let text = if *is_error == Some(true) {
                    format!("Error: {text}")
                } else {
                    text
                };
                let mut tool = message(Role::Tool, Some(Content::Text(text)));
                tool.tool_call_id = Some(tool_use_id.clone());
                out.push(tool);
                // Images a tool returned cannot go in a tool message; they follow as user
                // content.
                parts.extend(extra_parts);
            }
            other => parts.push(part(other, i)?),
        }
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            [ContentPart::Text { text, .. }] => Content::Text(text.clone()),
            _ => Content::Parts(parts),
        };
        out.push(message(Role::User, Some(content)));
    }
    Ok(())
}

fn tool_result_content(
    content: Option<&ToolResultContent>,
    i: usize,
) -> Result<(String, Vec<ContentPart>), ApiError> {
    match content {
        None => Ok((String::new(), Vec::new())),
        Some(ToolResultContent::Text(text)) => Ok((text.clone(), Vec::new())),
        Some(ToolResultContent::Blocks(blocks)) => {
            let mut texts = Vec::new();
            let mut others = Vec::new();
            for block in blocks {
                match block {
                    ContentBlock::Text { text, .. } => texts.push(text.as_str()),
                    other => others.push(part(other, i)?),
                }
            }
            Ok((texts.join("\n"), others))
        }
    }
}

/// A user content block as an OpenAI content part.
fn part(block: &ContentBlock, i: usize) -> Result<ContentPart, ApiError> {
    Ok(match block {
        ContentBlock::Text { text, .. } => ContentPart::Text {
            text: text.clone(),
            cache_control: None,
        },
        ContentBlock::Image { source, .. } => ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: match source {
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                    ImageSource::Url { url } => url.clone(),
                    ImageSource::Other(_) => {
                        return Err(unsupported_block("image source", i));
                    }
                },
                detail: None,
            },
        },
        ContentBlock::Document { source, extra } => document(source, extra, i)?,
        ContentBlock::ToolUse { .. } => {
            return Err(invalid(
                "messages",
                format!(
                    "messages[{i}] is a user turn with a `tool_use` block; tool calls belong to assistant turns"
                ),
            ));
        }
        ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {
            return Err(invalid(
                "messages",
                format!(
                    "messages[{i}] is a user turn with a thinking block; thinking belongs to assistant turns"
                ),
            ));
        }
        ContentBlock::ToolResult { .. } => return Err(unsupported_block("nested tool_result", i)),
        ContentBlock::Other(value) => {
            let kind = value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            return Err(unsupported_block(kind, i));
        }
    })
}

fn unsupported_block(kind: &str, i: usize) -> ApiError {
    invalid(
        "messages",
        format!(
            "messages[{i}] has a `{kind}` block, which only Anthropic providers take; route this request to an Anthropic provider"
        ),
    )
}

/// A base64 document as an OpenAI `file` part; a plain-text document as text.
fn document(source: &Value, extra: &Map<String, Value>, i: usize) -> Result<ContentPart, ApiError> {
    let field = |name: &str| source.get(name).and_then(Value::as_str);
    match field("type") {
        Some("base64") => {
            let media = field("media_type").unwrap_or("application/pdf");
            let mut file = Map::new();
            file.insert(
                "file_data".to_owned(),
                Value::from(format!(
                    "data:{media};base64,{}",
                    field("data").unwrap_or_default()
                )),
            );
            let title = extra
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            file.insert("filename".to_owned(), Value::from(title));
            Ok(ContentPart::File {
                file: Value::Object(file),
            })
        }
        Some("text") => Ok(ContentPart::Text {
            text: field("data").unwrap_or_default().to_owned(),
            cache_control: None,
        }),
        _ => Err(unsupported_block("document source", i)),
    }
}

fn assistant_turn(turn: &WireMessage, i: usize) -> Result<Message, ApiError> {
    let blocks = match &turn.content {
        MessageContent::Text(text) => {
            return Ok(message(Role::Assistant, Some(Content::Text(text.clone()))));
        }
        MessageContent::Blocks(blocks) => blocks,
    };
    let mut parts = AssistantParts::default();
    for block in blocks {
        if parts.take(block) {
            continue;
        }
        let kind = match block {
            ContentBlock::Other(value) => value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
            _ => "non-text",
        };
        return Err(unsupported_block(kind, i));
    }
    let AssistantParts {
        text,
        reasoning,
        thinking_blocks: thinking,
        tool_calls: calls,
    } = parts;
    let mut out = message(Role::Assistant, text.map(Content::Text));
    out.tool_calls = (!calls.is_empty()).then_some(calls);
    out.reasoning_content = reasoning;
    out.thinking_blocks = (!thinking.is_empty()).then_some(thinking);
    Ok(out)
}
