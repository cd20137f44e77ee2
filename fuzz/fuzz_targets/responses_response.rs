//! The Responses API in, the answer (portico-responses): OpenAI's chat completion (input
//! starting with `{`) → a Responses object, or an OpenAI chunk stream (SSE) → the Responses
//! stream events.
//! Properties: no panic; the object and every event written are valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::{chunk_size, drive, is_whole_body, sse_events};
use portico_responses::{ResponsesRequest, ResponsesStreamWriter, Turn, from_chat_body};

fuzz_target!(|data: &[u8]| {
    let turn = Turn::new(&ResponsesRequest::default());
    if is_whole_body(data) {
        if let Ok(response) = from_chat_body(data, &turn) {
            portico_fuzz::write_json(&response);
        }
        return;
    }
    let (events, _) = sse_events(data, chunk_size(data));
    drive(ResponsesStreamWriter::new(turn, "fuzz-model"), events);
});
