use std::time::Duration;

use futures::StreamExt;
use portico_core::{Endpoint, ProviderKind, Usage};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::embeddings::base64_encode;
use super::{MOCK_MODELS, MockOptions, MockProvider};
use crate::sse::SseParser;
use crate::{Provider, ProviderError, SseEvent, UpstreamRequest, UpstreamResponse};

fn request(endpoint: Endpoint, model: &str, body: Value) -> UpstreamRequest {
    let Value::Object(mut body) = body else {
        panic!("test bodies are objects");
    };
    body.insert("model".to_owned(), json!(model));
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    UpstreamRequest {
        endpoint,
        model: model.to_owned(),
        body: portico_core::JsonBody::from_map(&body),
        stream,
    }
}

fn chat(model: &str, body: Value) -> UpstreamRequest {
    request(Endpoint::ChatCompletions, model, body)
}

fn user(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

async fn complete(mock: &MockProvider, req: UpstreamRequest) -> (Value, Usage) {
    match mock.send(req).await.unwrap() {
        UpstreamResponse::Complete {
            status,
            body,
            usage,
        } => {
            assert_eq!(status, 200);
            let body: Value = serde_json::from_slice(&body).unwrap();
            // The usage returned alongside is the one in the body.
            assert_eq!(Usage::from_openai(&body), usage);
            (body, usage.unwrap())
        }
        other => panic!("expected a whole body, got {other:?}"),
    }
}

async fn events(mock: &MockProvider, req: UpstreamRequest) -> Vec<SseEvent> {
    match mock.send(req).await.unwrap() {
        UpstreamResponse::Stream { status, events } => {
            assert_eq!(status, 200);
            events.map(Result::unwrap).collect().await
        }
        other => panic!("expected a stream, got {other:?}"),
    }
}

fn chunks(events: &[SseEvent]) -> Vec<Value> {
    let (last, chunks) = events.split_last().unwrap();
    assert!(last.is_done(), "the stream ends with [DONE]");
    chunks
        .iter()
        .map(|e| serde_json::from_slice(&e.data).unwrap())
        .collect()
}

async fn error(mock: &MockProvider, req: UpstreamRequest) -> ProviderError {
    mock.send(req).await.unwrap_err()
}

fn content(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}

#[tokio::test]
async fn same_request_same_answer_apart_from_created() {
    let mock = MockProvider::default();
    for model in MOCK_MODELS {
        let body = json!({
            "messages": [{"role": "user", "content": "Hello there"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        });
        let (mut a, _) = complete(&mock, chat(model, body.clone())).await;
        let (mut b, _) = complete(&mock, chat(model, body)).await;
        a["created"] = Value::Null;
        b["created"] = Value::Null;
        assert_eq!(a, b, "{model}");
        assert!(a["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
        assert_eq!(a["model"], json!(model));
        assert_eq!(a["object"], "chat.completion");
    }
    let (a, _) = complete(&mock, chat("lorem", user("one"))).await;
    let (b, _) = complete(&mock, chat("lorem", user("two"))).await;
    assert_ne!(a["id"], b["id"]);
}

#[tokio::test]
async fn echo_repeats_the_last_user_message() {
    let mock = MockProvider::default();
    let body = json!({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "  Hello,   world!\n"},
    ]});
    let (body, usage) = complete(&mock, chat("echo", body)).await;
    assert_eq!(content(&body), "  Hello,   world!\n");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(usage.completion_tokens, 2);
    // 8 + 5 + 2 + 18 characters.
    assert_eq!(usage.prompt_tokens, 33_u64.div_ceil(4));
    assert_eq!(body["usage"]["total_tokens"], usage.prompt_tokens + 2);

    let parts = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a b"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/x.png"}},
        {"type": "text", "text": "c"},
    ]}]});
    let (body, _) = complete(&mock, chat("echo-2", parts)).await;
    assert_eq!(content(&body), "a b\nc");
}

