//! Applying the catalog file: at start-up (plus providers found in the environment and the
//! built-in `@mock`, and making sure an admin key exists), and to a running instance
//! (`portico apply`, through the admin API). Both go through one function, so a file applied
//! either way leaves the catalog the same.
//!
//! Generated secrets are returned, not printed: the binary prints them once, and they exist
//! nowhere else (the store keeps only their hashes).

use portico_config::{Catalog, KeyKind, ProviderConfig};
use portico_core::{KeyHash, ProviderKind, Secret, generate_key, key_hint};
use portico_store::{
    ApplyOptions, ApplyReport, CatalogApply, ConfigSpec, GuardrailSpec, KeySpec, KeyType,
    ModelRecord, Pricing, ProviderRecord, RecordSource, Store, StoreError,
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
///
/// Without a catalog (a start without `--config`), the records of the last file applied, at
/// a start or through `portico apply`, stay as they are; the environment's providers and
/// `@mock` are brought up to date beside them.
pub async fn bootstrap(
    store: &dyn Store,
    catalog: Option<&Catalog>,
    env_providers: Vec<ProviderConfig>,
    admin_key: Option<&Secret>,
) -> Result<BootstrapReport, StoreError> {
    let options = ApplyOptions {
        dry_run: false,
        keep_file_records: catalog.is_none(),
    };
    let applied = run(store, catalog, env_providers, options).await?;
    let mut report = BootstrapReport {
        generated_admin_key: None,
        generated_keys: applied.generated_keys,
        apply: applied.report,
    };

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

/// What applying a catalog did (or, for a dry run, would do).
#[derive(Debug, Default)]
pub struct AppliedCatalog {
    /// The store's report: one change per object written.
    pub report: ApplyReport,
    /// Keys this apply created with a generated secret: `(name, secret)`, to show once. Empty
    /// for a dry run, which creates nothing.
    pub generated_keys: Vec<(String, Secret)>,
}

/// The first provider of `catalog` whose `base_url` `allowlist` refuses (the SSRF guard,
/// `--upstream-allowlist`): its field path (`providers[2].base_url`) and why. Checked before a
/// catalog is applied, at start and by `POST /admin/v1/apply`.
pub fn refused_base_url(
    catalog: &Catalog,
    allowlist: &portico_providers::upstream_guard::UpstreamAllowlist,
) -> Option<(String, String)> {
    catalog.providers.iter().enumerate().find_map(|(i, p)| {
        let url = p.base_url.as_deref()?;
        let err = allowlist.check_url_str(url).err()?;
        Some((
            format!("providers[{i}].base_url"),
            format!("provider `{}`: base_url `{url}`: {err}", p.slug),
        ))
    })
}

/// Applies `catalog` to a running instance's store (`POST /admin/v1/apply`): the catalog ends
/// up as a start with the file would leave it (the admin key and the other start-up settings
/// aside). With `dry_run`, the report of what the apply would change, nothing written.
pub async fn apply_file(
    store: &dyn Store,
    catalog: &Catalog,
    env_providers: Vec<ProviderConfig>,
    dry_run: bool,
) -> Result<AppliedCatalog, StoreError> {
    let options = ApplyOptions {
        dry_run,
        keep_file_records: false,
    };
    run(store, Some(catalog), env_providers, options).await
}

/// The one apply of a catalog (see [`bootstrap`]): its records, the environment's and the
/// built-in providers, written by the store's diff.
async fn run(
    store: &dyn Store,
    catalog: Option<&Catalog>,
    env_providers: Vec<ProviderConfig>,
    options: ApplyOptions,
) -> Result<AppliedCatalog, StoreError> {
    let (apply, generated) = prepare(store, catalog, env_providers).await?;
    let report = store.apply_catalog_with(&apply, options).await?;
    let generated_keys = if options.dry_run {
        Vec::new()
    } else {
        generated
            .into_iter()
            .filter(|(name, _)| report.created_keys.contains(name))
            .collect()
    };
    Ok(AppliedCatalog {
        report,
        generated_keys,
    })
}

/// The store's form of a catalog, with a fresh secret for each of its keys without a fixed
/// one (used only if the key is created). Without a catalog: the environment's providers and
/// `@mock` only, beside the stored file records.
async fn prepare(
    store: &dyn Store,
    catalog: Option<&Catalog>,
    env_providers: Vec<ProviderConfig>,
) -> Result<(CatalogApply, Vec<(String, Secret)>), StoreError> {
    let mut providers: Vec<ProviderRecord> = catalog
        .iter()
        .flat_map(|c| &c.providers)
        .map(|p| provider_record(p, RecordSource::File))
        .collect();
    // A provider created through the admin API wins over one detected from the environment
    // under the same slug: detection is a convenience, and must not stop the next start. So
    // does a file's provider kept by a start without a file.
    let kept_slugs: Vec<String> = store
        .list_providers()
        .await?
        .into_iter()
        .filter(|p| {
            p.source == RecordSource::Api || (catalog.is_none() && p.source == RecordSource::File)
        })
        .map(|p| p.slug)
        .collect();
    let taken = |providers: &[ProviderRecord], slug: &str| {
        providers.iter().any(|existing| existing.slug == slug)
            || kept_slugs.iter().any(|s| s == slug)
    };
    if catalog.is_none_or(|c| c.auto_providers) {
        for p in env_providers {
            if !taken(&providers, &p.slug) {
                providers.push(provider_record(&p, RecordSource::Env));
            }
        }
        if !taken(&providers, "mock") {
            providers.push(ProviderRecord {
                slug: "mock".to_owned(),
                kind: ProviderKind::Mock,
                base_url: None,
                api_key: None,
                settings: serde_json::json!({}),
                credentials: Default::default(),
                models: None,
                source: RecordSource::Default,
                limits: Default::default(),
            });
        }
    }
    let Some(catalog) = catalog else {
        let apply = CatalogApply {
            providers,
            ..CatalogApply::default()
        };
        return Ok((apply, Vec::new()));
    };

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
                        KeyKind::Gateway => "gw",
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
                    KeyKind::Gateway => KeyType::Gateway,
                },
                user: k.user.clone(),
                hash: KeyHash::of(secret.expose()),
                hint: key_hint(secret.expose()),
                fixed,
                allowed_models: k.allowed_models.clone(),
                log_payloads: k.log_payloads,
                config: k.config.clone(),
                limits: k.limits,
                expires_at_ms: k.expires_at_ms,
            }
        })
        .collect();
    let configs = catalog
        .configs
        .iter()
        .map(|c| ConfigSpec {
            id: c.id.clone(),
            config: c.config.clone(),
        })
        .collect();

    // The file's guardrails, compiled when the file was loaded, as the file gives them.
    let guardrails = catalog
        .guardrails
        .iter()
        .map(|g| GuardrailSpec {
            id: g.id.clone(),
            guardrail: g.raw.clone(),
        })
        .collect();

    let apply = CatalogApply {
        providers,
        keys,
        configs,
        budgets: catalog.budgets.clone(),
        guardrails,
    };
    Ok((apply, generated))
}

