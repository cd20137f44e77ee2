//! OpenAI chat request → Gemini `generateContent` request. Pure: no I/O.
//!
//! - `system` and `developer` messages become `systemInstruction`; `user` and `tool` messages
//!   `user` turns, `assistant` messages `model` turns. Consecutive turns of one role are
//!   merged, so parallel tool results travel in one turn, as Gemini expects.
//! - Tool results need the function's name, which OpenAI's tool message lacks: it is looked
//!   up from the earlier assistant `tool_calls` by `tool_call_id` as the client sent it, then
//!   by the id with punctuation and case ignored (clients rewrite ids), then the message's
//!   `name`, then the position among the preceding assistant message's calls. A run of results
//!   is sent in the order of the calls it answers.
//! - A tool call's id gives back the call's thought signature (see [`crate::ids`]); on
//!   Gemini 3 a `model` turn whose calls lost theirs gets Gemini's documented placeholder.

use std::collections::HashMap;

use portico_providers::ProviderError;
use portico_providers::chat::{ChatRequest, Message, ResponseFormat, Role};
use serde_json::{Value, json};

use crate::error::invalid_request;
use crate::ids::{SKIP_SIGNATURE, normalize, signature_from_id};
use crate::media::user_parts;
use crate::schema;
use crate::wire::{
    Content, FunctionCall, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, GenerationConfig, Part, ThinkingConfig, ToolConfig, ToolWire,
};

/// Whether `model` is a Gemini 1.x/2.x or Gemma model: those take a thinking *budget* and have
/// no thought-signature validation. Every other name (Gemini 3 and later, `-latest` aliases)
/// takes a thinking *level*.
pub(crate) fn is_budget_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    ["gemini-1", "gemini-2", "gemma"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Translates `req` for `model`; `stream` says whether it will be streamed.
pub(crate) fn to_gemini(
    req: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<GenerateContentRequest, ProviderError> {
    if stream && req.n.is_some_and(|n| n > 1) {
        return Err(invalid_request(
            "n > 1 cannot be streamed from Gemini; send n: 1 or turn streaming off",
            "n",
        ));
    }
    let (mut contents, system) = conversation(&req.messages)?;
    if !is_budget_model(model) {
        add_signature_placeholders(&mut contents);
    }
    let mut system_instruction = (!system.is_empty()).then_some(Content {
        role: None,
        parts: system,
    });
    // Gemini needs at least one turn; a request of system messages only becomes a user turn.
    if contents.is_empty()
        && let Some(instruction) = system_instruction.take()
    {
        contents.push(Content {
            role: Some("user".to_owned()),
            parts: instruction.parts,
        });
    }
    let (tools, tool_config) = tools(req)?;
    let passthrough = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| req.extra.get(*n))
            .filter(|v| !v.is_null())
            .cloned()
    };
    Ok(GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config: generation_config(req, model)?,
        safety_settings: passthrough(&["safety_settings", "safetySettings"]),
        cached_content: passthrough(&["cached_content", "cachedContent"])
            .and_then(|v| v.as_str().map(str::to_owned)),
    })
}

/// The turns and the system instruction's parts.
fn conversation(messages: &[Message]) -> Result<(Vec<Content>, Vec<Part>), ProviderError> {
    let names = CallNames::new(messages);
    let mut contents: Vec<Content> = Vec::new();
    let mut system = Vec::new();
    // The calls of the latest assistant message, and how many results have answered them:
    // the last resort for naming a result.
    let mut open_calls: Vec<&str> = Vec::new();
    let mut answered = 0;
    // Consecutive tool results, with the position of the call each answers.
    let mut results: Vec<(usize, Part)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if !matches!(message.role, Role::Tool | Role::Function) {
            flush_results(&mut contents, &mut results);
        }
        match message.role {
            Role::System | Role::Developer => {
                let text = message.text();
                if !text.is_empty() {
                    system.push(Part::text(text));
                }
            }
            Role::User => push(&mut contents, "user", user_parts(message, i)?),
            Role::Assistant => {
                open_calls = message
                    .tool_calls
                    .iter()
                    .flatten()
                    .map(|c| c.function.name.as_str())
                    .collect();
                answered = 0;
                push(&mut contents, "model", model_parts(message, i)?);
            }
            Role::Tool | Role::Function => {
                let (name, position) = names.name_for(message, &open_calls, answered, i)?;
                answered += 1;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        name: name.to_owned(),
                        response: result_object(&message.text()),
                    }),
                    ..Part::default()
                };
                results.push((position, part));
            }
        }
    }
    flush_results(&mut contents, &mut results);
    Ok((contents, system))
}

