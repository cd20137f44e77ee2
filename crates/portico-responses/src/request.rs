//! Responses request → chat-completions request, for providers that do not speak the
//! Responses API. Pure.
//!
//! What has no chat-completions equivalent (OpenAI's built-in tools such as `web_search`,
//! item references, stored files by id) is refused with a 400 naming it, never dropped
//! silently; reasoning items of earlier turns are dropped (they belong to the upstream that
//! wrote them). `docs/responses-api.md` has the table.

use portico_core::{ApiError, ErrorCode, ProviderKind};
use portico_providers::chat::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, ImageUrl, JsonSchemaFormat,
    Message, NamedFunction, ResponseFormat, Role, StreamOptions, Tool, ToolCall, ToolChoice,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The fields of a Responses request the gateway reads; the body itself is kept as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesRequest {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// A string, or a list of input items.
    #[serde(default)]
    pub input: Option<Value>,
    /// The system (developer) message of this turn; not carried over to the next.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required`, or `{"type": "function", "name"}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// `false` asks for at most one tool call per turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// The stored response this one continues.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Whether the response is kept (OpenAI's default: yes).
    #[serde(default)]
    pub store: Option<bool>,
    /// Whether to stream typed events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// The output token limit.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", ...}}`.
    #[serde(default)]
    pub text: Option<Value>,
    /// `{"effort", "summary"}`.
    #[serde(default)]
    pub reasoning: Option<Value>,
    /// The caller's key-value pairs, echoed.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// End-user id.
    #[serde(default)]
    pub user: Option<String>,
    /// `auto` or `disabled`.
    #[serde(default)]
    pub truncation: Option<String>,
}

impl ResponsesRequest {
    /// Whether the response is to be kept (`store` is on unless set to `false`).
    pub fn stores(&self) -> bool {
        self.store != Some(false)
    }
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message).with_param(param)
}

/// The request's `input` as a list of items: a string is one user message.
///
/// # Errors
///
/// A 400 when `input` is neither a string nor a list of objects.
pub fn input_items(input: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    match input {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![
            json!({"type": "message", "role": "user", "content": text}),
        ]),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(invalid(
                        "input",
                        format!(
                            "input[{i}] is not an object; each input item is an object such as {{\"role\": \"user\", \"content\": \"...\"}}"
                        ),
                    ));
                }
            }
            Ok(items.clone())
        }
        Some(_) => Err(invalid(
            "input",
            "`input` must be a string or a list of input items",
        )),
    }
}

