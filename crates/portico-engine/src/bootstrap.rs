//! Start-up: applies the catalog file (plus providers found in the environment and the
//! built-in `@mock`) to the store, and makes sure an admin key exists.
//!
//! Generated secrets are returned, not printed: the binary prints them once, and they exist
//! nowhere else (the store keeps only their hashes).

use portico_config::{Catalog, KeyKind, ProviderConfig};
use portico_core::{KeyHash, ProviderKind, Secret, generate_key, key_hint};
use portico_store::{
    ApplyReport, CatalogApply, KeySpec, KeyType, ModelRecord, Pricing, ProviderRecord,
    RecordSource, Store, StoreError,
};

/// What start-up did, with the secrets to show the user once.
#[derive(Debug, Default)]
pub struct BootstrapReport {
    /// A newly generated admin key, to print once.
    pub generated_admin_key: Option<Secret>,
    /// Newly created file keys whose secret was generated: `(name, secret)`, to print once.
    pub generated_keys: Vec<(String, Secret)>,
    /// What the catalog apply changed.
    pub apply: ApplyReport,
}

/// Applies `catalog` (and, when `catalog.auto_providers`, `env_providers` and `@mock`) to the
/// store, and settles the admin key: `admin_key` (from the environment or the file) replaces
/// the stored one; without it, one is generated on first start.
pub async fn bootstrap(
    store: &dyn Store,
    catalog: &Catalog,
    env_providers: Vec<ProviderConfig>,
    admin_key: Option<&Secret>,
) -> Result<BootstrapReport, StoreError> {
    let mut report = BootstrapReport::default();
    let mut providers: Vec<ProviderRecord> = catalog
        .providers
        .iter()
        .map(|p| provider_record(p, RecordSource::File))
        .collect();
    if catalog.auto_providers {
        for p in env_providers {
            if !providers.iter().any(|existing| existing.slug == p.slug) {
                providers.push(provider_record(&p, RecordSource::Env));
            }
        }
        if !providers.iter().any(|p| p.slug == "mock") {
            providers.push(ProviderRecord {
                slug: "mock".to_owned(),
                kind: ProviderKind::Mock,
                base_url: None,
                api_key: None,
                settings: serde_json::json!({}),
                models: None,
                source: RecordSource::Default,
            });
        }
    }

    let mut generated = Vec::new();
    let keys = catalog
        .keys
        .iter()
        .map(|k| {
            let (secret, fixed) = match &k.key {
                Some(secret) => (secret.clone(), true),
                None => {
                    let label = match k.kind {
                        KeyKind::Service => "svc",
                        KeyKind::User => "user",
                    };
                    let secret = Secret::new(generate_key(label));
                    generated.push((k.name.clone(), secret.clone()));
                    (secret, false)
                }
            };
            KeySpec {
                name: k.name.clone(),
                key_type: match k.kind {
                    KeyKind::Service => KeyType::Service,
                    KeyKind::User => KeyType::User,
                },
                user: k.user.clone(),
                hash: KeyHash::of(secret.expose()),
                hint: key_hint(secret.expose()),
                fixed,
                allowed_models: k.allowed_models.clone(),
                log_payloads: k.log_payloads,
            }
        })
        .collect();

    report.apply = store
        .apply_catalog(&CatalogApply { providers, keys })
        .await?;
    report.generated_keys = generated
        .into_iter()
        .filter(|(name, _)| report.apply.created_keys.contains(name))
        .collect();

    match admin_key {
        Some(secret) => {
            store
                .ensure_admin_key(
                    KeyHash::of(secret.expose()),
                    &key_hint(secret.expose()),
                    true,
                )
                .await?;
        }
        None if !store.has_admin_key().await? => {
            let secret = Secret::new(generate_key("admin"));
            store
                .ensure_admin_key(
                    KeyHash::of(secret.expose()),
                    &key_hint(secret.expose()),
                    false,
                )
                .await?;
            report.generated_admin_key = Some(secret);
        }
        None => {}
    }
    Ok(report)
}

fn provider_record(p: &ProviderConfig, source: RecordSource) -> ProviderRecord {
    let settings = match &p.mock {
        Some(mock) => serde_json::json!({
            "latency_ms": mock.latency_ms,
            "chunk_delay_ms": mock.chunk_delay_ms,
            "failure_rate": mock.failure_rate,
        }),
        None => serde_json::json!({}),
    };
    ProviderRecord {
        slug: p.slug.clone(),
        kind: p.kind,
        base_url: p.base_url.clone(),
        api_key: p.api_key.clone(),
        settings,
        models: p.models.as_ref().map(|models| {
            models
                .iter()
                .map(|m| ModelRecord {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    pricing: m.pricing.map(|p| Pricing {
                        input_per_mtok: p.input_per_mtok,
                        output_per_mtok: p.output_per_mtok,
                        cache_read_per_mtok: p.cache_read_per_mtok,
                        cache_write_per_mtok: p.cache_write_per_mtok,
                    }),
                })
                .collect()
        }),
        source,
    }
}
