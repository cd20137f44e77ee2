//! The built-in `mock` provider: deterministic OpenAI-shaped answers without a network.
//!
//! What this is: [`MockProvider`], the adapter of [`ProviderKind::Mock`], so a newcomer without
//! keys can try the gateway end to end, and load tests can measure the gateway rather than an
//! upstream. Delays and failures are configurable through [`MockOptions`].
//!
//! What it is not: a model. It answers by rules (the model name picks the rule), and the same
//! request always gets the same answer apart from `created`:
//!
//! - `echo` (and any model starting with `echo`): repeats the text of the last user message
//!   (a `/completions` request: its prompt).
//! - `tools` (and any model starting with `tools`): when the request offers `tools` and
//!   `tool_choice` is not `"none"`, calls the named tool (or else the first) with arguments
//!   `{}`, finish reason `tool_calls`. Once the last message is a tool result it answers in text,
//!   so an agent loop ends.
//! - any other model (such as `lorem`): lorem-ipsum words, how many derived from a hash of the
//!   messages (8 to 64), at most `max_completion_tokens` / `max_tokens` or else 32.
//!
//! `/embeddings` answers unit vectors of `dimensions` (default 16) derived from a hash of each
//! input. Usage is estimated: prompt tokens are a quarter of the characters (rounded up, at
//! least 1), completion tokens are the words sent (a tool call counts as its name and
//! arguments, a quarter of their characters).
//!
//! Layout: this file holds the provider itself ([`MockProvider`], [`MockOptions`],
//! [`MOCK_MODELS`] and the [`Provider`] impl that paces the answer); `reply` decides what to
//! answer (echo, lorem or a tool call, and the token estimates), `render` builds the
//! OpenAI-shaped bodies and stream chunks, `embeddings` answers `/embeddings`, and `hash` holds
//! the stable hash and generator the answers derive from.

mod embeddings;
mod hash;
mod render;
mod reply;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream;
use portico_core::{Endpoint, ProviderKind};
use serde::Deserialize;
use serde_json::Value;

use self::embeddings::embeddings;
use self::render::{Meta, chat_body, chat_chunks, completion_body, completion_chunks};
use self::reply::{chat_reply, completion_reply};
use crate::settings::SetupError;
use crate::{EventStream, Provider, ProviderError, SseEvent, UpstreamRequest, UpstreamResponse};

/// The model names the mock advertises. Any other name is accepted too and answers lorem ipsum.
///
/// - `echo`: repeats the last user message (or the prompt).
/// - `lorem`: deterministic lorem-ipsum words.
/// - `tools`: calls a tool when the request offers tools; otherwise as `lorem`.
pub const MOCK_MODELS: &[&str] = &["echo", "lorem", "tools"];

/// How the mock behaves; every field defaults to zero (instant, never fails).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MockOptions {
    /// Delay before the answer, or before the first chunk of a stream, in milliseconds.
    pub latency_ms: u64,
    /// Delay between stream chunks, in milliseconds.
    pub chunk_delay_ms: u64,
    /// Fraction of requests, 0.0 to 1.0, answered with a simulated 503.
    pub failure_rate: f64,
}

/// The built-in `mock` provider: no network, deterministic replies (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct MockProvider {
    options: MockOptions,
}

impl MockProvider {
    /// A mock with these options; a `failure_rate` outside 0.0 to 1.0 is clamped (NaN is 0).
    pub fn new(mut options: MockOptions) -> MockProvider {
        options.failure_rate = if options.failure_rate.is_nan() {
            0.0
        } else {
            options.failure_rate.clamp(0.0, 1.0)
        };
        MockProvider { options }
    }

    /// A mock from a provider's stored settings: an object with the [`MockOptions`] fields
    /// (each optional), or `null` for the defaults (see [`crate::settings`]).
    ///
    /// # Errors
    ///
    /// [`SetupError`] saying which setting is wrong, for a value of the wrong type or out of
    /// range.
    pub fn from_settings(settings: &Value) -> Result<MockProvider, SetupError> {
        crate::settings::mock_options("mock", settings).map(MockProvider::new)
    }

