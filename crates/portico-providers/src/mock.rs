//! The built-in `mock` provider: deterministic OpenAI-shaped answers without a network.
//!
//! What this is: [`MockProvider`], the adapter of [`ProviderKind::Mock`], so a newcomer without
//! keys can try the gateway end to end, and load tests can measure the gateway rather than an
//! upstream. Delays and failures are configurable through [`MockOptions`].
//!
//! What it is not: a model. It answers by rules (the model name picks the rule), and the same
//! request always gets the same answer apart from `created`:
//!
//! - `echo` (and any model starting with `echo`): repeats the text of the last user message
//!   (a `/completions` request: its prompt).
//! - `tools` (and any model starting with `tools`): when the request offers `tools` and
//!   `tool_choice` is not `"none"`, calls the named tool (or else the first) with arguments
//!   `{}`, finish reason `tool_calls`. Once the last message is a tool result it answers in text,
//!   so an agent loop ends.
//! - any other model (such as `lorem`): lorem-ipsum words, how many derived from a hash of the
//!   messages (8 to 64), at most `max_completion_tokens` / `max_tokens` or else 32.
//!
//! `/embeddings` answers unit vectors of `dimensions` (default 16) derived from a hash of each
//! input. Usage is estimated: prompt tokens are a quarter of the characters (rounded up, at
//! least 1), completion tokens are the words sent (a tool call counts as its name and
//! arguments, a quarter of their characters).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream;
use portico_core::{Endpoint, ProviderKind, Usage};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{EventStream, Provider, ProviderError, SseEvent, UpstreamRequest, UpstreamResponse};

/// The model names the mock advertises. Any other name is accepted too and answers lorem ipsum.
///
/// - `echo`: repeats the last user message (or the prompt).
/// - `lorem`: deterministic lorem-ipsum words.
/// - `tools`: calls a tool when the request offers tools; otherwise as `lorem`.
pub const MOCK_MODELS: &[&str] = &["echo", "lorem", "tools"];

/// How many words a lorem answer has at most when the request sets no token limit.
const DEFAULT_MAX_WORDS: u64 = 32;

/// The embedding size when the request does not set `dimensions`; small, so bodies stay small.
const DEFAULT_DIMENSIONS: u64 = 16;

/// The largest `dimensions` accepted: above any real model's, and bounds the body we build.
const MAX_DIMENSIONS: u64 = 8192;

/// The words of lorem answers, picked by a generator seeded from the request.
const LOREM: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor \
    incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation \
    ullamco laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit \
    voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non \
    proident sunt culpa qui officia deserunt mollit anim id est laborum";

/// How the mock behaves; every field defaults to zero (instant, never fails).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MockOptions {
    /// Delay before the answer, or before the first chunk of a stream, in milliseconds.
    pub latency_ms: u64,
    /// Delay between stream chunks, in milliseconds.
    pub chunk_delay_ms: u64,
    /// Fraction of requests, 0.0 to 1.0, answered with a simulated 503.
    pub failure_rate: f64,
}

impl MockOptions {
    /// Checks the values: `failure_rate` must be within 0.0 to 1.0.
    ///
    /// # Errors
    ///
    /// A message naming the field and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(format!(
                "mock setting `failure_rate` must be between 0.0 and 1.0, got {}",
                self.failure_rate
            ));
        }
        Ok(())
    }
}

/// The built-in `mock` provider: no network, deterministic replies (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct MockProvider {
    options: MockOptions,
}

impl MockProvider {
    /// A mock with these options; a `failure_rate` outside 0.0 to 1.0 is clamped (NaN is 0).
    pub fn new(mut options: MockOptions) -> MockProvider {
        options.failure_rate = if options.failure_rate.is_nan() {
            0.0
        } else {
            options.failure_rate.clamp(0.0, 1.0)
        };
        MockProvider { options }
    }