/// Translates a Responses request, continuing `history` (the items of the responses it
/// follows, from [`crate::conversation_of`]), for a provider of kind `target` (which decides
/// whether the token limit is sent as `max_completion_tokens` or `max_tokens`).
///
/// # Errors
///
/// A 400 [`ApiError`] naming the field when something has no chat-completions equivalent.
pub fn to_chat_request(
    req: &ResponsesRequest,
    history: &[Value],
    target: ProviderKind,
) -> Result<ChatRequest, ApiError> {
    let input = input_items(req.input.as_ref())?;
    if input.is_empty() && history.is_empty() {
        return Err(invalid(
            "input",
            "`input` is required: a string, or a list of items such as [{\"role\": \"user\", \"content\": \"Hello\"}]",
        ));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = req.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(message(
            Role::System,
            Some(Content::Text(instructions.clone())),
        ));
    }
    for item in history {
        push_item(item, "previous_response_id", &mut messages)?;
    }
    for (i, item) in input.iter().enumerate() {
        push_item(item, &format!("input[{i}]"), &mut messages)?;
    }
    let mut chat = ChatRequest {
        model: req.model.clone(),
        messages,
        temperature: req.temperature,
        top_p: req.top_p,
        parallel_tool_calls: req.parallel_tool_calls,
        user: req.user.clone(),
        ..ChatRequest::default()
    };
    if let Some(max) = req.max_output_tokens {
        if matches!(target, ProviderKind::OpenAi | ProviderKind::AzureOpenAi) {
            chat.max_completion_tokens = Some(max);
        } else {
            chat.max_tokens = Some(max);
        }
    }
    if req.stream == Some(true) {
        chat.stream = Some(true);
        chat.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        chat.tools = Some(
            tools
                .iter()
                .enumerate()
                .map(|(i, t)| tool(t, i))
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(choice) = &req.tool_choice {
        chat.tool_choice = Some(tool_choice(choice)?);
    }
    if let Some(format) = req.text.as_ref().and_then(|t| t.get("format")) {
        chat.response_format = response_format(format)?;
    }
    chat.reasoning_effort = req
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
        .map(str::to_owned);
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

fn str_field<'a>(item: &'a Value, field: &str) -> Option<&'a str> {
    item.get(field).and_then(Value::as_str)
}

/// Appends one input item to the chat conversation. `at` names the item in errors.
fn push_item(item: &Value, at: &str, messages: &mut Vec<Message>) -> Result<(), ApiError> {
    let kind = str_field(item, "type").unwrap_or(if item.get("role").is_some() {
        "message"
    } else {
        ""
    });
    match kind {
        "message" => push_message(item, at, messages),
        "function_call" => {
            let (Some(call_id), Some(name)) = (str_field(item, "call_id"), str_field(item, "name"))
            else {
                return Err(invalid(
                    "input",
                    format!("{at} is a `function_call` without `call_id` and `name`"),
                ));
            };
            let call = ToolCall {
                id: call_id.to_owned(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: name.to_owned(),
                    arguments: str_field(item, "arguments").unwrap_or("{}").to_owned(),
                },
            };
            // A message and the calls after it are one assistant turn in chat completions.
            match messages.last_mut() {
                Some(last) if last.role == Role::Assistant => {
                    last.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                _ => {
                    let mut turn = message(Role::Assistant, None);
                    turn.tool_calls = Some(vec![call]);
                    messages.push(turn);
                }
            }
            Ok(())
        }
        "function_call_output" => {
            let Some(call_id) = str_field(item, "call_id") else {
                return Err(invalid(
                    "input",
                    format!("{at} is a `function_call_output` without the `call_id` it answers"),
                ));
            };
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts_text(parts),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let mut tool = message(Role::Tool, Some(Content::Text(output)));
            tool.tool_call_id = Some(call_id.to_owned());
            messages.push(tool);
            Ok(())
        }
        // Reasoning belongs to the upstream that wrote it; chat completions cannot take it.
        "reasoning" => Ok(()),
        "item_reference" => Err(invalid(
            "input",
            format!(
                "{at} is an `item_reference`, which Portico cannot resolve for this provider; send the item itself, or continue the conversation with `previous_response_id`"
            ),
        )),
        "" => Err(invalid(
            "input",
            format!(
                "{at} has no `type` and no `role`; a message is {{\"role\": \"user\", \"content\": \"...\"}}"
            ),
        )),
        other => Err(invalid(
            "input",
            format!(
                "{at} is a `{other}` item, which only OpenAI's own tools produce; route this request to an OpenAI provider or leave the item out"
            ),
        )),
    }
}

fn push_message(item: &Value, at: &str, messages: &mut Vec<Message>) -> Result<(), ApiError> {
    let role = str_field(item, "role").unwrap_or("user");
    let content = item.get("content");
    match role {
        "user" => {
            let content = match content {
                Some(Value::String(s)) => Content::Text(s.clone()),
                Some(Value::Array(parts)) => Content::Parts(
                    parts
                        .iter()
                        .enumerate()
                        .map(|(j, p)| user_part(p, &format!("{at}.content[{j}]")))
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    return Err(invalid(
                        "input",
                        format!("{at}.content must be a string or a list of content parts"),
                    ));
                }
            };
            messages.push(message(Role::User, Some(content)));
        }
        "system" | "developer" => {
            messages.push(message(Role::System, Some(Content::Text(text_of(content)))));
        }
        "assistant" => {
            let text = text_of(content);
            let mut turn = message(Role::Assistant, Some(Content::Text(text)));
            if let Some(Value::Array(parts)) = content
                && let Some(refusal) = parts
                    .iter()
                    .find_map(|p| p.get("refusal").and_then(Value::as_str))
            {
                turn.extra.insert("refusal".into(), json!(refusal));
            }
            messages.push(turn);
        }
        other => {
            return Err(invalid(
                "input",
                format!("{at}.role `{other}` is not `user`, `assistant`, `system` or `developer`"),
            ));
        }
    }
    Ok(())
}

/// The text of a message's content: the string, or its text parts joined with newlines.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts_text(parts),
        _ => String::new(),
    }
}

fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

fn user_part(part: &Value, at: &str) -> Result<ContentPart, ApiError> {
    match str_field(part, "type").unwrap_or_default() {
        "input_text" | "output_text" | "text" => Ok(ContentPart::Text {
            text: str_field(part, "text").unwrap_or_default().to_owned(),
            cache_control: None,
        }),
        "input_image" => {
            let Some(url) = str_field(part, "image_url") else {
                return Err(invalid(
                    "input",
                    format!(
                        "{at} is an image by `file_id`, which only OpenAI can resolve; send it as `image_url` (a URL or a data: URL)"
                    ),
                ));
            };
            Ok(ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: url.to_owned(),
                    detail: str_field(part, "detail").map(str::to_owned),
                },
            })
        }
        "input_file" => {
            if part.get("file_data").is_none() {
                return Err(invalid(
                    "input",
                    format!(
                        "{at} is a file by `file_id` or `file_url`, which only OpenAI can resolve; send its contents as `file_data`"
                    ),
                ));
            }
            let mut file = Map::new();
            for field in ["file_data", "filename"] {
                if let Some(v) = part.get(field) {
                    file.insert(field.to_owned(), v.clone());
                }
            }
            Ok(ContentPart::File {
                file: Value::Object(file),
            })
        }
        "input_audio" => Ok(ContentPart::InputAudio {
            input_audio: part.get("input_audio").cloned().unwrap_or(Value::Null),
        }),
        other => Err(invalid(
            "input",
            format!(
                "{at} is a `{other}` content part, which has no chat-completions equivalent; use `input_text`, `input_image` or `input_file`"
            ),
        )),
    }
}

