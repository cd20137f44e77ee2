//! OpenAI chat request → the Anthropic, Gemini and Bedrock requests (each dialect's
//! `encode`, as the gateway calls it before sending upstream), whole and streamed.
//! Properties: no panic; a request either is refused (a client error) or serialises to
//! valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::{dialects, write_json};
use portico_providers::chat::ChatRequest;
use portico_providers::dialect::{Call, Dialect};

fuzz_target!(|data: &[u8]| {
    let Ok(chat) = serde_json::from_slice::<ChatRequest>(data) else {
        return;
    };
    let d = dialects();
    for stream in [false, true] {
        let call = Call {
            model: "fuzz-model",
            stream,
        };
        if let Ok(wire) = d.anthropic.encode(&chat, call) {
            write_json(&wire);
        }
        if let Ok(wire) = d.gemini.encode(&chat, call) {
            write_json(&wire);
        }
        if let Ok(wire) = d.bedrock.encode(&chat, call) {
            write_json(&wire);
        }
    }
});
