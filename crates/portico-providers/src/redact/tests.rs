//! The redactor on each form a secret takes, on each part of an answer, and the decorator on
//! both entry points of a provider.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use portico_core::{Endpoint, JsonBody, ProviderKind, Secret};

use super::*;
use crate::{Provider, UpstreamRequest};

const KEY: &str = "sk-proj-Abc123/def+ghi=";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn redactor() -> Arc<Redactor> {
    Arc::new(Redactor::new([KEY, AWS_SECRET, "short"]).unwrap().unwrap())
}

fn clean(redactor: &Redactor, text: &str) -> String {
    redactor.string(text.to_owned())
}

#[test]
fn each_encoding_of_each_secret_is_replaced() {
    let r = redactor();
    let json_body = serde_json::json!({"error": {"message": format!("Incorrect API key provided: Bearer {KEY}")}})
        .to_string();
    let cases = [
        format!("Authorization: Bearer {KEY}"),
        json_body,
        format!(r#"{{"key":"{}"}}"#, KEY.replace('/', "\\/")),
        format!("GET /v1?key={}", "sk-proj-Abc123%2Fdef%2Bghi%3D"),
        format!("GET /v1?key={}", "sk-proj-Abc123%2fdef%2bghi%3d"),
        format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("user:{KEY}"))
        ),
        format!(
            "token={}",
            base64::engine::general_purpose::URL_SAFE.encode(format!("ab{AWS_SECRET}"))
        ),
        format!("secret={AWS_SECRET}; again {AWS_SECRET}"),
    ];
    for case in cases {
        let out = clean(&r, &case);
        assert!(out.contains(REDACTED), "{case} -> {out}");
        assert!(!out.contains(KEY) && !out.contains(AWS_SECRET), "{out}");
        assert!(!out.contains("Abc123"), "a fragment is left: {out}");
        assert!(!out.contains("EXAMPLEKEY"), "a fragment is left: {out}");
    }
    let json = clean(
        &r,
        &serde_json::json!({"message": format!("key {KEY} refused")}).to_string(),
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["message"], "key [REDACTED] refused", "still JSON");
}

#[test]
fn text_without_a_secret_is_handed_back_uncopied() {
    let r = redactor();
    let body = Bytes::from(vec![b'x'; 1024]);
    let out = r.bytes(body.clone());
    assert_eq!(out.as_ptr(), body.as_ptr());
    assert!(!r.finds(b"the word short is too short to be a secret"));
    assert_eq!(
        clean(&r, "the word short is too short"),
        "the word short is too short"
    );
}

#[test]
fn short_secrets_are_ignored_and_none_at_all_means_no_redactor() {
    assert!(
        Redactor::new(["1234567", "ollama", "", "  padded  "])
            .unwrap()
            .is_none()
    );
    let eight = Redactor::new(["12345678"]).unwrap().unwrap();
    assert_eq!(eight.string("a12345678b".to_owned()), "a[REDACTED]b");
    let none: [&str; 0] = [];
    assert!(Redactor::new(none).unwrap().is_none());
}

#[test]
fn a_secret_inside_a_longer_one_leaves_no_fragment() {
    let r = Redactor::new(["abcdefgh", "xxabcdefghyy"])
        .unwrap()
        .unwrap();
    assert_eq!(r.string("1 xxabcdefghyy 2".to_owned()), "1 [REDACTED] 2");
    assert_eq!(
        r.string("abcdefghabcdefgh".to_owned()),
        "[REDACTED][REDACTED]"
    );
}

#[test]
fn the_beginning_of_a_secret_that_a_cut_left_is_redacted_in_errors() {
    let r = redactor();
    let page = format!(
        "<html>{}Authorization: Bearer {KEY}</html>",
        "x".repeat(460)
    );
    let err = crate::openai::parse_error_body(500, page.as_bytes());
    let text = err.to_string();
    assert!(
        text.contains("Bearer sk-proj-Abc1…"),
        "the cut falls inside the key: {text}"
    );
    let clean = r.error(err).to_string();
    assert!(!clean.contains("sk-proj"), "{clean}");
    assert!(clean.ends_with("Bearer [REDACTED]…"), "{clean}");
    // Text before a cut mark that is no secret's beginning is kept.
    let other = r.error(ProviderError::Malformed("the answer was cut…".to_owned()));
    assert_eq!(
        other.to_string(),
        "the upstream's answer could not be read: the answer was cut…"
    );
}

