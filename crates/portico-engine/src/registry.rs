//! Builds the adapter for a stored provider.
//!
//! A record's kind-specific settings are parsed once, here, into the kind's typed
//! [`KindSettings`] (portico-providers' `settings`); each adapter is built from those and a
//! [`ProviderSetup`], and fails with a [`SetupError`] that names the provider and the setting.
//! The translating adapters (Anthropic, Gemini, Bedrock) are all the one skeleton,
//! `Translating`, over their dialect.
//!
//! Every adapter built here is then guarded by [`redact::guard`]: wrapped in a redactor of
//! all the provider's secrets (the record's `api_key` and `credentials`, and what the adapter
//! found itself), so no answer, stream event or error of any adapter reaches the client, the
//! request log or stderr with a credential in it. This is the one place adapters are built,
//! so the guard cannot be forgotten; a provider without secrets is left unwrapped.

use std::sync::Arc;

use portico_anthropic::AnthropicProvider;
use portico_bedrock::BedrockProvider;
use portico_gemini::GeminiProvider;
use portico_providers::azure::AzureOpenAiProvider;
use portico_providers::http::HttpClient;
use portico_providers::mock::MockProvider;
use portico_providers::openai::OpenAiProvider;
use portico_providers::redact;
use portico_providers::settings::{KindSettings, StoredSettings};
use portico_providers::{Provider, ProviderSetup, SetupError};
use portico_store::ProviderRecord;

/// What an adapter is built from: `record`'s common fields, borrowed, and the shared
/// `client`.
pub(crate) fn provider_setup<'a>(
    record: &'a ProviderRecord,
    client: &'a HttpClient,
) -> ProviderSetup<'a> {
    ProviderSetup {
        slug: &record.slug,
        base_url: record.base_url.as_deref(),
        api_key: record.api_key.as_ref(),
        client,
    }
}

/// The adapter for one stored provider, sharing `client`'s connection pool, guarded by the
/// redactor of its secrets.
///
/// # Errors
///
/// [`SetupError`] naming the provider when its record cannot make a working adapter (a
/// setting of the wrong form, an `openai-compatible` provider without a base URL, ...).
pub fn build_provider(
    record: &ProviderRecord,
    client: &HttpClient,
) -> Result<Arc<dyn Provider>, SetupError> {
    let adapter = build_adapter(record, client)?;
    let secrets = record.api_key.iter().chain(record.credentials.values());
    redact::guard(adapter, secrets).map_err(|error| SetupError::Redactor {
        slug: record.slug.clone(),
        error,
    })
}

/// The bare adapter for one stored provider.
fn build_adapter(
    record: &ProviderRecord,
    client: &HttpClient,
) -> Result<Arc<dyn Provider>, SetupError> {
    let settings = KindSettings::parse(StoredSettings {
        slug: &record.slug,
        kind: record.kind,
        settings: &record.settings,
        credentials: &record.credentials,
    })?;
    let setup = provider_setup(record, client);
    Ok(match settings {
        KindSettings::Mock(options) => Arc::new(MockProvider::new(options)),
        KindSettings::AzureOpenAi(s) => Arc::new(AzureOpenAiProvider::new(setup, &s)?),
        KindSettings::Anthropic(s) => Arc::new(AnthropicProvider::new(setup, &s)?),
        KindSettings::Gemini(s) => Arc::new(GeminiProvider::new(setup, &s)?),
        KindSettings::Bedrock(s) => Arc::new(BedrockProvider::new(setup, &s)?),
        KindSettings::OpenAi => {
            let base_url = setup
                .base_url
                .or_else(|| record.kind.default_base_url())
                .ok_or_else(|| {
                    SetupError::incomplete(&record.slug, record.kind, "has no base_url; set one")
                })?;
            Arc::new(OpenAiProvider::new(
                record.kind,
                setup.client.clone(),
                base_url,
                setup.api_key.cloned(),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use portico_core::{Endpoint, JsonBody, ProviderKind, Secret};
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
            limits: Default::default(),
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