    /// The options in effect.
    pub fn options(&self) -> MockOptions {
        self.options
    }

    /// Decides, at random with the configured rate, whether to fail this request.
    fn simulated_failure(&self) -> Result<(), ProviderError> {
        let rate = self.options.failure_rate;
        // `random` is in [0, 1): a rate of 1.0 always fails and 0.0 never does.
        if rate > 0.0 && rand::random::<f64>() < rate {
            return Err(ProviderError::Status {
                status: 503,
                message: format!("mock provider: simulated failure (failure_rate {rate})"),
                error_type: Some("server_error".to_owned()),
                code: None,
                param: None,
                retry_after: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for MockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Mock
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        // An overloaded upstream refuses at once, so a simulated failure skips the latency.
        self.simulated_failure()?;
        // The mock reads the whole body: it is a test double, not the proxying hot path.
        let body_map = req.body.to_map();
        let meta = Meta::new(&req, &body_map);
        let latency = Duration::from_millis(self.options.latency_ms);
        let (body, usage, events) = match req.endpoint {
            Endpoint::ChatCompletions => {
                let reply = chat_reply(&req.model, &body_map)?;
                let events = req.stream.then(|| chat_chunks(&meta, &reply, &body_map));
                (chat_body(&meta, &reply), reply.usage, events)
            }
            Endpoint::Completions => {
                let reply = completion_reply(&req.model, &body_map)?;
                let events = req
                    .stream
                    .then(|| completion_chunks(&meta, &reply, &body_map));
                (completion_body(&meta, &reply), reply.usage, events)
            }
            // The gateway translates a Responses request to chat completions for the mock.
            Endpoint::Responses => {
                return Err(ProviderError::Unsupported {
                    kind: ProviderKind::Mock.as_str(),
                    endpoint: req.endpoint,
                });
            }
            // Embeddings never stream, whatever the request says.
            Endpoint::Embeddings => {
                let (body, usage) = embeddings(&req.model, &body_map)?;
                (body, usage, None)
            }
            // The mock simulates text models only; the gateway sends OpenAI's pass-through
            // operations through `send_passthrough`, which the mock does not have.
            Endpoint::Moderations
            | Endpoint::ImageGenerations
            | Endpoint::AudioTranscriptions
            | Endpoint::AudioSpeech => {
                return Err(ProviderError::Unsupported {
                    kind: ProviderKind::Mock.as_str(),
                    endpoint: req.endpoint,
                });
            }
        };
        if let Some(events) = events {
            let chunk_delay = Duration::from_millis(self.options.chunk_delay_ms);
            return Ok(UpstreamResponse::Stream {
                status: 200,
                events: paced(events, latency, chunk_delay),
            });
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        Ok(UpstreamResponse::Complete {
            status: 200,
            body: Bytes::from(body.to_string()),
            usage: Some(usage),
        })
    }
}

/// Streams `events`, waiting `first` before the first and `between` before each later one.
///
/// The waits happen inside the stream, so nothing runs until it is polled and dropping it
/// stops it, as with a real upstream.
fn paced(events: Vec<Value>, first: Duration, between: Duration) -> EventStream {
    let events = events
        .into_iter()
        .map(|chunk| SseEvent::data(chunk.to_string()))
        .chain(std::iter::once(SseEvent::done()));
    Box::pin(stream::unfold(
        (events, first),
        move |(mut events, delay)| async move {
            let event = events.next()?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(event), (events, between)))
        },
    ))
}

fn bad_request(message: impl Into<String>, param: &str) -> ProviderError {
    ProviderError::Status {
        status: 400,
        message: format!("mock provider: {}", message.into()),
        error_type: Some("invalid_request_error".to_owned()),
        code: None,
        param: Some(param.to_owned()),
        retry_after: None,
    }
}
