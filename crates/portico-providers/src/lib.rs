//! Upstream providers: the [`Provider`] trait and one adapter per dialect.
//!
//! Where it sits: above `portico-core`; below the adapter crates (anthropic, gemini, bedrock),
//! which fill its `Dialect` skeleton, and the engine, which builds adapters and calls them.
//!
//! What this crate is: everything that knows a provider's wire format and talks to it. The
//! engine hands an adapter an OpenAI-shaped [`UpstreamRequest`] and gets back an OpenAI-shaped
//! [`UpstreamResponse`], either a whole JSON body or a stream of [`SseEvent`]s that are
//! forwarded to the client as they arrive.
//!
//! What it is not: routing, retries, auth or logging (the engine's), or HTTP serving (the
//! server's).
//!
//! Adapters: [`openai::OpenAiProvider`] (OpenAI and every OpenAI-compatible kind),
//! [`azure::AzureOpenAiProvider`] and [`mock::MockProvider`] (built in, no network). The
//! translating adapters (Anthropic, Gemini, Bedrock: crates of their own) share one skeleton,
//! [`dialect::Translating`], and supply only their [`dialect::Dialect`]. An adapter is built
//! from a [`ProviderSetup`] and its kind's typed [`settings`], parsed once from the stored
//! record; building fails with a [`SetupError`]. The shared, pooled HTTP client is built by
//! [`http::build_client`], with the limit every answer is read under; [`sse`] parses and
//! re-frames server-sent events; [`redact`] keeps provider credentials out of everything an
//! upstream answers; [`upstream_guard`] decides which hosts outgoing connections may reach.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use portico_core::{Endpoint, JsonBody, ProviderKind, Secret, Usage};

pub mod azure;
pub mod chat;
pub mod dialect;
pub mod error;
pub mod form;
pub mod http;
pub mod mock;
pub mod openai;
pub mod passthrough;
pub mod redact;
pub mod settings;
pub mod sse;
pub mod token;
pub mod upstream_guard;

pub use error::{Fault, ProviderError, TransportFailure};
pub use settings::SetupError;
pub use sse::SseEvent;

/// A stream of OpenAI-shaped server-sent events (`data` is one chunk's JSON, or `[DONE]`).
pub type EventStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ProviderError>> + Send>>;

/// One call to an upstream, in OpenAI's request shape.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// The operation.
    pub endpoint: Endpoint,
    /// The model name sent upstream (without the `@slug/`).
    pub model: String,
    /// The request body in OpenAI's shape; its `model` field is already the upstream name.
    pub body: JsonBody,
    /// Whether the client asked for a stream (`"stream": true`).
    pub stream: bool,
}

/// A successful upstream answer, in OpenAI's response shape.
pub enum UpstreamResponse {
    /// A whole JSON body.
    Complete {
        /// The upstream's 2xx status.
        status: u16,
        /// The JSON body, in OpenAI's shape.
        body: Bytes,
        /// Usage read from the body, when reported.
        usage: Option<Usage>,
    },
    /// A stream of SSE events, forwarded as they arrive.
    Stream {
        /// The upstream's 2xx status.
        status: u16,
        /// The events; an `Err` ends the stream (the server sends an in-band error event).
        events: EventStream,
    },
}

impl std::fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamResponse::Complete {
                status,
                body,
                usage,
            } => f
                .debug_struct("Complete")
                .field("status", status)
                .field("body_len", &body.len())
                .field("usage", usage)
                .finish(),
            UpstreamResponse::Stream { status, .. } => {
                f.debug_struct("Stream").field("status", status).finish()
            }
        }
    }
}

/// What every adapter is built from: one catalog provider's common fields, and the shared
/// client. Its kind-specific settings come typed, beside it ([`settings::KindSettings`]).
#[derive(Debug, Clone, Copy)]
pub struct ProviderSetup<'a> {
    /// The provider's slug, for messages.
    pub slug: &'a str,
    /// Base URL override; `None` means the kind's default.
    pub base_url: Option<&'a str>,
    /// The provider's API key.
    pub api_key: Option<&'a Secret>,
    /// The shared, pooled upstream client, with the limit answers are read under.
    pub client: &'a http::HttpClient,
}

/// One upstream API dialect. Translation is pure; only `send` does I/O.
///
/// Dropping the future returned by `send`, or the stream it returns, cancels the upstream
/// request: that is how a client's disconnect reaches the provider.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The dialect.
    fn kind(&self) -> ProviderKind;

    /// Sends one request upstream.
    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError>;

    /// Credentials the adapter found itself, beyond the catalog record's `api_key` and
    /// `credentials` (Bedrock's `AWS_*` environment variables): the registry adds them to the
    /// provider's [`redact::Redactor`], so an upstream that echoes them cannot leak them.
    /// Credentials minted at run time are reported through [`Provider::live_secrets`].
    fn extra_secrets(&self) -> Vec<Secret> {
        Vec::new()
    }

    /// The secrets this adapter mints while it runs (cloud access tokens, temporary AWS
    /// keys; see [`token::TokenCache`]), for the redactor; `None` (the default) when it mints
    /// none.
    fn live_secrets(&self) -> Option<std::sync::Arc<redact::LiveSecrets>> {
        None
    }

    /// Sends an Anthropic Messages request (`POST /v1/messages`) as it is, for an adapter
    /// whose upstream speaks that API natively. `client_beta` is the client's own
    /// `anthropic-beta` header (Claude Code turns features on with it), sent along with the
    /// catalog's. The answer is Anthropic-shaped: a JSON body, or named SSE events. `None` (the
    /// default) means the gateway translates the request to chat completions and calls
    /// [`Provider::send`] instead.
    async fn send_anthropic_messages(
        &self,
        _body: JsonBody,
        _stream: bool,
        _client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        None
    }

    /// Whether the upstream speaks OpenAI's Responses API (`POST /responses`): the gateway
    /// then sends a Responses request untouched through [`Provider::send`] with
    /// [`Endpoint::Responses`]. `false` (the default): the gateway translates it to chat
    /// completions.
    fn speaks_responses(&self) -> bool {
        false
    }

    /// Classifies text with the upstream's moderation endpoint (OpenAI's
    /// `POST /moderations`, body `{"model", "input"}`), for an adapter whose upstream has
    /// one: the answer's JSON body, read under the client's limit. `None` (the default): this
    /// adapter has no moderation endpoint. The `portico.moderation` guardrail calls it.
    async fn send_moderation(&self, _body: JsonBody) -> Option<Result<Bytes, ProviderError>> {
        None
    }

    /// Sends one of OpenAI's pass-through operations (moderations, image generation, audio
    /// transcription and speech: [`Endpoint::is_passthrough`]) as it is, for an adapter
    /// whose upstream serves OpenAI's API. The answer is whatever the upstream sent (JSON,
    /// text, audio) with its Content-Type. `None` (the default): this kind has no
    /// equivalent, and the gateway refuses the request without calling anything.
    async fn send_passthrough(
        &self,
        _req: passthrough::PassthroughRequest,
    ) -> Option<Result<passthrough::PassthroughAnswer, ProviderError>> {
        None
    }
}
