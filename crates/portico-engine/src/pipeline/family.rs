//! The API families a request can come in through, and what differs between them: where
//! the gateway key is sent, how a request is sent to a provider (natively, or translated),
//! how usage is read from a streamed answer, and how errors are shaped.

use http::HeaderMap;
use portico_core::{ApiError, Endpoint, ErrorCode, Usage};
use portico_providers::SseEvent;

use crate::responses::ResponsesTurn;

/// Header carrying the gateway key (Portkey's name for it).
pub(crate) const API_KEY: &str = "x-portkey-api-key";
/// The header Anthropic SDKs send their API key in (accepted on `/v1/messages`).
pub(crate) const X_API_KEY: &str = "x-api-key";

/// The API a client speaks: what the route it called decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI's API: chat completions, completions or embeddings.
    OpenAi(Endpoint),
    /// Anthropic's Messages API (`POST /v1/messages`), answered by any provider: passed
    /// through to a provider that speaks it, translated to chat completions for the others.
    Messages,
}

impl Family {
    /// The endpoint name the request log and metrics use.
    pub fn log_endpoint(self) -> &'static str {
        match self {
            Family::OpenAi(endpoint) => endpoint.as_str(),
            // The log has no Messages endpoint of its own: a Messages call is a chat call.
            Family::Messages => "messages",
        }
    }

    /// The URL path the client called, for conditional routing on `url.pathname`.
    pub fn path(self) -> &'static str {
        match self {
            Family::OpenAi(Endpoint::ChatCompletions) => "/v1/chat/completions",
            Family::OpenAi(Endpoint::Completions) => "/v1/completions",
            Family::OpenAi(Endpoint::Embeddings) => "/v1/embeddings",
            Family::OpenAi(Endpoint::Responses) => "/v1/responses",
            Family::OpenAi(Endpoint::Moderations) => "/v1/moderations",
            Family::OpenAi(Endpoint::ImageGenerations) => "/v1/images/generations",
            Family::OpenAi(Endpoint::AudioTranscriptions) => "/v1/audio/transcriptions",
            Family::OpenAi(Endpoint::AudioSpeech) => "/v1/audio/speech",
            Family::Messages => "/v1/messages",
        }
    }

    /// Whether a request of this family is a form upload rather than a JSON body.
    pub fn takes_form(self) -> bool {
        matches!(self, Family::OpenAi(endpoint) if endpoint.takes_form())
    }

    /// Whether a request of this family may ask for a stream.
    pub fn can_stream(self) -> bool {
        match self {
            Family::OpenAi(endpoint) => endpoint.can_stream(),
            Family::Messages => true,
        }
    }

    /// The gateway key a request presents: `x-portkey-api-key`, else (on `/v1/messages`)
    /// `x-api-key`, else `Authorization: Bearer`. The Portkey header wins because SDKs often
    /// put a placeholder into the others.
    pub fn secret(self, headers: &HeaderMap) -> Option<&str> {
        if let Some(key) = headers.get(API_KEY).and_then(|v| v.to_str().ok()) {
            return Some(key.trim());
        }
        if self == Family::Messages
            && let Some(key) = headers.get(X_API_KEY).and_then(|v| v.to_str().ok())
        {
            return Some(key.trim());
        }
        let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = auth.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// Says how this family's clients send the key, when they sent none.
    pub(crate) fn missing_key(self, mut err: ApiError) -> ApiError {
        if self == Family::Messages && err.code == ErrorCode::MissingApiKey {
            err.message = "missing gateway key: send `x-api-key: <key>` (the Anthropic SDKs' `api_key`), `Authorization: Bearer <key>` or `x-portkey-api-key: <key>`".to_owned();
        }
        err
    }

    /// An error in this family's JSON shape: OpenAI's, or Anthropic's on `/v1/messages`
    /// (whose SDKs parse that).
    pub fn error_json(self, err: &ApiError) -> serde_json::Value {
        match self {
            Family::OpenAi(_) => err.to_json(),
            Family::Messages => err.to_anthropic_json(),
        }
    }

    /// The in-band error event that ends a stream which cannot end normally any more.
    pub(crate) fn error_event(self, err: &ApiError) -> SseEvent {
        match self {
            Family::OpenAi(Endpoint::Responses) => {
                SseEvent::named("error", responses_error(&self.error_json(err)).to_string())
            }
            Family::OpenAi(_) => SseEvent::data(self.error_json(err).to_string()),
            Family::Messages => SseEvent::named("error", self.error_json(err).to_string()),
        }
    }

    /// A refusal's body (a guardrail's 446, say) as the in-band event that ends a stream.
    pub(crate) fn refusal_event(self, body: &serde_json::Value) -> SseEvent {
        match self {
            Family::OpenAi(Endpoint::Responses) => {
                SseEvent::named("error", responses_error(body).to_string())
            }
            Family::OpenAi(_) => SseEvent::data(body.to_string()),
            Family::Messages => SseEvent::named("error", body.to_string()),
        }
    }
}