#[test]
fn every_text_of_every_error_is_redacted() {
    let r = redactor();
    let status = r.error(ProviderError::Status {
        status: 401,
        message: format!("Incorrect API key provided: {KEY}"),
        error_type: Some(format!("type {KEY}")),
        code: Some(KEY.to_owned()),
        param: Some(AWS_SECRET.to_owned()),
        retry_after: None,
    });
    let text = format!("{status:?}");
    assert!(!text.contains(KEY) && !text.contains(AWS_SECRET), "{text}");
    assert_eq!(text.matches(REDACTED).count(), 4, "{text}");
    for err in [
        ProviderError::Unreachable(TransportFailure::new(
            format!("reason {KEY}"),
            format!("detail {KEY}"),
        )),
        ProviderError::Malformed(format!("bad {KEY}")),
        ProviderError::StreamBroken(format!("broke {AWS_SECRET}")),
    ] {
        let text = format!("{:?}", r.error(err));
        assert!(!text.contains(KEY) && !text.contains(AWS_SECRET), "{text}");
        assert!(text.contains(REDACTED), "{text}");
    }
}

/// An upstream that echoes the key everywhere it can.
struct Echoing;

#[async_trait]
impl Provider for Echoing {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        if req.model == "fail" {
            return Err(ProviderError::Status {
                status: 401,
                message: format!("Incorrect API key provided: Bearer {KEY}"),
                error_type: None,
                code: None,
                param: None,
                retry_after: None,
            });
        }
        if !req.stream {
            return Ok(UpstreamResponse::Complete {
                status: 200,
                body: Bytes::from(format!(r#"{{"echo":"{KEY}","aws":"{AWS_SECRET}"}}"#)),
                usage: None,
            });
        }
        let events = vec![
            Ok(SseEvent::data(format!(r#"{{"delta":"{KEY}"}}"#))),
            Ok(SseEvent::named(format!("ev-{KEY}"), "{}")),
            Err(ProviderError::StreamBroken(format!("reset by {KEY}"))),
        ];
        Ok(UpstreamResponse::Stream {
            status: 200,
            events: Box::pin(futures::stream::iter(events)),
        })
    }

    async fn send_anthropic_messages(
        &self,
        _body: JsonBody,
        _stream: bool,
        _client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        Some(Ok(UpstreamResponse::Complete {
            status: 200,
            body: Bytes::from(format!(r#"{{"x-api-key":"{KEY}"}}"#)),
            usage: None,
        }))
    }

    fn extra_secrets(&self) -> Vec<Secret> {
        vec![Secret::new(AWS_SECRET)]
    }
}

fn request(model: &str, stream: bool) -> UpstreamRequest {
    UpstreamRequest {
        endpoint: Endpoint::ChatCompletions,
        model: model.to_owned(),
        body: JsonBody::parse(Bytes::from_static(b"{}")).unwrap(),
        stream,
    }
}

fn assert_clean(text: &str) {
    assert!(
        !text.contains(KEY) && !text.contains(AWS_SECRET),
        "a secret passed: {text}"
    );
    assert!(text.contains(REDACTED), "{text}");
}

#[tokio::test]
async fn the_decorator_redacts_bodies_events_and_errors_of_both_entry_points() {
    let key = Secret::new(KEY);
    let provider = guard(Arc::new(Echoing), [&key]).unwrap();

    let Ok(UpstreamResponse::Complete { body, .. }) = provider.send(request("m", false)).await
    else {
        panic!("not a complete answer");
    };
    assert_clean(std::str::from_utf8(&body).unwrap());

    let err = provider.send(request("fail", false)).await.unwrap_err();
    assert_clean(&err.to_string());

    let Ok(UpstreamResponse::Stream { events, .. }) = provider.send(request("m", true)).await
    else {
        panic!("not a stream");
    };
    let items: Vec<_> = events.collect().await;
    assert_eq!(items.len(), 3);
    for item in items {
        let text = match item {
            Ok(event) => format!("{:?} {}", event.event, event.data_str().unwrap()),
            Err(err) => err.to_string(),
        };
        assert_clean(&text);
    }

    let body = JsonBody::parse(Bytes::from_static(b"{}")).unwrap();
    let Some(Ok(UpstreamResponse::Complete { body, .. })) =
        provider.send_anthropic_messages(body, false, None).await
    else {
        panic!("not a complete answer");
    };
    assert_clean(std::str::from_utf8(&body).unwrap());
}

#[tokio::test]
async fn the_adapters_own_secrets_are_redacted_too() {
    // No catalog secret at all: the adapter's own (Bedrock's environment keys) still count.
    let provider = guard(Arc::new(Echoing), []).unwrap();
    let Ok(UpstreamResponse::Complete { body, .. }) = provider.send(request("m", false)).await
    else {
        panic!("not a complete answer");
    };
    let text = std::str::from_utf8(&body).unwrap();
    assert!(!text.contains(AWS_SECRET), "{text}");
    assert!(text.contains(REDACTED), "{text}");
    // Only the secrets it was given: the catalog key was not passed here.
    assert!(text.contains(KEY), "{text}");
}

/// A provider with nothing to echo.
struct Plain;

#[async_trait]
impl Provider for Plain {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Mock
    }

    async fn send(&self, _req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        Err(ProviderError::Timeout(None))
    }
}

#[test]
fn without_secrets_the_adapter_is_not_wrapped() {
    let plain: Arc<dyn Provider> = Arc::new(Plain);
    let short = Secret::new("short");
    let guarded = guard(Arc::clone(&plain), [&short]).unwrap();
    assert!(Arc::ptr_eq(&plain, &guarded));
    let long = Secret::new("long-enough-secret");
    let guarded = guard(Arc::clone(&plain), [&long]).unwrap();
    assert!(!Arc::ptr_eq(&plain, &guarded));
    assert_eq!(guarded.kind(), ProviderKind::Mock);
}

#[test]
fn the_quick_search_and_the_automaton_agree() {
    let redactor = Redactor::new([
        "sk-bench-upstream-key-000000",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ])
    .unwrap()
    .unwrap();
    assert!(
        redactor.quick.is_some(),
        "Teddy is available for a few patterns"
    );
    let clean = br#"{"id":"chatcmpl-portico-bench","created":1700000000,"model":"gpt-4o-mini","usage":{"prompt_tokens":12}}"#;
    assert!(!redactor.finds(clean));
    assert!(!redactor.matcher.is_match(&clean[..]));
    for pattern in &redactor.patterns {
        for prefix in [&b""[..], b"x", b"{\"error\":\"Bearer "] {
            let mut text = prefix.to_vec();
            text.extend_from_slice(pattern);
            text.extend_from_slice(b"\"}");
            assert!(redactor.finds(&text), "{}", String::from_utf8_lossy(&text));
            assert!(redactor.matcher.is_match(&text));
            let out = redactor.bytes(bytes::Bytes::from(text));
            assert!(!out.windows(pattern.len()).any(|w| w == &pattern[..]));
        }
    }
}

/// An adapter that mints its credential at run time and echoes it.
struct Minting {
    live: Arc<LiveSecrets>,
}

#[async_trait]
impl Provider for Minting {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureOpenAi
    }

    async fn send(&self, _req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        Err(ProviderError::upstream(
            401,
            "invalid token Bearer minted-token-ROTATING-1 and minted-token-ROTATING-2",
            None,
            None,
        ))
    }

    fn live_secrets(&self) -> Option<Arc<LiveSecrets>> {
        Some(Arc::clone(&self.live))
    }
}

#[tokio::test]
async fn secrets_minted_after_the_guard_was_built_are_redacted_too() {
    let live = LiveSecrets::new();
    let adapter = Arc::new(Minting {
        live: Arc::clone(&live),
    });
    // No catalog secret at all: the guard is still put on, for what will be minted.
    let provider = guard(adapter, std::iter::empty()).unwrap();
    let before = provider.send(request("m", false)).await.unwrap_err();
    assert!(
        before.to_string().contains("ROTATING-1"),
        "nothing minted yet"
    );

    live.add(&[Secret::new("minted-token-ROTATING-1")]);
    let err = provider
        .send(request("m", false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("ROTATING-1") && err.contains("ROTATING-2"),
        "{err}"
    );

    // A refresh: the new token and the one before are both known.
    live.add(&[Secret::new("minted-token-ROTATING-2")]);
    let err = provider
        .send(request("m", false))
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("ROTATING"), "{err}");
}