    /// A mock from a provider's stored settings: an object with the [`MockOptions`] fields
    /// (each optional), or `null` for the defaults. Unknown fields are ignored, so settings
    /// written by a newer version still load.
    ///
    /// # Errors
    ///
    /// A message saying which setting is wrong, for a value of the wrong type or out of range.
    pub fn from_settings(settings: &Value) -> Result<MockProvider, String> {
        let mut options = MockOptions::default();
        match settings {
            Value::Null => {}
            Value::Object(fields) => {
                // Field by field rather than `MockOptions::deserialize`, whose error would not
                // say which setting is wrong.
                let read = |name: &str| fields.get(name).filter(|v| !v.is_null());
                if let Some(v) = read("latency_ms") {
                    options.latency_ms = v.as_u64().ok_or_else(|| not_millis("latency_ms", v))?;
                }
                if let Some(v) = read("chunk_delay_ms") {
                    options.chunk_delay_ms =
                        v.as_u64().ok_or_else(|| not_millis("chunk_delay_ms", v))?;
                }
                if let Some(v) = read("failure_rate") {
                    options.failure_rate = v.as_f64().ok_or_else(|| {
                        format!(
                            "mock setting `failure_rate` must be a number from 0.0 to 1.0, got {v}"
                        )
                    })?;
                }
            }
            other => return Err(format!("mock settings must be an object, got {other}")),
        }
        options.validate()?;
        Ok(MockProvider::new(options))
    }

    /// The options in effect.
    pub fn options(&self) -> MockOptions {
        self.options
    }

