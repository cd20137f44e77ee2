//! The one skeleton of the translating adapters: decode → wire → send → parse.
//!
//! What this is: [`Dialect`], what an adapter that translates OpenAI's chat request into
//! another API supplies (the translation both ways, how a call is addressed and
//! authenticated, how the upstream's error answers read, how its stream is cut into pieces),
//! and [`Translating`], the one [`Provider`] over any dialect, which does the rest the same
//! way for all of them: it reads the body as a [`ChatRequest`] (a body that is not one is a
//! [`ProviderError::Rejected`]), has the dialect encode it, sends it over the shared client,
//! turns an error answer into the dialect's error with its `Retry-After` (the error body read
//! up to [`MAX_ERROR_BODY`]), reads a whole answer under the client's limit, has the dialect
//! decode it, and runs a streamed answer through the dialect's [`Translate`] state machine
//! ([`translate`]). `created` comes from the one clock, `portico_core::now_ms`.
//!
//! Anthropic, Gemini and Bedrock are dialects (their own crates); OpenAI-style kinds forward
//! bodies untouched and need none of this.
//!
//! What the dialects agree on (docs/providers.md, "Decisions"): a request the dialect cannot
//! express is refused before it is sent as [`ProviderError::Rejected`], never as an upstream
//! status; tool-call arguments that are not a JSON object are refused that way
//! ([`crate::chat::FunctionCall::input`]); and an upstream's error keeps its status, message
//! and its own type and code as strings ([`ProviderError::upstream`]).

mod stream;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use http::HeaderMap;
use portico_core::{Endpoint, JsonBody, ProviderKind, Secret};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chat::{ChatRequest, ChatResponse, created_now};
use crate::error::answered_error;
use crate::http::{HttpClient, transport_error};
use crate::openai::{read_capped, retry_after};
use crate::settings::SetupError;
use crate::{Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse};

pub use stream::{Translate, translate};

/// Error answers are read up to this many bytes before they are parsed: an error body is a
/// few hundred bytes, and an upstream must not make the gateway hold more to say it failed.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// A streamed answer cut into the pieces its [`Translate`] state machine reads (SSE events,
/// AWS event-stream frames, ...).
pub type Inputs<T> = Pin<Box<dyn Stream<Item = Result<T, ProviderError>> + Send>>;

/// The chat call being made: which model, whole or streamed.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The model name sent upstream.
    pub model: &'a str,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// What the translation of an answer knows besides the answer itself.
#[derive(Debug, Clone)]
pub struct Answered<'a> {
    /// The model name the request was sent with.
    pub model: &'a str,
    /// `created` of the chat completion or its chunks, in Unix seconds.
    pub created: u64,
    /// An id the dialect read from the answer's headers ([`Dialect::answer_id`]).
    pub id: Option<String>,
}

