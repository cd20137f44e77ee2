//! The mock's built-in, deterministic, OpenAI-shaped replies, used when nothing is scripted.
//!
//! Pure functions from a [`RecordedRequest`] to a [`MockReply`]; no I/O here.
//!
//! Token counts are whitespace-separated words: `prompt_tokens` counts the words of every
//! message (at least 1), `completion_tokens` the words of the answer.

use serde_json::{Map, Value, json};

use crate::record::RecordedRequest;
use crate::script::{MockReply, SseScript};
use crate::sse::chat_chunk;

/// The `created` timestamp of every default reply (fixed so snapshots are stable).
pub(crate) const CREATED: i64 = 1_700_000_000;
/// The model the default replies name when the request names none.
pub(crate) const MOCK_CHAT_MODEL: &str = "mock-chat";
/// The models `GET /v1/models` lists.
pub const MOCK_MODELS: &[&str] = &[MOCK_CHAT_MODEL, "mock-embed"];
/// Embedding size when the request has no `dimensions`.
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 8;

/// The default reply for `req`.
pub(crate) fn default_reply(req: &RecordedRequest) -> MockReply {
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/chat/completions") => with_body(req, chat),
        ("POST", "/v1/completions") => with_body(req, completions),
        ("POST", "/v1/embeddings") => with_body(req, embeddings),
        ("GET", "/v1/models") => models(),
        (method, path) => crate::dialects::default_reply(req).unwrap_or_else(|| MockReply::json(
            404,
            json!({ "error": {
                "message": format!("Unknown request URL: {method} {path}. Please check the URL for typos, or see the docs at https://platform.openai.com/docs/api-reference/."),
                "type": "invalid_request_error", "param": null, "code": "unknown_url",
            }}),
        )),
    }
}

fn with_body(
    req: &RecordedRequest,
    reply: fn(&RecordedRequest, &Map<String, Value>) -> MockReply,
) -> MockReply {
    match req.json.as_ref().and_then(Value::as_object) {
        Some(body) => reply(req, body),
        None => MockReply::error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
        ),
    }
}

fn model(body: &Map<String, Value>) -> &str {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or(MOCK_CHAT_MODEL)
}

fn is_true(value: Option<&Value>) -> bool {
    value == Some(&Value::Bool(true))
}

fn include_usage(body: &Map<String, Value>) -> bool {
    is_true(
        body.get("stream_options")
            .and_then(|o| o.get("include_usage")),
    )
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 },
    })
}

/// The text of a message `content`: a string, or the `text` parts of an array joined by a
/// space.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// `"echo: hello world"` → `["echo:", " hello", " world"]`: the stream pieces.
fn pieces(text: &str) -> Vec<String> {
    text.split(' ')
        .enumerate()
        .map(|(i, word)| {
            if i == 0 {
                word.to_owned()
            } else {
                format!(" {word}")
            }
        })
        .filter(|piece| !piece.is_empty())
        .collect()
}

fn role(message: &Value) -> &str {
    message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

enum Answer {
    Text(String),
    Tool { name: String },
}

fn chat_answer(body: &Map<String, Value>, messages: &[Value]) -> Answer {
    let last = messages.last();
    if last.is_some_and(|m| role(m) == "tool") {
        return Answer::Text(format!(
            "tool result: {}",
            content_text(last.and_then(|m| m.get("content")))
        ));
    }
    let tools = body.get("tools").and_then(Value::as_array);
    let choice = body.get("tool_choice");
    let wants_tool = last.is_some_and(|m| role(m) == "user")
        && tools.is_some_and(|t| !t.is_empty())
        && choice.and_then(Value::as_str) != Some("none");
    if wants_tool {
        let forced = choice.and_then(|c| c.pointer("/function/name"));
        let first = tools.and_then(|t| t.first()?.pointer("/function/name"));
        if let Some(name) = forced.or(first).and_then(Value::as_str) {
            return Answer::Tool {
                name: name.to_owned(),
            };
        }
    }
    let user = messages.iter().rev().find(|m| role(m) == "user");
    Answer::Text(format!(
        "echo: {}",
        content_text(user.and_then(|m| m.get("content")))
    ))
}

/// Chat: echo the last user message; call the first tool when tools are offered and the
/// last message is the user's; answer `tool result: ...` after a tool message.
fn chat(req: &RecordedRequest, body: &Map<String, Value>) -> MockReply {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return MockReply::error(400, "Missing required parameter: 'messages'.");
    };
    let model = model(body);
    let id = format!("chatcmpl-mock-{}", req.seq);
    let call_id = format!("call_mock_{}", req.seq);
    let prompt_tokens = messages
        .iter()
        .map(|m| words(&content_text(m.get("content"))))
        .sum::<u64>()
        .max(1);
    let answer = chat_answer(body, messages);
    let (completion_tokens, finish) = match &answer {
        Answer::Text(text) => (words(text), "stop"),
        Answer::Tool { name } => (words(name) + 1, "tool_calls"),
    };
    let usage = usage(prompt_tokens, completion_tokens);

    if !is_true(body.get("stream")) {
        let message = match &answer {
            Answer::Text(text) => {
                json!({ "role": "assistant", "content": text, "refusal": null, "annotations": [] })
            }
            Answer::Tool { name } => json!({
                "role": "assistant", "content": null, "refusal": null, "annotations": [],
                "tool_calls": [{ "id": call_id, "type": "function",
                    "function": { "name": name, "arguments": "{}" } }],
            }),
        };
        return MockReply::json(
            200,
            json!({
                "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                "system_fingerprint": "fp_mock", "service_tier": "default",
                "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
                "usage": usage,
            }),
        );
    }

    let with_usage = include_usage(body);
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = chat_chunk(delta, finish);
        chunk["id"] = json!(id);
        chunk["model"] = json!(model);
        if with_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let mut script = SseScript::new().data(&chunk(
        json!({ "role": "assistant", "content": "", "refusal": null }),
        None,
    ));
    match &answer {
        Answer::Text(text) => {
            for piece in pieces(text) {
                script = script.data(&chunk(json!({ "content": piece }), None));
            }
        }
        Answer::Tool { name } => {
            script = script.data(&chunk(
                json!({ "tool_calls": [{ "index": 0, "id": call_id, "type": "function",
                    "function": { "name": name, "arguments": "" } }] }),
                None,
            ));
            for fragment in ["{", "}"] {
                script = script.data(&chunk(
                    json!({ "tool_calls": [{ "index": 0, "function": { "arguments": fragment } }] }),
                    None,
                ));
            }
        }
    }
    script = script.data(&chunk(json!({}), Some(finish)));
    if with_usage {
        let mut last = chunk(json!({}), None);
        last["choices"] = json!([]);
        last["usage"] = usage;
        script = script.data(&last);
    }
    MockReply::sse(script.done())
}