#[tokio::test]
async fn echo_honours_an_explicit_limit() {
    let mock = MockProvider::default();
    let mut body = user("one two three four");
    body["max_tokens"] = json!(2);
    let (body, usage) = complete(&mock, chat("echo", body)).await;
    assert_eq!(content(&body), "one two ");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(usage.completion_tokens, 2);
}

#[tokio::test]
async fn lorem_is_capped() {
    let mock = MockProvider::default();
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let (body, usage) = complete(&mock, chat("lorem", user(&format!("q{i}")))).await;
        let words = content(&body).split_whitespace().count() as u64;
        assert!((8..=32).contains(&words), "{words}");
        assert_eq!(usage.completion_tokens, words);
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(content(&body).ends_with('.'));
        seen.insert(words);
    }
    assert!(seen.len() > 3, "the length varies with the messages");

    for (key, other) in [
        ("max_completion_tokens", "max_tokens"),
        ("max_tokens", "unused"),
    ] {
        let mut body = user("q");
        body[key] = json!(3);
        body[other] = json!(50);
        let (body, usage) = complete(&mock, chat("any-model", body)).await;
        assert_eq!(content(&body).split_whitespace().count(), 3, "{key}");
        assert_eq!(usage.completion_tokens, 3);
        assert_eq!(body["choices"][0]["finish_reason"], "length");
    }
}

#[tokio::test]
async fn tools_model_calls_the_first_or_named_tool() {
    let mock = MockProvider::default();
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
        {"type": "function", "function": {"name": "get_time"}},
    ]);
    let with = |choice: Value| {
        let mut body = user("weather?");
        body["tools"] = tools.clone();
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        chat("tools", body)
    };
    for (choice, name) in [
        (Value::Null, "get_weather"),
        (json!("auto"), "get_weather"),
        (json!("required"), "get_weather"),
        (
            json!({"type": "function", "function": {"name": "get_time"}}),
            "get_time",
        ),
    ] {
        let (body, usage) = complete(&mock, with(choice)).await;
        let choice0 = &body["choices"][0];
        assert_eq!(choice0["finish_reason"], "tool_calls");
        assert_eq!(choice0["message"]["content"], Value::Null);
        let call = &choice0["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], name);
        assert_eq!(call["function"]["arguments"], "{}");
        assert!(call["id"].as_str().unwrap().starts_with("call_mock_"));
        assert!(usage.completion_tokens >= 1);
    }

    let (body, _) = complete(&mock, with(json!("none"))).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(!content(&body).is_empty());

    // After the tool's result, it answers in text so an agent loop ends.
    let mut body = json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
    ]});
    body["tools"] = tools.clone();
    let (body, _) = complete(&mock, chat("tools", body)).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    // Without tools, `tools` answers as `lorem`; other models never call tools.
    let (body, _) = complete(&mock, chat("tools", user("hi"))).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let mut body = user("hi");
    body["tools"] = tools.clone();
    let (body, _) = complete(&mock, chat("lorem", body)).await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let err = error(
        &mock,
        with(json!({"type": "function", "function": {"name": "nope"}})),
    )
    .await;
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn stream_sends_role_words_finish_then_done() {
    let mock = MockProvider::default();
    let mut body = user("one two three");
    body["stream"] = json!(true);
    let events = events(&mock, chat("echo", body.clone())).await;
    let chunks = chunks(&events);
    assert_eq!(chunks.len(), 5, "role, three words, finish");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "one two three");
    let last = &chunks[4];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(chunk.get("usage").is_none(), "no usage unless asked for");
    }
    for chunk in &chunks[..4] {
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
    }

    // The streamed answer matches the whole one, id included.
    body["stream"] = json!(false);
    let (whole, _) = complete(&mock, chat("echo", body)).await;
    assert_eq!(whole["id"], chunks[0]["id"]);
}