fn tool(tool: &Value, i: usize) -> Result<Tool, ApiError> {
    let kind = str_field(tool, "type").unwrap_or("function");
    if kind != "function" {
        return Err(invalid(
            "tools",
            format!(
                "tools[{i}] is OpenAI's built-in `{kind}` tool, which only OpenAI runs; route this request to an OpenAI provider, or declare a `function` tool"
            ),
        ));
    }
    let Some(name) = str_field(tool, "name") else {
        return Err(invalid(
            "tools",
            format!(
                "tools[{i}] has no `name`; a Responses function tool is {{\"type\": \"function\", \"name\", \"parameters\"}}"
            ),
        ));
    };
    Ok(Tool {
        kind: "function".to_owned(),
        function: FunctionDef {
            name: name.to_owned(),
            description: str_field(tool, "description").map(str::to_owned),
            parameters: tool.get("parameters").cloned(),
            strict: tool.get("strict").and_then(Value::as_bool),
        },
    })
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, ApiError> {
    if let Some(mode) = choice.as_str() {
        return match mode {
            "auto" | "none" | "required" => Ok(ToolChoice::Mode(mode.to_owned())),
            other => Err(invalid(
                "tool_choice",
                format!("`tool_choice` `{other}` is not `auto`, `none` or `required`"),
            )),
        };
    }
    match (str_field(choice, "type"), str_field(choice, "name")) {
        (Some("function"), Some(name)) => Ok(ToolChoice::Named {
            kind: "function".to_owned(),
            function: NamedFunction {
                name: name.to_owned(),
            },
        }),
        (kind, _) => Err(invalid(
            "tool_choice",
            format!(
                "`tool_choice` of type `{}` cannot be translated; use `auto`, `none`, `required` or {{\"type\": \"function\", \"name\": \"...\"}}",
                kind.unwrap_or_default()
            ),
        )),
    }
}

fn response_format(format: &Value) -> Result<Option<ResponseFormat>, ApiError> {
    match str_field(format, "type").unwrap_or("text") {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => Ok(Some(ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: str_field(format, "name").unwrap_or("response").to_owned(),
                description: str_field(format, "description").map(str::to_owned),
                schema: format.get("schema").cloned(),
                strict: format.get("strict").and_then(Value::as_bool),
            },
        })),
        other => Err(invalid(
            "text.format",
            format!("`text.format.type` `{other}` is not `text`, `json_object` or `json_schema`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ResponsesRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
        let chat = to_chat_request(
            &req(
                json!({"model": "m", "input": "hi", "instructions": "be brief",
                "max_output_tokens": 64, "stream": true, "temperature": 0.2}),
            ),
            &[],
            ProviderKind::Anthropic,
        )
        .unwrap();
        assert_eq!(chat.messages.len(), 2);
        assert_eq!(chat.messages[0].role, Role::System);
        assert_eq!(chat.messages[0].text(), "be brief");
        assert_eq!(chat.messages[1].text(), "hi");
        assert_eq!(chat.max_tokens, Some(64));
        assert_eq!(chat.max_completion_tokens, None);
        assert!(chat.include_usage());
        assert_eq!(chat.temperature, Some(0.2));
        let openai = to_chat_request(
            &req(json!({"model": "m", "input": "hi", "max_output_tokens": 64})),
            &[],
            ProviderKind::OpenAi,
        )
        .unwrap();
        assert_eq!(openai.max_completion_tokens, Some(64));
    }

    #[test]
    fn calls_and_their_outputs_become_tool_calls_and_tool_messages() {
        let history = vec![
            json!({"type": "message", "role": "user", "content": "weather?"}),
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]}),
            json!({"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{\"city\":\"Oslo\"}"}),
            json!({"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"}),
            json!({"type": "reasoning", "summary": []}),
        ];
        let chat = to_chat_request(
            &req(json!({"model": "m", "input": [
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]}
            ], "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
               "tool_choice": {"type": "function", "name": "weather"}})),
            &history,
            ProviderKind::Gemini,
        )
        .unwrap();
        assert_eq!(chat.messages.len(), 4);
        let assistant = &chat.messages[1];
        assert_eq!(assistant.role, Role::Assistant);
        assert_eq!(assistant.text(), "checking");
        let calls = assistant.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "c1");
        assert_eq!(calls[0].function.arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(chat.messages[2].role, Role::Tool);
        assert_eq!(chat.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(chat.messages[3].text(), "noon");
        assert_eq!(chat.tools.as_ref().unwrap()[0].function.name, "weather");
        assert_eq!(chat.tool_choice.unwrap().function_name(), Some("weather"));
    }

    #[test]
    fn parts_images_and_formats_translate() {
        let chat = to_chat_request(
            &req(json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "what is this"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
            ]}], "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}},
                "reasoning": {"effort": "low"}})),
            &[],
            ProviderKind::Anthropic,
        )
        .unwrap();
        let Some(Content::Parts(parts)) = &chat.messages[0].content else {
            panic!("parts expected")
        };
        assert!(
            matches!(&parts[1], ContentPart::ImageUrl { image_url } if image_url.detail.as_deref() == Some("low"))
        );
        assert!(matches!(
            &chat.response_format,
            Some(ResponseFormat::JsonSchema { json_schema }) if json_schema.name == "answer" && json_schema.strict == Some(true)
        ));
        assert_eq!(chat.reasoning_effort.as_deref(), Some("low"));
    }

    #[test]
    fn what_cannot_be_translated_is_a_400_naming_it() {
        let cases = [
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools",
                "web_search",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
                "input",
                "item_reference",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
                "input",
                "file_id",
            ),
            (json!({"model": "m", "input": 5}), "input", "string"),
            (json!({"model": "m"}), "input", "required"),
            (
                json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}),
                "tool_choice",
                "file_search",
            ),
            (
                json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}),
                "input",
                "role `tool`",
            ),
        ];
        for (body, param, needle) in cases {
            let err =
                to_chat_request(&req(body.clone()), &[], ProviderKind::Anthropic).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
            assert!(err.message.contains(needle), "{body}: {}", err.message);
        }
    }

    #[test]
    fn input_items_normalise_a_string() {
        let items = input_items(Some(&json!("hello"))).unwrap();
        assert_eq!(items[0]["role"], "user");
        assert_eq!(items[0]["content"], "hello");
        assert!(input_items(None).unwrap().is_empty());
        assert!(input_items(Some(&json!([1]))).is_err());
    }
}
