//! Default replies in AWS Bedrock's dialect, on the runtime API's paths:
//!
//! - `POST /model/{modelId}/converse`: a Converse answer (`output.message`, `stopReason`,
//!   `usage`, `metrics`), with an `x-amzn-RequestId` header;
//! - `POST /model/{modelId}/converse-stream`: the same answer as binary event-stream frames
//!   (`application/vnd.amazon.eventstream`): `messageStart`, the content blocks (text in
//!   several deltas; a tool call as `contentBlockStart` and its input in two pieces),
//!   `messageStop`, then `metadata` with the usage, one frame per body chunk;
//! - `POST /model/{modelId}/invoke`: embeddings for `*titan-embed*` models
//!   (`{embedding, inputTextTokenCount}`, one text per call) and `*cohere.embed*` models
//!   (`{embeddings, id, response_type, texts}`, with the `x-amzn-bedrock-input-token-count`
//!   header).
//!
//! The answers mirror the OpenAI defaults: `echo: <last user text>`; with tools declared and a
//! user message last, a call (id `tooluse_mock_<seq>`, input `{}`) to the first tool, or to the
//! one `toolChoice.tool` names; after a `toolResult`, `tool result: <its text>`. Token counts
//! are whitespace-separated words.
//!
//! Every request must be authenticated as Bedrock wants: a SigV4
//! `Authorization: AWS4-HMAC-SHA256 Credential=...` header with `x-amz-date`, or a bearer API
//! key. Without one the mock answers 403 in Bedrock's error shape (`{"message"}` with an
//! `x-amzn-ErrorType` header). The signature itself is not verified; tests read the recorded
//! headers.

use serde_json::{Value, json};

use crate::defaults::{DEFAULT_EMBEDDING_DIMENSIONS, mock_embedding};
use crate::script::SseScript;
use crate::{MockReply, RecordedRequest};

/// The content type of Bedrock's streamed answers.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// The default reply for a request on one of Bedrock's paths; `None` for other paths.
pub(super) fn default_reply(req: &RecordedRequest) -> Option<MockReply> {
    let rest = req.path.strip_prefix("/model/")?;
    let (model, operation) = rest.rsplit_once('/')?;
    if !matches!(operation, "converse" | "converse-stream" | "invoke") || model.is_empty() {
        return None;
    }
    if req.method != "POST" {
        return Some(bedrock_error(
            405,
            "UnknownOperationException",
            "Unknown operation",
        ));
    }
    if let Some(refusal) = check_auth(req) {
        return Some(refusal);
    }
    let Some(body) = req.json.as_ref().and_then(Value::as_object) else {
        return Some(bedrock_error(
            400,
            "ValidationException",
            "The request body is not valid JSON.",
        ));
    };
    let model = percent_decode(model);
    let reply = match operation {
        "converse" => converse(req, body, false),
        "converse-stream" => converse(req, body, true),
        _ => invoke(req, &model, body),
    };
    Some(reply.header("x-amzn-RequestId", &format!("mock-request-{}", req.seq)))
}

/// Bedrock's error shape: `{"message"}` and the exception name in `x-amzn-ErrorType`.
fn bedrock_error(status: u16, name: &str, message: &str) -> MockReply {
    MockReply::json(status, json!({ "message": message })).header("x-amzn-ErrorType", name)
}

