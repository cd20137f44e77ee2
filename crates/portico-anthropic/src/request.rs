//! OpenAI chat request → Anthropic Messages request. Pure: no I/O.
//!
//! The mapping, and what happens where Anthropic has no equivalent, is tabulated in
//! `docs/providers/anthropic.md`; the main rules:
//! - `system` and `developer` messages, wherever they are, become the top-level `system`
//!   blocks, in order, keeping `cache_control` hints;
//! - consecutive messages of the same Anthropic role are merged, so a run of `tool` messages
//!   (and a user message right after them) becomes one user turn whose `tool_result` blocks
//!   come first;
//! - assistant `tool_calls` become `tool_use` blocks whose `input` is the parsed `arguments`
//!   (text that is not a JSON object is refused, naming the call);
//! - `max_completion_tokens` (or `max_tokens`) becomes `max_tokens`, [`DEFAULT_MAX_TOKENS`]
//!   when neither is sent;
//! - `reasoning_effort` becomes a thinking budget ([`thinking_budget`]); a native `thinking`
//!   object is sent as it is and wins;
//! - `response_format: json_schema` becomes `output_config.format`; `json_object` is a 400,
//!   because Anthropic has no schemaless JSON mode.

use portico_providers::ProviderError;
use portico_providers::chat::{
    ChatRequest, Content, ContentPart, ImageUrl, Message, ResponseFormat, Role, ThinkingBlock,
    Tool, ToolChoice,
};
use serde_json::{Map, Value, json};

use crate::wire::{
    ContentBlock, ImageSource, MessageContent, MessagesRequest, Metadata, REQUEST_FIELDS, System,
    ToolResultContent, WireMessage, WireTool, WireToolChoice,
};

/// `max_tokens` when the client sends no limit (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// OpenAI parameters with no Anthropic meaning: dropped rather than sent, because Anthropic
/// rejects unknown fields.
const DROPPED: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "store",
    "metadata",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "verbosity",
    "service_tier",
    "functions",
    "function_call",
];

/// A request Anthropic cannot take, refused before it is sent, with a message that says what
/// to change ([`ProviderError::Rejected`]).
pub(crate) fn invalid(param: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::rejected(message, Some(param))
}

/// The thinking budget for an OpenAI `reasoning_effort`; `Ok(None)` turns thinking off.
///
/// `none` → off; `minimal` and `low` → 1,024 tokens (Anthropic's minimum); `medium` →
/// 4,096; `high` → 16,384; `xhigh` → 32,768.
pub fn thinking_budget(effort: &str) -> Result<Option<u64>, ProviderError> {
    Ok(Some(match effort {
        "none" => return Ok(None),
        "minimal" | "low" => MIN_THINKING_BUDGET,
        "medium" => 4096,
        "high" => 16_384,
        "xhigh" => 32_768,
        other => {
            return Err(invalid(
                "reasoning_effort",
                format!(
                    "`reasoning_effort` `{other}` is not one of none, minimal, low, medium, high, xhigh"
                ),
            ));
        }
    }))
}

/// Translates a chat request into a Messages request for `model`.
pub fn to_messages_request(
    req: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<MessagesRequest, ProviderError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(invalid(
            "n",
            "Anthropic models return one choice per request; drop `n` or send several requests",
        ));
    }
    let (system, messages) = conversation(&req.messages)?;
    let mut out = MessagesRequest {
        model: model.to_owned(),
        messages,
        system: (!system.is_empty()).then_some(System::Blocks(system)),
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|s| !s.is_empty()),
        temperature: req.temperature,
        top_p: req.top_p,
        stream: stream.then_some(true),
        metadata: req.user.clone().map(|user_id| Metadata {
            user_id: Some(user_id),
        }),
        ..MessagesRequest::default()
    };
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        out.tools = Some(tools.iter().map(tool).collect());
        out.tool_choice = tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)?;
    }
    for (key, value) in &req.extra {
        if !DROPPED.contains(&key.as_str()) && !REQUEST_FIELDS.contains(&key.as_str()) {
            out.extra.insert(key.clone(), value.clone());
        }
    }
    out.top_k = match req.extra.get("top_k") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid("top_k", "`top_k` must be a positive integer"))?,
        ),
    };
    if let Some(Value::Object(config)) = req.extra.get("output_config") {
        out.output_config = Some(config.clone());
    }
    output_format(req.response_format.as_ref(), &mut out)?;
    limits(req, &mut out)?;
    Ok(out)
}

