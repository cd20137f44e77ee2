//! [`GeminiProvider`]: the HTTP side. Builds URLs and credentials for AI Studio or Vertex AI,
//! sends the translated request, and hands the answer to the translators.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream;
use portico_core::{Endpoint, ProviderKind, Secret};
use portico_providers::chat::ChatRequest;
use portico_providers::http::HttpClient;
use portico_providers::openai::transport_error;
use portico_providers::sse::SseEvent;
use portico_providers::{
    Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::embeddings::{AI_STUDIO_BATCH, Collected, EmbeddingsRequest};
use crate::error::{self, invalid_request};
use crate::stream::{StreamTranslator, translate};
use crate::wire::GenerateContentResponse;
use crate::{request, response};

/// The AI Studio host (the Gemini SDKs' base URL, without the API version).
const AI_STUDIO_URL: &str = "https://generativelanguage.googleapis.com";

/// Which of Google's two Gemini APIs a provider talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Api {
    /// The Gemini API (AI Studio): `/v1beta/models/...`, an API key in `x-goog-api-key`.
    AiStudio,
    /// Vertex AI: `/v1/projects/{project}/locations/{region}/publishers/google/models/...`,
    /// an OAuth access token as a bearer token.
    Vertex {
        /// The Google Cloud project id.
        project: String,
        /// The region (`us-central1`, `global`, ...).
        region: String,
    },
}

/// A Gemini upstream: AI Studio, or Vertex AI when the provider's settings name a
/// `vertex_project_id` and a `vertex_region`.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    client: HttpClient,
    /// The host (and any path prefix), without a trailing `/` or API version.
    base_url: String,
    api: Api,
    /// The AI Studio API key, or the Vertex AI access token.
    api_key: Option<Secret>,
}

