//! [`AnthropicProvider`]: the HTTP call to `POST /v1/messages`, for translated chat requests
//! and for native Messages requests passed through.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use portico_core::{Endpoint, JsonBody, ProviderKind, Secret, Usage};
use portico_providers::chat::ChatRequest;
use portico_providers::http::HttpClient;
use portico_providers::openai::transport_error;
use portico_providers::{
    Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse,
};

use crate::passthrough::{checked_events, read_usage};
use crate::request::to_messages_request;
use crate::response::to_chat_response;
use crate::stream::{StreamTranslator, translate_events};
use crate::wire::MessagesResponse;

/// Anthropic's API host, as its SDKs use it (without `/v1`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` sent when the catalog sets none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// An Anthropic upstream.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    client: HttpClient,
    /// `{base}/v1/messages`.
    url: String,
    api_key: Option<Secret>,
    version: HeaderValue,
    beta: Option<HeaderValue>,
}

impl AnthropicProvider {
    /// An adapter for one catalog provider: `base_url` (default [`DEFAULT_BASE_URL`]; a
    /// trailing `/v1` is tolerated), `api_key` sent as `x-api-key`, and the settings
    /// `anthropic_version` (default [`DEFAULT_VERSION`]) and `anthropic_beta` (a string or a
    /// list of strings, sent comma-separated as `anthropic-beta`).
    ///
    /// # Errors
    ///
    /// A message naming the provider and the setting when a setting has the wrong type or
    /// cannot be sent as a header.
    pub fn new(setup: ProviderSetup<'_>) -> Result<AnthropicProvider, String> {
        let slug = setup.slug;
        let mut base = setup.base_url.unwrap_or(DEFAULT_BASE_URL).trim();
        base = base.trim_end_matches('/');
        base = base.strip_suffix("/v1").unwrap_or(base);
        let setting = |name: &str| setup.settings.get(name).filter(|v| !v.is_null());
        let header = |name: &str, value: &str| {
            HeaderValue::from_str(value).map_err(|_| {
                format!("provider @{slug}: `{name}` must be printable ASCII to be sent as a header")
            })
        };
        let version = match setting("anthropic_version") {
            None => HeaderValue::from_static(DEFAULT_VERSION),
            Some(serde_json::Value::String(v)) => header("anthropic_version", v)?,
            Some(_) => {
                return Err(format!(
                    "provider @{slug}: `anthropic_version` must be a string such as \"{DEFAULT_VERSION}\""
                ));
            }
        };
        let beta = match setting("anthropic_beta") {
            None => None,
            Some(serde_json::Value::String(v)) => Some(header("anthropic_beta", v)?),
            Some(serde_json::Value::Array(items)) => {
                let names: Option<Vec<&str>> =
                    items.iter().map(serde_json::Value::as_str).collect();
                let Some(names) = names else {
                    return Err(format!(
                        "provider @{slug}: `anthropic_beta` must be a string or a list of strings"
                    ));
                };
                Some(header("anthropic_beta", &names.join(","))?)
            }
            Some(_) => {
                return Err(format!(
                    "provider @{slug}: `anthropic_beta` must be a string or a list of strings"
                ));
            }
        };
        Ok(AnthropicProvider {
            client: setup.client.clone(),
            url: format!("{base}/v1/messages"),
            api_key: setup.api_key.cloned(),
            version,
            beta,
        })
    }

    /// POSTs a Messages body; an error status becomes [`ProviderError::Status`].
    async fn post(
        &self,
        body: reqwest::Body,
        stream: bool,
        client_beta: Option<&str>,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut builder = self
            .client
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
        let response = builder.send().await.map_err(transport_error)?;
        if !response.status().is_success() {
            return Err(crate::error::from_response(response).await);
        }
        Ok(response)
    }
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

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        if req.endpoint != Endpoint::ChatCompletions {
            return Err(ProviderError::Unsupported {
                kind: ProviderKind::Anthropic.as_str(),
                endpoint: req.endpoint,
            });
        }
        let chat: ChatRequest = req.body.deserialize().map_err(|e| ProviderError::Status {
            status: 400,
            message: format!("the request is not a valid chat completion request: {e}"),
            error_type: Some("invalid_request_error".to_owned()),
            code: Some("invalid_parameter".to_owned()),
            param: None,
            retry_after: None,
        })?;
        let wire = to_messages_request(&chat, &req.model, req.stream)?;
        let body = serde_json::to_vec(&wire)
            .map_err(|e| ProviderError::Malformed(format!("could not write the request: {e}")))?;
        let response = self
            .post(reqwest::Body::from(body), req.stream, None)
            .await?;
        let status = response.status().as_u16();
        if req.stream {
            let translator = StreamTranslator::new(&req.model, now());
            return Ok(UpstreamResponse::Stream {
                status,
                events: translate_events(self.client.sse_events(response), translator),
            });
        }
        let bytes = self.client.read_body(response).await?;
        let message: MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Malformed(format!("the answer is not an Anthropic message: {e}"))
        })?;
        let chat = to_chat_response(&message, now());
        let usage = chat.usage.map(|u| u.to_usage());
        let body = serde_json::to_vec(&chat)
            .map_err(|e| ProviderError::Malformed(format!("could not write the answer: {e}")))?;
        Ok(UpstreamResponse::Complete {
            status,
            body: Bytes::from(body),
            usage,
        })
    }

    async fn send_anthropic_messages(
        &self,
        body: JsonBody,
        stream: bool,
        client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        Some(self.pass_through(body, stream, client_beta).await)
    }
}

impl AnthropicProvider {
    /// A native Messages request, sent as it is; the answer comes back as it is.
    async fn pass_through(
        &self,
        body: JsonBody,
        stream: bool,
        client_beta: Option<&str>,
    ) -> Result<UpstreamResponse, ProviderError> {
        let response = self
            .post(
                portico_providers::http::request_body(&body),
                stream,
                client_beta,
            )
            .await?;
        let status = response.status().as_u16();
        if stream {
            return Ok(UpstreamResponse::Stream {
                status,
                events: checked_events(self.client.sse_events(response)),
            });
        }
        let body = self.client.read_body(response).await?;
        let usage: Option<Usage> = read_usage(&body)?;
        Ok(UpstreamResponse::Complete {
            status,
            body,
            usage,
        })
    }
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