#[tokio::test]
async fn stream_usage_chunk_only_when_asked() {
    let mock = MockProvider::default();
    let mut body = user("q");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let with_usage = chunks(&events(&mock, chat("lorem", body.clone())).await);
    let (usage_chunk, rest) = with_usage.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    let usage = Usage::from_openai(usage_chunk).unwrap();
    // Role and finish chunks carry no words.
    assert_eq!(usage.completion_tokens, rest.len() as u64 - 2);
    assert_eq!(rest.last().unwrap()["choices"][0]["finish_reason"], "stop");
    for chunk in rest {
        assert_eq!(chunk["usage"], Value::Null);
    }

    body["stream_options"] = json!({"include_usage": false});
    let plain = chunks(&events(&mock, chat("lorem", body)).await);
    assert!(
        plain
            .iter()
            .all(|c| c["choices"].as_array().unwrap().len() == 1)
    );
}

#[tokio::test]
async fn stream_of_a_tool_call() {
    let mock = MockProvider::default();
    let mut body = user("q");
    body["stream"] = json!(true);
    body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    let chunks = chunks(&events(&mock, chat("tools", body)).await);
    assert_eq!(chunks.len(), 3);
    let call = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].as_u64(), &call["function"]["name"]),
        (Some(0), &json!("f"))
    );
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn stream_events_reparse_after_encoding() {
    let mock = MockProvider::default();
    let mut body = user("a b");
    body["stream"] = json!(true);
    let events = events(&mock, chat("echo", body)).await;
    let mut parser = SseParser::new();
    for event in &events {
        parser.push(&event.encode());
    }
    let mut reparsed = Vec::new();
    while let Some(event) = parser.next_event().unwrap() {
        reparsed.push(event);
    }
    assert_eq!(reparsed, events);
}

#[tokio::test]
async fn completions_answer_the_prompt() {
    let mock = MockProvider::default();
    let completions = |model: &str, body: Value| request(Endpoint::Completions, model, body);
    let (body, usage) = complete(&mock, completions("echo", json!({"prompt": "say this"}))).await;
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(body["choices"][0]["text"], "say this");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2, 2));

    let (body, _) = complete(
        &mock,
        completions("lorem", json!({"prompt": ["a", "b"], "max_tokens": 4})),
    )
    .await;
    assert_eq!(
        body["choices"][0]["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        4
    );

    let body = json!({"prompt": "x y", "stream": true, "stream_options": {"include_usage": true}});
    let chunks = chunks(&events(&mock, completions("echo", body)).await);
    let texts: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(texts, ["x ", "y", ""]);
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[3]["choices"], json!([]));
    assert_eq!(chunks[3]["usage"]["completion_tokens"], 2);

    let err = error(&mock, completions("echo", json!({}))).await;
    assert_eq!(
        (err.status(), err.fault()),
        (Some(400), crate::Fault::Client)
    );
}

fn vectors(body: &Value) -> Vec<Vec<f64>> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let mock = MockProvider::default();
    let embed = |body: Value| request(Endpoint::Embeddings, "embed", body);
    let (body, usage) = complete(&mock, embed(json!({"input": "hello"}))).await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "embedding");
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 2,
            ..Usage::default()
        }
    );
    let one = vectors(&body);
    assert_eq!(one[0].len(), 16);

    let (body, _) = complete(
        &mock,
        embed(json!({"input": ["x", "hello", "x"], "dimensions": 5})),
    )
    .await;
    let three = vectors(&body);
    assert_eq!(three.len(), 3);
    for (i, v) in three.iter().enumerate() {
        assert_eq!(v.len(), 5);
        assert_eq!(body["data"][i]["index"], i);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9, "{norm}");
    }
    assert_eq!(three[0], three[2], "same input, same vector");
    assert_ne!(three[0], three[1]);
    let norm = one[0].iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-9);

    let (body, _) = complete(
        &mock,
        embed(json!({"input": "hello", "encoding_format": "base64"})),
    )
    .await;
    let encoded = body["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), (16 * 4_usize).div_ceil(3) * 4);

    // An array of numbers is one tokenised input.
    let (body, usage) = complete(&mock, embed(json!({"input": [1, 2, 3]}))).await;
    assert_eq!((vectors(&body).len(), usage.prompt_tokens), (1, 3));

    for bad in [
        json!({}),
        json!({"input": []}),
        json!({"input": "a", "dimensions": 0}),
    ] {
        assert_eq!(error(&mock, embed(bad)).await.status(), Some(400));
    }
}