/// One translating upstream API: the pieces [`Translating`] puts together.
///
/// Translation is pure; only [`Translating`] does I/O, apart from the optional operations
/// ([`Dialect::embeddings`], [`Dialect::anthropic_messages`]), which send through it.
#[async_trait]
pub trait Dialect: std::fmt::Debug + Send + Sync + Sized + 'static {
    /// The provider kind.
    const KIND: ProviderKind;
    /// How the upstream is named in messages (`Anthropic`, `Gemini`, `Bedrock`).
    const NAME: &'static str;
    /// The kind's typed settings ([`crate::settings`]).
    type Settings: Sync;
    /// The upstream's request body.
    type Request: Serialize + Send + Sync;
    /// The upstream's whole answer.
    type Response: DeserializeOwned + Send;
    /// The state machine that turns the upstream's stream into OpenAI chunks.
    type Translator: Translate;

    /// The dialect of one catalog provider.
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming the provider and what to set, when the provider cannot be used.
    fn new(setup: ProviderSetup<'_>, settings: &Self::Settings) -> Result<Self, SetupError>;

    /// OpenAI's chat request → the upstream's (pure).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Rejected`] naming the field, when the dialect cannot express the
    /// request.
    fn encode(&self, chat: &ChatRequest, call: Call<'_>) -> Result<Self::Request, ProviderError>;

    /// The HTTP request carrying `body` for `call`: URL, headers, credentials. Async because
    /// credentials minted at run time may have to be fetched first (once, then cached: see
    /// [`crate::token`]).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Rejected`] when the call cannot be addressed (a model name a URL
    /// cannot carry); a failure to get credentials or to sign it.
    async fn request(
        &self,
        client: &HttpClient,
        call: Call<'_>,
        body: Bytes,
    ) -> Result<reqwest::RequestBuilder, ProviderError>;

    /// The upstream's error answer (its status, headers and body, cut at
    /// [`MAX_ERROR_BODY`]) → the error, built with [`ProviderError::upstream`].
    fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError;

    /// An id for the answer from its headers (Bedrock's request id); `None` (the default)
    /// when the answer itself carries one.
    fn answer_id(&self, _headers: &HeaderMap) -> Option<String> {
        None
    }

    /// The upstream's whole answer → a chat completion (pure).
    ///
    /// # Errors
    ///
    /// An answer that says the call failed, or that cannot be translated.
    fn decode(
        &self,
        answer: Self::Response,
        cx: &Answered<'_>,
    ) -> Result<ChatResponse, ProviderError>;

    /// The state machine for one streamed answer.
    fn translator(&self, cx: &Answered<'_>) -> Self::Translator;

    /// A streamed answer's body, cut into the translator's pieces; each held to `client`'s
    /// limit.
    ///
    /// # Errors
    ///
    /// An answer that is no stream the dialect can read.
    async fn inputs(
        &self,
        client: &HttpClient,
        response: reqwest::Response,
    ) -> Result<Inputs<<Self::Translator as Translate>::Input>, ProviderError>;

    /// `/v1/embeddings`, sent through `upstream` ([`Translating::call`]); by default
    /// unsupported.
    async fn embeddings(
        _upstream: &Translating<Self>,
        req: UpstreamRequest,
    ) -> Result<UpstreamResponse, ProviderError> {
        Err(unsupported::<Self>(req.endpoint))
    }

    /// A native Anthropic Messages request (see [`Provider::send_anthropic_messages`]); by
    /// default `None`: the gateway translates it to chat completions.
    async fn anthropic_messages(
        _upstream: &Translating<Self>,
        _body: JsonBody,
        _stream: bool,
        _client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        None
    }

    /// Credentials the dialect found itself (see [`Provider::extra_secrets`]).
    fn extra_secrets(&self) -> Vec<Secret> {
        Vec::new()
    }

    /// The secrets the dialect mints while it runs (see [`Provider::live_secrets`]).
    fn live_secrets(&self) -> Option<std::sync::Arc<crate::redact::LiveSecrets>> {
        None
    }
}

/// A translating adapter: one [`Dialect`] over the shared client.
#[derive(Debug, Clone)]
pub struct Translating<D> {
    dialect: D,
    client: HttpClient,
}

impl<D: Dialect> Translating<D> {
    /// The adapter of one catalog provider, with its kind's typed settings.
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming the provider and what to set.
    pub fn new(setup: ProviderSetup<'_>, settings: &D::Settings) -> Result<Self, SetupError> {
        Ok(Translating {
            dialect: D::new(setup, settings)?,
            client: setup.client.clone(),
        })
    }

    /// The adapter over a dialect built otherwise (with a stand-in environment, in tests).
    pub fn with_dialect(dialect: D, client: &HttpClient) -> Self {
        Translating {
            dialect,
            client: client.clone(),
        }
    }

    /// The dialect.
    pub fn dialect(&self) -> &D {
        &self.dialect
    }

    /// The shared client, with the limit answers are read under.
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Sends a request the dialect built. A transport failure is mapped by
    /// [`transport_error`]; an error status becomes the dialect's error, with the
    /// upstream's `Retry-After`.
    ///
    /// # Errors
    ///
    /// As said; the answer's body is not read on success.
    pub async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = request.send().await.map_err(transport_error)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let headers = response.headers().clone();
        let body = read_capped(response, MAX_ERROR_BODY).await;
        Err(self
            .dialect
            .error(status, &headers, &body)
            .with_retry_after(wait))
    }

    /// Reads a whole answer under the client's limit, as JSON of type `T`.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Malformed`] for an answer over the limit or of another shape.
    pub async fn read_json<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ProviderError> {
        let bytes = self.client.read_body(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreadable(&bytes, &e))
    }

    /// Why a successful answer's body did not read as `T`, said precisely: not UTF-8, not
    /// JSON, or JSON of another shape; and when that shape is the upstream's error (a 200
    /// whose body says it failed), the upstream's error itself ([`answered_error`]).
    fn unreadable(&self, body: &[u8], err: &serde_json::Error) -> ProviderError {
        if let Err(utf8) = std::str::from_utf8(body) {
            return ProviderError::Malformed(format!(
                "{}'s answer is not valid UTF-8: {utf8}",
                D::NAME
            ));
        }
        if err.is_syntax() || err.is_eof() {
            return ProviderError::Malformed(format!(
                "{}'s answer is not valid JSON: {err}",
                D::NAME
            ));
        }
        let is_error = serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("error").is_some_and(serde_json::Value::is_object));
        if is_error {
            return answered_error(self.dialect.error(502, &HeaderMap::new(), body));
        }
        ProviderError::Malformed(format!("{}'s answer could not be read: {err}", D::NAME))
    }

    /// A chat completion, whole or streamed: the skeleton itself.
    async fn chat(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let chat: ChatRequest = req.body.deserialize().map_err(|e| {
            ProviderError::rejected(
                format!("the request is not a valid chat completion request: {e}"),
                None,
            )
        })?;
        let call = Call {
            model: &req.model,
            stream: req.stream,
        };
        let wire = self.dialect.encode(&chat, call)?;
        let body = serde_json::to_vec(&wire).map_err(|e| {
            ProviderError::Malformed(format!("the {} request could not be written: {e}", D::NAME))
        })?;
        let request = self
            .dialect
            .request(&self.client, call, Bytes::from(body))
            .await?;
        let response = self.call(request).await?;
        let status = response.status().as_u16();
        let cx = Answered {
            model: &req.model,
            created: created_now(),
            id: self.dialect.answer_id(response.headers()),
        };
        if req.stream {
            let translator = self.dialect.translator(&cx);
            let inputs = self.dialect.inputs(&self.client, response).await?;
            return Ok(UpstreamResponse::Stream {
                status,
                events: translate(inputs, translator),
            });
        }
        let answer: D::Response = self.read_json(response).await?;
        let chat = self.dialect.decode(answer, &cx)?;
        let usage = chat.usage.map(|u| u.to_usage());
        let body = serde_json::to_vec(&chat).map_err(|e| {
            ProviderError::Malformed(format!("the chat completion could not be written: {e}"))
        })?;
        Ok(UpstreamResponse::Complete {
            status,
            body: Bytes::from(body),
            usage,
        })
    }
}

