//! Fixture loading and stream collection.

use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::executor::block_on;
use portico_providers::{EventStream, SseEvent};
use serde_json::{Value, json};

/// The path of a fixture.
pub(crate) fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A fixture's text.
pub(crate) fn text(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A JSON fixture.
pub(crate) fn json(rel: &str) -> Value {
    serde_json::from_str(&text(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The names of the fixtures in a directory with an extension, sorted.
pub(crate) fn names(dir: &str, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(path(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .map(|n| n.trim_end_matches(ext).to_owned())
        .collect();
    out.sort();
    out
}

/// Byte chunks as an upstream body stream.
pub(crate) fn body(
    chunks: Vec<Vec<u8>>,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))))
}

/// Every item of an event stream, as JSON: an event's data (parsed when it is JSON, with its
/// name when it has one), or `{"error": "..."}` for an error.
pub(crate) fn collect(events: EventStream) -> Vec<Value> {
    block_on(events.collect::<Vec<_>>())
        .into_iter()
        .map(|item| match item {
            Ok(event) => event_json(&event),
            Err(err) => json!({ "error": err.to_string() }),
        })
        .collect()
}

/// One event as JSON (see [`collect`]).
pub(crate) fn event_json(event: &SseEvent) -> Value {
    let data = serde_json::from_slice(&event.data)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&event.data).into_owned()));
    match &event.event {
        Some(name) => json!({ "event": name, "data": data }),
        None => data,
    }
}
