//! An immutable view of the catalog and keys, replaced whole on reload.
//!
//! Requests read it through `ArcSwap` without locks; a reload builds a new one off the request
//! path and swaps it in, so a request sees either the old catalog or the new one, never a mix.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use portico_core::{KeyHash, Limits, NamedBudget, ProviderKind};
use portico_providers::Provider;
use portico_providers::http::HttpClient;
use portico_providers::mock::MOCK_MODELS;
use portico_routing::RoutingConfig;
use portico_store::{ConfigRecord, KeyRecord, KeyType, ModelRecord, ProviderRecord, Store};

use crate::registry::build_provider;

/// One provider of the catalog, with its adapter.
pub struct ProviderEntry {
    /// Addressed as `@slug`.
    pub slug: String,
    /// The dialect.
    pub kind: ProviderKind,
    /// The allow-list, in catalog order; `None` passes any model name through.
    pub models: Option<Vec<ModelRecord>>,
    model_ids: Option<HashSet<String>>,
    /// The adapter.
    pub provider: Arc<dyn Provider>,
    /// Its budget and rate limit (`provider:<slug>`), applied per attempt.
    pub limits: Limits,
}

impl ProviderEntry {
    /// The catalog's price override of `model`, when its allow-list sets one.
    pub fn pricing(&self, model: &str) -> Option<&portico_store::Pricing> {
        self.models
            .as_ref()?
            .iter()
            .find(|m| m.id == model)?
            .pricing
            .as_ref()
    }

    /// Whether `model` may be sent to this provider.
    pub fn allows_model(&self, model: &str) -> bool {
        self.model_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(model))
    }

    /// The model names `GET /v1/models` advertises for this provider: the allow-list, or for
    /// the mock provider its built-in models. A provider without an allow-list accepts any
    /// name but advertises none, since the gateway cannot know them without asking upstream.
    pub fn advertised_models(&self) -> Vec<&str> {
        match &self.models {
            Some(models) => models.iter().map(|m| m.id.as_str()).collect(),
            None if self.kind == ProviderKind::Mock => MOCK_MODELS.to_vec(),
            None => Vec::new(),
        }
    }
}

/// What a key may address: `@slug` (any model of it) or `@slug/model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    /// Every model of one provider.
    Provider(String),
    /// One model of one provider.
    Model {
        /// The provider slug.
        slug: String,
        /// The model name.
        model: String,
    },
}

impl ModelPattern {
    /// Parses `@slug` or `@slug/model`; `None` for anything else.
    pub fn parse(s: &str) -> Option<ModelPattern> {
        let rest = s.strip_prefix('@')?;
        match rest.split_once('/') {
            Some((slug, model)) if !slug.is_empty() && !model.is_empty() => {
                Some(ModelPattern::Model {
                    slug: slug.to_owned(),
                    model: model.to_owned(),
                })
            }
            None if !rest.is_empty() => Some(ModelPattern::Provider(rest.to_owned())),
            _ => None,
        }
    }

    /// Whether the pattern allows `model` of provider `slug`.
    pub fn matches(&self, slug: &str, model: &str) -> bool {
        match self {
            ModelPattern::Provider(s) => s == slug,
            ModelPattern::Model { slug: s, model: m } => s == slug && m == model,
        }
    }
}

/// A routing config of the catalog, parsed once when the snapshot is built.
#[derive(Debug)]
pub struct ConfigEntry {
    /// The id keys and `x-portkey-config` name it by.
    pub id: String,
    /// The config JSON as stored: what a header config is merged over
    /// (`portico_routing::merge`) before the result is parsed again.
    pub json: serde_json::Value,
    /// The parsed config, for requests that use it unchanged.
    pub parsed: Arc<RoutingConfig>,
}

/// Two entries are the same config when id and JSON are; `parsed` follows from the JSON.
impl PartialEq for ConfigEntry {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.json == other.json
    }
}

/// The caller of a request as the request path needs it: a stored gateway key, or a JWT
/// caller made for the request ([`KeyEntry::for_jwt`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry {
    /// Stable id (empty for a JWT caller).
    pub id: String,
    /// Name, shown in logs ([`crate::auth::JWT_KEY_NAME`] for a JWT caller).
    pub name: String,
    /// Admin, service, user or gateway (a JWT caller is a user).
    pub key_type: KeyType,
    /// The person: a user key's `user`, or a JWT's user claim.
    pub user: Option<String>,
    /// How the caller proved who it is.
    pub credential: Credential,
    /// What the key may address; `None` means everything.
    pub allowed: Option<Vec<ModelPattern>>,
    /// Whether payloads are logged.
    pub log_payloads: bool,
    /// The routing config attached to the key: applies to each of its requests, with a
    /// request's `x-portkey-config` merged over it.
    pub config: Option<Arc<ConfigEntry>>,
    /// The key's budget and rate limit (`key:<name>`); on a user key they are its user's
    /// (`user:<user>`), shared by every key of that user.
    pub limits: Limits,
    /// The limits of the caller's user (`user:<user>`) when no user key of theirs declares
    /// any: what JWT authentication sets from `auth.jwt.budget` for a token's subject (with
    /// `user` the subject). `None` for gateway keys.
    pub default_user_limits: Option<Limits>,
    /// When the key was revoked (Unix ms); authentication refuses it, saying so.
    pub revoked_at_ms: Option<i64>,
    /// From when the key is refused (Unix ms), by the gateway's clock; `None`: never.
    pub expires_at_ms: Option<i64>,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A stored gateway key (its hash is in the snapshot).
    Key,
    /// A JWT checked against `auth.jwt`.
    Jwt,
}

