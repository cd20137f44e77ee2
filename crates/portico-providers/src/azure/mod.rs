//! Azure OpenAI: OpenAI's API served from a resource's own endpoint, per deployment.
//!
//! What differs from OpenAI, and what this adapter does about it:
//!
//! - **URLs**: the classic API puts the deployment in the path and a dated `api-version` in
//!   the query (`/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21`);
//!   the v1 API (`azure_api_version: v1`) uses OpenAI's paths under `/openai/v1`. The model
//!   name of `@slug/model` is the deployment name; the body's `model` keeps it too (the classic
//!   API ignores it, the v1 API needs it). See `url`.
//! - **Auth**: an `api-key: <key>` header; without `api_key`, an Entra ID token as
//!   `Authorization: Bearer` (client credentials, else managed identity: see `entra`).
//! - **Streams** may start with a chunk whose `choices` is `[]`, carrying only
//!   `prompt_filter_results`; it is forwarded untouched like every other event (it has no
//!   usage, so the gateway never mistakes it for the usage chunk).
//! - **`stream_options`** is rejected by dated versions before `2024-08-01-preview`: it is
//!   dropped for them, so such streams work, without usage.
//! - **Errors** are OpenAI-shaped (a blocked prompt is 400 `code: content_filter`) and passed
//!   on as they are; a 404 gets a hint about the deployment name or the endpoint and version.
//!   A 429's `retry-after-ms` / `x-ms-retry-after-ms` are read like `retry-after`.
//!
//! Everything else (request bodies, answers, SSE framing, `content_filter_results`) is OpenAI's
//! and passes through unchanged, with the shared helpers of [`crate::openai`].

mod entra;
mod url;

use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderValue;
use portico_core::{Endpoint, ProviderKind};
use reqwest::Url;

use crate::openai::{read_answer, transport_error};
use crate::passthrough::{PassthroughAnswer, PassthroughRequest};
use crate::redact::LiveSecrets;
use crate::settings::{AzureSettings, SetupError};
use crate::token::TokenCache;
use crate::{Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse};

use self::url::{AzureApi, request_url};

pub use self::entra::{DEFAULT_AUTHORITY_HOST, IMDS_TOKEN_URL, SCOPE};

/// The `api-version` when the catalog sets no `azure_api_version`: the newest GA version of
/// the classic API (the catalog fills in the same default).
pub const DEFAULT_API_VERSION: &str = portico_core::settings::DEFAULT_AZURE_API_VERSION;

/// The header Azure OpenAI reads the key from.
const API_KEY_HEADER: &str = "api-key";

/// An Azure OpenAI resource.
#[derive(Debug, Clone)]
pub struct AzureOpenAiProvider {
    slug: String,
    client: crate::http::HttpClient,
    /// The resource endpoint, like `https://NAME.openai.azure.com`.
    endpoint: Url,
    api: AzureApi,
    auth: Auth,
}

/// How requests authenticate.
#[derive(Debug, Clone)]
enum Auth {
    /// `api-key`: the key, as a header value marked sensitive (so it is never printed).
    Key(HeaderValue),
    /// `Authorization: Bearer` with an Entra ID token, minted and cached.
    Entra {
        tokens: TokenCache<HeaderValue>,
        live: Arc<LiveSecrets>,
    },
}

impl AzureOpenAiProvider {
    /// An adapter for the resource at `setup.base_url`, authenticating with `setup.api_key`
    /// or else Entra ID (endpoints from the process environment; see `entra`), speaking the
    /// API version of `settings` (`v1` selects the v1 API).
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming the provider and what to set, when the base URL is missing or
    /// the base URL or the key is unusable.
    pub fn new(
        setup: ProviderSetup<'_>,
        settings: &AzureSettings,
    ) -> Result<AzureOpenAiProvider, SetupError> {
        Self::with_env(setup, settings, |name| std::env::var(name).ok())
    }

