//! The pipeline's phases as a policy sees them, for every data-plane endpoint and both API
//! families, against a real HTTP mock upstream: `before` runs before the upstream is called,
//! `after` once with the answer (whole, streamed, or cut short by a client that left).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue};
use portico_core::{ApiError, Endpoint, ErrorCode, KeyHash, ProviderKind, Secret};
use portico_store::{KeyRecord, KeyType, ProviderRecord, RecordSource};
use portico_testkit::{MockReply, MockUpstream};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::policy::{Before, Canned, Finished, Output, Policy, PolicyRequest, PolicyRun};
use super::{Family, Reply};
use crate::route::Route;
use crate::{AccessLog, Gateway, Snapshot};

const KEY: &str = "prt-pipeline-test-key-000";

/// What the recording policy saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// A policy that writes down every hook it gets, with the upstream's hit count at that
/// moment, and can be told to answer, to refuse, or to refuse one provider's attempts.
struct Recorder {
    seen: Seen,
    upstream: Arc<MockUpstream>,
    answer: Option<Canned>,
    refuse: Option<ApiError>,
    refuse_attempts_to: Option<&'static str>,
}

struct RecorderRun {
    seen: Seen,
    upstream: Arc<MockUpstream>,
    answer: Option<Canned>,
    refuse: Option<ApiError>,
    refuse_attempts_to: Option<&'static str>,
}

impl Policy for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn begin(&self, request: &PolicyRequest<'_>) -> Option<Box<dyn PolicyRun>> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("begin {}", request.record.endpoint));
        Some(Box::new(RecorderRun {
            seen: Arc::clone(&self.seen),
            upstream: Arc::clone(&self.upstream),
            answer: self.answer.clone(),
            refuse: self.refuse.clone(),
            refuse_attempts_to: self.refuse_attempts_to,
        }))
    }
}

#[async_trait::async_trait]
impl PolicyRun for RecorderRun {
    async fn before(&mut self, request: &mut PolicyRequest<'_>) -> Result<Before, ApiError> {
        self.seen.lock().unwrap().push(format!(
            "before model={} hits={}",
            request.model.unwrap_or("-"),
            self.upstream.hits()
        ));
        // A rewrite the upstream must see.
        request.body.set("temperature", &0.25).unwrap();
        if let Some(err) = self.refuse.take() {
            return Err(err);
        }
        Ok(match self.answer.take() {
            Some(canned) => Before::Answer(canned),
            None => Before::Continue,
        })
    }

    fn before_attempt(&mut self, route: &Route) -> Result<(), ApiError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("attempt @{}", route.slug));
        if self.refuse_attempts_to == Some(route.slug.as_str()) {
            return Err(ApiError::new(ErrorCode::Forbidden, "not this one"));
        }
        Ok(())
    }

    fn after(&mut self, finished: &Finished<'_>) {
        let output = match finished.output {
            Output::None => "none".to_owned(),
            Output::Whole(body) => format!("whole {}", String::from_utf8_lossy(body)),
            Output::Stream(chunks) => {
                format!("stream {}", String::from_utf8_lossy(&chunks.concat()))
            }
        };
        let record = finished.record;
        self.seen.lock().unwrap().push(format!(
            "after status={} outcome={:?} tokens={:?} hits={} output={output}",
            record.status,
            record.outcome,
            record.completion_tokens,
            self.upstream.hits(),
        ));
    }
}

struct Setup {
    gateway: Arc<Gateway>,
    upstream: Arc<MockUpstream>,
    seen: Seen,
}

fn provider(slug: &str, kind: ProviderKind, base_url: String) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind,
        base_url: Some(base_url),
        api_key: Some(Secret::new("sk-pipeline-upstream-000")),
        settings: json!({}),
        credentials: Default::default(),
        models: None,
        source: RecordSource::File,
        limits: Default::default(),
    }
}

/// A gateway with `@oa` (OpenAI kind) and `@an` (Anthropic kind) on one mock upstream, and a
/// recording policy shaped by `shape`.
async fn setup(shape: impl FnOnce(&mut Recorder)) -> Setup {
    let upstream = Arc::new(MockUpstream::start().await);
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let key = KeyRecord {
        id: "k1".to_owned(),
        name: "service".to_owned(),
        key_type: KeyType::Service,
        user: None,
        hash: KeyHash::of(KEY),
        hint: String::new(),
        allowed_models: None,
        log_payloads: true,
        config: None,
        source: RecordSource::File,
        created_at_ms: 0,
        revoked_at_ms: None,
        expires_at_ms: None,
        limits: Default::default(),
    };
    let snapshot = Snapshot::build(
        vec![
            provider("oa", ProviderKind::OpenAi, upstream.base_url()),
            provider(
                "an",
                ProviderKind::Anthropic,
                format!("http://{}", upstream.addr()),
            ),
        ],
        vec![key],
        Vec::new(),
        &client,
    )
    .unwrap();
    let seen = Seen::default();
    let mut recorder = Recorder {
        seen: Arc::clone(&seen),
        upstream: Arc::clone(&upstream),
        answer: None,
        refuse: None,
        refuse_attempts_to: None,
    };
    shape(&mut recorder);
    let gateway = Arc::new(
        Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
            .with_policy(Arc::new(recorder)),
    );
    Setup {
        gateway,
        upstream,
        seen,
    }
}