impl KeyEntry {
    /// The caller of a request with a valid JWT: named [`crate::auth::JWT_KEY_NAME`], a user
    /// (`user`, the token's user claim) with `default_user_limits` (`auth.jwt.budget`) unless a
    /// user key of theirs declares limits, every model allowed, no config, payloads logged.
    pub fn for_jwt(user: String, default_user_limits: Limits) -> KeyEntry {
        KeyEntry {
            id: String::new(),
            name: crate::auth::JWT_KEY_NAME.to_owned(),
            key_type: KeyType::User,
            user: Some(user),
            credential: Credential::Jwt,
            allowed: None,
            log_payloads: true,
            config: None,
            limits: Limits::default(),
            default_user_limits: Some(default_user_limits),
            revoked_at_ms: None,
            expires_at_ms: None,
        }
    }

    /// Whether this key may use `model` of provider `slug`.
    pub fn may_use(&self, slug: &str, model: &str) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(slug, model)))
    }
}

/// The catalog and keys a request is served from.
#[derive(Default)]
pub struct Snapshot {
    providers: HashMap<String, ProviderEntry>,
    slugs: Vec<String>,
    keys: HashMap<KeyHash, Arc<KeyEntry>>,
    configs: HashMap<String, Arc<ConfigEntry>>,
    /// The `budgets:` list: limits on metadata values.
    budgets: Vec<NamedBudget>,
    /// The stored named guardrails (the catalog file's and the admin API's; JSON as
    /// stored), for the guardrails policy.
    guardrails: Vec<(String, serde_json::Value)>,
}

impl Snapshot {
    /// Reads providers, keys and configs from the store and builds a snapshot of them.
    pub async fn load(store: &dyn Store, client: &HttpClient) -> Result<Snapshot, String> {
        let providers = store.list_providers().await.map_err(|e| e.to_string())?;
        let keys = store.list_keys().await.map_err(|e| e.to_string())?;
        let configs = store.list_configs().await.map_err(|e| e.to_string())?;
        let budgets = store.list_budgets().await.map_err(|e| e.to_string())?;
        let guardrails = store.list_guardrails().await.map_err(|e| e.to_string())?;
        Ok(Snapshot::build(providers, keys, configs, client)?
            .with_budgets(budgets.into_iter().map(|b| b.budget).collect())
            .with_guardrails(
                guardrails
                    .into_iter()
                    .map(|g| (g.id, g.guardrail))
                    .collect(),
            ))
    }

    /// Builds a snapshot from stored records; revoked keys are left out. A stored config
    /// that does not parse (the store validates every write, so only a database written by
    /// another version can hold one) fails the build, naming the config.
    pub fn build(
        providers: Vec<ProviderRecord>,
        keys: Vec<KeyRecord>,
        configs: Vec<ConfigRecord>,
        client: &HttpClient,
    ) -> Result<Snapshot, String> {
        let mut snapshot = Snapshot::default();
        for record in configs {
            let parsed = RoutingConfig::parse(&record.config)
                .map_err(|e| format!("stored config `{}`: {e}", record.id))?;
            snapshot.configs.insert(
                record.id.clone(),
                Arc::new(ConfigEntry {
                    id: record.id,
                    json: record.config,
                    parsed: Arc::new(parsed),
                }),
            );
        }
        for record in providers {
            let provider = build_provider(&record, client).map_err(|e| e.to_string())?;
            let model_ids = record
                .models
                .as_ref()
                .map(|models| models.iter().map(|m| m.id.clone()).collect());
            snapshot.slugs.push(record.slug.clone());
            snapshot.providers.insert(
                record.slug.clone(),
                ProviderEntry {
                    slug: record.slug,
                    kind: record.kind,
                    models: record.models,
                    model_ids,
                    provider,
                    limits: record.limits,
                },
            );
        }
        snapshot.slugs.sort();
        // Revoked (and expired) keys are kept, so that authentication can say why it refuses
        // them rather than calling them unknown.
        for key in keys {
            let allowed = key.allowed_models.map(|patterns| {
                patterns
                    .iter()
                    .filter_map(|p| ModelPattern::parse(p))
                    .collect()
            });
            // The store keeps references intact (a config in use cannot be deleted); a revoked
            // key is never routed, so a reference it kept does not matter.
            let config = match &key.config {
                Some(id) if key.revoked_at_ms.is_some() => snapshot.configs.get(id).cloned(),
                Some(id) => Some(Arc::clone(snapshot.configs.get(id).ok_or_else(|| {
                    format!(
                        "key `{}` names config `{id}`, which is not stored",
                        key.name
                    )
                })?)),
                None => None,
            };
            snapshot.keys.insert(
                key.hash,
                Arc::new(KeyEntry {
                    id: key.id,
                    name: key.name,
                    key_type: key.key_type,
                    user: key.user,
                    credential: Credential::Key,
                    allowed,
                    log_payloads: key.log_payloads,
                    config,
                    limits: key.limits,
                    default_user_limits: None,
                    revoked_at_ms: key.revoked_at_ms,
                    expires_at_ms: key.expires_at_ms,
                }),
            );
        }
        Ok(snapshot)
    }