/// A 403 unless the request carries SigV4 (with `x-amz-date`) or a bearer key.
fn check_auth(req: &RecordedRequest) -> Option<MockReply> {
    let auth = req.header("authorization").unwrap_or_default();
    if auth.starts_with("Bearer ") && auth.len() > "Bearer ".len() {
        return None;
    }
    if auth.starts_with("AWS4-HMAC-SHA256 Credential=") {
        if req.header("x-amz-date").is_some() {
            return None;
        }
        return Some(bedrock_error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    }
    Some(bedrock_error(
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    ))
}

/// `%3A` → `:` and so on; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// `"echo: a b"` → `["echo:", " a", " b"]`.
fn pieces(text: &str) -> Vec<String> {
    text.split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// The text of content blocks: `text` blocks, and the text inside `toolResult` blocks, joined
/// by a space.
fn blocks_text(blocks: &[Value]) -> String {
    let mut parts = Vec::new();
    for block in blocks {
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            parts.push(text.to_owned());
        }
        if let Some(result) = block.get("toolResult") {
            let inner = result
                .get("content")
                .and_then(Value::as_array)
                .map(|c| blocks_text(c))
                .unwrap_or_default();
            parts.push(inner);
        }
    }
    parts.join(" ")
}

fn content(message: &Value) -> &[Value] {
    message
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

enum Answer {
    Text(String),
    Tool { name: String },
}

fn answer(body: &serde_json::Map<String, Value>, messages: &[Value]) -> Answer {
    let last = messages.last();
    let is_user = |m: &Value| m.get("role").and_then(Value::as_str) == Some("user");
    if let Some(last) = last.filter(|m| is_user(m)) {
        let results: Vec<&Value> = content(last)
            .iter()
            .filter_map(|b| b.get("toolResult"))
            .collect();
        if let Some(result) = results.last() {
            let text = result
                .get("content")
                .and_then(Value::as_array)
                .map(|c| blocks_text(c))
                .unwrap_or_default();
            return Answer::Text(format!("tool result: {text}"));
        }
        let tools = body
            .get("toolConfig")
            .and_then(|c| c.get("tools"))
            .and_then(Value::as_array);
        let forced = body
            .get("toolConfig")
            .and_then(|c| c.pointer("/toolChoice/tool/name"));
        let first = tools.and_then(|t| t.first()?.pointer("/toolSpec/name"));
        if let Some(name) = forced.or(first).and_then(Value::as_str) {
            return Answer::Tool {
                name: name.to_owned(),
            };
        }
    }
    let user = messages.iter().rev().find(|m| is_user(m));
    let text = user.map(|m| blocks_text(content(m))).unwrap_or_default();
    Answer::Text(format!("echo: {text}"))
}

fn converse(
    req: &RecordedRequest,
    body: &serde_json::Map<String, Value>,
    stream: bool,
) -> MockReply {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return bedrock_error(
            400,
            "ValidationException",
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null",
        );
    };
    let input_tokens = messages
        .iter()
        .map(|m| words(&blocks_text(content(m))))
        .sum::<u64>()
        .max(1);
    let answer = answer(body, messages);
    let call_id = format!("tooluse_mock_{}", req.seq);
    let (output_tokens, stop_reason) = match &answer {
        Answer::Text(text) => (words(text), "end_turn"),
        Answer::Tool { name } => (words(name) + 1, "tool_use"),
    };
    let usage = json!({
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    });
    if !stream {
        let block = match &answer {
            Answer::Text(text) => json!({ "text": text }),
            Answer::Tool { name } => {
                json!({ "toolUse": { "toolUseId": call_id, "name": name, "input": {} } })
            }
        };
        return MockReply::json(
            200,
            json!({
                "output": { "message": { "role": "assistant", "content": [block] } },
                "stopReason": stop_reason,
                "usage": usage,
                "metrics": { "latencyMs": 1 },
            }),
        );
    }
    let mut script = SseScript::new().aws_event("messageStart", &json!({ "role": "assistant" }));
    match &answer {
        Answer::Text(text) => {
            for piece in pieces(text) {
                script = script.aws_event(
                    "contentBlockDelta",
                    &json!({ "contentBlockIndex": 0, "delta": { "text": piece } }),
                );
            }
        }
        Answer::Tool { name } => {
            script = script.aws_event(
                "contentBlockStart",
                &json!({ "contentBlockIndex": 0,
                         "start": { "toolUse": { "toolUseId": call_id, "name": name } } }),
            );
            for fragment in ["{", "}"] {
                script = script.aws_event(
                    "contentBlockDelta",
                    &json!({ "contentBlockIndex": 0, "delta": { "toolUse": { "input": fragment } } }),
                );
            }
        }
    }
    let script = script
        .aws_event("contentBlockStop", &json!({ "contentBlockIndex": 0 }))
        .aws_event("messageStop", &json!({ "stopReason": stop_reason }))
        .aws_event(
            "metadata",
            &json!({ "usage": usage, "metrics": { "latencyMs": 1 } }),
        );
    MockReply::stream(EVENT_STREAM, script)
}

fn invoke(req: &RecordedRequest, model: &str, body: &serde_json::Map<String, Value>) -> MockReply {
    let dimensions = |key: &str| {
        body.get(key)
            .and_then(Value::as_u64)
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or(DEFAULT_EMBEDDING_DIMENSIONS)
    };
    if model.contains("titan-embed") {
        let Some(text) = body.get("inputText").and_then(Value::as_str) else {
            return bedrock_error(
                400,
                "ValidationException",
                "Malformed input request: required key [inputText] not found, please reformat your input and try again.",
            );
        };
        return MockReply::json(
            200,
            json!({
                "embedding": mock_embedding(text, dimensions("dimensions")),
                "inputTextTokenCount": words(text).max(1),
            }),
        );
    }
    if model.contains("cohere.embed") {
        let Some(texts) = body.get("texts").and_then(Value::as_array) else {
            return bedrock_error(
                400,
                "ValidationException",
                "Malformed input request: required key [texts] not found, please reformat your input and try again.",
            );
        };
        let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        let size = dimensions("output_dimension");
        let embeddings: Vec<Vec<f64>> = texts.iter().map(|t| mock_embedding(t, size)).collect();
        let tokens = texts.iter().map(|t| words(t)).sum::<u64>().max(1);
        return MockReply::json(
            200,
            json!({
                "id": format!("mock-embed-{}", req.seq),
                "embeddings": embeddings,
                "response_type": "embeddings_floats",
                "texts": texts,
            }),
        )
        .header("x-amzn-bedrock-input-token-count", &tokens.to_string());
    }
    bedrock_error(
        400,
        "ValidationException",
        &format!(
            "The mock has no InvokeModel answer for model {model}; it knows titan-embed and cohere.embed models."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, Method};

    fn recorded(path: &str, auth: Option<&str>, body: Value) -> RecordedRequest {
        let mut headers = HeaderMap::new();
        if let Some(auth) = auth {
            headers.insert("authorization", auth.parse().unwrap());
            headers.insert("x-amz-date", "20240102T030405Z".parse().unwrap());
        }
        RecordedRequest {
            seq: 1,
            method: Method::POST,
            path: path.to_owned(),
            query: None,
            headers,
            body: Bytes::from(body.to_string()),
            json: Some(body),
        }
    }

    #[test]
    fn only_bedrock_paths_are_claimed() {
        let body = json!({"messages": []});
        assert!(default_reply(&recorded("/v1/chat/completions", None, body.clone())).is_none());
        assert!(default_reply(&recorded("/model/m/other", None, body.clone())).is_none());
        assert!(default_reply(&recorded("/model/m/converse", None, body)).is_some());
    }

    #[test]
    fn unauthenticated_requests_are_refused_like_bedrock() {
        let body = json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]});
        let reply = default_reply(&recorded("/model/m/converse", None, body.clone())).unwrap();
        assert_eq!(reply.status, 403);
        let signed = "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
        let reply = default_reply(&recorded("/model/m/converse", Some(signed), body)).unwrap();
        assert_eq!(reply.status, 200);
    }

    #[test]
    fn model_ids_are_percent_decoded() {
        assert_eq!(
            percent_decode("us.anthropic.claude-v2%3A1%2Fx%zz"),
            "us.anthropic.claude-v2:1/x%zz"
        );
    }
}