fn headers(extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap(),
    );
    for (name, value) in extra {
        h.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    h
}

async fn handle(setup: &Setup, family: Family, headers: &HeaderMap, body: Value) -> Reply {
    let body = Bytes::from(body.to_string());
    setup
        .gateway
        .handle(
            family,
            headers,
            async { Ok(body) },
            &CancellationToken::new(),
        )
        .await
}

/// The text of a whole reply, or panics.
fn whole(reply: Reply) -> (u16, String) {
    match reply {
        Reply::Whole { status, body, .. } => (status, String::from_utf8(body.to_vec()).unwrap()),
        Reply::Error { error, .. } => panic!("an error: {error}"),
        Reply::Stream { .. } => panic!("a stream"),
    }
}

/// Reads a streamed reply to its end.
async fn streamed(reply: Reply) -> String {
    let Reply::Stream { mut body, .. } = reply else {
        panic!("not a stream: {reply:?}");
    };
    let mut text = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

fn seen(setup: &Setup) -> Vec<String> {
    setup.seen.lock().unwrap().clone()
}

/// `after` has been called: it runs when a stream's body is dropped, which may be a moment
/// after the last read.
async fn settled(setup: &Setup) -> Vec<String> {
    for _ in 0..200 {
        let seen = seen(setup);
        if seen.iter().any(|s| s.starts_with("after")) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no after hook: {:?}", seen(setup));
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn every_openai_endpoint_passes_the_policy_before_and_after_the_upstream() {
    let cases = [
        (Endpoint::ChatCompletions, chat_body("@oa/m", false)),
        (
            Endpoint::Completions,
            json!({"model": "@oa/m", "prompt": "hi"}),
        ),
        (
            Endpoint::Embeddings,
            json!({"model": "@oa/e", "input": "hi"}),
        ),
    ];
    for (endpoint, body) in cases {
        let setup = setup(|_| {}).await;
        let (status, text) =
            whole(handle(&setup, Family::OpenAi(endpoint), &headers(&[]), body).await);
        assert_eq!(status, 200);
        let seen = seen(&setup);
        assert_eq!(seen[0], format!("begin {}", endpoint.as_str()));
        assert_eq!(
            seen[1],
            "before model=@oa/m hits=0".replace(
                "@oa/m",
                if endpoint == Endpoint::Embeddings {
                    "@oa/e"
                } else {
                    "@oa/m"
                }
            )
        );
        assert_eq!(seen[2], "attempt @oa");
        assert!(
            seen[3].starts_with("after status=200 outcome=Completed")
                && seen[3].contains("hits=1")
                && seen[3].ends_with(&format!("output=whole {text}")),
            "{endpoint}: {seen:?}"
        );
        assert_eq!(seen.len(), 4, "{seen:?}");
        let sent = setup.upstream.last_request().unwrap();
        assert_eq!(
            sent.json_body()["temperature"],
            0.25,
            "the upstream gets the policy's rewrite"
        );
    }
}

#[tokio::test]
async fn a_stream_is_settled_with_what_the_client_received_when_it_ends() {
    let setup = setup(|_| {}).await;
    let reply = handle(
        &setup,
        Family::OpenAi(Endpoint::ChatCompletions),
        &headers(&[]),
        chat_body("@oa/m", true),
    )
    .await;
    let text = streamed(reply).await;
    assert!(text.contains("echo: hi") || text.contains("echo"), "{text}");
    let seen = settled(&setup).await;
    let after = seen.last().unwrap();
    assert!(
        after.starts_with("after status=200 outcome=Completed"),
        "{after}"
    );
    assert!(
        after.ends_with(&format!("output=stream {text}")),
        "{after}\n{text}"
    );
    assert!(
        !after.contains("tokens=None"),
        "usage reached the policy: {after}"
    );
}

#[tokio::test]
async fn messages_pass_the_same_phases_translated_or_native_whole_or_streamed() {
    for model in ["@oa/m", "@an/claude"] {
        for stream in [false, true] {
            let setup = setup(|_| {}).await;
            let body = json!({"model": model, "max_tokens": 50, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]});
            let reply = handle(&setup, Family::Messages, &headers(&[]), body).await;
            let output = if stream {
                let text = streamed(reply).await;
                assert!(text.contains("message_stop"), "{text}");
                format!("output=stream {text}")
            } else {
                let (status, text) = whole(reply);
                assert_eq!(status, 200);
                assert!(text.contains("\"type\":\"message\""), "{text}");
                format!("output=whole {text}")
            };
            let seen = settled(&setup).await;
            assert_eq!(seen[0], "begin messages");
            assert_eq!(seen[1], format!("before model={model} hits=0"));
            let after = seen.last().unwrap();
            assert!(
                after.starts_with("after status=200 outcome=Completed") && after.ends_with(&output),
                "{model} stream={stream}: {seen:?}"
            );
            assert_eq!(
                setup.upstream.last_request().unwrap().json_body()["temperature"],
                0.25
            );
        }
    }
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_settled_with_what_it_got() {
    let setup = setup(|_| {}).await;
    let script = portico_testkit::SseScript::new()
        .data(&portico_testkit::sse::chat_chunk(
            json!({"role": "assistant", "content": "first"}),
            None,
        ))
        .hang();
    setup.upstream.enqueue(MockReply::sse(script));
    let reply = handle(
        &setup,
        Family::OpenAi(Endpoint::ChatCompletions),
        &headers(&[]),
        chat_body("@oa/m", true),
    )
    .await;
    let Reply::Stream { mut body, .. } = reply else {
        panic!("not a stream");
    };
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first"));
    drop(body);
    let seen = settled(&setup).await;
    let after = seen.last().unwrap();
    assert!(
        after.starts_with("after status=200 outcome=ClientDisconnected"),
        "{after}"
    );
    assert!(after.contains("first"), "it saw what was sent: {after}");
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_settled_once() {
    let setup = setup(|_| {}).await;
    setup
        .upstream
        .enqueue(MockReply::echo().delay(Duration::from_secs(5)));
    let headers = headers(&[]);
    let request = handle(
        &setup,
        Family::OpenAi(Endpoint::ChatCompletions),
        &headers,
        chat_body("@oa/m", false),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), request)
            .await
            .is_err(),
        "the delayed answer came"
    );
    let seen = settled(&setup).await;
    assert_eq!(
        seen.iter().filter(|s| s.starts_with("after")).count(),
        1,
        "{seen:?}"
    );
    assert!(
        seen.last()
            .unwrap()
            .starts_with("after status=499 outcome=ClientDisconnected"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_policy_may_answer_in_the_upstreams_place_or_refuse_before_any_upstream_call() {
    let canned = Canned::Whole {
        status: 200,
        body: Bytes::from_static(br#"{"cached":true}"#),
        usage: None,
    };
    let setup_answer = setup(|r| r.answer = Some(canned)).await;
    let (status, text) = whole(
        handle(
            &setup_answer,
            Family::OpenAi(Endpoint::ChatCompletions),
            &headers(&[]),
            chat_body("@oa/m", false),
        )
        .await,
    );
    assert_eq!((status, text.as_str()), (200, r#"{"cached":true}"#));
    assert_eq!(setup_answer.upstream.hits(), 0);
    assert!(
        seen(&setup_answer)
            .last()
            .unwrap()
            .ends_with(r#"output=whole {"cached":true}"#)
    );

    let mut refusal = ApiError::new(ErrorCode::Forbidden, "over the limit");
    refusal.status = 429;
    let setup_refuse = setup(|r| r.refuse = Some(refusal)).await;
    for family in [Family::OpenAi(Endpoint::ChatCompletions), Family::Messages] {
        let reply = handle(
            &setup_refuse,
            family,
            &headers(&[]),
            json!({"model": "@oa/m", "max_tokens": 5, "messages": []}),
        )
        .await;
        let Reply::Error { error, .. } = reply else {
            panic!("not refused: {reply:?}");
        };
        assert_eq!(error.status, 429);
    }
    assert_eq!(setup_refuse.upstream.hits(), 0);
    let seen = seen(&setup_refuse);
    assert_eq!(
        seen.iter()
            .filter(|s| s.starts_with("after status=429 outcome=Failed"))
            .count(),
        2,
        "each refused request is settled once: {seen:?}"
    );
}

#[tokio::test]
async fn a_refused_attempt_falls_over_to_the_next_target() {
    let setup = setup(|r| r.refuse_attempts_to = Some("an")).await;
    let config = json!({"strategy": {"mode": "fallback"},
        "targets": [{"provider": "@an"}, {"provider": "@oa"}]});
    let (status, _) = whole(
        handle(
            &setup,
            Family::OpenAi(Endpoint::ChatCompletions),
            &headers(&[("x-portkey-config", &config.to_string())]),
            chat_body("m", false),
        )
        .await,
    );
    assert_eq!(status, 200);
    let seen = seen(&setup);
    assert_eq!(seen[2..4], ["attempt @an", "attempt @oa"], "{seen:?}");
    assert_eq!(
        setup.upstream.hits(),
        1,
        "only the admitted target was called"
    );
    assert_eq!(
        setup.upstream.last_request().unwrap().path,
        "/v1/chat/completions"
    );
}
