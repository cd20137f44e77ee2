//! The file as written: the raw serde types, and the pipeline from text to [`Catalog`].
//!
//! The pipeline, each stage with its own kind of error:
//!
//! 1. parse the YAML into a [`Value`] (`yaml.rs`; syntax errors carry line and column); the
//!    reader resolves anchors and `<<:` merge keys, so entries can share settings;
//! 2. check the document's shape (`schema.rs`): unknown fields, spec sections this version does
//!    not implement yet, lists and mappings where they belong;
//! 3. substitute `${VAR}` inside string scalars (`env.rs`);
//! 4. deserialize the raw `*File` structs with `serde_path_to_error`, so a wrongly typed field
//!    is reported as `providers[1].mock.latency_ms`;
//! 5. validate them into a [`Catalog`] (`validate.rs`).
//!
//! The raw structs make almost every field optional, even required ones: validation then says
//! "`providers[0].kind` is required" with a hint, instead of serde's "missing field `kind`".

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use portico_core::Secret;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_path_to_error::Segment;

use crate::env::substitute_value;
use crate::error::{ConfigError, field_path, item_path};
use crate::schema::{self, describe};
use crate::yaml::{self, Value};
use crate::{Catalog, ProviderConfig, validate};
use portico_core::{Limits, NamedBudget};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogFile {
    pub(crate) listen: Option<String>,
    pub(crate) data_dir: Option<String>,
    pub(crate) admin_key: Option<SecretFile>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) auto_providers: Option<bool>,
    pub(crate) providers: Option<Vec<ProviderFile>>,
    pub(crate) configs: Option<Vec<ConfigFile>>,
    pub(crate) keys: Option<Vec<KeyFile>>,
    pub(crate) budgets: Option<Vec<BudgetEntryFile>>,
    pub(crate) auth: Option<crate::auth::AuthFile>,
    /// `guardrails:`: Portkey's guardrail objects, validated by `portico_guardrails`.
    pub(crate) guardrails: Option<Vec<serde_json::Value>>,
    /// `webhook_allow:`: hosts the guardrail webhooks' address guard lets through.
    pub(crate) webhook_allow: Option<Vec<String>>,
}

/// One entry of `configs:`; `config` is Portkey's config JSON, written as YAML or JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) id: Option<String>,
    pub(crate) config: Option<serde_json::Value>,
}

/// One entry of `providers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderFile {
    pub(crate) slug: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) api_key: Option<SecretFile>,
    pub(crate) base_url: Option<String>,
    pub(crate) models: Option<Vec<ModelFile>>,
    pub(crate) mock: Option<MockFile>,
    pub(crate) aws_region: Option<String>,
    pub(crate) aws_access_key_id: Option<SecretFile>,
    pub(crate) aws_secret_access_key: Option<SecretFile>,
    pub(crate) aws_session_token: Option<SecretFile>,
    pub(crate) azure_api_version: Option<String>,
    pub(crate) azure_tenant_id: Option<String>,
    pub(crate) azure_client_id: Option<String>,
    pub(crate) azure_client_secret: Option<SecretFile>,
    pub(crate) vertex_project_id: Option<String>,
    pub(crate) vertex_region: Option<String>,
    pub(crate) vertex_service_account_json: Option<SecretFile>,
    pub(crate) anthropic_version: Option<String>,
    pub(crate) anthropic_beta: Option<String>,
    pub(crate) budget: Option<BudgetFile>,
    pub(crate) rate_limit: Option<RateLimitFile>,
}

/// One entry of a provider's `models:`: a bare id, or the long form.
#[derive(Debug)]
pub(crate) enum ModelFile {
    /// `- gpt-4o-mini`
    Id(String),
    /// `- { id: gpt-4o-mini, name: ..., pricing: ... }`
    Object(ModelObjectFile),
}

/// The long form of a model entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelObjectFile {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) pricing: Option<PricingFile>,
}

/// `pricing:` of a model, USD per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PricingFile {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) input_per_mtok: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) output_per_mtok: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) cache_read_per_mtok: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) cache_write_per_mtok: Option<f64>,
}

