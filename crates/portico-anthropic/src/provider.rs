//! [`Anthropic`]: the dialect of `POST /v1/messages`, for translated chat requests (through
//! the translating adapters' one skeleton, [`Translating`]), and the pass-through of native
//! Messages requests.

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use portico_core::{JsonBody, ProviderKind, Secret, Usage};
use portico_providers::chat::{ChatRequest, ChatResponse};
use portico_providers::dialect::{Answered, Call, Dialect, Inputs, Translating};
use portico_providers::http::{HttpClient, request_body};
use portico_providers::settings::AnthropicSettings;
use portico_providers::{ProviderError, ProviderSetup, SetupError, SseEvent, UpstreamResponse};

use crate::passthrough::{checked_events, read_usage};
use crate::request::to_messages_request;
use crate::response::to_chat_response;
use crate::stream::StreamTranslator;
use crate::wire::{MessagesRequest, MessagesResponse};

/// Anthropic's API host, as its SDKs use it (without `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` sent when the catalog sets none.
pub const DEFAULT_VERSION: &str = portico_core::settings::DEFAULT_ANTHROPIC_VERSION;

/// An Anthropic upstream: the translating skeleton over [`Anthropic`]'s dialect.
pub type AnthropicProvider = Translating<Anthropic>;

/// Anthropic's dialect: where Messages requests go and with which headers.
#[derive(Debug, Clone)]
pub struct Anthropic {
    /// `{base}/v1/messages`.
    url: String,
    api_key: Option<Secret>,
    version: HeaderValue,
    beta: Option<HeaderValue>,
}

impl Anthropic {
    /// A POST of a Messages body with the provider's headers; the client's own beta names
    /// (`client_beta`) go along with the catalog's.
    fn post(
        &self,
        client: &HttpClient,
        body: reqwest::Body,
        stream: bool,
        client_beta: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut builder = client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("anthropic-version", self.version.clone())
            .body(body);
        if let Some(key) = &self.api_key {
            builder = builder.header("x-api-key", key.expose());
        }
        if let Some(beta) = merged_beta(self.beta.as_ref(), client_beta) {
            builder = builder.header("anthropic-beta", beta);
        }
        if stream {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        builder
    }
}

#[async_trait]
impl Dialect for Anthropic {
    const KIND: ProviderKind = ProviderKind::Anthropic;
    const NAME: &'static str = "Anthropic";
    type Settings = AnthropicSettings;
    type Request = MessagesRequest;
    type Response = MessagesResponse;
    type Translator = StreamTranslator;

    /// `base_url` (default [`DEFAULT_BASE_URL`]; a trailing `/v1` is tolerated), `api_key`
    /// sent as `x-api-key`, `anthropic_version` as `anthropic-version` and the beta names
    /// comma-separated as `anthropic-beta`.
    fn new(
        setup: ProviderSetup<'_>,
        settings: &AnthropicSettings,
    ) -> Result<Anthropic, SetupError> {
        let mut base = setup.base_url.unwrap_or(DEFAULT_BASE_URL).trim();
        base = base.trim_end_matches('/');
        base = base.strip_suffix("/v1").unwrap_or(base);
        let header = |name: &'static str, value: &str| {
            HeaderValue::from_str(value).map_err(|_| {
                SetupError::setting(
                    setup.slug,
                    name,
                    "must be printable ASCII to be sent as a header",
                )
            })
        };
        let beta = match settings.beta.as_slice() {
            [] => None,
            names => Some(header("anthropic_beta", &names.join(","))?),
        };
        Ok(Anthropic {
            url: format!("{base}/v1/messages"),
            api_key: setup.api_key.cloned(),
            version: header("anthropic_version", &settings.version)?,
            beta,
        })
    }

    fn encode(&self, chat: &ChatRequest, call: Call<'_>) -> Result<MessagesRequest, ProviderError> {
        to_messages_request(chat, call.model, call.stream)
    }

    async fn request(
        &self,
        client: &HttpClient,
        call: Call<'_>,
        body: Bytes,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(self.post(client, reqwest::Body::from(body), call.stream, None))
    }

    fn error(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> ProviderError {
        crate::error::parse(status, body)
    }

    fn decode(
        &self,
        answer: MessagesResponse,
        cx: &Answered<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        Ok(to_chat_response(&answer, cx.created))
    }

    fn translator(&self, cx: &Answered<'_>) -> StreamTranslator {
        StreamTranslator::new(cx.model, cx.created)
    }

    async fn inputs(
        &self,
        client: &HttpClient,
        response: reqwest::Response,
    ) -> Result<Inputs<SseEvent>, ProviderError> {
        Ok(Box::pin(client.sse_events(response)))
    }

    async fn anthropic_messages(
        upstream: &AnthropicProvider,
        body: JsonBody,
        stream: bool,
        client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        Some(pass_through(upstream, body, stream, client_beta).await)
    }
}

/// A native Messages request, sent as it is; the answer comes back as it is.
async fn pass_through(
    upstream: &AnthropicProvider,
    body: JsonBody,
    stream: bool,
    client_beta: Option<&str>,
) -> Result<UpstreamResponse, ProviderError> {
    let client = upstream.client();
    let request = upstream
        .dialect()
        .post(client, request_body(&body), stream, client_beta);
    let response = upstream.call(request).await?;
    let status = response.status().as_u16();
    if stream {
        return Ok(UpstreamResponse::Stream {
            status,
            events: checked_events(client.sse_events(response)),
        });
    }
    let body = client.read_body(response).await?;
    let usage: Option<Usage> = read_usage(&body)?;
    Ok(UpstreamResponse::Complete {
        status,
        body,
        usage,
    })
}

/// The catalog's beta names and the client's, comma-separated, each once (catalog first).
fn merged_beta(catalog: Option<&HeaderValue>, client: Option<&str>) -> Option<HeaderValue> {
    let mut names: Vec<&str> = Vec::new();
    let catalog = catalog.and_then(|v| v.to_str().ok());
    for list in [catalog, client].into_iter().flatten() {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    HeaderValue::from_str(&names.join(",")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_names_are_merged_once_each() {
        let catalog = HeaderValue::from_static("a, b");
        assert_eq!(merged_beta(Some(&catalog), Some("b,c")).unwrap(), "a,b,c");
        assert_eq!(merged_beta(None, Some("c")).unwrap(), "c");
        assert_eq!(merged_beta(Some(&catalog), None).unwrap(), "a,b");
        assert_eq!(merged_beta(None, Some(" , ")), None);
    }
}