/// Legacy completions: one choice per prompt, text `echo: <prompt>`.
fn completions(req: &RecordedRequest, body: &Map<String, Value>) -> MockReply {
    let prompts: Vec<String> = match body.get("prompt") {
        Some(Value::String(p)) => vec![p.clone()],
        Some(Value::Array(ps)) => ps
            .iter()
            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
            .collect(),
        _ => return MockReply::error(400, "Missing required parameter: 'prompt'."),
    };
    let model = model(body);
    let id = format!("cmpl-mock-{}", req.seq);
    let answers: Vec<String> = prompts.iter().map(|p| format!("echo: {p}")).collect();
    let usage = usage(
        prompts.iter().map(|p| words(p)).sum::<u64>().max(1),
        answers.iter().map(|a| words(a)).sum(),
    );
    let base = json!({ "id": id, "object": "text_completion", "created": CREATED, "model": model });
    let choice = |index: usize, text: &str, finish: Option<&str>| json!({ "index": index, "text": text, "logprobs": null, "finish_reason": finish });

    if !is_true(body.get("stream")) {
        let mut reply = base;
        reply["choices"] = answers
            .iter()
            .enumerate()
            .map(|(i, a)| choice(i, a, Some("stop")))
            .collect();
        reply["usage"] = usage;
        return MockReply::json(200, reply);
    }
    let with_usage = include_usage(body);
    let chunk = |choices: Value| {
        let mut chunk = base.clone();
        chunk["choices"] = choices;
        if with_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let mut script = SseScript::new();
    for (i, answer) in answers.iter().enumerate() {
        for piece in pieces(answer) {
            script = script.data(&chunk(json!([choice(i, &piece, None)])));
        }
        script = script.data(&chunk(json!([choice(i, "", Some("stop"))])));
    }
    if with_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage;
        script = script.data(&last);
    }
    MockReply::sse(script.done())
}

/// Embeddings: one [`mock_embedding`] per input.
fn embeddings(_req: &RecordedRequest, body: &Map<String, Value>) -> MockReply {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        // An array of token ids is one input.
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect(),
        _ => return MockReply::error(400, "Missing required parameter: 'input'."),
    };
    let dimensions = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(DEFAULT_EMBEDDING_DIMENSIONS);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({ "object": "embedding", "index": index, "embedding": mock_embedding(text, dimensions) })
        })
        .collect();
    let tokens = inputs.iter().map(|i| words(i)).sum::<u64>().max(1);
    MockReply::json(
        200,
        json!({
            "object": "list", "data": data, "model": model(body),
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    )
}

/// The deterministic vector the mock returns for `text`: `dimensions` values in `[-1, 1)`,
/// rounded to 6 decimals, derived from a hash of the text.
pub fn mock_embedding(text: &str, dimensions: usize) -> Vec<f64> {
    // FNV-1a over the text, then splitmix64 per component.
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (0..dimensions as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let unit = (z >> 11) as f64 / (1_u64 << 53) as f64;
            ((unit * 2.0 - 1.0) * 1e6).round() / 1e6
        })
        .collect()
}

fn models() -> MockReply {
    let data: Vec<Value> = MOCK_MODELS
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": CREATED, "owned_by": "mock" }))
        .collect();
    MockReply::json(200, json!({ "object": "list", "data": data }))
}