/// `mock:` of a provider of kind `mock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MockFile {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) latency_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) chunk_delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) failure_rate: Option<f64>,
}

/// One entry of `keys:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    pub(crate) name: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) key: Option<SecretFile>,
    pub(crate) allowed_models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) log_payloads: Option<bool>,
    pub(crate) config: Option<String>,
    pub(crate) budget: Option<BudgetFile>,
    pub(crate) rate_limit: Option<RateLimitFile>,
    pub(crate) expires_at: Option<String>,
}

/// `budget:` of a provider, a key or a `budgets:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetFile {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) cost_usd: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) tokens: Option<u64>,
    pub(crate) period: Option<String>,
}

/// `rate_limit:` of a provider, a key or a `budgets:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitFile {
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) requests_per_minute: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    pub(crate) tokens_per_minute: Option<u64>,
}

/// One entry of `budgets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetEntryFile {
    pub(crate) name: Option<String>,
    /// `metadata.<key>` → value; the values' types are checked in validation.
    #[serde(rename = "match")]
    pub(crate) matches: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    pub(crate) budget: Option<BudgetFile>,
    pub(crate) rate_limit: Option<RateLimitFile>,
}

/// A key's `{budget, rate_limit}` as the admin API receives them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    pub(crate) budget: Option<BudgetFile>,
    pub(crate) rate_limit: Option<RateLimitFile>,
}

/// A secret field (`api_key`, `key`, `admin_key`, `aws_secret_access_key`, ...). It exists for its error message: serde's
/// own ("invalid type: integer `12345`, expected a string") would print the secret.
#[derive(Debug)]
pub(crate) struct SecretFile(pub(crate) Secret);

impl<'de> Deserialize<'de> for SecretFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(SecretFile(Secret::new(s))),
            other => Err(de::Error::custom(format!(
                "a secret must be a string (put it in quotes), found {}; the value is not shown \
                 because it is a secret",
                describe(&other)
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for ModelFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModelVisitor;

        impl<'de> Visitor<'de> for ModelVisitor {
            type Value = ModelFile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model id, or a mapping with id, name and pricing")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelFile, E> {
                Ok(ModelFile::Id(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<ModelFile, E> {
                Ok(ModelFile::Id(v))
            }

            // Deserializing through the same `MapAccess` (rather than via an intermediate
            // `Value`) keeps serde_path_to_error's path tracking, so an error deep inside reads
            // `providers[0].models[1].pricing.input_per_mtok`.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelFile, A::Error> {
                ModelObjectFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ModelFile::Object)
            }
        }

        deserializer.deserialize_any(ModelVisitor)
    }
}

/// A scalar that may also be written as a string, because `${VAR}` substitution always yields
/// strings: `latency_ms: ${MOCK_LATENCY:-0}` must work.
pub(crate) trait Scalar: FromStr + DeserializeOwned {
    /// What a valid value looks like, for messages.
    const EXPECTED: &'static str;
}

impl Scalar for bool {
    const EXPECTED: &'static str = "true or false";
}

impl Scalar for u64 {
    const EXPECTED: &'static str = "a whole number, 0 or more";
}

impl Scalar for f64 {
    const EXPECTED: &'static str = "a number";
}

/// `deserialize_with` for optional [`Scalar`] fields: accepts the native YAML type or a string
/// holding one; a blank string (`${VAR:-}`) counts as absent.
fn lenient<'de, D: Deserializer<'de>, T: Scalar>(deserializer: D) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let found = match &value {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => match s.trim().parse() {
            Ok(parsed) => return Ok(Some(parsed)),
            Err(_) => format!("the string {s:?}"),
        },
        // These fields are never secrets, so showing a wrong number or boolean is fine.
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => describe(other).to_owned(),
    };
    match T::deserialize(value) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(_) => Err(de::Error::custom(format!(
            "expected {}, found {found}",
            T::EXPECTED
        ))),
    }
}