    /// The provider addressed as `@slug`.
    pub fn provider(&self, slug: &str) -> Option<&ProviderEntry> {
        self.providers.get(slug)
    }

    /// Every provider, ordered by slug.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderEntry> {
        self.slugs.iter().filter_map(|s| self.providers.get(s))
    }

    /// The stored key with this hash, revoked and expired ones included (authentication
    /// refuses those, saying why).
    pub fn key(&self, hash: &KeyHash) -> Option<&Arc<KeyEntry>> {
        self.keys.get(hash)
    }

    /// The routing config with this id (what `x-portkey-config: <id>` names).
    pub fn config(&self, id: &str) -> Option<&Arc<ConfigEntry>> {
        self.configs.get(id)
    }

    /// The ids of the catalog's routing configs, in no particular order.
    pub fn config_ids(&self) -> impl Iterator<Item = &str> {
        self.configs.keys().map(String::as_str)
    }

    /// How many keys are not revoked.
    pub fn key_count(&self) -> usize {
        self.keys().count()
    }

    /// Every key that is not revoked (expired ones included: an expiry is decided per
    /// request, by the clock), in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<KeyEntry>> {
        self.keys.values().filter(|k| k.revoked_at_ms.is_none())
    }

    /// The same snapshot with the catalog's `budgets:` list.
    #[must_use]
    pub fn with_budgets(mut self, budgets: Vec<NamedBudget>) -> Snapshot {
        self.budgets = budgets;
        self
    }

    /// The `budgets:` list, in name order.
    pub fn budgets(&self) -> &[NamedBudget] {
        &self.budgets
    }

    /// The same snapshot with the stored named guardrails (id, JSON).
    #[must_use]
    pub fn with_guardrails(mut self, guardrails: Vec<(String, serde_json::Value)>) -> Snapshot {
        self.guardrails = guardrails;
        self
    }

    /// The stored named guardrails (id, JSON as stored), in id order.
    pub fn guardrails(&self) -> &[(String, serde_json::Value)] {
        &self.guardrails
    }
}

#[cfg(test)]
mod tests {
    use portico_store::RecordSource;
    use serde_json::json;

    use super::*;

    fn key(name: &str, config: Option<&str>) -> KeyRecord {
        KeyRecord {
            id: format!("id-{name}"),
            name: name.to_owned(),
            key_type: KeyType::Service,
            user: None,
            hash: KeyHash::of(&format!("secret-of-{name}")),
            hint: String::new(),
            allowed_models: None,
            log_payloads: true,
            config: config.map(str::to_owned),
            source: RecordSource::File,
            created_at_ms: 0,
            revoked_at_ms: None,
            limits: Limits::default(),
            expires_at_ms: None,
        }
    }

    fn client() -> HttpClient {
        portico_providers::http::build_client(Default::default()).unwrap()
    }

    fn config(id: &str, json: serde_json::Value) -> ConfigRecord {
        ConfigRecord {
            id: id.to_owned(),
            config: json,
            source: RecordSource::Api,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn configs_are_found_by_id_and_shared_with_the_keys_that_use_them() {
        let retry = json!({"retry": {"attempts": 2}});
        let snapshot = Snapshot::build(
            Vec::new(),
            vec![key("with", Some("retry")), key("without", None)],
            vec![config("retry", retry.clone())],
            &client(),
        )
        .unwrap();
        let entry = snapshot.config("retry").unwrap();
        assert_eq!(entry.json, retry);
        assert!(!entry.parsed.has_targets());
        assert!(snapshot.config("other").is_none());
        let with = snapshot.key(&KeyHash::of("secret-of-with")).unwrap();
        let attached = with.config.as_ref().unwrap();
        assert!(Arc::ptr_eq(attached, entry), "parsed once, shared");
        let without = snapshot.key(&KeyHash::of("secret-of-without")).unwrap();
        assert!(without.config.is_none());
    }

    #[test]
    fn a_dangling_or_unparsable_stored_config_fails_the_build() {
        let err = Snapshot::build(
            Vec::new(),
            vec![key("k", Some("gone"))],
            Vec::new(),
            &client(),
        )
        .err()
        .unwrap();
        assert!(err.contains("config `gone`"), "{err}");
        let err = Snapshot::build(
            Vec::new(),
            Vec::new(),
            vec![config("bad", json!({"retry": {"attempts": 99}}))],
            &client(),
        )
        .err()
        .unwrap();
        assert!(err.starts_with("stored config `bad`: "), "{err}");
    }
}