    /// Decides, at random with the configured rate, whether to fail this request.
    fn simulated_failure(&self) -> Result<(), ProviderError> {
        let rate = self.options.failure_rate;
        // `random` is in [0, 1): a rate of 1.0 always fails and 0.0 never does.
        if rate > 0.0 && rand::random::<f64>() < rate {
            return Err(ProviderError::Status {
                status: 503,
                message: format!("mock provider: simulated failure (failure_rate {rate})"),
                error_type: Some("server_error".to_owned()),
                code: None,
                param: None,
                retry_after: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for MockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Mock
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        // An overloaded upstream refuses at once, so a simulated failure skips the latency.
        self.simulated_failure()?;
        let meta = Meta::new(&req);
        let latency = Duration::from_millis(self.options.latency_ms);
        let (body, usage, events) = match req.endpoint {
            Endpoint::ChatCompletions => {
                let reply = chat_reply(&req.model, &req.body)?;
                let events = req.stream.then(|| chat_chunks(&meta, &reply, &req.body));
                (chat_body(&meta, &reply), reply.usage, events)
            }
            Endpoint::Completions => {
                let reply = completion_reply(&req.model, &req.body)?;
                let events = req
                    .stream
                    .then(|| completion_chunks(&meta, &reply, &req.body));
                (completion_body(&meta, &reply), reply.usage, events)
            }
            // Embeddings never stream, whatever the request says.
            Endpoint::Embeddings => {
                let (body, usage) = embeddings(&req.model, &req.body)?;
                (body, usage, None)
            }
        };
        if let Some(events) = events {
            let chunk_delay = Duration::from_millis(self.options.chunk_delay_ms);
            return Ok(UpstreamResponse::Stream {
                status: 200,
                events: paced(events, latency, chunk_delay),
            });
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        Ok(UpstreamResponse::Complete {
            status: 200,
            body: Bytes::from(body.to_string()),
            usage: Some(usage),
        })
    }
}

fn not_millis(name: &str, value: &Value) -> String {
    format!("mock setting `{name}` must be a whole number of milliseconds, got {value}")
}

/// Streams `events`, waiting `first` before the first and `between` before each later one.
///
/// The waits happen inside the stream, so nothing runs until it is polled and dropping it
/// stops it, as with a real upstream.
fn paced(events: Vec<Value>, first: Duration, between: Duration) -> EventStream {
    let events = events
        .into_iter()
        .map(|chunk| SseEvent::data(chunk.to_string()))
        .chain(std::iter::once(SseEvent::done()));
    Box::pin(stream::unfold(
        (events, first),
        move |(mut events, delay)| async move {
            let event = events.next()?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(event), (events, between)))
        },
    ))
}

/// The fields every body and chunk of one answer share.
struct Meta {
    /// The deterministic hash of the request that ids derive from.
    hash: u64,
    created: u64,
    model: String,
}

impl Meta {
    fn new(req: &UpstreamRequest) -> Meta {
        // `stream` and `stream_options` are left out, so an answer and its streamed form
        // share their id.
        let mut hash = Fnv::new();
        hash.write(req.endpoint.as_str().as_bytes());
        hash.write(req.model.as_bytes());
        for (key, value) in &req.body {
            if key != "stream" && key != "stream_options" {
                hash.write(key.as_bytes());
                hash.write(value.to_string().as_bytes());
            }
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Meta {
            hash: hash.finish(),
            created,
            model: req.model.clone(),
        }
    }
}

/// What the mock answers, before it is rendered as a body or as stream chunks.
struct Reply {
    /// The text, one piece per stream chunk (a word with its surrounding whitespace).
    pieces: Vec<String>,
    /// The tool to call instead of answering text.
    tool_call: Option<String>,
    finish_reason: &'static str,
    usage: Usage,
}

impl Reply {
    fn text(&self) -> String {
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

fn chat_reply(model: &str, body: &Map<String, Value>) -> Result<Reply, ProviderError> {
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

fn completion_reply(model: &str, body: &Map<String, Value>) -> Result<Reply, ProviderError> {
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

fn chat_body(meta: &Meta, reply: &Reply) -> Value {
    let message = match &reply.tool_call {
        Some(name) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": tool_call_id(meta, name),
                "type": "function",
                "function": {"name": name, "arguments": "{}"},
            }],
            "refusal": null,
        }),
        None => json!({"role": "assistant", "content": reply.text(), "refusal": null}),
    };
    json!({
        "id": format!("chatcmpl-mock-{:016x}", meta.hash),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": reply.finish_reason,
        }],
        "usage": usage_json(&reply.usage),
    })
}

/// The chunks of a streamed chat answer, `[DONE]` excluded: the role, the tool call or one
/// chunk per word, the finish reason, and the usage when `stream_options.include_usage`.
fn chat_chunks(meta: &Meta, reply: &Reply, body: &Map<String, Value>) -> Vec<Value> {
    let include_usage = include_usage(body);
    let chunk = |delta: Value, finish_reason: Option<&str>| {
        let mut chunk = json!({
            "id": format!("chatcmpl-mock-{:016x}", meta.hash),
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": meta.model,
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        // OpenAI sends `usage: null` on every chunk but the last once usage is asked for.
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    if let Some(name) = &reply.tool_call {
        chunks.push(chunk(
            json!({"tool_calls": [{
                "index": 0,
                "id": tool_call_id(meta, name),
                "type": "function",
                "function": {"name": name, "arguments": "{}"},
            }]}),
            None,
        ));
    }
    chunks.extend(
        reply
            .pieces
            .iter()
            .map(|piece| chunk(json!({"content": piece}), None)),
    );
    chunks.push(chunk(json!({}), Some(reply.finish_reason)));
    if include_usage {
        let mut last = chunk(json!({}), None);
        last["choices"] = json!([]);
        last["usage"] = usage_json(&reply.usage);
        chunks.push(last);
    }
    chunks
}

fn completion_body(meta: &Meta, reply: &Reply) -> Value {
    json!({
        "id": format!("cmpl-mock-{:016x}", meta.hash),
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "text": reply.text(),
            "index": 0,
            "logprobs": null,
            "finish_reason": reply.finish_reason,
        }],
        "usage": usage_json(&reply.usage),
    })
}

/// The chunks of a streamed text completion, `[DONE]` excluded.
fn completion_chunks(meta: &Meta, reply: &Reply, body: &Map<String, Value>) -> Vec<Value> {
    let chunk = |text: &str, finish_reason: Option<&str>| {
        json!({
            "id": format!("cmpl-mock-{:016x}", meta.hash),
            "object": "text_completion",
            "created": meta.created,
            "model": meta.model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish_reason}],
        })
    };
    let mut chunks: Vec<Value> = reply
        .pieces
        .iter()
        .map(|piece| chunk(piece, None))
        .collect();
    chunks.push(chunk("", Some(reply.finish_reason)));
    if include_usage(body) {
        let mut last = chunk("", None);
        last["choices"] = json!([]);
        last["usage"] = usage_json(&reply.usage);
        chunks.push(last);
    }
    chunks
}

