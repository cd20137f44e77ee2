//! Anthropic streams → OpenAI chunks, fed whole and split at every byte.

use portico_anthropic::stream::{StreamTranslator, translate};
use serde_json::Value;

use crate::support::{body, collect, names, text};

fn run(chunks: Vec<Vec<u8>>) -> Vec<Value> {
    collect(translate(
        body(chunks),
        StreamTranslator::new("claude-sonnet-4-5", 1_700_000_000),
    ))
}

#[test]
fn stream_fixtures() {
    let all = names("streams", ".sse");
    assert!(all.len() >= 5, "{all:?}");
    for name in all {
        let bytes = text(&format!("streams/{name}.sse")).into_bytes();
        let out = run(vec![bytes]);
        insta::assert_json_snapshot!(format!("stream__{name}"), out, {
            "[].created" => "[created]",
        });
    }
}

#[test]
fn splitting_the_bytes_anywhere_gives_the_same_chunks() {
    for name in names("streams", ".sse") {
        let bytes = text(&format!("streams/{name}.sse")).into_bytes();
        let whole = run(vec![bytes.clone()]);
        for at in 1..bytes.len() {
            let split = run(vec![bytes[..at].to_vec(), bytes[at..].to_vec()]);
            assert_eq!(split, whole, "{name} split at byte {at}");
        }
        let bytewise = run(bytes.iter().map(|b| vec![*b]).collect());
        assert_eq!(bytewise, whole, "{name} one byte at a time");
    }
}

#[test]
fn the_first_chunk_carries_the_role_and_the_last_ones_usage_and_done() {
    let out = run(vec![text("streams/parallel_tools.sse").into_bytes()]);
    assert_eq!(out[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(out.last().unwrap(), "[DONE]");
    let usage = &out[out.len() - 2];
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 472 + 2048);
    assert_eq!(usage["usage"]["completion_tokens"], 89);
    assert_eq!(
        usage["usage"]["prompt_tokens_details"]["cached_tokens"],
        2048
    );
    // Tool indexes count tool blocks (0, 1, 2), not Anthropic's block indexes (1, 2, 3).
    let starts: Vec<(u64, &str)> = out
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0].as_object())
        .filter(|t| t.contains_key("id"))
        .map(|t| (t["index"].as_u64().unwrap(), t["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        starts,
        [
            (0, "toolu_01Paris"),
            (1, "toolu_01Tokyo"),
            (2, "toolu_01Clock")
        ]
    );
    let finishes: Vec<&Value> = out
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .filter(|c| c["choices"][0].is_object())
        .collect();
    assert_eq!(finishes.len(), 1);
    assert_eq!(finishes[0]["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn errors_and_truncation_end_the_stream_with_an_error() {
    for name in ["error_mid_stream", "truncated"] {
        let out = run(vec![text(&format!("streams/{name}.sse")).into_bytes()]);
        let last = out.last().unwrap();
        assert!(last["error"].is_string(), "{name}: {last}");
        assert!(!out.iter().any(|e| e == "[DONE]"), "{name}");
    }
    let out = run(vec![b": keep-alive\n\n".to_vec()]);
    assert_eq!(out.len(), 1);
    assert!(
        out[0]["error"]
            .as_str()
            .unwrap()
            .contains("without any message")
    );
}
