//! Bedrock's answers → OpenAI: a whole Converse body (input starting with `{`) through the
//! dialect's `decode`, or a ConverseStream as a JSON list of frames (the test fixtures' form:
//! `{"event": name, "payload": {...}}` or `{"exception": name, "message": ...}`) through its
//! stream translator. The binary framing itself is `bedrock_eventstream`'s.
//! Properties: no panic; the chat completion and every chunk written are valid JSON.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portico_bedrock::eventstream::Frame;
use portico_fuzz::{answered, dialects, drive, is_whole_body, write_json};
use portico_providers::dialect::Dialect;
use serde_json::Value;

/// A frame of the fixtures' JSON form; `None` for an entry of another shape.
fn frame(entry: &Value) -> Option<Frame> {
    if let Some(name) = entry.get("event").and_then(Value::as_str) {
        let payload = entry
            .get("payload")
            .map(|p| p.to_string())
            .unwrap_or_default();
        return Some(Frame::Event {
            event_type: name.to_owned(),
            payload: Bytes::from(payload),
        });
    }
    let name = entry.get("exception").and_then(Value::as_str)?;
    let payload = match entry.get("message") {
        Some(message) => serde_json::json!({ "message": message }).to_string(),
        None => String::new(),
    };
    Some(Frame::Exception {
        name: name.to_owned(),
        payload: Bytes::from(payload),
    })
}

fuzz_target!(|data: &[u8]| {
    let dialect = &dialects().bedrock;
    if is_whole_body(data) {
        let Ok(answer) = serde_json::from_slice(data) else {
            return;
        };
        if let Ok(chat) = dialect.decode(answer, &answered()) {
            write_json(&chat);
        }
        return;
    }
    let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    drive(
        dialect.translator(&answered()),
        entries.iter().filter_map(frame),
    );
});
