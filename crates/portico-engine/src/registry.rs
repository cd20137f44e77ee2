//! Builds the adapter for a stored provider.
//!
//! A translating adapter is built from a [`ProviderSetup`] by its
//! `new(setup) -> Result<Self, String>`, whose error already names the provider, so its arm
//! here is one line:
//! `ProviderKind::X => XProvider::new(provider_setup(record, client)).map(|p| Arc::new(p) as Arc<dyn Provider>),`

use std::sync::Arc;

use portico_anthropic::AnthropicProvider;
use portico_bedrock::BedrockProvider;
use portico_core::ProviderKind;
use portico_gemini::GeminiProvider;
use portico_providers::azure::AzureOpenAiProvider;
use portico_providers::mock::MockProvider;
use portico_providers::openai::OpenAiProvider;
use portico_providers::{Provider, ProviderSetup};
use portico_store::ProviderRecord;

/// What an adapter is built from: `record`'s fields, borrowed, and the shared `client`.
pub(crate) fn provider_setup<'a>(
    record: &'a ProviderRecord,
    client: &'a reqwest::Client,
) -> ProviderSetup<'a> {
    ProviderSetup {
        slug: &record.slug,
        base_url: record.base_url.as_deref(),
        api_key: record.api_key.as_ref(),
        settings: &record.settings,
        credentials: &record.credentials,
        client,
    }
}

/// The adapter for one stored provider, sharing `client`'s connection pool.
///
/// Fails with a message naming the provider when its record cannot make a working adapter
/// (for example an `openai-compatible` provider without a base URL).
pub fn build_provider(
    record: &ProviderRecord,
    client: &reqwest::Client,
) -> Result<Arc<dyn Provider>, String> {
    match record.kind {
        ProviderKind::Mock => {
            let mock = MockProvider::from_settings(&record.settings)
                .map_err(|e| format!("provider @{}: invalid mock settings: {e}", record.slug))?;
            Ok(Arc::new(mock))
        }
        ProviderKind::AzureOpenAi => AzureOpenAiProvider::new(provider_setup(record, client))
            .map(|p| Arc::new(p) as Arc<dyn Provider>),
        ProviderKind::Anthropic => AnthropicProvider::new(provider_setup(record, client))
            .map(|p| Arc::new(p) as Arc<dyn Provider>),
        ProviderKind::Bedrock => BedrockProvider::new(provider_setup(record, client))
            .map(|p| Arc::new(p) as Arc<dyn Provider>),
        ProviderKind::Gemini => GeminiProvider::new(provider_setup(record, client))
            .map(|p| Arc::new(p) as Arc<dyn Provider>),
        ProviderKind::OpenAi
        | ProviderKind::OpenAiCompatible
        | ProviderKind::Mistral
        | ProviderKind::Groq
        | ProviderKind::DeepSeek
        | ProviderKind::Together
        | ProviderKind::Ollama => {
            let setup = provider_setup(record, client);
            let base_url = setup
                .base_url
                .or_else(|| record.kind.default_base_url())
                .ok_or_else(|| {
                    format!(
                        "provider @{} (kind {}) has no base_url; set one",
                        record.slug, record.kind
                    )
                })?;
            Ok(Arc::new(OpenAiProvider::new(
                record.kind,
                setup.client.clone(),
                base_url,
                setup.api_key.cloned(),
            )))
        }
    }
}