/// Appends a run of tool results as one user turn, in the order of the calls they answer:
/// Gemini pairs results with calls by name and order, so two results for calls of the same
/// function must not swap.
fn flush_results(contents: &mut Vec<Content>, results: &mut Vec<(usize, Part)>) {
    results.sort_by_key(|(position, _)| *position);
    push(
        contents,
        "user",
        results.drain(..).map(|(_, part)| part).collect(),
    );
}

/// Appends `parts` as a turn of `role`, merged into the previous turn when it has the same
/// role; a turn without parts is left out (Gemini refuses empty turns).
fn push(contents: &mut Vec<Content>, role: &str, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
        _ => contents.push(Content {
            role: Some(role.to_owned()),
            parts,
        }),
    }
}

/// Function names, and the call's position in its assistant message, by tool call id, over
/// every assistant message of the request.
struct CallNames<'a> {
    exact: HashMap<&'a str, (&'a str, usize)>,
    normalized: HashMap<String, (&'a str, usize)>,
}

impl<'a> CallNames<'a> {
    fn new(messages: &'a [Message]) -> CallNames<'a> {
        let mut names = CallNames {
            exact: HashMap::new(),
            normalized: HashMap::new(),
        };
        for message in messages {
            for (position, call) in message.tool_calls.iter().flatten().enumerate() {
                let entry = (call.function.name.as_str(), position);
                names.exact.insert(&call.id, entry);
                names.normalized.insert(normalize(&call.id), entry);
            }
        }
        names
    }

    /// The function a tool message (at `index`) answers, and the position of its call (for
    /// ordering; unknown positions sort last). See the module docs for the order of lookups.
    fn name_for(
        &self,
        message: &'a Message,
        open_calls: &[&'a str],
        answered: usize,
        index: usize,
    ) -> Result<(&'a str, usize), ProviderError> {
        let id = message.tool_call_id.as_deref();
        id.and_then(|id| self.exact.get(id).copied())
            .or_else(|| id.and_then(|id| self.normalized.get(&normalize(id)).copied()))
            .or_else(|| message.name.as_deref().map(|name| (name, usize::MAX)))
            .or_else(|| open_calls.get(answered).map(|name| (*name, answered)))
            .ok_or_else(|| {
                invalid_request(
                    format!(
                        "messages[{index}] is a tool result for tool_call_id \"{}\", but no earlier assistant message has a tool call with that id, and Gemini needs the function's name; send the assistant message with its tool_calls before the results",
                        id.unwrap_or_default()
                    ),
                    &format!("messages[{index}].tool_call_id"),
                )
            })
    }
}

/// A tool result as Gemini's `response` object: a JSON object as it is, anything else as
/// `{"output": text}` (the key Gemini's documentation uses).
fn result_object(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "output": text }),
    }
}

/// An assistant message (at `index`)'s parts: its text, then one `functionCall` per tool
/// call with the thought signature its id carries. Earlier reasoning text is not sent:
/// Gemini reads nothing from unsigned thought text.
fn model_parts(message: &Message, index: usize) -> Result<Vec<Part>, ProviderError> {
    let mut parts = Vec::new();
    let text = message.text();
    if !text.is_empty() {
        parts.push(Part::text(text));
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let args = call.function.input(
            &format!("messages[{index}].tool_calls[{j}].function.arguments"),
            "Gemini",
        )?;
        parts.push(Part {
            function_call: Some(FunctionCall {
                id: None,
                name: call.function.name.clone(),
                args: Some(args),
            }),
            thought_signature: signature_from_id(&call.id),
            ..Part::default()
        });
    }
    Ok(parts)
}

/// Gemini 3 validates the signature of a turn's first function call; where the history lost
/// it, the documented placeholder lets the request through.
fn add_signature_placeholders(contents: &mut [Content]) {
    for content in contents
        .iter_mut()
        .filter(|c| c.role.as_deref() == Some("model"))
    {
        let signed = content
            .parts
            .iter()
            .any(|p| p.function_call.is_some() && p.thought_signature.is_some());
        if let (false, Some(first)) = (
            signed,
            content.parts.iter_mut().find(|p| p.function_call.is_some()),
        ) {
            first.thought_signature = Some(SKIP_SIGNATURE.to_owned());
        }
    }
}

