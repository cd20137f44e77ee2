//! The request-shape limits' cost per request: the nesting-depth walk over the whole body
//! and the item count of `messages` and `tools`, on a realistic 10 KB chat request and a
//! 1 MB coding-agent conversation (code in tool results, so strings full of escapes), beside
//! the parse every request already pays ([`JsonBody::parse`]).

#![expect(clippy::unwrap_used, reason = "benchmark set-up")]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_core::JsonBody;
use portico_core::json_shape::{array_len, nests_deeper_than};
use serde_json::{Value, json};

/// A source-code-like text of about `len` bytes: quotes, backslashes, brackets, newlines.
fn code(len: usize) -> String {
    let line = "    let value = map.get(\"key\").unwrap_or(&[1, 2, 3]); // {\"a\": [\\n]}\n";
    line.repeat(len / line.len() + 1)[..len].to_owned()
}

fn tools() -> Vec<Value> {
    (0..12)
        .map(|i| {
            json!({"type": "function", "function": {
                "name": format!("tool_{i}"),
                "description": "Reads a file of the workspace and returns its text, with line numbers.",
                "parameters": {"type": "object", "properties": {
                    "path": {"type": "string", "description": "the file's path"},
                    "range": {"type": "object", "properties": {
                        "start": {"type": "integer"}, "end": {"type": "integer"}}}},
                    "required": ["path"]}}})
        })
        .collect()
}

/// A chat request of about `target` bytes: a system prompt, 12 tools, and turns of user
/// questions, assistant tool calls and tool results holding code.
fn agent_request(target: usize) -> Bytes {
    let mut messages = vec![json!({"role": "system", "content": code(2000)})];
    let mut i = 0;
    while serde_json::to_vec(&messages).unwrap().len() + 4000 < target {
        messages
            .push(json!({"role": "user", "content": format!("Fix the bug in file {i}, please.")}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": format!("call_{i}"), "type": "function",
            "function": {"name": "tool_0", "arguments": format!("{{\"path\":\"src/f{i}.rs\"}}")}}]}));
        messages.push(
            json!({"role": "tool", "tool_call_id": format!("call_{i}"), "content": code(2000)}),
        );
        i += 1;
    }
    let body = json!({"model": "@anthropic/claude-sonnet-4-5", "stream": true,
                      "messages": messages, "tools": tools()});
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

fn bench_shape(c: &mut Criterion) {
    for (name, body) in [
        ("10k", agent_request(10 * 1024)),
        ("1m", agent_request(1024 * 1024)),
    ] {
        let parsed = JsonBody::parse(body.clone()).unwrap();
        let mut group = c.benchmark_group(format!("request_shape/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("depth_walk", |b| {
            b.iter(|| black_box(nests_deeper_than(black_box(&body), 100)));
        });
        group.bench_function("count_messages_and_tools", |b| {
            b.iter(|| {
                let messages = array_len(parsed.get_raw("messages").unwrap().as_bytes());
                let tools = array_len(parsed.get_raw("tools").unwrap().as_bytes());
                black_box((messages, tools))
            });
        });
        group.bench_function("json_body_parse_for_scale", |b| {
            b.iter(|| black_box(JsonBody::parse(black_box(body.clone())).unwrap()));
        });
        group.finish();
    }
}

criterion_group!(benches, bench_shape);
criterion_main!(benches);