#[test]
fn base64_matches_rfc_4648() {
    for (input, output) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_encode(input.as_bytes()), output);
    }
}

#[tokio::test]
async fn failure_rate_one_always_fails_and_zero_never() {
    let failing = MockProvider::new(MockOptions {
        failure_rate: 1.0,
        ..MockOptions::default()
    });
    for _ in 0..20 {
        let err = error(&failing, chat("lorem", user("q"))).await;
        let ProviderError::Status {
            status,
            message,
            error_type,
            ..
        } = &err
        else {
            panic!("expected a status error, got {err:?}");
        };
        assert_eq!(*status, 503);
        assert!(message.contains("simulated failure"), "{message}");
        assert_eq!(error_type.as_deref(), Some("server_error"));
        assert!(err.is_retryable());
    }
    let healthy = MockProvider::new(MockOptions {
        failure_rate: 0.0,
        ..MockOptions::default()
    });
    for _ in 0..50 {
        assert!(healthy.send(chat("lorem", user("q"))).await.is_ok());
    }
}

#[tokio::test]
async fn bad_chat_requests_are_400() {
    let mock = MockProvider::default();
    for (body, param) in [
        (json!({}), "messages"),
        (json!({"messages": []}), "messages"),
        (json!({"messages": "hi"}), "messages"),
        (
            json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 0}),
            "max_tokens",
        ),
    ] {
        let err = error(&mock, chat("echo", body)).await;
        let ProviderError::Status {
            status: 400,
            param: Some(p),
            message,
            ..
        } = &err
        else {
            panic!("expected a 400, got {err:?}");
        };
        assert_eq!(p, param);
        assert!(message.contains(param), "{message}");
    }
}

#[test]
fn settings_are_read_and_checked() {
    assert_eq!(
        MockProvider::from_settings(&Value::Null).unwrap().options(),
        MockOptions::default()
    );
    let mock =
        MockProvider::from_settings(&json!({"latency_ms": 5, "failure_rate": 0.5, "future": 1}))
            .unwrap();
    assert_eq!(
        mock.options(),
        MockOptions {
            latency_ms: 5,
            chunk_delay_ms: 0,
            failure_rate: 0.5
        }
    );
    assert!(
        MockProvider::from_settings(&json!({"failure_rate": 1.5}))
            .unwrap_err()
            .to_string()
            .contains("failure_rate")
    );
    assert!(
        MockProvider::from_settings(&json!({"latency_ms": "slow"}))
            .unwrap_err()
            .to_string()
            .contains("latency_ms")
    );
    assert_eq!(
        MockProvider::new(MockOptions {
            failure_rate: f64::NAN,
            ..MockOptions::default()
        })
        .options()
        .failure_rate,
        0.0
    );
    assert_eq!(MockProvider::default().kind(), ProviderKind::Mock);
}

#[tokio::test(start_paused = true)]
async fn latency_is_honoured_before_a_whole_answer() {
    let mock = MockProvider::new(MockOptions {
        latency_ms: 250,
        ..MockOptions::default()
    });
    let start = Instant::now();
    complete(&mock, chat("lorem", user("q"))).await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn stream_waits_latency_then_chunk_delay_and_only_when_polled() {
    let mock = MockProvider::new(MockOptions {
        latency_ms: 100,
        chunk_delay_ms: 10,
        ..MockOptions::default()
    });
    let mut body = user("a b c");
    body["stream"] = json!(true);
    let start = Instant::now();
    let UpstreamResponse::Stream { mut events, .. } = mock.send(chat("echo", body)).await.unwrap()
    else {
        panic!("expected a stream");
    };
    assert_eq!(start.elapsed(), Duration::ZERO, "the stream is lazy");
    events.next().await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let mut count = 1;
    while let Some(event) = events.next().await {
        event.unwrap();
        count += 1;
    }
    // Role, three words, finish, [DONE]: five gaps after the first.
    assert_eq!(count, 6);
    assert_eq!(start.elapsed(), Duration::from_millis(100 + 5 * 10));
}