/// An `/embeddings` answer: one unit vector per input, derived from a hash of the input.
fn embeddings(model: &str, body: &Map<String, Value>) -> Result<(Value, Usage), ProviderError> {
    let inputs: Vec<&Value> = match body.get("input") {
        Some(Value::String(_)) => body.get("input").into_iter().collect(),
        // An array of numbers is one tokenised input; any other array is a list of inputs.
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_number) => {
            body.get("input").into_iter().collect()
        }
        Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        _ => {
            return Err(bad_request(
                "`input` is required and must be a string or a non-empty array of strings",
                "input",
            ));
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| {
                bad_request(
                    format!("`dimensions` must be an integer from 1 to {MAX_DIMENSIONS}"),
                    "dimensions",
                )
            })?,
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        // OpenAI's Python SDK asks for base64 by default, so it must work.
        Some("base64") => true,
        Some(other) => {
            return Err(bad_request(
                format!("`encoding_format` must be \"float\" or \"base64\", got \"{other}\""),
                "encoding_format",
            ));
        }
    };

    let mut chars = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let text = match input {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            // A token array counts one token (four characters' worth) per number.
            chars += match input {
                Value::Array(tokens) => tokens.len() * 4,
                _ => text.chars().count(),
            };
            let vector = unit_vector(Fnv::hash(text.as_bytes()), dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                Value::String(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let usage = usage(estimate_tokens(chars), 0);
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens()},
    });
    Ok((body, usage))
}

/// A vector of length 1 in `dimensions` dimensions, chosen by `seed`.
fn unit_vector(seed: u64, dimensions: u64) -> Vec<f64> {
    let mut rng = SplitMix(seed);
    // 53 random bits to a float in [-1, 1).
    let mut vector: Vec<f64> = (0..dimensions)
        .map(|_| (rng.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else if let Some(first) = vector.first_mut() {
        *first = 1.0;
    }
    vector
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

fn include_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn tool_call_id(meta: &Meta, name: &str) -> String {
    let mut hash = Fnv::new();
    hash.write(&meta.hash.to_le_bytes());
    hash.write(name.as_bytes());
    format!("call_mock_{:016x}", hash.finish())
}

/// A quarter of the characters, rounded up, at least 1: close to real tokenisers for English.
fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
    Usage {
        prompt_tokens,
        completion_tokens,
        ..Usage::default()
    }
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens(),
    })
}

fn bad_request(message: impl Into<String>, param: &str) -> ProviderError {
    ProviderError::Status {
        status: 400,
        message: format!("mock provider: {}", message.into()),
        error_type: Some("invalid_request_error".to_owned()),
        code: None,
        param: Some(param.to_owned()),
        retry_after: None,
    }
}

/// FNV-1a, finished with a SplitMix step so the low bits (used with `%`) are well mixed.
///
/// Our own rather than `std`'s `DefaultHasher`, whose output may change between Rust releases:
/// the mock's answers must stay the same across builds.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") hash apart.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn finish(&self) -> u64 {
        SplitMix(self.0).next()
    }

    fn hash(bytes: &[u8]) -> u64 {
        let mut hash = Fnv::new();
        hash.write(bytes);
        hash.finish()
    }
}

