//! Anthropic Messages in, the request (portico-anthropic `inbound`): a `POST /v1/messages`
//! body → OpenAI's chat request, for an OpenAI-style target and for an Anthropic one.
//! Properties: no panic; a request is refused with a client error or becomes a chat request
//! that serialises to valid JSON and reads back as the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_anthropic::inbound::to_chat_request;
use portico_anthropic::wire::MessagesRequest;
use portico_core::ProviderKind;
use portico_fuzz::write_json;
use portico_providers::chat::ChatRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<MessagesRequest>(data) else {
        return;
    };
    for target in [
        ProviderKind::OpenAi,
        ProviderKind::Gemini,
        ProviderKind::Bedrock,
    ] {
        if let Ok(chat) = to_chat_request(&req, target) {
            let bytes = write_json(&chat);
            let back: ChatRequest =
                serde_json::from_slice(&bytes).expect("a translated chat request reads back");
            assert_eq!(
                serde_json::to_value(&back).ok(),
                serde_json::to_value(&chat).ok(),
                "a translated chat request reads back as itself"
            );
        }
    }
});