/// `tools` and `tool_choice` as function declarations and `toolConfig`.
fn tools(req: &ChatRequest) -> Result<(Vec<ToolWire>, Option<ToolConfig>), ProviderError> {
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok((Vec::new(), None));
    };
    let mut declarations = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(invalid_request(
                format!(
                    "tools[{i}] has type \"{}\"; Gemini takes only function tools",
                    tool.kind
                ),
                &format!("tools[{i}].type"),
            ));
        }
        let function = &tool.function;
        let parameters = function
            .parameters
            .as_ref()
            .map(|p| {
                schema::for_gemini(
                    p,
                    &format!("the parameters of tool \"{}\"", function.name),
                    &format!("tools[{i}].function.parameters"),
                )
            })
            .transpose()?;
        declarations.push(FunctionDeclaration {
            name: function.name.clone(),
            description: function.description.clone(),
            parameters_json_schema: parameters,
        });
    }
    let config = |mode, names: Option<Vec<String>>| {
        Some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode,
                allowed_function_names: names,
            },
        })
    };
    let tool_config = match &req.tool_choice {
        None => None,
        Some(choice) => match (choice.mode(), choice.function_name()) {
            (Some("auto"), _) => config("AUTO", None),
            (Some("none"), _) => config("NONE", None),
            (Some("required"), _) => config("ANY", None),
            (None, Some(name)) => config("ANY", Some(vec![name.to_owned()])),
            (mode, _) => {
                return Err(invalid_request(
                    format!(
                        "tool_choice \"{}\" is not one of \"auto\", \"none\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}",
                        mode.unwrap_or_default()
                    ),
                    "tool_choice",
                ));
            }
        },
    };
    Ok((
        vec![ToolWire {
            function_declarations: declarations,
        }],
        tool_config,
    ))
}

/// Limits, sampling, JSON mode and thinking; `None` when the request sets none of them.
fn generation_config(
    req: &ChatRequest,
    model: &str,
) -> Result<Option<GenerationConfig>, ProviderError> {
    let extra_f64 = |name: &str| req.extra.get(name).and_then(Value::as_f64);
    let mut config = GenerationConfig {
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|s| !s.is_empty()),
        max_output_tokens: req.max_output_tokens(),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.extra.get("top_k").and_then(Value::as_u64),
        // `n: 1` is the default: leave it out.
        candidate_count: req.n.filter(|&n| n != 1),
        seed: req.extra.get("seed").and_then(Value::as_i64),
        presence_penalty: extra_f64("presence_penalty"),
        frequency_penalty: extra_f64("frequency_penalty"),
        thinking_config: thinking_config(req, model)?,
        ..GenerationConfig::default()
    };
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            config.response_mime_type = Some("application/json".to_owned());
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json".to_owned());
            config.response_json_schema = json_schema
                .schema
                .as_ref()
                .map(|s| {
                    schema::for_gemini(
                        s,
                        "response_format.json_schema.schema",
                        "response_format.json_schema.schema",
                    )
                })
                .transpose()?;
        }
    }
    Ok((config != GenerationConfig::default()).then_some(config))
}

/// `reasoning_effort` (or an Anthropic-style `thinking: {type, budget_tokens}`) as
/// `thinkingConfig`: a level for Gemini 3, a token budget for Gemini 2.5 (see the provider
/// page of the docs for the table).
fn thinking_config(
    req: &ChatRequest,
    model: &str,
) -> Result<Option<ThinkingConfig>, ProviderError> {
    let budget = |tokens: u64| ThinkingConfig {
        thinking_budget: Some(tokens),
        include_thoughts: (tokens > 0).then_some(true),
        ..ThinkingConfig::default()
    };
    let level = |level: &'static str| ThinkingConfig {
        thinking_level: Some(level),
        include_thoughts: Some(true),
        ..ThinkingConfig::default()
    };
    if let Some(effort) = req.reasoning_effort.as_deref() {
        let by_budget = is_budget_model(model);
        let config = match (effort, by_budget) {
            ("none", true) => budget(0),
            ("minimal" | "low", true) => budget(1024),
            ("medium", true) => budget(8192),
            ("high" | "xhigh", true) => budget(24576),
            // Gemini 3 cannot turn thinking off: `minimal` is the least there is.
            ("none", false) => ThinkingConfig {
                thinking_level: Some("minimal"),
                ..ThinkingConfig::default()
            },
            ("minimal", false) => level("minimal"),
            ("low", false) => level("low"),
            ("medium", false) => level("medium"),
            ("high" | "xhigh", false) => level("high"),
            (other, _) => {
                return Err(invalid_request(
                    format!(
                        "reasoning_effort \"{other}\" is not one of none, minimal, low, medium, high"
                    ),
                    "reasoning_effort",
                ));
            }
        };
        return Ok(Some(config));
    }
    let Some(thinking) = req.extra.get("thinking").filter(|t| t.is_object()) else {
        return Ok(None);
    };
    Ok(match thinking.get("type").and_then(Value::as_str) {
        Some("disabled") => Some(budget(0)),
        _ => thinking
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .map(budget),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_families() {
        assert!(is_budget_model("gemini-2.5-flash"));
        assert!(is_budget_model("models/gemini-2.0-flash"));
        assert!(is_budget_model("gemma-3-27b-it"));
        assert!(!is_budget_model("gemini-3-pro-preview"));
        assert!(!is_budget_model("gemini-flash-latest"));
    }
}
