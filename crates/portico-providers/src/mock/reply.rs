//! Deciding what the mock answers: echo, lorem ipsum or a tool call, cut to the request's token
//! limit, with the usage estimated from character counts. Rendering is `render`'s job.

use portico_core::Usage;
use serde_json::{Map, Value};

use super::bad_request;
use super::hash::{Fnv, SplitMix};
use crate::ProviderError;

/// How many words a lorem answer has at most when the request sets no token limit.
const DEFAULT_MAX_WORDS: u64 = 32;

/// The words of lorem answers, picked by a generator seeded from the request.
const LOREM: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor \
    incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation \
    ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit \
    voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non \
    proident sunt culpa qui officia deserunt mollit anim id est laborum";

/// What the mock answers, before it is rendered as a body or as stream chunks.
pub(super) struct Reply {
    /// The text, one piece per stream chunk (a word with its surrounding whitespace).
    pub(super) pieces: Vec<String>,
    /// The tool to call instead of answering text.
    pub(super) tool_call: Option<String>,
    pub(super) finish_reason: &'static str,
    pub(super) usage: Usage,
}

impl Reply {
    pub(super) fn text(&self) -> String {
        self.pieces.concat()
    }

    /// A reply of `pieces`, cut to `limit` when the request set one.
    fn words(mut pieces: Vec<String>, limit: Option<u64>, prompt_tokens: u64) -> Reply {
        let limit = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let finish_reason = if pieces.len() > limit {
            pieces.truncate(limit);
            "length"
        } else {
            "stop"
        };
        Reply {
            usage: usage(prompt_tokens, pieces.len() as u64),
            pieces,
            tool_call: None,
            finish_reason,
        }
    }
}

pub(super) fn chat_reply(model: &str, body: &Map<String, Value>) -> Result<Reply, ProviderError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            bad_request(
                "`messages` is required and must be a non-empty array of messages",
                "messages",
            )
        })?;
    let limit = max_tokens(body)?;
    let chars = messages
        .iter()
        .map(|m| text_of(m.get("content")).chars().count())
        .sum();
    let prompt_tokens = estimate_tokens(chars);

    if model.starts_with("tools")
        && let Some(name) = tool_to_call(body, messages)?
    {
        return Ok(Reply {
            usage: usage(prompt_tokens, estimate_tokens(name.chars().count() + 2)),
            pieces: Vec::new(),
            tool_call: Some(name),
            finish_reason: "tool_calls",
        });
    }
    if model.starts_with("echo") {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"));
        let text = text_of(last_user.and_then(|m| m.get("content")));
        return Ok(Reply::words(split_words(&text), limit, prompt_tokens));
    }
    let mut seed = Fnv::new();
    for message in messages {
        seed.write(message.to_string().as_bytes());
    }
    Ok(lorem_reply(seed.finish(), limit, prompt_tokens))
}

pub(super) fn completion_reply(
    model: &str,
    body: &Map<String, Value>,
) -> Result<Reply, ProviderError> {
    let prompt = match body.get("prompt") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n"),
        _ => {
            return Err(bad_request(
                "`prompt` is required and must be a string or an array of strings",
                "prompt",
            ));
        }
    };
    let limit = max_tokens(body)?;
    let prompt_tokens = estimate_tokens(prompt.chars().count());
    if model.starts_with("echo") {
        return Ok(Reply::words(split_words(&prompt), limit, prompt_tokens));
    }
    Ok(lorem_reply(
        Fnv::hash(prompt.as_bytes()),
        limit,
        prompt_tokens,
    ))
}

/// Lorem-ipsum words: 8 to 64 of them chosen by `seed`, at most `limit` or else 32.
fn lorem_reply(seed: u64, limit: Option<u64>, prompt_tokens: u64) -> Reply {
    let words: Vec<&str> = LOREM.split_ascii_whitespace().collect();
    let mut rng = SplitMix(seed);
    let natural = 8 + rng.next() % 57;
    let count = natural.min(limit.unwrap_or(DEFAULT_MAX_WORDS));
    let mut pieces: Vec<String> = (0..count)
        .map(|i| {
            let word = words[(rng.next() % words.len() as u64) as usize];
            if i == 0 {
                let mut word = word.to_owned();
                word[..1].make_ascii_uppercase();
                word
            } else {
                format!(" {word}")
            }
        })
        .collect();
    if let Some(last) = pieces.last_mut() {
        last.push('.');
    }
    // Only a limit the request set makes it `length`: the default is just the answer's size.
    let finish_reason = if limit.is_some_and(|l| natural > l) {
        "length"
    } else {
        "stop"
    };
    Reply {
        usage: usage(prompt_tokens, pieces.len() as u64),
        pieces,
        tool_call: None,
        finish_reason,
    }
}

/// The tool a `tools` model calls, or `None` when it should answer in text.
fn tool_to_call(
    body: &Map<String, Value>,
    messages: &[Value],
) -> Result<Option<String>, ProviderError> {
    let tools = match body.get("tools") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(tools)) if tools.is_empty() => return Ok(None),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad_request("`tools` must be an array of tools", "tools")),
    };
    let last_role = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    if last_role == Some("tool") {
        return Ok(None);
    }
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect::<Option<_>>()
        .ok_or_else(|| bad_request("every tool needs a `function.name` string", "tools"))?;
    match body.get("tool_choice") {
        None | Some(Value::Null) => Ok(names.first().map(|n| (*n).to_owned())),
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => Ok(None),
            "auto" | "required" => Ok(names.first().map(|n| (*n).to_owned())),
            other => Err(bad_request(
                format!(
                    "`tool_choice` must be \"none\", \"auto\", \"required\" or a function object, got \"{other}\""
                ),
                "tool_choice",
            )),
        },
        Some(choice) => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    bad_request("`tool_choice` object needs `function.name`", "tool_choice")
                })?;
            if !names.contains(&name) {
                return Err(bad_request(
                    format!("`tool_choice` names function `{name}`, which is not in `tools`"),
                    "tool_choice",
                ));
            }
            Ok(Some(name.to_owned()))
        }
    }
}

/// The text of a message's `content`: a string, or the `text` of its parts joined by `\n`.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Splits text into pieces that each hold one word and the whitespace after it (the first also
/// the whitespace before), so the pieces join back into the text exactly.
fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut has_word = false;
    let mut after_space = false;
    for ch in text.chars() {
        let space = ch.is_whitespace();
        if !space && after_space && has_word {
            pieces.push(std::mem::take(&mut current));
            has_word = false;
        }
        current.push(ch);
        has_word |= !space;
        after_space = space;
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// `max_completion_tokens`, else the older `max_tokens`, when the request sets one.
fn max_tokens(body: &Map<String, Value>) -> Result<Option<u64>, ProviderError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return match v.as_u64() {
                    Some(n) if n >= 1 => Ok(Some(n)),
                    _ => Err(bad_request(
                        format!("`{key}` must be an integer of at least 1"),
                        key,
                    )),
                };
            }
        }
    }
    Ok(None)
}

/// A quarter of the characters, rounded up, at least 1: close to real tokenisers for English.
pub(super) fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

pub(super) fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        completion_tokens,
        ..Usage::default()
    }
}