/// Sets `max_tokens` and `thinking`.
fn limits(req: &ChatRequest, out: &mut MessagesRequest) -> Result<(), ProviderError> {
    let asked = req.max_output_tokens();
    let native = req.extra.get("thinking").filter(|t| !t.is_null()).cloned();
    let budget = match (&native, req.reasoning_effort.as_deref()) {
        (Some(thinking), _) => {
            out.thinking = Some(thinking.clone());
            // A native budget needs room above it; only a missing limit is adjusted.
            thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .map(|b| (b, false))
        }
        (None, Some(effort)) => thinking_budget(effort)?.map(|b| (b, true)),
        (None, None) => None,
    };
    out.max_tokens = Some(match (asked, budget) {
        (Some(max), Some((budget, true))) => {
            // OpenAI's limit covers reasoning and answer, as Anthropic's does: think with at
            // most half of it.
            if max <= MIN_THINKING_BUDGET {
                return Err(invalid(
                    "max_completion_tokens",
                    format!(
                        "with `reasoning_effort`, `max_completion_tokens` must be above {MIN_THINKING_BUDGET} (Anthropic's smallest thinking budget); raise it or drop `reasoning_effort`"
                    ),
                ));
            }
            let budget = budget.min(max / 2).max(MIN_THINKING_BUDGET);
            out.thinking = Some(json!({"type": "enabled", "budget_tokens": budget}));
            max
        }
        (None, Some((budget, derived))) => {
            if derived {
                out.thinking = Some(json!({"type": "enabled", "budget_tokens": budget}));
            }
            budget + DEFAULT_MAX_TOKENS
        }
        (Some(max), _) => max,
        (None, None) => DEFAULT_MAX_TOKENS,
    });
    Ok(())
}

/// `response_format` → `output_config.format`.
fn output_format(
    format: Option<&ResponseFormat>,
    out: &mut MessagesRequest,
) -> Result<(), ProviderError> {
    match format {
        None | Some(ResponseFormat::Text) => Ok(()),
        Some(ResponseFormat::JsonObject) => Err(invalid(
            "response_format",
            "Anthropic has no schemaless JSON mode: send `response_format: {\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}` (Anthropic's structured outputs), or ask for JSON in the prompt",
        )),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let Some(schema) = json_schema.schema.clone() else {
                return Err(invalid(
                    "response_format",
                    "`response_format.json_schema.schema` is required for Anthropic's structured outputs",
                ));
            };
            out.output_config.get_or_insert_with(Map::new).insert(
                "format".to_owned(),
                json!({"type": "json_schema", "schema": schema}),
            );
            Ok(())
        }
    }
}

fn tool(tool: &Tool) -> WireTool {
    WireTool {
        kind: None,
        name: tool.function.name.clone(),
        description: tool.function.description.clone(),
        input_schema: Some(
            tool.function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        ),
        strict: tool.function.strict,
        extra: Map::new(),
    }
}

fn tool_choice(
    choice: Option<&ToolChoice>,
    parallel: Option<bool>,
) -> Result<Option<WireToolChoice>, ProviderError> {
    let (kind, name) = match choice {
        None => ("auto", None),
        Some(ToolChoice::Named { function, .. }) => ("tool", Some(function.name.clone())),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => ("auto", None),
            "none" => ("none", None),
            "required" => ("any", None),
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!(
                        "`tool_choice` `{other}` is not one of auto, none, required, or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                    ),
                ));
            }
        },
    };
    let disable_parallel = parallel == Some(false) && kind != "none";
    if choice.is_none() && !disable_parallel {
        // Anthropic's default is `auto` too; sending nothing keeps the request as asked.
        return Ok(None);
    }
    Ok(Some(WireToolChoice {
        kind: kind.to_owned(),
        name,
        disable_parallel_tool_use: disable_parallel.then_some(true),
    }))
}

