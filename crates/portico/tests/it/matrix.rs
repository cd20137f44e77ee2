//! The whole translation matrix through the real binary: inbound format (chat completions,
//! Anthropic messages) × provider kind (openai, azure-openai, anthropic, gemini, bedrock) ×
//! stream / non-stream × tools / no tools, each against the mock upstream answering in that
//! provider's own dialect. Every cell must come back in the inbound format with the answer the
//! upstream gave: the echoed text, or a call to the offered tool.

use portico_testkit::MockUpstream;
use portico_testkit::sse::{collect_chat_stream, parse_sse_data};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, every_kind_providers};

/// One provider of every translating kind, all pointed at the same mock upstream.
fn catalog(upstream: &MockUpstream) -> String {
    format!(
        "providers:{}keys:\n  - name: service\n    key: {SERVICE_KEY}\n",
        every_kind_providers(upstream)
    )
}

const PROVIDERS: [(&str, &str); 5] = [
    ("oa", "gpt-4o-mini"),
    ("az", "chat-deployment"),
    ("an", "claude-sonnet-4-5"),
    ("ge", "gemini-2.5-flash"),
    ("be", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
];

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn weather_tool_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// What a cell's answer must contain.
enum Expect {
    Text,
    ToolCall,
}

async fn chat_cell(gw: &Gateway, model: &str, stream: bool, tools: bool) -> (String, Expect) {
    let mut body = json!({"model": model, "stream": stream,
        "messages": [{"role": "user", "content": "matrix cell"}]});
    if tools {
        body["tools"] = weather_tool_openai();
    }
    let resp = gw.post("/v1/chat/completions", body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{model} stream={stream} tools={tools}: {text}");
    let expect = if tools {
        Expect::ToolCall
    } else {
        Expect::Text
    };
    if stream {
        let chat = collect_chat_stream(&text).unwrap();
        assert!(chat.done, "{model}: no [DONE]");
        assert_eq!(
            chat.role.as_deref(),
            Some("assistant"),
            "{model}: role first"
        );
        assert!(chat.error.is_none(), "{model}: {:?}", chat.error);
        match expect {
            Expect::Text => {
                assert_eq!(chat.finish_reason.as_deref(), Some("stop"), "{model}");
                assert_eq!(chat.content, "echo: matrix cell", "{model}");
            }
            Expect::ToolCall => {
                assert_eq!(chat.finish_reason.as_deref(), Some("tool_calls"), "{model}");
                assert_eq!(chat.tool_calls.len(), 1, "{model}");
                assert_eq!(chat.tool_calls[0].name, "get_weather", "{model}");
                assert!(
                    chat.tool_calls[0]
                        .id
                        .as_deref()
                        .is_some_and(|id| !id.is_empty()),
                    "{model}"
                );
                let args: Value = serde_json::from_str(&chat.tool_calls[0].arguments).unwrap();
                assert!(args.is_object(), "{model}: {args}");
            }
        }
    } else {
        let body: Value = serde_json::from_str(&text).unwrap();
        let choice = &body["choices"][0];
        assert_eq!(body["object"], "chat.completion", "{model}");
        assert!(
            body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
            "{model}: {body}"
        );
        match expect {
            Expect::Text => {
                assert_eq!(choice["finish_reason"], "stop", "{model}: {body}");
                assert_eq!(choice["message"]["content"], "echo: matrix cell", "{model}");
            }
            Expect::ToolCall => {
                assert_eq!(choice["finish_reason"], "tool_calls", "{model}: {body}");
                let call = &choice["message"]["tool_calls"][0];
                assert_eq!(call["function"]["name"], "get_weather", "{model}");
                assert!(
                    call["id"].as_str().is_some_and(|id| !id.is_empty()),
                    "{model}"
                );
                let args: Value =
                    serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
                assert!(args.is_object(), "{model}: {args}");
            }
        }
    }
    (text, expect)
}

async fn messages_cell(gw: &Gateway, model: &str, stream: bool, tools: bool) {
    let mut body = json!({"model": model, "max_tokens": 256, "stream": stream,
        "messages": [{"role": "user", "content": "matrix cell"}]});
    if tools {
        body["tools"] = weather_tool_anthropic();
    }
    let resp = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(
        status, 200,
        "messages {model} stream={stream} tools={tools}: {text}"
    );
    let message = if stream {
        assemble_anthropic_stream(model, &text)
    } else {
        serde_json::from_str(&text).unwrap()
    };
    assert_eq!(message["type"], "message", "{model}: {message}");
    assert_eq!(message["role"], "assistant", "{model}");
    let content = message["content"].as_array().unwrap();
    if tools {
        assert_eq!(message["stop_reason"], "tool_use", "{model}: {message}");
        let call = content
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap_or_else(|| panic!("{model}: no tool_use in {message}"));
        assert_eq!(call["name"], "get_weather", "{model}");
        assert!(call["input"].is_object(), "{model}: {call}");
        assert!(
            call["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{model}"
        );
    } else {
        assert_eq!(message["stop_reason"], "end_turn", "{model}: {message}");
        let text: String = content
            .iter()
            .filter(|b| b["type"] == "text")
            .map(|b| b["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "echo: matrix cell", "{model}");
    }
}

/// Rebuilds a message from Anthropic's stream events, checking their order as it goes.
fn assemble_anthropic_stream(model: &str, body: &str) -> Value {
    let events: Vec<Value> = parse_sse_data(body)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        events.first().map(|e| e["type"].clone()),
        Some(json!("message_start")),
        "{model}"
    );
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("message_stop")),
        "{model}"
    );
    let mut message = events[0]["message"].clone();
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Option<usize> = None;
    for event in &events[1..] {
        match event["type"].as_str().unwrap() {
            "content_block_start" => {
                assert!(
                    open.is_none(),
                    "{model}: a block started before the previous stopped"
                );
                let mut block = event["content_block"].clone();
                if block["type"] == "tool_use" {
                    block["partial_json"] = json!("");
                }
                blocks.push(block);
                open = Some(event["index"].as_u64().unwrap() as usize);
            }
            "content_block_delta" => {
                let index = event["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "{model}: a delta outside its block");
                let delta = &event["delta"];
                let block = &mut blocks[index];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = format!(
                            "{}{}",
                            block["text"].as_str().unwrap_or(""),
                            delta["text"].as_str().unwrap()
                        );
                        block["text"] = json!(text);
                    }
                    "input_json_delta" => {
                        let json = format!(
                            "{}{}",
                            block["partial_json"].as_str().unwrap(),
                            delta["partial_json"].as_str().unwrap()
                        );
                        block["partial_json"] = json!(json);
                    }
                    other => panic!("{model}: unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = open.take().expect("a stop without a start");
                let block = &mut blocks[index];
                if block["type"] == "tool_use" {
                    let raw = block["partial_json"].as_str().unwrap().to_owned();
                    block["input"] = if raw.is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&raw).unwrap()
                    };
                    block.as_object_mut().unwrap().remove("partial_json");
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "{model}: message_delta inside a block");
                message["stop_reason"] = event["delta"]["stop_reason"].clone();
                assert!(event["usage"]["output_tokens"].is_u64(), "{model}: {event}");
            }
            "message_stop" | "ping" => {}
            other => panic!("{model}: unexpected event {other}"),
        }
    }
    message["content"] = json!(blocks);
    message
}

#[tokio::test]
async fn every_inbound_format_provider_stream_and_tool_combination() {
    let upstream = MockUpstream::start().await;
    let catalog = catalog(&upstream);
    let gw = Gateway::start_with(upstream, &catalog).await;
    let mut cells = 0;
    for (slug, model) in PROVIDERS {
        let model = format!("@{slug}/{model}");
        for stream in [false, true] {
            for tools in [false, true] {
                chat_cell(&gw, &model, stream, tools).await;
                messages_cell(&gw, &model, stream, tools).await;
                cells += 2;
            }
        }
    }
    assert_eq!(cells, 40);
    // Every cell reached the upstream in the provider's own dialect.
    let paths: Vec<String> = gw
        .upstream
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    for needle in [
        "/v1/chat/completions",
        "/openai/deployments/",
        "/v1/messages",
        ":generateContent",
        ":streamGenerateContent",
        "/converse",
        "/converse-stream",
    ] {
        assert!(
            paths.iter().any(|p| p.contains(needle)),
            "no request on {needle}: {paths:?}"
        );
    }
}
