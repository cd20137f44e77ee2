//! Snapshot tests over the fixtures in `tests/fixtures/`, written in Bedrock's documented
//! shapes: OpenAI requests → Converse requests, Converse answers → chat completions, and
//! ConverseStream frames (encoded as real binary frames) → OpenAI chunks, fed split at every
//! byte position.

use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use portico_providers::ProviderError;
use portico_providers::chat::ChatRequest;
use serde_json::{Value, json};

use crate::eventstream::{encode_event, encode_exception};
use crate::request::to_converse;
use crate::response::to_chat_response;
use crate::stream::{Translator, frames};
use portico_providers::dialect::translate;

/// The fixtures of one directory, sorted by name.
fn fixtures(dir: &str) -> Vec<(String, Value)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&path)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixtures in {}", path.display());
    out
}

fn fixture(dir: &str, name: &str) -> Value {
    fixtures(dir)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap()
}

#[test]
fn requests_translate_to_converse() {
    for (name, body) in fixtures("requests") {
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        let converse = to_converse(&req).unwrap_or_else(|e| panic!("{name}: {e}"));
        insta::assert_json_snapshot!(format!("request__{name}"), converse);
    }
}

#[test]
fn responses_translate_to_chat_completions() {
    for (name, body) in fixtures("responses") {
        let answer = serde_json::from_value(body).unwrap();
        let chat = to_chat_response(
            answer,
            "chatcmpl-test".into(),
            1_700_000_000,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        );
        insta::assert_json_snapshot!(format!("response__{name}"), chat);
    }
}

/// The frames of a stream fixture, encoded, and the byte offset where each frame ends.
fn encode(frames: &Value) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for frame in frames.as_array().unwrap() {
        let encoded = match frame.get("event") {
            Some(event) => encode_event(
                event.as_str().unwrap(),
                frame["payload"].to_string().as_bytes(),
            ),
            None => encode_exception(
                frame["exception"].as_str().unwrap(),
                frame["message"].as_str().unwrap(),
            ),
        };
        bytes.extend_from_slice(&encoded);
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// What a client would see: each chunk's JSON (`"[DONE]"` for the sentinel), then the
/// error that ended the stream, if any.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    chunks: Vec<Value>,
    error: Option<ProviderError>,
}

fn run(pieces: Vec<Vec<u8>>) -> Outcome {
    let translator = Translator::new(
        "chatcmpl-test".into(),
        1_700_000_000,
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0".into(),
    );
    let bytes = futures::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<Bytes, Infallible>(Bytes::from(p))),
    );
    let events = translate(
        frames(
            bytes,
            |e: Infallible| match e {},
            crate::eventstream::MAX_FRAME_BYTES,
        ),
        translator,
    );
    let items: Vec<_> = futures::executor::block_on(events.collect());
    let mut outcome = Outcome {
        chunks: Vec::new(),
        error: None,
    };
    for item in items {
        assert!(outcome.error.is_none(), "nothing may follow an error");
        match item {
            Ok(event) if event.is_done() => outcome.chunks.push(json!("[DONE]")),
            Ok(event) => outcome
                .chunks
                .push(serde_json::from_slice(&event.data).unwrap()),
            Err(err) => outcome.error = Some(err),
        }
    }
    outcome
}

fn snapshot_value(outcome: &Outcome) -> Value {
    json!({
        "chunks": outcome.chunks,
        "error": outcome.error.as_ref().map(|e| format!("{e:?}")),
    })
}

#[test]
fn streams_translate_the_same_however_they_are_split() {
    for (name, frames) in fixtures("streams") {
        let (bytes, _) = encode(&frames);
        let whole = run(vec![bytes.clone()]);
        insta::assert_json_snapshot!(format!("stream__{name}"), snapshot_value(&whole));
        // Split once at every position: inside preludes, headers, payloads, CRCs and
        // multi-byte UTF-8 characters.
        for cut in 0..=bytes.len() {
            let split = run(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()]);
            assert_eq!(split, whole, "{name}: split at byte {cut}");
        }
        let byte_by_byte = run(bytes.iter().map(|b| vec![*b]).collect());
        assert_eq!(byte_by_byte, whole, "{name}: one byte at a time");
    }
}

#[test]
fn finish_is_held_until_usage_arrives() {
    let (bytes, ends) = encode(&fixture("streams", "text"));
    // Up to messageStop (the fifth frame): the text, but no finish yet.
    let translator = Translator::new("id".into(), 1, "m".into());
    let mut reader = crate::eventstream::FrameReader::new();
    reader.push(&bytes[..ends[4]]);
    let mut translator = translator;
    let mut out = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        translator.on_frame(frame, &mut out).unwrap();
    }
    assert!(
        out.iter().all(|e| !e.is_done()
            && serde_json::from_slice::<Value>(&e.data).unwrap()["choices"][0]["finish_reason"]
                .is_null()),
        "no finish before metadata"
    );
    reader.push(&bytes[ends[4]..]);
    while let Some(frame) = reader.next_frame().unwrap() {
        translator.on_frame(frame, &mut out).unwrap();
    }
    let last: Vec<Value> = out[out.len() - 3..out.len() - 1]
        .iter()
        .map(|e| serde_json::from_slice(&e.data).unwrap())
        .collect();
    assert_eq!(last[0]["choices"][0]["finish_reason"], "stop");
    assert_eq!(last[1]["usage"]["prompt_tokens"], 11);
    assert!(out.last().unwrap().is_done());
}

#[test]
fn a_truncated_stream_breaks_and_never_hangs() {
    let (bytes, ends) = encode(&fixture("streams", "text"));
    let message_stop_end = ends[4];
    for cut in 0..message_stop_end {
        let outcome = run(vec![bytes[..cut].to_vec()]);
        assert!(
            matches!(outcome.error, Some(ProviderError::StreamBroken(_))),
            "cut at {cut}: {outcome:?}"
        );
        assert!(!outcome.chunks.contains(&json!("[DONE]")));
    }
    // Cut after messageStop but before metadata: finished, without usage.
    let outcome = run(vec![bytes[..message_stop_end].to_vec()]);
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.chunks.last(), Some(&json!("[DONE]")));
    assert!(
        outcome
            .chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null))
    );
}

#[test]
fn exceptions_before_content_are_statuses_and_after_it_break_the_stream() {
    let first = run(vec![encode(&fixture("streams", "exception_first")).0]);
    assert!(first.chunks.is_empty());
    assert_eq!(
        first.error.as_ref().and_then(ProviderError::status),
        Some(429)
    );
    assert!(first.error.unwrap().is_retryable());

    let after_start = run(vec![encode(&fixture("streams", "exception_after_start")).0]);
    assert!(
        after_start.chunks.is_empty(),
        "messageStart alone writes nothing"
    );
    assert_eq!(
        after_start.error.as_ref().and_then(ProviderError::status),
        Some(400)
    );

    let mid = run(vec![encode(&fixture("streams", "exception_mid_stream")).0]);
    assert_eq!(mid.chunks.len(), 2, "role and the partial text went out");
    assert!(
        matches!(mid.error, Some(ProviderError::StreamBroken(m)) if m.contains("ModelStreamErrorException"))
    );
}

#[test]
fn garbage_is_malformed_not_a_hang() {
    let outcome = run(vec![b"<html>502 Bad Gateway</html>".to_vec()]);
    assert!(
        matches!(outcome.error, Some(ProviderError::Malformed(_))),
        "{outcome:?}"
    );
}
