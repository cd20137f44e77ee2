//! The `/v1/messages` inbound: Messages requests → chat requests, chat answers → Messages
//! answers, and the round trip messages → chat → messages for stream and non-stream, with and
//! without tools.

use std::collections::BTreeMap;

use portico_anthropic::inbound::{from_chat_body, to_chat_request, to_messages_events};
use portico_anthropic::request::to_messages_request;
use portico_anthropic::response::to_chat_response;
use portico_anthropic::stream::{StreamTranslator, translate};
use portico_anthropic::wire::{MessagesRequest, MessagesResponse};
use portico_core::ProviderKind;
use portico_providers::sse::sse_events;
use serde_json::{Value, json};

use crate::support::{body, collect, json as fixture, text};

fn messages_request(name: &str) -> MessagesRequest {
    serde_json::from_value(fixture(&format!("inbound/{name}.json"))).unwrap()
}

#[test]
fn inbound_request_fixtures() {
    for name in ["simple", "tools"] {
        let req = messages_request(name);
        let chat = to_chat_request(&req, ProviderKind::OpenAi).unwrap();
        insta::assert_json_snapshot!(format!("inbound_request__{name}"), chat);
        // And back: what an Anthropic provider would get if the chat request went there.
        let again = to_messages_request(&chat, "claude-x", req.stream == Some(true)).unwrap();
        insta::assert_json_snapshot!(format!("inbound_request_round_trip__{name}"), again);
    }
}

#[test]
fn the_token_limit_field_follows_the_target() {
    let req = messages_request("simple");
    let openai = to_chat_request(&req, ProviderKind::OpenAi).unwrap();
    assert_eq!(
        (openai.max_completion_tokens, openai.max_tokens),
        (Some(1024), None)
    );
    let other = to_chat_request(&req, ProviderKind::Groq).unwrap();
    assert_eq!(
        (other.max_completion_tokens, other.max_tokens),
        (None, Some(1024))
    );
}

#[test]
fn what_chat_providers_cannot_do_is_a_clear_400() {
    let mut req = messages_request("simple");
    req.max_tokens = None;
    let err = to_chat_request(&req, ProviderKind::OpenAi).unwrap_err();
    assert_eq!(
        (err.status, err.param.as_deref()),
        (400, Some("max_tokens"))
    );
    let mut with_server_tool = fixture("inbound/tools.json");
    with_server_tool["tools"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 3}));
    let req: MessagesRequest = serde_json::from_value(with_server_tool).unwrap();
    let err = to_chat_request(&req, ProviderKind::OpenAi).unwrap_err();
    assert!(err.message.contains("server tool"), "{}", err.message);
}

/// Puts Anthropic stream events back together as the Anthropic SDKs do, checking the event
/// order on the way: `message_start` first, blocks opened, filled and closed one at a time,
/// then `message_delta` and `message_stop` last.
fn assemble(events: &[Value]) -> Value {
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(
        &names[names.len() - 2..],
        ["message_delta", "message_stop"],
        "{names:?}"
    );
    let mut message = events[0]["data"]["message"].clone();
    let mut blocks: BTreeMap<u64, Value> = BTreeMap::new();
    let mut json_input: BTreeMap<u64, String> = BTreeMap::new();
    let mut open: Option<u64> = None;
    for ev in &events[1..] {
        let data = &ev["data"];
        assert_eq!(ev["event"], data["type"], "event names match their data");
        let index = data["index"].as_u64();
        match data["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(
                    open, None,
                    "a block starts while another is open: {events:?}"
                );
                let index = index.unwrap();
                assert_eq!(index, blocks.len() as u64, "block indexes count up from 0");
                open = Some(index);
                blocks.insert(index, data["content_block"].clone());
            }
            "content_block_delta" => {
                let index = index.unwrap();
                assert_eq!(open, Some(index), "a delta for a block that is not open");
                let block = blocks.get_mut(&index).unwrap();
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = block["text"].as_str().unwrap().to_owned();
                        block["text"] = json!(t + delta["text"].as_str().unwrap());
                    }
                    "thinking_delta" => {
                        let t = block["thinking"].as_str().unwrap().to_owned();
                        block["thinking"] = json!(t + delta["thinking"].as_str().unwrap());
                    }
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => json_input
                        .entry(index)
                        .or_default()
                        .push_str(delta["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(open, index, "a stop for a block that is not open");
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None, "message_delta with a block open");
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                for (k, v) in data["usage"].as_object().unwrap() {
                    message["usage"][k] = v.clone();
                }
            }
            "message_stop" | "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    for (index, input) in json_input {
        blocks.get_mut(&index).unwrap()["input"] = serde_json::from_str(&input).unwrap();
    }
    message["content"] = Value::Array(blocks.into_values().collect());
    message
}