    /// [`AzureOpenAiProvider::new`] with `env` standing in for the process environment.
    ///
    /// # Errors
    ///
    /// As [`AzureOpenAiProvider::new`].
    pub fn with_env(
        setup: ProviderSetup<'_>,
        settings: &AzureSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AzureOpenAiProvider, SetupError> {
        let slug = setup.slug;
        let kind = ProviderKind::AzureOpenAi;
        let base_url = setup.base_url.ok_or_else(|| {
            SetupError::incomplete(
                slug,
                kind,
                "has no base_url; set it to the resource endpoint, like \
                 https://NAME.openai.azure.com",
            )
        })?;
        let endpoint = Url::parse(base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| {
                SetupError::setting(
                    slug,
                    "base_url",
                    "is not an absolute http(s) URL; set it to the resource endpoint, like \
                     https://NAME.openai.azure.com",
                )
            })?;
        let auth = match setup.api_key.filter(|k| !k.expose().trim().is_empty()) {
            Some(key) => {
                let mut api_key = HeaderValue::from_str(key.expose()).map_err(|_| {
                    SetupError::setting(
                        slug,
                        "api_key",
                        "holds characters that cannot be sent in a header; copy the key again \
                         (it is not shown because it is a secret)",
                    )
                })?;
                api_key.set_sensitive(true);
                Auth::Key(api_key)
            }
            None => {
                let live = LiveSecrets::new();
                let tokens = entra::token_cache(
                    slug,
                    &settings.identity,
                    setup.client,
                    &env,
                    Arc::clone(&live),
                );
                Auth::Entra { tokens, live }
            }
        };
        Ok(AzureOpenAiProvider {
            slug: slug.to_owned(),
            client: setup.client.clone(),
            endpoint,
            api: AzureApi::from_version(&settings.api_version),
            auth,
        })
    }

    /// Adds what Azure's answer alone does not say about a 404: which deployment name was
    /// used, or which endpoint and version.
    fn explain(&self, err: ProviderError, deployment: &str) -> ProviderError {
        match err {
            ProviderError::Status {
                status: 404,
                message,
                error_type,
                code,
                param,
                retry_after,
            } => {
                let hint = if code.as_deref() == Some("DeploymentNotFound") {
                    format!(
                        " (Portico used `{deployment}`, the model name of `@{}/{deployment}`, \
                         as the deployment name; check that the Azure resource has a \
                         deployment of that name)",
                        self.slug
                    )
                } else {
                    match &self.api {
                        AzureApi::Classic { api_version } => format!(
                            " (check the base_url of provider @{}, which must be the resource \
                             endpoint, its deployment `{deployment}`, and its \
                             azure_api_version `{api_version}`)",
                            self.slug
                        ),
                        AzureApi::V1 => format!(
                            " (check the base_url of provider @{}, which must be the resource \
                             endpoint, and that the resource offers the v1 API)",
                            self.slug
                        ),
                    }
                };
                ProviderError::Status {
                    status: 404,
                    message: format!("{message}{hint}"),
                    error_type,
                    code,
                    param,
                    retry_after,
                }
            }
            other => other,
        }
    }
}

#[async_trait]
impl Provider for AzureOpenAiProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureOpenAi
    }

    fn live_secrets(&self) -> Option<Arc<LiveSecrets>> {
        match &self.auth {
            Auth::Key(_) => None,
            Auth::Entra { live, .. } => Some(Arc::clone(live)),
        }
    }

    async fn send(&self, mut req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let url = request_url(&self.endpoint, &self.api, req.endpoint, &req.model);
        if !self.api.accepts_stream_options() {
            req.body.remove("stream_options");
        }
        let (name, value) = self.auth_header().await?;
        let mut builder = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(name, value)
            .body(crate::http::request_body(&req.body));
        if req.stream && req.endpoint != Endpoint::Embeddings {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        let response = builder.send().await.map_err(transport_error)?;
        // Only an error status becomes a 404 `Status`, so the hint is added to nothing else.
        read_answer(&self.client, response)
            .await
            .map_err(|err| self.explain(err, &req.model))
    }

    /// Image generation, transcriptions and speech at the deployment's URL; Azure OpenAI has
    /// no moderations endpoint (its content filters run on every call instead), so that one
    /// is refused like any kind without it.
    async fn send_passthrough(
        &self,
        req: PassthroughRequest,
    ) -> Option<Result<PassthroughAnswer, ProviderError>> {
        if req.endpoint == Endpoint::Moderations {
            return None;
        }
        Some(self.pass_through(req).await)
    }
}

impl AzureOpenAiProvider {
    /// The header a request authenticates with: `api-key`, or an Entra ID bearer token
    /// (fetched, or cached until shortly before it expires).
    async fn auth_header(&self) -> Result<(&'static str, http::HeaderValue), ProviderError> {
        Ok(match &self.auth {
            Auth::Key(key) => (API_KEY_HEADER, key.clone()),
            Auth::Entra { tokens, .. } => {
                let token = tokens
                    .get()
                    .await
                    .map_err(crate::token::MintError::into_provider_error)?;
                (http::header::AUTHORIZATION.as_str(), token)
            }
        })
    }

    async fn pass_through(
        &self,
        req: PassthroughRequest,
    ) -> Result<PassthroughAnswer, ProviderError> {
        let (body, content_type) = req.wire_body()?;
        let url = request_url(&self.endpoint, &self.api, req.endpoint, &req.model);
        let (name, value) = self.auth_header().await?;
        let builder = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(name, value)
            .body(body);
        crate::passthrough::send(&self.client, builder)
            .await
            .map_err(|err| self.explain(err, &req.model))
    }
}

#[cfg(test)]
mod entra_tests;
#[cfg(test)]
mod tests;
