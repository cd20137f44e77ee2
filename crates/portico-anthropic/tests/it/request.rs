//! OpenAI chat requests → Anthropic Messages requests.

use portico_anthropic::request::to_messages_request;
use portico_providers::chat::ChatRequest;

use crate::support::{json, names};

#[test]
fn request_fixtures() {
    let all = names("requests", ".json");
    assert!(all.len() >= 10, "{all:?}");
    for name in all {
        let body = json(&format!("requests/{name}.json"));
        let chat: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        let stream = body["stream"] == true;
        let wire = to_messages_request(&chat, "claude-sonnet-4-5-20250929", stream)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        insta::assert_json_snapshot!(format!("request__{name}"), wire);
    }
}