/// Splits the messages into `system` blocks and merged user/assistant turns.
fn conversation(
    messages: &[Message],
) -> Result<(Vec<ContentBlock>, Vec<WireMessage>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<WireMessage> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let (role, blocks) = match message.role {
            Role::System | Role::Developer => {
                system.extend(system_blocks(message, i)?);
                continue;
            }
            Role::User => ("user", user_blocks(message, i)?),
            Role::Assistant => ("assistant", assistant_blocks(message, i)?),
            Role::Tool => ("user", vec![tool_result(message, i)?]),
            Role::Function => {
                return Err(invalid(
                    "messages",
                    format!(
                        "messages[{i}] has the legacy role `function`; send tool results as `role: tool` with `tool_call_id`"
                    ),
                ));
            }
        };
        if blocks.is_empty() {
            // Anthropic rejects empty turns; an empty message carries nothing anyway.
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => {
                if let MessageContent::Blocks(existing) = &mut last.content {
                    existing.extend(blocks);
                }
            }
            _ => turns.push(WireMessage {
                role: role.to_owned(),
                content: MessageContent::Blocks(blocks),
            }),
        }
    }
    Ok((system, turns))
}

fn system_blocks(message: &Message, i: usize) -> Result<Vec<ContentBlock>, ProviderError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(non_empty_text(text, None)),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::new();
            for part in parts {
                match part {
                    ContentPart::Text {
                        text,
                        cache_control,
                    } => out.extend(non_empty_text(text, cache_control.clone())),
                    _ => {
                        return Err(invalid(
                            "messages",
                            format!(
                                "messages[{i}] is a system message with a non-text part; Anthropic's system prompt takes text only, so move images and files to a user message"
                            ),
                        ));
                    }
                }
            }
            Ok(out)
        }
    }
}

fn non_empty_text(text: &str, cache_control: Option<Value>) -> Vec<ContentBlock> {
    if text.is_empty() {
        return Vec::new();
    }
    vec![ContentBlock::Text {
        text: text.to_owned(),
        cache_control,
        citations: None,
    }]
}

fn user_blocks(message: &Message, i: usize) -> Result<Vec<ContentBlock>, ProviderError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(non_empty_text(text, None)),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::new();
            for part in parts {
                out.extend(part_block(part, i)?);
            }
            Ok(out)
        }
    }
}

/// One content part of a user or tool message as a block.
fn part_block(part: &ContentPart, i: usize) -> Result<Option<ContentBlock>, ProviderError> {
    Ok(match part {
        ContentPart::Text {
            text,
            cache_control,
        } => non_empty_text(text, cache_control.clone()).pop(),
        ContentPart::ImageUrl { image_url } => Some(image(image_url)),
        ContentPart::File { file } => Some(document(file, i)?),
        ContentPart::InputAudio { .. } => {
            return Err(invalid(
                "messages",
                format!("messages[{i}] has an `input_audio` part; Anthropic models take no audio"),
            ));
        }
        // An unknown part may be a native Anthropic block (`document`, `search_result`, ...).
        ContentPart::Other(value) => Some(ContentBlock::Other(value.clone())),
    })
}

fn image(image_url: &ImageUrl) -> ContentBlock {
    let source = match image_url.as_data() {
        Some((media_type, data)) => ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        },
        None => ImageSource::Url {
            url: image_url.url.clone(),
        },
    };
    ContentBlock::Image {
        source,
        cache_control: None,
    }
}

/// A `file` part with inline `file_data` (a `data:` URL) as a `document` block.
fn document(file: &Value, i: usize) -> Result<ContentBlock, ProviderError> {
    let data_url = file.get("file_data").and_then(Value::as_str);
    let parsed = data_url.and_then(|url| {
        ImageUrl {
            url: url.to_owned(),
            detail: None,
        }
        .as_data()
        .map(|(m, d)| (m.to_owned(), d.to_owned()))
    });
    let Some((media_type, data)) = parsed else {
        return Err(invalid(
            "messages",
            format!(
                "messages[{i}] has a `file` part without inline `file_data`; Anthropic cannot read OpenAI file ids, so send the file as `file_data: \"data:application/pdf;base64,...\"`"
            ),
        ));
    };
    let mut extra = Map::new();
    if let Some(name) = file.get("filename").and_then(Value::as_str) {
        extra.insert("title".to_owned(), Value::from(name));
    }
    Ok(ContentBlock::Document {
        source: json!({"type": "base64", "media_type": media_type, "data": data}),
        extra,
    })
}