#[async_trait]
impl<D: Dialect> Provider for Translating<D> {
    fn kind(&self) -> ProviderKind {
        D::KIND
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        match req.endpoint {
            Endpoint::ChatCompletions => self.chat(req).await,
            Endpoint::Embeddings => D::embeddings(self, req).await,
            // The legacy completions API, and OpenAI's pass-through operations (which the
            // gateway never sends through `send`), have no counterpart here; the gateway
            // translates a Responses request to chat completions before a translating
            // dialect sees it.
            Endpoint::Completions
            | Endpoint::Responses
            | Endpoint::Moderations
            | Endpoint::ImageGenerations
            | Endpoint::AudioTranscriptions
            | Endpoint::AudioSpeech => Err(unsupported::<D>(req.endpoint)),
        }
    }

    fn extra_secrets(&self) -> Vec<Secret> {
        self.dialect.extra_secrets()
    }

    fn live_secrets(&self) -> Option<std::sync::Arc<crate::redact::LiveSecrets>> {
        self.dialect.live_secrets()
    }

    async fn send_anthropic_messages(
        &self,
        body: JsonBody,
        stream: bool,
        client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        D::anthropic_messages(self, body, stream, client_beta).await
    }
}

/// `endpoint` is not something dialect `D` can do.
fn unsupported<D: Dialect>(endpoint: Endpoint) -> ProviderError {
    ProviderError::Unsupported {
        kind: D::KIND.as_str(),
        endpoint,
    }
}