/// SplitMix64: a tiny, well-mixed generator for deterministic words and vectors.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Standard base64 with padding (RFC 4648), as OpenAI encodes embeddings.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::time::Instant;

    use super::*;
    use crate::sse::SseParser;

    fn request(endpoint: Endpoint, model: &str, body: Value) -> UpstreamRequest {
        let Value::Object(mut body) = body else {
            panic!("test bodies are objects");
        };
        body.insert("model".to_owned(), json!(model));
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        UpstreamRequest {
            endpoint,
            model: model.to_owned(),
            body,
            stream,
        }
    }

    fn chat(model: &str, body: Value) -> UpstreamRequest {
        request(Endpoint::ChatCompletions, model, body)
    }

    fn user(text: &str) -> Value {
        json!({"messages": [{"role": "user", "content": text}]})
    }

    async fn complete(mock: &MockProvider, req: UpstreamRequest) -> (Value, Usage) {
        match mock.send(req).await.unwrap() {
            UpstreamResponse::Complete {
                status,
                body,
                usage,
            } => {
                assert_eq!(status, 200);
                let body: Value = serde_json::from_slice(&body).unwrap();
                // The usage returned alongside is the one in the body.
                assert_eq!(Usage::from_openai(&body), usage);
                (body, usage.unwrap())
            }
            other => panic!("expected a whole body, got {other:?}"),
        }
    }

    async fn events(mock: &MockProvider, req: UpstreamRequest) -> Vec<SseEvent> {
        match mock.send(req).await.unwrap() {
            UpstreamResponse::Stream { status, events } => {
                assert_eq!(status, 200);
                events.map(Result::unwrap).collect().await
            }
            other => panic!("expected a stream, got {other:?}"),
        }
    }

    fn chunks(events: &[SseEvent]) -> Vec<Value> {
        let (last, chunks) = events.split_last().unwrap();
        assert!(last.is_done(), "the stream ends with [DONE]");
        chunks
            .iter()
            .map(|e| serde_json::from_slice(&e.data).unwrap())
            .collect()
    }

    async fn error(mock: &MockProvider, req: UpstreamRequest) -> ProviderError {
        mock.send(req).await.unwrap_err()
    }

    fn content(body: &Value) -> &str {
        body["choices"][0]["message"]["content"].as_str().unwrap()
    }

    #[tokio::test]
    async fn same_request_same_answer_apart_from_created() {
        let mock = MockProvider::default();
        for model in MOCK_MODELS {
            let body = json!({
                "messages": [{"role": "user", "content": "Hello there"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            });
            let (mut a, _) = complete(&mock, chat(model, body.clone())).await;
            let (mut b, _) = complete(&mock, chat(model, body)).await;
            a["created"] = Value::Null;
            b["created"] = Value::Null;
            assert_eq!(a, b, "{model}");
            assert!(a["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
            assert_eq!(a["model"], json!(model));
            assert_eq!(a["object"], "chat.completion");
        }
        let (a, _) = complete(&mock, chat("lorem", user("one"))).await;
        let (b, _) = complete(&mock, chat("lorem", user("two"))).await;
        assert_ne!(a["id"], b["id"]);
    }

    #[tokio::test]
    async fn echo_repeats_the_last_user_message() {
        let mock = MockProvider::default();
        let body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "  Hello,   world!\n"},
        ]});
        let (body, usage) = complete(&mock, chat("echo", body)).await;
        assert_eq!(content(&body), "  Hello,   world!\n");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(usage.completion_tokens, 2);
        // 8 + 5 + 2 + 18 characters.
        assert_eq!(usage.prompt_tokens, 33_u64.div_ceil(4));
        assert_eq!(body["usage"]["total_tokens"], usage.prompt_tokens + 2);

        let parts = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "a b"},
            {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
            {"type": "text", "text": "c"},
        ]}]});
        let (body, _) = complete(&mock, chat("echo-2", parts)).await;
        assert_eq!(content(&body), "a b\nc");
    }

    #[tokio::test]
    async fn echo_honours_an_explicit_limit() {
        let mock = MockProvider::default();
        let mut body = user("one two three four");
        body["max_tokens"] = json!(2);
        let (body, usage) = complete(&mock, chat("echo", body)).await;
        assert_eq!(content(&body), "one two ");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(usage.completion_tokens, 2);
    }

    #[tokio::test]
    async fn lorem_is_capped() {
        let mock = MockProvider::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..40 {
            let (body, usage) = complete(&mock, chat("lorem", user(&format!("q{i}")))).await;
            let words = content(&body).split_whitespace().count() as u64;
            assert!((8..=32).contains(&words), "{words}");
            assert_eq!(usage.completion_tokens, words);
            assert_eq!(body["choices"][0]["finish_reason"], "stop");
            assert!(content(&body).ends_with('.'));
            seen.insert(words);
        }
        assert!(seen.len() > 3, "the length varies with the messages");

        for (key, other) in [
            ("max_completion_tokens", "max_tokens"),
            ("max_tokens", "unused"),
        ] {
            let mut body = user("q");
            body[key] = json!(3);
            body[other] = json!(50);
            let (body, usage) = complete(&mock, chat("any-model", body)).await;
            assert_eq!(content(&body).split_whitespace().count(), 3, "{key}");
            assert_eq!(usage.completion_tokens, 3);
            assert_eq!(body["choices"][0]["finish_reason"], "length");
        }
    }

    #[tokio::test]
    async fn tools_model_calls_the_first_or_named_tool() {
        let mock = MockProvider::default();
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
            {"type": "function", "function": {"name": "get_time"}},
        ]);
        let with = |choice: Value| {
            let mut body = user("weather?");
            body["tools"] = tools.clone();
            if !choice.is_null() {
                body["tool_choice"] = choice;
            }
            chat("tools", body)
        };
        for (choice, name) in [
            (Value::Null, "get_weather"),
            (json!("auto"), "get_weather"),
            (json!("required"), "get_weather"),
            (
                json!({"type": "function", "function": {"name": "get_time"}}),
                "get_time",
            ),
        ] {
            let (body, usage) = complete(&mock, with(choice)).await;
            let choice0 = &body["choices"][0];
            assert_eq!(choice0["finish_reason"], "tool_calls");
            assert_eq!(choice0["message"]["content"], Value::Null);
            let call = &choice0["message"]["tool_calls"][0];
            assert_eq!(call["function"]["name"], name);
            assert_eq!(call["function"]["arguments"], "{}");
            assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
            assert!(usage.completion_tokens >= 1);
        }

        let (body, _) = complete(&mock, with(json!("none"))).await;
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(!content(&body).is_empty());

        // After the tool's result, it answers in text so an agent loop ends.
        let mut body = json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        ]});
        body["tools"] = tools.clone();
        let (body, _) = complete(&mock, chat("tools", body)).await;
        assert_eq!(body["choices"][0]["finish_reason"], "stop");

        // Without tools, `tools` answers as `lorem`; other models never call tools.
        let (body, _) = complete(&mock, chat("tools", user("hi"))).await;
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let mut body = user("hi");
        body["tools"] = tools.clone();
        let (body, _) = complete(&mock, chat("lorem", body)).await;
        assert_eq!(body["choices"][0]["finish_reason"], "stop");

        let err = error(
            &mock,
            with(json!({"type": "function", "function": {"name": "nope"}})),
        )
        .await;
        assert_eq!(err.status(), Some(400));
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[tokio::test]
    async fn stream_sends_role_words_finish_then_done() {
        let mock = MockProvider::default();
        let mut body = user("one two three");
        body["stream"] = json!(true);
        let events = events(&mock, chat("echo", body.clone())).await;
        let chunks = chunks(&events);
        assert_eq!(chunks.len(), 5, "role, three words, finish");
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        let text: String = chunks[1..4]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, "one two three");
        let last = &chunks[4];
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["choices"][0]["delta"], json!({}));
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], chunks[0]["id"]);
            assert!(chunk.get("usage").is_none(), "no usage unless asked for");
        }
        for chunk in &chunks[..4] {
            assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
        }

        // The streamed answer matches the whole one, id included.
        body["stream"] = json!(false);
        let (whole, _) = complete(&mock, chat("echo", body)).await;
        assert_eq!(whole["id"], chunks[0]["id"]);
    }

    #[tokio::test]
    async fn stream_usage_chunk_only_when_asked() {
        let mock = MockProvider::default();
        let mut body = user("q");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let with_usage = chunks(&events(&mock, chat("lorem", body.clone())).await);
        let (usage_chunk, rest) = with_usage.split_last().unwrap();
        assert_eq!(usage_chunk["choices"], json!([]));
        let usage = Usage::from_openai(usage_chunk).unwrap();
        // Role and finish chunks carry no words.
        assert_eq!(usage.completion_tokens, rest.len() as u64 - 2);
        assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
        for chunk in rest {
            assert_eq!(chunk["usage"], Value::Null);
        }

        body["stream_options"] = json!({"include_usage": false});
        let plain = chunks(&events(&mock, chat("lorem", body)).await);
        assert!(
            plain
                .iter()
                .all(|c| c["choices"].as_array().unwrap().len() == 1)
        );
    }

    #[tokio::test]
    async fn stream_of_a_tool_call() {
        let mock = MockProvider::default();
        let mut body = user("q");
        body["stream"] = json!(true);
        body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
        let chunks = chunks(&events(&mock, chat("tools", body)).await);
        assert_eq!(chunks.len(), 3);
        let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            (call["index"].as_u64(), &call["function"]["name"]),
            (Some(0), &json!("f"))
        );
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[tokio::test]
    async fn stream_events_reparse_after_encoding() {
        let mock = MockProvider::default();
        let mut body = user("a b");
        body["stream"] = json!(true);
        let events = events(&mock, chat("echo", body)).await;
        let mut parser = SseParser::new();
        for event in &events {
            parser.push(&event.encode());
        }
        let mut reparsed = Vec::new();
        while let Some(event) = parser.next_event().unwrap() {
            reparsed.push(event);
        }
        assert_eq!(reparsed, events);
    }

    #[tokio::test]
    async fn completions_answer_the_prompt() {
        let mock = MockProvider::default();
        let completions = |model: &str, body: Value| request(Endpoint::Completions, model, body);
        let (body, usage) =
            complete(&mock, completions("echo", json!({"prompt": "say this"}))).await;
        assert_eq!(body["object"], "text_completion");
        assert!(body["id"].as_str().unwrap().starts_with("cmpl-mock-"));
        assert_eq!(body["choices"][0]["text"], "say this");
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2, 2));

        let (body, _) = complete(
            &mock,
            completions("lorem", json!({"prompt": ["a", "b"], "max_tokens": 4})),
        )
        .await;
        assert_eq!(
            body["choices"][0]["text"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .count(),
            4
        );

        let body =
            json!({"prompt": "x y", "stream": true, "stream_options": {"include_usage": true}});
        let chunks = chunks(&events(&mock, completions("echo", body)).await);
        let texts: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["text"].as_str())
            .collect();
        assert_eq!(texts, ["x ", "y", ""]);
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["choices"], json!([]));
        assert_eq!(chunks[3]["usage"]["completion_tokens"], 2);

        let err = error(&mock, completions("echo", json!({}))).await;
        assert_eq!(
            (err.status(), err.fault()),
            (Some(400), crate::Fault::Client)
        );
    }

    fn vectors(body: &Value) -> Vec<Vec<f64>> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    }

    #[tokio::test]
    async fn embeddings_are_deterministic_unit_vectors() {
        let mock = MockProvider::default();
        let embed = |body: Value| request(Endpoint::Embeddings, "embed", body);
        let (body, usage) = complete(&mock, embed(json!({"input": "hello"}))).await;
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][0]["object"], "embedding");
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 2,
                ..Usage::default()
            }
        );
        let one = vectors(&body);
        assert_eq!(one[0].len(), 16);

        let (body, _) = complete(
            &mock,
            embed(json!({"input": ["x", "hello", "x"], "dimensions": 5})),
        )
        .await;
        let three = vectors(&body);
        assert_eq!(three.len(), 3);
        for (i, v) in three.iter().enumerate() {
            assert_eq!(v.len(), 5);
            assert_eq!(body["data"][i]["index"], i);
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-9, "{norm}");
        }
        assert_eq!(three[0], three[2], "same input, same vector");
        assert_ne!(three[0], three[1]);
        let norm = one[0].iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9);

        let (body, _) = complete(
            &mock,
            embed(json!({"input": "hello", "encoding_format": "base64"})),
        )
        .await;
        let encoded = body["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(encoded.len(), (16 * 4_usize).div_ceil(3) * 4);

        // An array of numbers is one tokenised input.
        let (body, usage) = complete(&mock, embed(json!({"input": [1, 2, 3]}))).await;
        assert_eq!((vectors(&body).len(), usage.prompt_tokens), (1, 3));

        for bad in [
            json!({}),
            json!({"input": []}),
            json!({"input": "a", "dimensions": 0}),
        ] {
            assert_eq!(error(&mock, embed(bad)).await.status(), Some(400));
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), output);
        }
    }

    #[tokio::test]
    async fn failure_rate_one_always_fails_and_zero_never() {
        let failing = MockProvider::new(MockOptions {
            failure_rate: 1.0,
            ..MockOptions::default()
        });
        for _ in 0..20 {
            let err = error(&failing, chat("lorem", user("q"))).await;
            let ProviderError::Status {
                status,
                message,
                error_type,
                ..
            } = &err
            else {
                panic!("expected a status error, got {err:?}");
            };
            assert_eq!(*status, 503);
            assert!(message.contains("simulated failure"), "{message}");
            assert_eq!(error_type.as_deref(), Some("server_error"));
            assert!(err.is_retryable());
        }
        let healthy = MockProvider::new(MockOptions {
            failure_rate: 0.0,
            ..MockOptions::default()
        });
        for _ in 0..50 {
            assert!(healthy.send(chat("lorem", user("q"))).await.is_ok());
        }
    }

    #[tokio::test]
    async fn bad_chat_requests_are_400() {
        let mock = MockProvider::default();
        for (body, param) in [
            (json!({}), "messages"),
            (json!({"messages": []}), "messages"),
            (json!({"messages": "hi"}), "messages"),
            (
                json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 0}),
                "max_tokens",
            ),
        ] {
            let err = error(&mock, chat("echo", body)).await;
            let ProviderError::Status {
                status: 400,
                param: Some(p),
                message,
                ..
            } = &err
            else {
                panic!("expected a 400, got {err:?}");
            };
            assert_eq!(p, param);
            assert!(message.contains(param), "{message}");
        }
    }

    #[test]
    fn settings_are_read_and_checked() {
        assert_eq!(
            MockProvider::from_settings(&Value::Null).unwrap().options(),
            MockOptions::default()
        );
        let mock = MockProvider::from_settings(
            &json!({"latency_ms": 5, "failure_rate": 0.5, "future": 1}),
        )
        .unwrap();
        assert_eq!(
            mock.options(),
            MockOptions {
                latency_ms: 5,
                chunk_delay_ms: 0,
                failure_rate: 0.5
            }
        );
        assert!(
            MockProvider::from_settings(&json!({"failure_rate": 1.5}))
                .unwrap_err()
                .contains("failure_rate")
        );
        assert!(
            MockProvider::from_settings(&json!({"latency_ms": "slow"}))
                .unwrap_err()
                .contains("latency_ms")
        );
        assert_eq!(
            MockProvider::new(MockOptions {
                failure_rate: f64::NAN,
                ..MockOptions::default()
            })
            .options()
            .failure_rate,
            0.0
        );
        assert_eq!(MockProvider::default().kind(), ProviderKind::Mock);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_honoured_before_a_whole_answer() {
        let mock = MockProvider::new(MockOptions {
            latency_ms: 250,
            ..MockOptions::default()
        });
        let start = Instant::now();
        complete(&mock, chat("lorem", user("q"))).await;
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stream_waits_latency_then_chunk_delay_and_only_when_polled() {
        let mock = MockProvider::new(MockOptions {
            latency_ms: 100,
            chunk_delay_ms: 10,
            ..MockOptions::default()
        });
        let mut body = user("a b c");
        body["stream"] = json!(true);
        let start = Instant::now();
        let UpstreamResponse::Stream { mut events, .. } =
            mock.send(chat("echo", body)).await.unwrap()
        else {
            panic!("expected a stream");
        };
        assert_eq!(start.elapsed(), Duration::ZERO, "the stream is lazy");
        events.next().await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        let mut count = 1;
        while let Some(event) = events.next().await {
            event.unwrap();
            count += 1;
        }
        // Role, three words, finish, [DONE]: five gaps after the first.
        assert_eq!(count, 6);
        assert_eq!(start.elapsed(), Duration::from_millis(100 + 5 * 10));
    }
}
