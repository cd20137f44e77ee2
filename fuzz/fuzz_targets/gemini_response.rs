//! Gemini's answers → OpenAI: a whole body (input starting with `{`) through the dialect's
//! `decode`, or an SSE stream through its stream translator, as the gateway runs them.
//! Properties: no panic; the chat completion and every chunk written are valid JSON, and
//! every chunk reads back from its encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::{answered, chunk_size, dialects, drive, is_whole_body, sse_events, write_json};
use portico_providers::dialect::Dialect;

fuzz_target!(|data: &[u8]| {
    let dialect = &dialects().gemini;
    if is_whole_body(data) {
        let Ok(answer) = serde_json::from_slice(data) else {
            return;
        };
        if let Ok(chat) = dialect.decode(answer, &answered()) {
            write_json(&chat);
        }
        return;
    }
    let (events, _) = sse_events(data, chunk_size(data));
    drive(dialect.translator(&answered()), events);
});
