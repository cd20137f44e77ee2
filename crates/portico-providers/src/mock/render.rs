//! Rendering a [`Reply`] as OpenAI-shaped JSON: whole chat and text-completion bodies, and the
//! chunks of their streamed forms (`[DONE]` excluded; `paced` in `mod.rs` adds it).

use portico_core::Usage;
use serde_json::{Map, Value, json};

use super::hash::Fnv;
use super::reply::Reply;
use crate::UpstreamRequest;

/// The fields every body and chunk of one answer share.
pub(super) struct Meta {
    /// The deterministic hash of the request that ids derive from.
    hash: u64,
    created: u64,
    model: String,
}

impl Meta {
    pub(super) fn new(req: &UpstreamRequest, body: &Map<String, Value>) -> Meta {
        // `stream` and `stream_options` are left out, so an answer and its streamed form
        // share their id.
        let mut hash = Fnv::new();
        hash.write(req.endpoint.as_str().as_bytes());
        hash.write(req.model.as_bytes());
        for (key, value) in body {
            if key != "stream" && key != "stream_options" {
                hash.write(key.as_bytes());
                hash.write(value.to_string().as_bytes());
            }
        }
        Meta {
            hash: hash.finish(),
            created: crate::chat::created_now(),
            model: req.model.clone(),
        }
    }
}

pub(super) fn chat_body(meta: &Meta, reply: &Reply) -> Value {
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
pub(super) fn chat_chunks(meta: &Meta, reply: &Reply, body: &Map<String, Value>) -> Vec<Value> {
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

pub(super) fn completion_body(meta: &Meta, reply: &Reply) -> Value {
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
pub(super) fn completion_chunks(
    meta: &Meta,
    reply: &Reply,
    body: &Map<String, Value>,
) -> Vec<Value> {
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

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens(),
    })
}
