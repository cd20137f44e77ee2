//! [`Gemini`]: the dialect's HTTP side. URLs and credentials for AI Studio or Vertex AI,
//! and embeddings; chat completions go through the translating adapters' one skeleton
//! ([`Translating`]).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream;
use http::HeaderMap;
use portico_core::{ProviderKind, Secret};
use portico_providers::chat::{ChatRequest, ChatResponse};
use portico_providers::dialect::{Answered, Call, Dialect, Inputs, Translating};
use portico_providers::http::{HttpClient, is_event_stream};
use portico_providers::redact::LiveSecrets;
use portico_providers::settings::GeminiSettings;
use portico_providers::sse::SseEvent;
use portico_providers::token::{MintError, TokenCache};
use portico_providers::{
    ProviderError, ProviderSetup, SetupError, UpstreamRequest, UpstreamResponse,
};
use serde::Serialize;
use serde_json::Value;

use crate::embeddings::{AI_STUDIO_BATCH, Collected, EmbeddingsRequest};
use crate::error::{self, invalid_request};
use crate::stream::StreamTranslator;
use crate::wire::{GenerateContentRequest, GenerateContentResponse};
use crate::{request, response};

/// The AI Studio host (the Gemini SDKs' base URL, without the API version).
const AI_STUDIO_URL: &str = "https://generativelanguage.googleapis.com";

/// A Gemini upstream: the translating skeleton over [`Gemini`]'s dialect.
pub type GeminiProvider = Translating<Gemini>;

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

/// Gemini's dialect: AI Studio, or Vertex AI when the provider's settings name a
/// `vertex_project_id` and a `vertex_region`.
#[derive(Debug, Clone)]
pub struct Gemini {
    /// The host (and any path prefix), without a trailing `/` or API version.
    base_url: String,
    api: Api,
    /// The AI Studio API key, or the Vertex AI access token.
    api_key: Option<Secret>,
    /// Vertex AI without `api_key`: access tokens from application default credentials.
    tokens: Option<(TokenCache<Secret>, Arc<LiveSecrets>)>,
}

impl Gemini {
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