impl GeminiProvider {
    /// An adapter for one catalog provider.
    ///
    /// # Errors
    ///
    /// A message naming the provider and the setting to fix: a Vertex project without a
    /// region (or the reverse), ids with characters a URL cannot carry, or no key while the
    /// default (Google) URL is used.
    pub fn new(setup: ProviderSetup<'_>) -> Result<GeminiProvider, String> {
        let slug = setup.slug;
        let setting = |name: &str| -> Result<Option<String>, String> {
            match setup.settings.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if is_url_safe(s) => Ok(Some(s.clone())),
                Some(_) => Err(format!(
                    "provider @{slug}: {name} must be a non-empty string of letters, digits, '-' and '_'"
                )),
            }
        };
        let api = match (setting("vertex_project_id")?, setting("vertex_region")?) {
            (None, None) => Api::AiStudio,
            (Some(project), Some(region)) => Api::Vertex { project, region },
            (Some(_), None) => {
                return Err(format!(
                    "provider @{slug}: vertex_project_id is set but vertex_region is not; set both for Vertex AI (e.g. vertex_region: us-central1), or neither for AI Studio"
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "provider @{slug}: vertex_region is set but vertex_project_id is not; set both for Vertex AI, or neither for AI Studio"
                ));
            }
        };
        if setup.api_key.is_none() && setup.base_url.is_none() {
            return Err(format!(
                "provider @{slug} (kind gemini) has no api_key; set an AI Studio API key, or for Vertex AI an OAuth access token"
            ));
        }
        let base_url = match (setup.base_url, &api) {
            (Some(url), _) => url.to_owned(),
            (None, Api::AiStudio) => AI_STUDIO_URL.to_owned(),
            (None, Api::Vertex { region, .. }) if region == "global" => {
                "https://aiplatform.googleapis.com".to_owned()
            }
            (None, Api::Vertex { region, .. }) => {
                format!("https://{region}-aiplatform.googleapis.com")
            }
        };
        Ok(GeminiProvider {
            client: setup.client.clone(),
            base_url: trim_base_url(&base_url),
            api,
            api_key: setup.api_key.cloned(),
        })
    }

    /// The URL of `method` (`generateContent`, ...) of `model`.
    pub(crate) fn url(&self, model: &str, method: &str) -> Result<String, ProviderError> {
        let model = model.strip_prefix("models/").unwrap_or(model);
        let bad_model = || {
            invalid_request(
                format!(
                    "model \"{model}\" is not a Gemini model name; use a name such as gemini-2.5-flash (letters, digits, '.', '-', '_')"
                ),
                "model",
            )
        };
        let (collection, name) = match (&self.api, model.split_once('/')) {
            (Api::AiStudio, Some(("tunedModels", name))) => ("tunedModels", name),
            (_, None) => ("models", model),
            (_, Some(_)) => return Err(bad_model()),
        };
        // `@` appears in versioned Vertex AI model names (`text-embedding-004@001`).
        if !name.split('@').all(is_url_safe) {
            return Err(bad_model());
        }
        Ok(match &self.api {
            Api::AiStudio => format!("{}/v1beta/{collection}/{name}:{method}", self.base_url),
            Api::Vertex { project, region } => format!(
                "{}/v1/projects/{project}/locations/{region}/publishers/google/models/{name}:{method}",
                self.base_url
            ),
        })
    }

    /// POSTs `body` to `url` with the provider's credentials; a non-2xx answer is an error.
    async fn post(
        &self,
        url: String,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut builder = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if stream {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        if let Some(key) = &self.api_key {
            builder = match self.api {
                Api::AiStudio => builder.header("x-goog-api-key", key.expose()),
                Api::Vertex { .. } => builder.bearer_auth(key.expose()),
            };
        }
        let response = builder.send().await.map_err(transport_error)?;
        if !response.status().is_success() {
            return Err(error::from_response(response).await);
        }
        Ok(response)
    }

    /// POSTs `body` as JSON and reads a whole JSON answer.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        url: String,
        body: &B,
    ) -> Result<T, ProviderError> {
        let response = self.post(url, encode(body)?, false).await?;
        let bytes = self.client.read_body(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Malformed(format!("Gemini's answer is not the expected JSON: {e}"))
        })
    }

    async fn chat(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let chat: ChatRequest = req.body.deserialize().map_err(|e| {
            invalid_request(
                format!("the body is not a chat completion request: {e}"),
                "",
            )
        })?;
        let wire = request::to_gemini(&chat, &req.model, req.stream)?;
        let created = now();
        if !req.stream {
            let url = self.url(&req.model, "generateContent")?;
            let answer: GenerateContentResponse = self.call(url, &wire).await?;
            if let Some(error) = answer.error {
                return Err(error::from_detail(502, error));
            }
            let chat = response::to_chat(answer, &req.model, created)?;
            let usage = chat.usage.map(|u| u.to_usage());
            return Ok(UpstreamResponse::Complete {
                status: 200,
                body: Bytes::from(encode(&chat)?),
                usage,
            });
        }
        let url = format!("{}?alt=sse", self.url(&req.model, "streamGenerateContent")?);
        let response = self.post(url, encode(&wire)?, true).await?;
        let status = response.status().as_u16();
        let translator = StreamTranslator::new(&req.model, created);
        let is_sse = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let events = if is_sse {
            translate(self.client.sse_events(response), translator)
        } else {
            // Without SSE, Gemini streams one JSON array of chunks: read it whole, under the
            // same limit as any answer.
            let body = self.client.read_body(response).await?;
            let chunks = match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Array(chunks)) => chunks,
                Ok(chunk) => vec![chunk],
                Err(e) => {
                    return Err(ProviderError::Malformed(format!(
                        "Gemini's stream is neither server-sent events nor JSON: {e}"
                    )));
                }
            };
            let events = chunks
                .into_iter()
                .map(|chunk| Ok(SseEvent::data(chunk.to_string())));
            translate(stream::iter(events), translator)
        };
        Ok(UpstreamResponse::Stream { status, events })
    }

    async fn embeddings(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let parsed = EmbeddingsRequest::parse(&req.body)?;
        let model = req.model.strip_prefix("models/").unwrap_or(&req.model);
        let mut collected = Collected::default();
        match self.api {
            Api::AiStudio => {
                let url = self.url(model, "batchEmbedContents")?;
                for inputs in parsed.inputs.chunks(AI_STUDIO_BATCH) {
                    let answer = self
                        .call(url.clone(), &parsed.batch_body(model, inputs))
                        .await?;
                    collected.add_batch(answer, inputs.len())?;
                }
            }
            Api::Vertex { .. } => {
                let url = self.url(model, "predict")?;
                for inputs in parsed.inputs.chunks(EmbeddingsRequest::vertex_batch(model)) {
                    let answer = self.call(url.clone(), &parsed.predict_body(inputs)).await?;
                    collected.add_predict(answer, inputs.len())?;
                }
            }
        }
        let (body, usage) = collected.to_openai(model, parsed.base64);
        Ok(UpstreamResponse::Complete {
            status: 200,
            body: Bytes::from(encode(&body)?),
            usage,
        })
    }
}

#[async_trait]
impl Provider for GeminiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        match req.endpoint {
            Endpoint::ChatCompletions => self.chat(req).await,
            Endpoint::Embeddings => self.embeddings(req).await,
            Endpoint::Completions => Err(ProviderError::Unsupported {
                kind: "gemini",
                endpoint: req.endpoint,
            }),
        }
    }
}

/// Whether `s` can go into a URL path segment as it is.
fn is_url_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The base URL without trailing `/` and without an API version the user may have included
/// (`/v1beta` or `/v1`), which Portico adds itself.
fn trim_base_url(url: &str) -> String {
    let mut url = url.trim_end_matches('/');
    for version in ["/v1beta", "/v1"] {
        url = url.strip_suffix(version).unwrap_or(url);
    }
    url.trim_end_matches('/').to_owned()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|e| {
        invalid_request(
            format!("the request could not be encoded for Gemini: {e}"),
            "",
        )
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_lose_versions_and_slashes() {
        assert_eq!(trim_base_url("http://h:1/v1beta/"), "http://h:1");
        assert_eq!(trim_base_url("http://h:1/v1"), "http://h:1");
        assert_eq!(trim_base_url("http://h:1/proxy/"), "http://h:1/proxy");
    }
}
