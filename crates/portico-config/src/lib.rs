//! The catalog file: YAML with `${VAR}` substitution, parsed into raw serde types and validated
//! into a [`Catalog`].
//!
//! Where it sits: above `portico-core` and `portico-routing` (configs are validated with the
//! router's own parser); the binary loads the file, the engine's bootstrap applies the result.
//!
//! What this crate is: pure parsing and validation. It reads a file (or a string) and the
//! environment it is given; it opens no database and starts nothing.
//!
//! Errors ([`ConfigError`]) name the file, the field path (`providers[1].base_url`) and what is
//! wrong, and never include a secret's value. The binary turns them into exit code 2.
//!
//! Main types: [`Catalog`], [`ProviderConfig`], [`ModelConfig`], [`KeyConfig`],
//! [`RoutingConfigEntry`], [`MockSettings`], [`AuthConfig`] and [`JwtConfig`] (`auth.jwt`),
//! [`ConfigError`]; entry points [`load_file`], [`parse_str`], [`detect_env_providers`], and
//! for the admin API's bodies [`parse_provider_json`], [`parse_budget_json`],
//! [`parse_limits_json`]; for `portico apply` (a file applied to a running instance)
//! [`substitute_to_json`] on the client and [`parse_json_document`] on the instance (module
//! `document`). Budgets and rate limits are `portico_core`'s [`Limits`] and [`NamedBudget`]
//! (validated in `limits`).
//!
//! Layout, in pipeline order: `yaml` (the document tree and the YAML reader, `serde-saphyr`),
//! `file` (raw serde types, text → catalog), `schema` (allowed and not-yet-supported fields),
//! `env` (`${VAR}` substitution, providers from the environment), `validate` (raw types → the
//! validated types below), `kind_fields` (the fields only some provider kinds take:
//! `aws_region`, `azure_api_version`, ...), `error`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use portico_core::{Limits, NamedBudget, ProviderKind, Secret};

/// A validated catalog file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalog {
    /// `listen:` (the CLI flag and `PORTICO_LISTEN` win over it).
    pub listen: Option<SocketAddr>,
    /// `data_dir:` (the CLI flag and `PORTICO_DATA_DIR` win over it).
    pub data_dir: Option<PathBuf>,
    /// `admin_key:`; generated on first start when absent everywhere.
    pub admin_key: Option<Secret>,
    /// `auto_providers:` (default true): add `@mock` and providers found in the environment.
    pub auto_providers: bool,
    /// `providers:` in file order; slugs are unique.
    pub providers: Vec<ProviderConfig>,
    /// `configs:` in file order; ids are unique, and each config passed
    /// `portico_routing::RoutingConfig::parse`.
    pub configs: Vec<RoutingConfigEntry>,
    /// `keys:` in file order; names are unique.
    pub keys: Vec<KeyConfig>,
    /// `budgets:` in file order: limits on metadata values; names are unique.
    pub budgets: Vec<NamedBudget>,
    /// `auth:`: JWT callers (`auth.jwt`), when configured.
    pub auth: AuthConfig,
    /// `guardrails:` in file order: named guardrails in Portkey's shape, compiled; ids are
    /// unique.
    pub guardrails: Vec<portico_guardrails::Guardrail>,
    /// `webhook_allow:`: hosts (or `host:port`) a guardrail webhook may call although the
    /// address guard would refuse them (docs/guardrails.md).
    pub webhook_allow: Vec<String>,
}