    /// A POST of `body` to `url` with the provider's credentials (an access token is
    /// fetched first when none is cached).
    async fn post(
        &self,
        client: &HttpClient,
        url: String,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut builder = client
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
        } else if let Some((tokens, _)) = &self.tokens {
            let token = tokens.get().await.map_err(MintError::into_provider_error)?;
            builder = builder.bearer_auth(token.expose());
        }
        Ok(builder)
    }

    /// The dialect of a catalog provider, with `env` standing in for the process
    /// environment (`GOOGLE_APPLICATION_CREDENTIALS`, `GCE_METADATA_HOST`).
    ///
    /// # Errors
    ///
    /// [`SetupError`] when an AI Studio provider has no key and the default URL, or the
    /// catalog's service account cannot be used.
    pub fn with_env(
        setup: ProviderSetup<'_>,
        settings: &GeminiSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Gemini, SetupError> {
        let api = match &settings.vertex {
            None => Api::AiStudio,
            Some(vertex) => Api::Vertex {
                project: vertex.project.clone(),
                region: vertex.region.clone(),
            },
        };
        let api_key = setup
            .api_key
            .filter(|k| !k.expose().trim().is_empty())
            .cloned();
        let tokens = match (&settings.vertex, &api_key) {
            (Some(vertex), None) => {
                let live = LiveSecrets::new();
                let cache = crate::adc::token_cache(
                    setup.slug,
                    vertex.service_account.as_ref(),
                    setup.client,
                    &env,
                    Arc::clone(&live),
                )?;
                Some((cache, live))
            }
            _ => None,
        };
        if api_key.is_none() && tokens.is_none() && setup.base_url.is_none() {
            return Err(SetupError::incomplete(
                setup.slug,
                ProviderKind::Gemini,
                "has no api_key; set an AI Studio API key, or vertex_project_id and \
                 vertex_region for Vertex AI (which finds Google credentials itself)",
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
        Ok(Gemini {
            base_url: trim_base_url(&base_url),
            api,
            api_key,
            tokens,
        })
    }
}

#[async_trait]
impl Dialect for Gemini {
    const KIND: ProviderKind = ProviderKind::Gemini;
    const NAME: &'static str = "Gemini";
    type Settings = GeminiSettings;
    type Request = GenerateContentRequest;
    type Response = GenerateContentResponse;
    type Translator = StreamTranslator;

    /// [`Gemini::with_env`] over the process environment.
    fn new(setup: ProviderSetup<'_>, settings: &GeminiSettings) -> Result<Gemini, SetupError> {
        Gemini::with_env(setup, settings, |name| std::env::var(name).ok())
    }

    fn encode(
        &self,
        chat: &ChatRequest,
        call: Call<'_>,
    ) -> Result<GenerateContentRequest, ProviderError> {
        request::to_gemini(chat, call.model, call.stream)
    }

    async fn request(
        &self,
        client: &HttpClient,
        call: Call<'_>,
        body: Bytes,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = if call.stream {
            format!("{}?alt=sse", self.url(call.model, "streamGenerateContent")?)
        } else {
            self.url(call.model, "generateContent")?
        };
        self.post(client, url, body, call.stream).await
    }

    fn error(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> ProviderError {
        error::parse_error_body(status, body)
    }

    /// A 200 may still carry an error (Gemini's batch-style answers): it is the upstream's
    /// failure, a 502.
    fn decode(
        &self,
        answer: GenerateContentResponse,
        cx: &Answered<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        if let Some(detail) = answer.error {
            return Err(error::from_detail(502, detail));
        }
        response::to_chat(answer, cx.model, cx.created)
    }

    fn translator(&self, cx: &Answered<'_>) -> StreamTranslator {
        StreamTranslator::new(cx.model, cx.created)
    }

    /// Server-sent events; or, when Gemini answers without SSE, one JSON array of chunks,
    /// read whole under the same limit as any answer.
    async fn inputs(
        &self,
        client: &HttpClient,
        response: reqwest::Response,
    ) -> Result<Inputs<SseEvent>, ProviderError> {
        if is_event_stream(&response) {
            return Ok(Box::pin(client.sse_events(response)));
        }
        let body = client.read_body(response).await?;
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
        Ok(Box::pin(stream::iter(events)))
    }

    fn live_secrets(&self) -> Option<Arc<LiveSecrets>> {
        self.tokens.as_ref().map(|(_, live)| Arc::clone(live))
    }

    /// Batches of inputs to `batchEmbedContents` (AI Studio) or `predict` (Vertex AI), one
    /// call after the other.
    async fn embeddings(
        upstream: &GeminiProvider,
        req: UpstreamRequest,
    ) -> Result<UpstreamResponse, ProviderError> {
        embed(upstream, req).await
    }
}

/// POSTs `body` as JSON to `url` and reads a whole JSON answer.
async fn call<B: Serialize, T: serde::de::DeserializeOwned>(
    upstream: &GeminiProvider,
    url: String,
    body: &B,
) -> Result<T, ProviderError> {
    let request = upstream
        .dialect()
        .post(upstream.client(), url, Bytes::from(encode(body)?), false)
        .await?;
    let response = upstream.call(request).await?;
    upstream.read_json(response).await
}

/// `/v1/embeddings` (see [`Dialect::embeddings`]).
async fn embed(
    upstream: &GeminiProvider,
    req: UpstreamRequest,
) -> Result<UpstreamResponse, ProviderError> {
    let gemini = upstream.dialect();
    let parsed = EmbeddingsRequest::parse(&req.body)?;
    let model = req.model.strip_prefix("models/").unwrap_or(&req.model);
    let mut collected = Collected::default();
    match gemini.api {
        Api::AiStudio => {
            let url = gemini.url(model, "batchEmbedContents")?;
            for inputs in parsed.inputs.chunks(AI_STUDIO_BATCH) {
                let answer = call(upstream, url.clone(), &parsed.batch_body(model, inputs)).await?;
                collected.add_batch(answer, inputs.len())?;
            }
        }
        Api::Vertex { .. } => {
            let url = gemini.url(model, "predict")?;
            for inputs in parsed.inputs.chunks(EmbeddingsRequest::vertex_batch(model)) {
                let answer = call(upstream, url.clone(), &parsed.predict_body(inputs)).await?;
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

/// `value` as JSON bytes (one of our own wire types: writing it cannot fail in practice).
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|e| {
        ProviderError::Malformed(format!("the Gemini request could not be written: {e}"))
    })
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