/// Reads and parses a catalog file. Errors name the file by `path` as given.
///
/// `env` looks up variables for `${VAR}`; pass `&|name| std::env::var(name).ok()` for the real
/// environment.
pub fn load_file(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text, &path.display().to_string(), env)
}

/// Parses and validates catalog text. `origin` names the text in messages (a file name, or
/// something like `request body`).
pub fn parse_str(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, ConfigError> {
    let doc = substituted(text, origin, env)?;
    read(doc, origin, env)
}

/// Stages 1 to 3: the document, its shape checked, `${VAR}` replaced from `env`.
pub(crate) fn substituted(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, ConfigError> {
    let mut doc = yaml::parse(text, origin)?;
    schema::check(&doc, origin)?;
    substitute_value(&mut doc, "", env).map_err(|(path, source)| ConfigError::Substitution {
        origin: origin.to_owned(),
        path,
        source,
    })?;
    Ok(doc)
}

/// Stages 4 and 5: the raw structs out of a checked, substituted document, validated. `env`
/// serves only the rules that depend on the environment.
pub(crate) fn read(
    doc: Value,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, ConfigError> {
    let raw = match doc {
        // An empty file (or one holding only comments) is an empty catalog.
        Value::Null => CatalogFile::default(),
        doc => serde_path_to_error::deserialize(doc).map_err(|e| type_error(origin, e))?,
    };
    validate::catalog(raw, origin, env)
}

/// Parses one provider object as the admin API receives it: the fields of a `providers:`
/// entry, checked by the same rules, with paths relative to the object (`base_url`). No
/// `${VAR}` substitution: a request must not read the server's environment.
pub fn parse_provider_json(
    value: &serde_json::Value,
    origin: &str,
) -> Result<ProviderConfig, ConfigError> {
    let doc = Value::from(value);
    schema::check_provider(&doc, origin)?;
    let raw: ProviderFile =
        serde_path_to_error::deserialize(doc).map_err(|e| type_error(origin, e))?;
    validate::provider(raw, origin)
}

/// Parses one `budgets:` entry as the admin API receives it (`name`, `match`, `budget`,
/// `rate_limit`), checked by the file's rules, with paths relative to the object
/// (`match.team`, `budget.period`). No `${VAR}` substitution.
pub fn parse_budget_json(
    value: &serde_json::Value,
    origin: &str,
) -> Result<NamedBudget, ConfigError> {
    let doc = Value::from(value);
    schema::check_budget_entry(&doc, origin)?;
    let raw: BudgetEntryFile =
        serde_path_to_error::deserialize(doc).map_err(|e| type_error(origin, e))?;
    validate::budget_entry(raw, origin)
}

/// Parses a key's `budget` and `rate_limit` as the admin API receives them (either may be
/// absent or null), checked by the file's rules, with paths like `budget.period`.
pub fn parse_limits_json(
    budget: Option<&serde_json::Value>,
    rate_limit: Option<&serde_json::Value>,
    origin: &str,
) -> Result<Limits, ConfigError> {
    let mut object = serde_json::Map::new();
    for (name, value) in [("budget", budget), ("rate_limit", rate_limit)] {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            object.insert(name.to_owned(), value.clone());
        }
    }
    let doc = Value::from(&serde_json::Value::Object(object));
    schema::check_limits(&doc, origin)?;
    let raw: LimitsFile =
        serde_path_to_error::deserialize(doc).map_err(|e| type_error(origin, e))?;
    validate::limits(raw, origin)
}

fn type_error(origin: &str, error: serde_path_to_error::Error<yaml::Error>) -> ConfigError {
    let mut path = String::new();
    for segment in error.path().iter() {
        path = match segment {
            Segment::Seq { index } => item_path(&path, *index),
            Segment::Map { key } => field_path(&path, key),
            Segment::Enum { variant } => field_path(&path, variant),
            Segment::Unknown => field_path(&path, "?"),
        };
    }
    ConfigError::invalid(origin, &path, error.into_inner().to_string())
}