fn assistant_blocks(message: &Message, i: usize) -> Result<Vec<ContentBlock>, ProviderError> {
    // Thinking blocks go first: Anthropic checks that a turn starts with them.
    let mut out: Vec<ContentBlock> = message
        .thinking_blocks
        .iter()
        .flatten()
        .filter_map(thinking_block)
        .collect();
    match &message.content {
        None => {}
        Some(Content::Text(text)) => out.extend(non_empty_text(text, None)),
        Some(Content::Parts(parts)) => {
            for part in parts {
                if let ContentPart::Text {
                    text,
                    cache_control,
                } = part
                {
                    out.extend(non_empty_text(text, cache_control.clone()));
                }
            }
        }
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = call.function.input(
            &format!("messages[{i}].tool_calls[{j}].function.arguments"),
            "Anthropic",
        )?;
        out.push(ContentBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
            cache_control: None,
        });
    }
    Ok(out)
}

/// A thinking block sent back; one without its signature cannot be verified and is dropped.
fn thinking_block(block: &ThinkingBlock) -> Option<ContentBlock> {
    match block.kind.as_str() {
        "thinking" => Some(ContentBlock::Thinking {
            thinking: block.thinking.clone().unwrap_or_default(),
            signature: block.signature.clone()?,
        }),
        "redacted_thinking" => Some(ContentBlock::RedactedThinking {
            data: block.data.clone()?,
        }),
        _ => None,
    }
}

fn tool_result(message: &Message, i: usize) -> Result<ContentBlock, ProviderError> {
    let Some(id) = message.tool_call_id.clone() else {
        return Err(invalid(
            "messages",
            format!(
                "messages[{i}] is a tool message without `tool_call_id`; set it to the id of the tool call it answers"
            ),
        ));
    };
    let content = match &message.content {
        None => None,
        Some(Content::Text(text)) => Some(ToolResultContent::Text(text.clone())),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::new();
            for part in parts {
                blocks.extend(part_block(part, i)?);
            }
            Some(ToolResultContent::Blocks(blocks))
        }
    };
    Ok(ContentBlock::ToolResult {
        tool_use_id: id,
        content,
        is_error: None,
        cache_control: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> Result<MessagesRequest, ProviderError> {
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        to_messages_request(&req, "claude-x", false)
    }

    fn message(rejection: ProviderError) -> String {
        match rejection {
            ProviderError::Rejected { message, .. } => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unparsable_tool_arguments_are_a_clear_400() {
        let err = request(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{oops"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "x"}
        ]}))
        .unwrap_err();
        let text = message(err);
        assert!(
            text.contains("messages[1].tool_calls[0].function.arguments"),
            "{text}"
        );
    }

    #[test]
    fn reasoning_effort_fits_inside_the_clients_limit() {
        let req = request(json!({"messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "high", "max_completion_tokens": 10000}))
        .unwrap();
        assert_eq!(req.max_tokens, Some(10000));
        assert_eq!(req.thinking.unwrap()["budget_tokens"], 5000);
        let req = request(json!({"messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "low"}))
        .unwrap();
        assert_eq!(req.max_tokens, Some(1024 + DEFAULT_MAX_TOKENS));
        let err = request(json!({"messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "low", "max_tokens": 500}))
        .unwrap_err();
        assert!(message(err).contains("above 1024"));
        let req = request(json!({"messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "none"}))
        .unwrap();
        assert_eq!(req.thinking, None);
    }

    #[test]
    fn json_object_mode_is_refused_with_the_alternative() {
        let err = request(json!({"messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"}}))
        .unwrap_err();
        assert!(message(err).contains("json_schema"));
    }

    #[test]
    fn openai_only_parameters_are_dropped_and_extras_kept() {
        let req = request(json!({"messages": [{"role": "user", "content": "hi"}],
            "seed": 1, "logprobs": true, "top_k": 5, "metadata": {"a": "b"},
            "container": {"id": "c"}}))
        .unwrap();
        let body = serde_json::to_value(&req).unwrap();
        assert_eq!(body["top_k"], 5);
        assert_eq!(body["container"], json!({"id": "c"}));
        for dropped in ["seed", "logprobs", "metadata"] {
            assert!(body.get(dropped).is_none(), "{dropped}");
        }
    }

    #[test]
    fn n_above_one_is_refused() {
        let err =
            request(json!({"messages": [{"role": "user", "content": "hi"}], "n": 2})).unwrap_err();
        assert!(message(err).contains("one choice"));
    }
}
