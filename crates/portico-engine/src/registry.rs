//! Builds the adapter for a stored provider.
//!
//! A translating adapter is built from a [`ProviderSetup`] by its
//! `new(setup) -> Result<Self, String>`, whose error already names the provider, so its arm
//! here is one line:
//! `ProviderKind::X => XProvider::new(provider_setup(record, client)).map(|p| Arc::new(p) as Arc<dyn Provider>),`
//!
//! Every adapter built here is then guarded by [`redact::guard`]: wrapped in a redactor of
//! all the provider's secrets (the record's `api_key` and `credentials`, and what the adapter
//! found itself), so no answer, stream event or error of any adapter reaches the client, the
//! request log or stderr with a credential in it. This is the one place adapters are built,
//! so the guard cannot be forgotten; a provider without secrets is left unwrapped.

use std::sync::Arc;

use portico_anthropic::AnthropicProvider;
use portico_bedrock::BedrockProvider;
use portico_core::ProviderKind;
use portico_gemini::GeminiProvider;
use portico_providers::azure::AzureOpenAiProvider;
use portico_providers::http::HttpClient;
use portico_providers::mock::MockProvider;
use portico_providers::openai::OpenAiProvider;
use portico_providers::redact;
use portico_providers::{Provider, ProviderSetup};
use portico_store::ProviderRecord;

/// What an adapter is built from: `record`'s fields, borrowed, and the shared `client`.
pub(crate) fn provider_setup<'a>(
    record: &'a ProviderRecord,
    client: &'a HttpClient,
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

/// The adapter for one stored provider, sharing `client`'s connection pool, guarded by the
/// redactor of its secrets.
///
/// Fails with a message naming the provider when its record cannot make a working adapter
/// (for example an `openai-compatible` provider without a base URL).
pub fn build_provider(
    record: &ProviderRecord,
    client: &HttpClient,
) -> Result<Arc<dyn Provider>, String> {
    let adapter = build_adapter(record, client)?;
    let secrets = record.api_key.iter().chain(record.credentials.values());
    redact::guard(adapter, secrets).map_err(|e| format!("provider @{}: {e}", record.slug))
}

/// The bare adapter for one stored provider.
fn build_adapter(
    record: &ProviderRecord,
    client: &HttpClient,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use portico_core::{Endpoint, JsonBody, Secret};
    use portico_providers::UpstreamRequest;
    use portico_store::RecordSource;

    use super::*;

    const KEY: &str = "sk-registry-secret-0123456789";

    fn record(kind: ProviderKind, base_url: String, api_key: Option<&str>) -> ProviderRecord {
        ProviderRecord {
            slug: "p".to_owned(),
            kind,
            base_url: Some(base_url),
            api_key: api_key.map(Secret::new),
            settings: serde_json::json!({}),
            credentials: BTreeMap::new(),
            models: None,
            source: RecordSource::File,
        }
    }

    fn chat() -> UpstreamRequest {
        UpstreamRequest {
            endpoint: Endpoint::ChatCompletions,
            model: "m".to_owned(),
            body: JsonBody::parse(Bytes::from_static(br#"{"model":"m","messages":[]}"#)).unwrap(),
            stream: false,
        }
    }

    #[tokio::test]
    async fn every_built_adapter_redacts_its_secrets() {
        // A key in the base URL (as some proxies take it) reaches the transport error's
        // detail: the adapter built here must not let it out, under either kind.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = portico_providers::http::build_client(Default::default()).unwrap();
        for kind in [ProviderKind::OpenAi, ProviderKind::AzureOpenAi] {
            let base = format!("http://{dead}/{KEY}");
            let provider = build_provider(&record(kind, base, Some(KEY)), &client).unwrap();
            let err = provider.send(chat()).await.unwrap_err();
            let api = err.to_api_error("p");
            assert!(api.log_text().contains("[REDACTED]"), "{kind}: {api:?}");
            assert!(!format!("{err:?} {api:?}").contains(KEY), "{kind}: {api:?}");
        }
    }

    #[tokio::test]
    async fn the_catalog_credentials_map_is_redacted_too() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = portico_providers::http::build_client(Default::default()).unwrap();
        let mut rec = record(
            ProviderKind::OpenAiCompatible,
            format!("http://{dead}/{KEY}"),
            None,
        );
        rec.credentials
            .insert("aws_session_token".to_owned(), Secret::new(KEY));
        let provider = build_provider(&rec, &client).unwrap();
        let err = provider.send(chat()).await.unwrap_err();
        assert!(!format!("{err:?}").contains(KEY), "{err:?}");
    }
}
