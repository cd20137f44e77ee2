//! Gemini SSE streams → OpenAI chunk sequences, whatever the chunking of the bytes.

use std::convert::Infallible;

use bytes::Bytes;
use futures::{StreamExt, executor::block_on, stream};
use portico_providers::sse::sse_events;
use serde_json::{Value, json};

use super::fixture_path;
use crate::stream::StreamTranslator;
use portico_providers::dialect::translate;

/// Runs `pieces` (the body, cut anywhere) through SSE parsing and translation: each event as
/// JSON (`"[DONE]"` as a string), an error as `{"error": ...}`.
fn run(pieces: Vec<Vec<u8>>) -> Vec<Value> {
    let bytes = stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<_, Infallible>(Bytes::from(p))),
    );
    let events = translate(
        sse_events(bytes),
        StreamTranslator::new("requested-model", 1_700_000_000),
    );
    block_on(events.collect::<Vec<_>>())
        .into_iter()
        .map(|item| match item {
            Ok(event) if event.is_done() => json!("[DONE]"),
            Ok(event) => serde_json::from_slice(&event.data).unwrap(),
            Err(err) => json!({"error": err.to_string()}),
        })
        .collect()
}

fn body(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(&format!("streams/{name}.sse"))).unwrap()
}

/// The events of a fixture fed whole, after checking that every two-piece split and the
/// byte-by-byte feed give exactly the same events (splits inside UTF-8 characters included).
fn events(name: &str) -> Vec<Value> {
    let bytes = body(name);
    let whole = run(vec![bytes.clone()]);
    for cut in 0..=bytes.len() {
        let split = run(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]);
        assert_eq!(split, whole, "{name} split at byte {cut}");
    }
    let bytewise = run(bytes.iter().map(|b| vec![*b]).collect());
    assert_eq!(bytewise, whole, "{name} fed byte by byte");
    whole
}

macro_rules! snapshot_streams {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_json_snapshot!(events(stringify!($name)));
        }
    )*};
}

snapshot_streams!(
    text,
    function_calls,
    thoughts,
    truncated,
    error,
    blocked,
    max_tokens,
    malformed
);

#[test]
fn streams_end_in_usage_and_done_or_an_error() {
    for name in [
        "text",
        "function_calls",
        "thoughts",
        "blocked",
        "max_tokens",
    ] {
        let events = events(name);
        assert_eq!(events.last(), Some(&json!("[DONE]")), "{name}");
        let usage = &events[events.len() - 2];
        assert_eq!(
            usage["choices"],
            json!([]),
            "{name}: usage chunk before [DONE]"
        );
        assert!(usage["usage"]["total_tokens"].is_u64(), "{name}");
        assert_eq!(
            events[0]["choices"][0]["delta"]["role"], "assistant",
            "{name}"
        );
        let finishes = events
            .iter()
            .filter(|e| e["choices"][0]["finish_reason"].is_string())
            .count();
        assert_eq!(finishes, 1, "{name}: one finish chunk");
    }
    for name in ["truncated", "error", "malformed"] {
        let events = events(name);
        assert!(events.last().unwrap().get("error").is_some(), "{name}");
        assert!(!events.contains(&json!("[DONE]")), "{name}");
    }
}

#[test]
fn an_empty_stream_is_broken_not_complete() {
    let events = run(vec![]);
    assert_eq!(events.len(), 1);
    assert!(
        events[0]["error"]
            .as_str()
            .unwrap()
            .contains("no finishReason")
    );
}