/// Reads a streamed answer's usage (and an upstream's in-band error) as its events pass, in
/// the client's family, and says which events the client gets.
pub(crate) enum StreamObserver {
    /// OpenAI chunks. Usage comes from the usage chunk, which is dropped when the client did
    /// not ask for it (`stream_options.include_usage`): the gateway always asks upstream.
    OpenAi {
        client_wants_usage: bool,
        usage: Option<Usage>,
    },
    /// Anthropic events: usage from `message_start` and `message_delta`; nothing dropped.
    Messages(portico_anthropic::passthrough::EventObserver),
    /// Responses API events: usage and the final response from the terminal event; nothing
    /// dropped. `keep` is the turn whose answer is to be kept, and the provider whose
    /// upstream keeps it too.
    Responses {
        observer: portico_responses::ResponsesObserver,
        keep: Option<Box<(ResponsesTurn, Option<String>)>>,
    },
}

impl StreamObserver {
    pub(crate) fn new(family: Family, client_wants_usage: bool) -> StreamObserver {
        match family {
            Family::OpenAi(Endpoint::Responses) => StreamObserver::Responses {
                observer: portico_responses::ResponsesObserver::new(),
                keep: None,
            },
            Family::OpenAi(_) => StreamObserver::OpenAi {
                client_wants_usage,
                usage: None,
            },
            Family::Messages => {
                StreamObserver::Messages(portico_anthropic::passthrough::EventObserver::new())
            }
        }
    }

    /// An observer of a Responses stream whose answer is kept when it completes.
    pub(crate) fn keeping(turn: ResponsesTurn, upstream: Option<String>) -> StreamObserver {
        StreamObserver::Responses {
            observer: portico_responses::ResponsesObserver::new(),
            keep: Some(Box::new((turn, upstream))),
        }
    }

    /// The response to keep, once a Responses stream has completed.
    pub(crate) fn take_kept(&mut self) -> Option<portico_responses::StoredResponse> {
        let StreamObserver::Responses { observer, keep } = self else {
            return None;
        };
        let response = observer.take_response()?;
        let (turn, upstream) = *keep.take()?;
        // A stream the gateway wrote carries its own id; an upstream's, the upstream's.
        let id = match &upstream {
            None => turn.turn.id.clone(),
            Some(_) => {
                #[derive(serde::Deserialize)]
                struct Id {
                    id: String,
                }
                serde_json::from_str::<Id>(response.get()).ok()?.id
            }
        };
        turn.to_keep(id, response, upstream.as_deref())
    }

    /// Reads usage from `event`; returns whether the event goes to the client.
    pub(crate) fn observe(&mut self, event: &SseEvent) -> bool {
        match self {
            StreamObserver::Responses { observer, .. } => {
                observer.observe(event);
                true
            }
            StreamObserver::Messages(observer) => {
                observer.observe(event);
                true
            }
            StreamObserver::OpenAi {
                client_wants_usage,
                usage,
            } => {
                // Only the usage chunk (or a final chunk carrying usage) needs parsing; a
                // substring test keeps the common content chunk free of a JSON parse.
                if !mentions_usage(&event.data) {
                    return true;
                }
                let Ok(value) = serde_json::from_slice::<serde_json::Value>(&event.data) else {
                    return true;
                };
                let Some(found) = Usage::from_openai(&value) else {
                    return true;
                };
                *usage = Some(found);
                let usage_only = value
                    .get("choices")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(Vec::is_empty);
                !usage_only || *client_wants_usage
            }
        }
    }

