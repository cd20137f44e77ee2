//! Anthropic Messages in, the answer (portico-anthropic `inbound`): OpenAI's chat completion
//! (input starting with `{`) → a Messages response, or an OpenAI chunk stream (SSE) → the
//! Messages stream events, as `POST /v1/messages` answers for a non-Anthropic provider.
//! Properties: no panic; the response and every event written are valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_anthropic::inbound::{MessagesStreamWriter, from_chat_body};
use portico_fuzz::{chunk_size, drive, is_whole_body, sse_events, write_json};

fuzz_target!(|data: &[u8]| {
    if is_whole_body(data) {
        if let Ok(messages) = from_chat_body(data) {
            write_json(&messages);
        }
        return;
    }
    let (events, _) = sse_events(data, chunk_size(data));
    drive(MessagesStreamWriter::new("fuzz-model"), events);
});