/// The stored form of a catalog provider: its kind-specific settings (and a mock's settings)
/// in one JSON object under the file's field names, its secrets beside it. The admin API
/// stores the providers it is given the same way.
pub fn provider_record(p: &ProviderConfig, source: RecordSource) -> ProviderRecord {
    let mut settings = p.settings.clone();
    if let Some(mock) = &p.mock {
        settings.insert("latency_ms".to_owned(), mock.latency_ms.into());
        settings.insert("chunk_delay_ms".to_owned(), mock.chunk_delay_ms.into());
        settings.insert("failure_rate".to_owned(), mock.failure_rate.into());
    }
    ProviderRecord {
        slug: p.slug.clone(),
        kind: p.kind,
        base_url: p.base_url.clone(),
        api_key: p.api_key.clone(),
        settings: serde_json::Value::Object(settings),
        credentials: p.credentials.clone(),
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
        limits: p.limits,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use portico_config::MockSettings;
    use portico_store::{MasterKey, SqliteStore};
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn api_providers_win_over_detected_ones_of_the_same_slug() {
        let store = SqliteStore::open_in_memory(MasterKey::generate())
            .await
            .unwrap();
        let mut api = config(ProviderKind::OpenAi);
        api.slug = "openai".to_owned();
        api.api_key = Some(Secret::new("sk-from-the-api"));
        store
            .create_provider(&provider_record(&api, RecordSource::Api))
            .await
            .unwrap();
        let mut detected = api.clone();
        detected.api_key = Some(Secret::new("sk-from-the-env"));
        let catalog = Catalog {
            auto_providers: true,
            ..Catalog::default()
        };
        let secret = Secret::new("prt-admin-secret-for-tests");
        bootstrap(&store, Some(&catalog), vec![detected], Some(&secret))
            .await
            .unwrap();
        let stored = store.get_provider("openai").await.unwrap().unwrap();
        assert_eq!(stored.source, RecordSource::Api);
        assert_eq!(stored.api_key, Some(Secret::new("sk-from-the-api")));
        assert!(store.get_provider("mock").await.unwrap().is_some());
    }

    fn config(kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            slug: "p".to_owned(),
            kind,
            api_key: None,
            base_url: None,
            models: None,
            mock: None,
            settings: serde_json::Map::new(),
            credentials: BTreeMap::new(),
            limits: Default::default(),
        }
    }

    #[test]
    fn mock_settings_are_stored_as_before() {
        let mut p = config(ProviderKind::Mock);
        p.mock = Some(MockSettings {
            latency_ms: 5,
            chunk_delay_ms: 2,
            failure_rate: 0.5,
        });
        let record = provider_record(&p, RecordSource::File);
        assert_eq!(
            record.settings,
            json!({"latency_ms": 5, "chunk_delay_ms": 2, "failure_rate": 0.5})
        );
        assert!(record.credentials.is_empty());
        assert_eq!(
            provider_record(&config(ProviderKind::Mock), RecordSource::Default).settings,
            json!({})
        );
    }

    #[test]
    fn kind_settings_and_credentials_are_carried_over() {
        let mut p = config(ProviderKind::Bedrock);
        p.settings
            .insert("aws_region".to_owned(), json!("eu-west-1"));
        p.credentials.insert(
            "aws_secret_access_key".to_owned(),
            Secret::new("aws-secret"),
        );
        let record = provider_record(&p, RecordSource::File);
        assert_eq!(record.settings, json!({"aws_region": "eu-west-1"}));
        assert_eq!(record.credentials, p.credentials);
        assert_eq!(record.kind, ProviderKind::Bedrock);
    }
}