/// The parts of a message the round trip must keep.
fn essence(message: &Value) -> Value {
    let usage = &message["usage"];
    let content: Vec<Value> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] != "redacted_thinking" || b["data"].is_string())
        .map(|b| {
            let mut b = b.clone();
            if let Some(obj) = b.as_object_mut() {
                obj.remove("citations");
            }
            b
        })
        .collect();
    json!({
        "content": merge_text(content),
        "stop_reason": message["stop_reason"],
        "input": usage["input_tokens"],
        "output": usage["output_tokens"],
        "cache_read": usage["cache_read_input_tokens"].as_u64().unwrap_or(0),
    })
}

/// Adjacent text blocks joined (a chat completion has one text).
fn merge_text(blocks: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for b in blocks {
        if b["type"] == "text"
            && let Some(last) = out.last_mut()
            && last["type"] == "text"
        {
            let t = last["text"].as_str().unwrap().to_owned() + b["text"].as_str().unwrap();
            last["text"] = json!(t);
            continue;
        }
        out.push(b);
    }
    out
}

/// messages → chat → messages, whole: an Anthropic answer translated for a chat client and
/// back for a Messages client keeps its blocks, stop reason and usage.
fn round_trip_whole(fixture_name: &str) -> Value {
    let original: MessagesResponse =
        serde_json::from_value(fixture(&format!("responses/{fixture_name}.json"))).unwrap();
    let chat = to_chat_response(&original, 1_700_000_000);
    let back = from_chat_body(&serde_json::to_vec(&chat).unwrap()).unwrap();
    let back = serde_json::to_value(&back).unwrap();
    assert_eq!(
        essence(&back),
        essence(&serde_json::to_value(&original).unwrap()),
        "{fixture_name}"
    );
    back
}

/// messages → chat → messages, streamed.
fn round_trip_stream(fixture_name: &str) -> Vec<Value> {
    let bytes = text(&format!("streams/{fixture_name}.sse")).into_bytes();
    let openai = translate(
        body(vec![bytes]),
        StreamTranslator::new("claude-sonnet-4-5", 1_700_000_000),
    );
    collect(to_messages_events(openai, "claude-sonnet-4-5"))
}

#[test]
fn matrix_non_stream_without_tools() {
    insta::assert_json_snapshot!("matrix__whole_text", round_trip_whole("text"));
}

#[test]
fn matrix_non_stream_with_tools() {
    insta::assert_json_snapshot!("matrix__whole_tools", round_trip_whole("tool_use"));
    round_trip_whole("thinking");
}

/// The original Anthropic stream's events, for comparison.
fn original_events(fixture_name: &str) -> Vec<Value> {
    let bytes = text(&format!("streams/{fixture_name}.sse")).into_bytes();
    collect(Box::pin(sse_events(body(vec![bytes]))))
}

#[test]
fn matrix_stream_without_tools() {
    let events = round_trip_stream("text");
    insta::assert_json_snapshot!("matrix__stream_text", events);
    assert_eq!(
        essence(&assemble(&events)),
        essence(&assemble(&original_events("text")))
    );
}

#[test]
fn matrix_stream_with_tools() {
    for name in ["parallel_tools", "thinking"] {
        let events = round_trip_stream(name);
        if name == "parallel_tools" {
            insta::assert_json_snapshot!("matrix__stream_tools", events);
        }
        assert_eq!(
            essence(&assemble(&events)),
            essence(&assemble(&original_events(name))),
            "{name}"
        );
    }
}

#[test]
fn an_openai_tool_stream_becomes_anthropic_events() {
    let events = collect(to_messages_events(
        Box::pin(sse_events(body(vec![
            text("inbound/openai_tool_stream.sse").into_bytes(),
        ]))),
        "gpt-4o-mini",
    ));
    insta::assert_json_snapshot!("inbound_stream__openai_tools", events);
    let message = assemble(&events);
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["input_tokens"], 20);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 100);
    assert_eq!(message["content"][2]["input"], json!({"city": "Paris"}));
    assert_eq!(message["content"][3]["input"], json!({"city": "Tokyo"}));
}

#[test]
fn a_chat_stream_cut_short_is_an_error_event() {
    let cut = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let events = collect(to_messages_events(
        Box::pin(sse_events(body(vec![cut.as_bytes().to_vec()]))),
        "m",
    ));
    assert_eq!(events[0]["event"], "message_start");
    assert!(events.last().unwrap()["error"].is_string(), "{events:?}");
    let in_band = "data: {\"error\":{\"message\":\"upstream exploded\"}}\n\n";
    let events = collect(to_messages_events(
        Box::pin(sse_events(body(vec![in_band.as_bytes().to_vec()]))),
        "m",
    ));
    assert_eq!(events.len(), 1);
    assert!(
        events[0]["error"]
            .as_str()
            .unwrap()
            .contains("upstream exploded")
    );
}
