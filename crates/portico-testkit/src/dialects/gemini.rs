//! Default replies in Gemini's dialect, on AI Studio's paths
//! (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent`,
//! `:batchEmbedContents`) and Vertex AI's (`/v1/projects/.../publishers/google/models/{model}:
//! generateContent`, `:streamGenerateContent`, `:predict`).
//!
//! As the OpenAI defaults: a chat answers `echo: <last user text>`; with function declarations
//! offered and a user turn last (without a function result), the first function (or the one
//! `allowedFunctionNames` forces, unless the mode is `NONE`) is called with arguments `{}`;
//! when the last turn holds a function result, the answer is `tool result: <output>`. A
//! function call carries the thought signature [`MOCK_THOUGHT_SIGNATURE`], as Gemini 3's do.
//! Streams (`?alt=sse`) split the text over several events framed with `\r\n` and end at EOF
//! without `[DONE]`; usage is in `usageMetadata`. Embeddings are [`crate::mock_embedding`].

use serde_json::{Map, Value, json};

use crate::defaults::DEFAULT_EMBEDDING_DIMENSIONS;
use crate::{MockReply, RecordedRequest, SseScript, mock_embedding};

/// The `thoughtSignature` the mock puts on every function call (base64 of `mock-signature`).
pub(crate) const MOCK_THOUGHT_SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

/// The default reply for a request on one of Gemini's paths; `None` for other paths.
pub(super) fn default_reply(req: &RecordedRequest) -> Option<MockReply> {
    if req.method != "POST" {
        return None;
    }
    let (resource, method) = req.path.rsplit_once(':')?;
    let model = model_of(resource)?;
    let Some(body) = req.json.as_ref().and_then(Value::as_object) else {
        return Some(error(
            400,
            "Invalid JSON payload received.",
            "INVALID_ARGUMENT",
        ));
    };
    Some(match method {
        "generateContent" => generate(req, model, body, false),
        "streamGenerateContent" => generate(req, model, body, true),
        "batchEmbedContents" => batch_embed(body),
        "predict" => predict(body),
        other => error(
            404,
            &format!("Method {other} is not found for model {model}."),
            "NOT_FOUND",
        ),
    })
}

/// The model of `/v1beta/models/M`, `/v1beta/tunedModels/M` or
/// `/v1/projects/P/locations/L/publishers/google/models/M`.
fn model_of(resource: &str) -> Option<&str> {
    if let Some(rest) = resource.strip_prefix("/v1beta/") {
        let (collection, model) = rest.split_once('/')?;
        return matches!(collection, "models" | "tunedModels").then_some(model);
    }
    let rest = resource.strip_prefix("/v1/projects/")?;
    let (_, model) = rest.split_once("/publishers/google/models/")?;
    (!model.contains('/')).then_some(model)
}