/// One provider integration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Addressed as `@slug`.
    pub slug: String,
    /// The upstream dialect.
    pub kind: ProviderKind,
    /// The provider's API key.
    pub api_key: Option<Secret>,
    /// Base URL override (validated as an absolute http(s) URL, trailing `/` removed).
    pub base_url: Option<String>,
    /// The allow-list; `None` passes any model name through.
    pub models: Option<Vec<ModelConfig>>,
    /// Settings of a `mock` provider (only allowed on kind `mock`).
    pub mock: Option<MockSettings>,
    /// Kind-specific settings that are not secret, under the file's field names: `aws_region`
    /// (bedrock), `azure_api_version` (azure-openai), `vertex_project_id` and `vertex_region`
    /// (gemini), `anthropic_version` and `anthropic_beta` (anthropic). String values; the
    /// documented defaults (`azure_api_version`, `anthropic_version`) are filled in.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Kind-specific secrets under the file's field names: `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_session_token` (bedrock). Stored encrypted like
    /// `api_key`, and never shown in a message.
    pub credentials: BTreeMap<String, Secret>,
    /// `budget:` and `rate_limit:`, applied to every attempt sent to the provider.
    pub limits: Limits,
}

/// A model of a provider's allow-list.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The model name sent upstream.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Price override in USD per million tokens.
    pub pricing: Option<PricingConfig>,
}

/// Price override in USD per million tokens; each field is optional and non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PricingConfig {
    /// Uncached input tokens.
    pub input_per_mtok: Option<f64>,
    /// Output tokens.
    pub output_per_mtok: Option<f64>,
    /// Cache reads.
    pub cache_read_per_mtok: Option<f64>,
    /// Cache writes.
    pub cache_write_per_mtok: Option<f64>,
}

/// How the built-in `mock` provider behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockSettings {
    /// Delay before the answer (or the first stream chunk), in milliseconds.
    pub latency_ms: u64,
    /// Delay between stream chunks, in milliseconds.
    pub chunk_delay_ms: u64,
    /// Fraction of requests, 0.0 to 1.0, answered with a simulated 503.
    pub failure_rate: f64,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings {
            latency_ms: 0,
            chunk_delay_ms: 0,
            failure_rate: 0.0,
        }
    }
}

/// What kind of gateway key a file declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A service or application key.
    Service,
    /// A personal key; `user` names the person.
    User,
    /// A data-plane gateway's token to its control plane (spec section 9): stored, and
    /// refused on the data plane and the admin API.
    Gateway,
}

/// A gateway key declared in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConfig {
    /// Unique name; keys are matched by name across applies.
    pub name: String,
    /// `service` (default) or `user`.
    pub kind: KeyKind,
    /// The person of a user key (required for `user`).
    pub user: Option<String>,
    /// A fixed secret; generated and printed once when absent.
    pub key: Option<Secret>,
    /// `allowed_models:` patterns `@slug` or `@slug/model`; `None` allows everything.
    pub allowed_models: Option<Vec<String>>,
    /// `log_payloads:` (default true).
    pub log_payloads: bool,
    /// `config:` the id of one of the file's `configs`, applied to every request of the key.
    pub config: Option<String>,
    /// `budget:` and `rate_limit:`; on a user key, its user's.
    pub limits: Limits,
    /// `expires_at:` (RFC 3339) in Unix milliseconds: from then on the key is refused.
    pub expires_at_ms: Option<i64>,
}

/// A routing config declared in the file (spec section 5).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfigEntry {
    /// How keys and `x-portkey-config` name it.
    pub id: String,
    /// Portkey's config JSON, validated; stored and served as given.
    pub config: serde_json::Value,
}

mod auth;
mod document;
mod env;
mod error;
mod file;
mod kind_fields;
mod limits;
mod schema;
mod validate;
mod yaml;

#[cfg(test)]
mod tests;

pub use auth::{AuthConfig, DEFAULT_USER_CLAIM, JwtConfig, parse_rfc3339_ms};
pub use document::{parse_json_document, substitute_to_json};
pub use env::{SubstituteError, detect_env_providers, substitute};
pub use error::ConfigError;
pub use file::{load_file, parse_budget_json, parse_limits_json, parse_provider_json, parse_str};
pub use kind_fields::{DEFAULT_ANTHROPIC_VERSION, DEFAULT_AZURE_API_VERSION};
pub use validate::check_model_pattern;
