//! Anthropic messages → OpenAI chat completions.

use portico_anthropic::response::to_chat_response;
use portico_anthropic::wire::MessagesResponse;

use crate::support::{json, names};

#[test]
fn response_fixtures() {
    let all = names("responses", ".json");
    assert!(all.len() >= 8, "{all:?}");
    for name in all {
        let message: MessagesResponse =
            serde_json::from_value(json(&format!("responses/{name}.json"))).unwrap();
        let chat = to_chat_response(&message, 1_700_000_000);
        insta::assert_json_snapshot!(format!("response__{name}"), chat, {
            ".created" => "[created]",
        });
    }
}

#[test]
fn every_stop_reason_maps() {
    let cases = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
    ];
    for (stop, finish) in cases {
        let mut body = json("responses/text.json");
        body["stop_reason"] = stop.into();
        let message: MessagesResponse = serde_json::from_value(body).unwrap();
        let chat = to_chat_response(&message, 0);
        assert_eq!(
            chat.choices[0].finish_reason.as_deref(),
            Some(finish),
            "{stop}"
        );
    }
}

#[test]
fn cache_tokens_count_as_prompt_tokens() {
    let message: MessagesResponse =
        serde_json::from_value(json("responses/usage_cache.json")).unwrap();
    let usage = to_chat_response(&message, 0).usage.unwrap();
    assert_eq!(usage.prompt_tokens, 21 + 188_086 + 2048);
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, 2048);
    assert_eq!(usage.total_tokens, 21 + 188_086 + 2048 + 393);
}
