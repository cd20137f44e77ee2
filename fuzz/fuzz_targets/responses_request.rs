//! The Responses API in, the request (portico-responses): a `POST /v1/responses` body →
//! OpenAI's chat request, alone and after a stored conversation (`previous_response_id`'s
//! history), for an OpenAI-style target and for Anthropic.
//! Properties: no panic; a request is refused with a client error or becomes a chat request
//! that serialises to valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_core::ProviderKind;
use portico_fuzz::write_json;
use portico_responses::{ResponsesRequest, to_chat_request};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<ResponsesRequest>(data) else {
        return;
    };
    let history = [
        json!({"type": "message", "role": "user", "content": "earlier question"}),
        json!({"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}),
        json!({"type": "function_call_output", "call_id": "call_1", "output": "42"}),
    ];
    for target in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        for past in [&history[..0], &history[..]] {
            if let Ok(chat) = to_chat_request(&req, past, target) {
                write_json(&chat);
            }
        }
    }
});