/// Google's error body.
fn error(status: u16, message: &str, code: &str) -> MockReply {
    MockReply::json(
        status,
        json!({ "error": { "code": status, "message": message, "status": code } }),
    )
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text parts of a content, joined by a space.
fn text_of(content: &Value) -> String {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn parts(content: &Value) -> impl Iterator<Item = &Value> {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

enum Answer {
    Text(String),
    Call(String),
}

fn answer(body: &Map<String, Value>, contents: &[Value]) -> Answer {
    let last = contents.last();
    let result = last
        .into_iter()
        .flat_map(parts)
        .filter_map(|p| p.get("functionResponse"))
        .last();
    if let Some(result) = result {
        let output = match result.pointer("/response/output") {
            Some(Value::String(text)) => text.clone(),
            _ => result
                .get("response")
                .map(Value::to_string)
                .unwrap_or_default(),
        };
        return Answer::Text(format!("tool result: {output}"));
    }
    let declarations: Vec<&str> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    let calling = body
        .get("toolConfig")
        .and_then(|c| c.get("functionCallingConfig"));
    let mode = calling.and_then(|c| c.get("mode")).and_then(Value::as_str);
    let user_last = last.and_then(|c| c.get("role")).and_then(Value::as_str) == Some("user");
    if user_last && !declarations.is_empty() && mode != Some("NONE") {
        let forced = calling
            .and_then(|c| c.pointer("/allowedFunctionNames/0"))
            .and_then(Value::as_str);
        if let Some(name) = forced.or(declarations.first().copied()) {
            return Answer::Call(name.to_owned());
        }
    }
    let user = contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str) == Some("user"));
    Answer::Text(format!("echo: {}", user.map(text_of).unwrap_or_default()))
}

/// `"echo: hello world"` → `["echo:", " hello", " world"]`.
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

fn generate(
    req: &RecordedRequest,
    model: &str,
    body: &Map<String, Value>,
    stream: bool,
) -> MockReply {
    let Some(contents) = body.get("contents").and_then(Value::as_array) else {
        return error(
            400,
            "* GenerateContentRequest.contents: contents is not specified",
            "INVALID_ARGUMENT",
        );
    };
    let prompt_tokens = contents
        .iter()
        .chain(body.get("systemInstruction"))
        .map(|c| words(&text_of(c)))
        .sum::<u64>()
        .max(1);
    let answer = answer(body, contents);
    let completion_tokens = match &answer {
        Answer::Text(text) => words(text),
        Answer::Call(name) => words(name) + 1,
    };
    let usage = json!({
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": completion_tokens,
        "totalTokenCount": prompt_tokens + completion_tokens,
    });
    let response_id = format!("mock-{}", req.seq);
    let chunk = |parts: Vec<Value>, last: bool| {
        let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
        let mut chunk =
            json!({ "candidates": [], "modelVersion": model, "responseId": response_id });
        if last {
            candidate["finishReason"] = json!("STOP");
            chunk["usageMetadata"] = usage.clone();
        } else {
            chunk["usageMetadata"] =
                json!({ "promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens });
        }
        chunk["candidates"] = json!([candidate]);
        chunk
    };
    let call_part = |name: &str| json!({ "functionCall": { "name": name, "args": {} }, "thoughtSignature": MOCK_THOUGHT_SIGNATURE });
    let chunks: Vec<Value> = match &answer {
        Answer::Call(name) => vec![chunk(vec![call_part(name)], true)],
        Answer::Text(text) if !stream => vec![chunk(vec![json!({ "text": text })], true)],
        Answer::Text(text) => {
            let pieces = pieces(text);
            let count = pieces.len();
            pieces
                .into_iter()
                .enumerate()
                .map(|(i, piece)| chunk(vec![json!({ "text": piece })], i + 1 == count))
                .collect()
        }
    };
    if !stream {
        return MockReply::json(200, chunks.into_iter().next().unwrap_or_default());
    }
    let sse = req
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
    if !sse {
        // Without `alt=sse`, Gemini streams one JSON array.
        return MockReply::json(200, Value::Array(chunks));
    }
    let script = chunks.iter().fold(SseScript::new(), |script, chunk| {
        script.bytes(format!("data: {chunk}\r\n\r\n"))
    });
    MockReply::sse(script)
}

fn dimensions(value: Option<&Value>) -> usize {
    value
        .and_then(Value::as_u64)
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(DEFAULT_EMBEDDING_DIMENSIONS)
}

/// `batchEmbedContents`: one vector per request, no usage (as AI Studio answers).
fn batch_embed(body: &Map<String, Value>) -> MockReply {
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return error(
            400,
            "* BatchEmbedContentsRequest.requests: requests is not specified",
            "INVALID_ARGUMENT",
        );
    };
    let embeddings: Vec<Value> = requests
        .iter()
        .map(|r| {
            let text = r.get("content").map(text_of).unwrap_or_default();
            json!({ "values": mock_embedding(&text, dimensions(r.get("outputDimensionality"))) })
        })
        .collect();
    MockReply::json(200, json!({ "embeddings": embeddings }))
}

/// Vertex AI `predict` for embeddings, with token statistics.
fn predict(body: &Map<String, Value>) -> MockReply {
    let Some(instances) = body.get("instances").and_then(Value::as_array) else {
        return error(400, "instances is required", "INVALID_ARGUMENT");
    };
    let dims = dimensions(
        body.get("parameters")
            .and_then(|p| p.get("outputDimensionality")),
    );
    let predictions: Vec<Value> = instances
        .iter()
        .map(|i| {
            let text = i.get("content").and_then(Value::as_str).unwrap_or_default();
            json!({ "embeddings": { "values": mock_embedding(text, dims),
                    "statistics": { "token_count": words(text).max(1), "truncated": false } } })
        })
        .collect();
    MockReply::json(200, json!({ "predictions": predictions }))
}