    /// The usage seen so far.
    pub(crate) fn usage(&self) -> Option<Usage> {
        match self {
            StreamObserver::OpenAi { usage, .. } => *usage,
            StreamObserver::Messages(observer) => observer.usage(),
            StreamObserver::Responses { observer, .. } => observer.usage(),
        }
    }

    /// An Anthropic upstream's own in-band error (code, message), passed on as it was.
    pub(crate) fn upstream_error(&self) -> Option<(String, String)> {
        match self {
            StreamObserver::OpenAi { .. } => None,
            StreamObserver::Responses { observer, .. } => observer.error().cloned(),
            StreamObserver::Messages(observer) => observer
                .error()
                .map(|e| (e.kind.clone(), e.message.clone())),
        }
    }
}

/// The Responses API's `error` event for an OpenAI error body: its `code`, `message` and
/// `param` at the top (the event's own shape), and the body's fields kept beside them (the
/// `error` object, which makes OpenAI's SDKs raise their API error).
fn responses_error(body: &serde_json::Value) -> serde_json::Value {
    let error = body.get("error");
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let mut event = serde_json::json!({
        "type": "error",
        "code": field("code"),
        "message": field("message"),
        "param": field("param"),
        "sequence_number": 0,
    });
    if let (Some(event), Some(body)) = (event.as_object_mut(), body.as_object()) {
        for (k, v) in body {
            event.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    event
}

fn mentions_usage(data: &[u8]) -> bool {
    data.windows(8).any(|w| w == b"\"usage\":")
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_key_comes_from_the_familys_headers() {
        let chat = Family::OpenAi(Endpoint::ChatCompletions);
        assert_eq!(
            chat.secret(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            chat.secret(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            chat.secret(&headers(&[("authorization", "Bearer x"), (API_KEY, "k")])),
            Some("k")
        );
        assert_eq!(
            chat.secret(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(chat.secret(&headers(&[("x-api-key", "a")])), None);
        assert_eq!(chat.secret(&HeaderMap::new()), None);

        let messages = Family::Messages;
        assert_eq!(messages.secret(&headers(&[("x-api-key", "a")])), Some("a"));
        assert_eq!(
            messages.secret(&headers(&[("x-api-key", "a"), (API_KEY, "p")])),
            Some("p")
        );
        assert_eq!(
            messages.secret(&headers(&[
                ("x-api-key", "a"),
                ("authorization", "Bearer b")
            ])),
            Some("a")
        );
        assert_eq!(
            messages.secret(&headers(&[("authorization", "Bearer b")])),
            Some("b")
        );
    }

    #[test]
    fn errors_take_each_familys_shape() {
        let err = ApiError::new(ErrorCode::UnknownModel, "no model").with_param("model");
        let openai = Family::OpenAi(Endpoint::Embeddings).error_json(&err);
        assert_eq!(openai["error"]["code"], "model_not_found");
        let anthropic = Family::Messages.error_json(&err);
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "not_found_error");
        let event = Family::Messages.error_event(&err);
        assert_eq!(event.event.as_deref(), Some("error"));
    }

    #[test]
    fn a_usage_chunk_the_client_did_not_ask_for_is_dropped() {
        let usage_chunk = SseEvent::data(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#.to_owned(),
        );
        let content = SseEvent::data(r#"{"choices":[{"delta":{"content":"x"}}]}"#.to_owned());
        let mut quiet = StreamObserver::new(Family::OpenAi(Endpoint::ChatCompletions), false);
        assert!(quiet.observe(&content));
        assert!(!quiet.observe(&usage_chunk));
        assert_eq!(quiet.usage().map(|u| u.completion_tokens), Some(4));
        let mut asking = StreamObserver::new(Family::OpenAi(Endpoint::ChatCompletions), true);
        assert!(asking.observe(&usage_chunk));
    }
}
