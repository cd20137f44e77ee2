//! Raw file types → validated [`Catalog`]: required fields, value ranges, uniqueness.
//!
//! One rule holds for every optional text field: a blank value (empty or spaces only, as
//! `${VAR:-}` gives when `VAR` is unset) counts as absent. That makes `${VAR:-}` the way to
//! say "optional, from the environment".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use portico_core::{ProviderKind, Secret, is_valid_slug};
use url::Url;

use crate::error::{ConfigError, field_path, item_path};
use crate::file::{
    BudgetEntryFile, CatalogFile, ConfigFile, KeyFile, LimitsFile, MockFile, ModelFile,
    PricingFile, ProviderFile, SecretFile,
};
use crate::kind_fields::KindFields;
use crate::{
    Catalog, KeyConfig, KeyKind, MockSettings, ModelConfig, PricingConfig, ProviderConfig,
    RoutingConfigEntry,
};
use portico_core::{Limits, NamedBudget};

/// Longest config id. The same rule as `portico_store::is_valid_config_id`, which guards the
/// admin API's writes (this crate does not depend on the store).
const MAX_CONFIG_ID_CHARS: usize = 64;

/// The shortest fixed gateway key or admin key accepted: long enough that guessing is not a
/// realistic attack, short enough not to get in the way of a password manager's output.
const MIN_KEY_CHARS: usize = 16;

/// Validates a whole file. `_env` is the environment the file was substituted from; no rule
/// depends on it any more (a bedrock provider without `aws_region` finds its region at run
/// time, in the AWS profile too), but callers keep passing it for rules to come.
pub(crate) fn catalog(
    raw: CatalogFile,
    origin: &str,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Result<Catalog, ConfigError> {
    let v = Validator { origin };
    let listen = present(raw.listen).map(|s| v.listen(&s)).transpose()?;
    let admin_key = v.secret(raw.admin_key, "admin_key", Some(MIN_KEY_CHARS))?;

    let mut providers = Vec::new();
    let mut slugs: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw.providers.unwrap_or_default().into_iter().enumerate() {
        let path = item_path("providers", i);
        let provider = v.provider(raw, &path)?;
        if let Some(first) = slugs.insert(provider.slug.clone(), i) {
            return Err(v.invalid(
                &field_path(&path, "slug"),
                format!(
                    "the slug {:?} is already used by providers[{first}]; slugs must be unique",
                    provider.slug
                ),
            ));
        }
        providers.push(provider);
    }

    let mut configs: Vec<RoutingConfigEntry> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw.configs.unwrap_or_default().into_iter().enumerate() {
        let path = item_path("configs", i);
        let config = v.config(raw, &path)?;
        if let Some(first) = ids.insert(config.id.clone(), i) {
            return Err(v.invalid(
                &field_path(&path, "id"),
                format!(
                    "the id {:?} is already used by configs[{first}]; config ids must be unique",
                    config.id
                ),
            ));
        }
        configs.push(config);
    }

    let mut keys = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    // Users whose limits a user key declares: one key per user may (they are the user's).
    let mut limited_users: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw.keys.unwrap_or_default().into_iter().enumerate() {
        let path = item_path("keys", i);
        let key = v.key(raw, &path)?;
        if let (KeyKind::User, Some(user), false) = (key.kind, &key.user, key.limits.is_empty())
            && let Some(first) = limited_users.insert(user.clone(), i)
        {
            let field = if key.limits.budget.is_some() {
                "budget"
            } else {
                "rate_limit"
            };
            return Err(v.invalid(
                &field_path(&path, field),
                format!(
                    "user {user:?} already has a budget or rate limit from keys[{first}]; they \
                     are the user's, shared by all of their keys: declare them on one key"
                ),
            ));
        }
        if let Some(config) = &key.config
            && !ids.contains_key(config)
        {
            let declared: Vec<String> = configs.iter().map(|c| c.id.clone()).collect();
            return Err(v.invalid(
                &field_path(&path, "config"),
                format!(
                    "no config {config:?} under `configs:`; a key names one of the file's \
                     configs ({})",
                    if declared.is_empty() {
                        "the file declares none".to_owned()
                    } else {
                        format!("declared: {}", declared.join(", "))
                    }
                ),
            ));
        }
        if let Some(first) = names.insert(key.name.clone(), i) {
            return Err(v.invalid(
                &field_path(&path, "name"),
                format!(
                    "the name {:?} is already used by keys[{first}]; key names must be unique",
                    key.name
                ),
            ));
        }
        keys.push(key);
    }

    let budgets = v.budgets(raw.budgets.unwrap_or_default())?;
    let auth = v.auth(raw.auth)?;
    let guardrails = v.guardrails(raw.guardrails.unwrap_or_default())?;

    Ok(Catalog {
        listen,
        data_dir: present(raw.data_dir).map(PathBuf::from),
        admin_key,
        auto_providers: raw.auto_providers.unwrap_or(true),
        providers,
        configs,
        keys,
        budgets,
        auth,
        guardrails,
        webhook_allow: raw.webhook_allow.unwrap_or_default(),
    })
}

/// `None` for a missing or blank value.
pub(crate) fn present(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.trim().is_empty())
}

/// Validates raw values into config types; errors name `origin` and the field path.
pub(crate) struct Validator<'a> {
    origin: &'a str,
}

impl Validator<'_> {
    pub(crate) fn invalid(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.origin, path, message)
    }

    /// A required text field: present and not blank.
    fn required(
        &self,
        value: Option<String>,
        path: &str,
        what: &str,
    ) -> Result<String, ConfigError> {
        present(value).ok_or_else(|| self.invalid(path, format!("is required: {what}")))
    }

    fn listen(&self, s: &str) -> Result<SocketAddr, ConfigError> {
        s.trim().parse().map_err(|_| {
            self.invalid(
                "listen",
                format!(
                    "{s:?} is not an IP address and port; write it like 127.0.0.1:8787, \
                     0.0.0.0:8787 or [::1]:8787 (host names are not accepted)"
                ),
            )
        })
    }

    /// A secret field; `min_chars` applies to gateway and admin keys, which Portico checks
    /// itself, not to provider keys, whose format is the provider's business.
    pub(crate) fn secret(
        &self,
        raw: Option<SecretFile>,
        path: &str,
        min_chars: Option<usize>,
    ) -> Result<Option<Secret>, ConfigError> {
        let Some(SecretFile(secret)) = raw else {
            return Ok(None);
        };
        let s = secret.expose();
        if s.trim().is_empty() {
            return Ok(None);
        }
        // Catches the classic stray newline from `$(cat key.txt)` or a copy-paste, which would
        // otherwise surface as a baffling 401 from upstream.
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid(
                path,
                "contains spaces, line breaks or control characters (a stray newline from the \
                 variable or file it came from?); remove them (the value is not shown because \
                 it is a secret)",
            ));
        }
        if let Some(min) = min_chars
            && s.chars().count() < min
        {
            return Err(self.invalid(
                path,
                format!(
                    "is too short: a fixed key must be at least {min} characters long; use a \
                     long random secret, or remove the field to have one generated (the value \
                     is not shown because it is a secret)"
                ),
            ));
        }
        Ok(Some(secret))
    }

    fn provider(&self, mut raw: ProviderFile, path: &str) -> Result<ProviderConfig, ConfigError> {
        let slug_path = field_path(path, "slug");
        let slug = self.required(
            raw.slug.take(),
            &slug_path,
            "the name the provider is addressed by, as in `@my-openai/gpt-4o-mini`",
        )?;
        if !is_valid_slug(&slug) {
            return Err(self.invalid(
                &slug_path,
                format!(
                    "{slug:?} is not a valid slug; use 1 to 64 lowercase letters, digits, `-` \
                     and `_`, starting with a letter or digit"
                ),
            ));
        }

        let kind_path = field_path(path, "kind");
        let kind_name = self.required(
            raw.kind.take(),
            &kind_path,
            &format!("one of {}", ProviderKind::NAMES.join(", ")),
        )?;
        let kind = self.kind(kind_name.trim(), &kind_path)?;

        let api_key_path = field_path(path, "api_key");
        let api_key = self.secret(raw.api_key.take(), &api_key_path, None)?;
        // Azure OpenAI falls back on Entra ID and managed identity, Vertex AI on a service
        // account and application default credentials: neither needs an api_key.
        let needs_api_key = match kind {
            ProviderKind::AzureOpenAi => false,
            ProviderKind::Gemini => Validator::gemini_needs_api_key(&raw),
            _ => kind.requires_api_key(),
        };
        if api_key.is_none() && needs_api_key {
            let example = kind.api_key_env().unwrap_or(match kind {
                ProviderKind::AzureOpenAi => "AZURE_OPENAI_API_KEY",
                _ => "MY_API_KEY",
            });
            return Err(self.invalid(
                &api_key_path,
                format!(
                    "is required for kind {kind} (and must not be empty); set it, for example \
                     `api_key: ${{{example}}}`"
                ),
            ));
        }

        let base_url_path = field_path(path, "base_url");
        let base_url = match present(raw.base_url.take()) {
            Some(_) if kind == ProviderKind::Mock => {
                return Err(self.invalid(
                    &base_url_path,
                    "kind mock answers in-process and calls no upstream; remove base_url",
                ));
            }
            Some(s) if kind == ProviderKind::AzureOpenAi => {
                Some(self.azure_endpoint(&s, &base_url_path)?)
            }
            Some(s) => Some(self.base_url(&s, &base_url_path)?),
            None if kind == ProviderKind::AzureOpenAi => {
                return Err(self.invalid(
                    &base_url_path,
                    "is required for kind azure-openai: your resource's endpoint, like \
                     https://NAME.openai.azure.com (shown under Keys and Endpoint in the Azure \
                     portal)",
                ));
            }
            None if kind.requires_base_url() => {
                return Err(self.invalid(
                    &base_url_path,
                    format!(
                        "is required for kind {kind}: the server's base URL including its API \
                         prefix, like http://localhost:8000/v1"
                    ),
                ));
            }
            None => None,
        };

        let models_path = field_path(path, "models");
        let models = raw
            .models
            .take()
            .map(|list| self.models(list, &models_path))
            .transpose()?;

        let mock_path = field_path(path, "mock");
        let mock = match raw.mock.take() {
            Some(mock) if kind == ProviderKind::Mock => Some(self.mock(mock, &mock_path)?),
            Some(_) => {
                return Err(self.invalid(
                    &mock_path,
                    format!(
                        "mock settings are only allowed on kind mock (this provider is kind \
                         {kind}); remove them"
                    ),
                ));
            }
            None => None,
        };

        let limits = self.limits(raw.budget.take(), raw.rate_limit.take(), path)?;

        let KindFields {
            settings,
            credentials,
        } = self.kind_fields(&mut raw, kind, api_key.is_some(), path)?;

        Ok(ProviderConfig {
            slug,
            kind,
            api_key,
            base_url,
            models,
            mock,
            settings,
            credentials,
            limits,
        })
    }

    fn kind(&self, name: &str, path: &str) -> Result<ProviderKind, ConfigError> {
        let supported = ProviderKind::NAMES.join(", ");
        if let Ok(kind) = name.parse() {
            return Ok(kind);
        }
        let message = if let Ok(kind) = name.to_ascii_lowercase().parse::<ProviderKind>() {
            format!("kinds are lowercase: write {kind}")
        } else {
            format!("unknown provider kind {name:?}; expected one of: {supported}")
        };
        Err(self.invalid(path, message))
    }

    pub(crate) fn base_url(&self, s: &str, path: &str) -> Result<String, ConfigError> {
        // A URL may carry credentials (`https://user:pass@host`); don't repeat one that might.
        let shown = if s.contains('@') {
            "the URL".to_owned()
        } else {
            format!("{s:?}")
        };
        let url = Url::parse(s.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                self.invalid(
                    path,
                    format!(
                        "{shown} is not an absolute http(s) URL; write it with its scheme, like \
                         https://api.example.com/v1"
                    ),
                )
            })?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.invalid(
                path,
                format!(
                    "{shown} has a query (`?`) or fragment (`#`); remove it, since endpoint \
                     paths such as /chat/completions are appended to the base URL"
                ),
            ));
        }
        // Endpoint paths start with `/`, so a trailing one would double up.
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }

    fn models(&self, list: Vec<ModelFile>, path: &str) -> Result<Vec<ModelConfig>, ConfigError> {
        if list.is_empty() {
            return Err(self.invalid(
                path,
                "is an empty list, which would allow no model at all; remove `models:` to pass \
                 any model name through, or list at least one",
            ));
        }
        let mut models = Vec::with_capacity(list.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in list.into_iter().enumerate() {
            let item = item_path(path, i);
            let (id, id_path, name, pricing) = match raw {
                ModelFile::Id(id) => (Some(id), item.clone(), None, None),
                ModelFile::Object(o) => (o.id, field_path(&item, "id"), o.name, o.pricing),
            };
            let id = self.required(
                id,
                &id_path,
                "the model name sent upstream, like gpt-4o-mini",
            )?;
            if id.trim() != id {
                return Err(self.invalid(
                    &id_path,
                    format!("{id:?} has leading or trailing spaces; remove them"),
                ));
            }
            if let Some(first) = seen.insert(id.clone(), i) {
                return Err(self.invalid(
                    &id_path,
                    format!("the model {id:?} is already listed as {path}[{first}]; list it once"),
                ));
            }
            let pricing = pricing
                .map(|p| self.pricing(p, &field_path(&item, "pricing")))
                .transpose()?;
            models.push(ModelConfig {
                id,
                name: present(name),
                pricing,
            });
        }
        Ok(models)
    }

    fn pricing(&self, raw: PricingFile, path: &str) -> Result<PricingConfig, ConfigError> {
        let price = |value: Option<f64>, field: &str| match value {
            Some(p) if !p.is_finite() || p < 0.0 => Err(self.invalid(
                &field_path(path, field),
                format!("{p} is not a valid price; prices are USD per million tokens, 0 or more"),
            )),
            other => Ok(other),
        };
        Ok(PricingConfig {
            input_per_mtok: price(raw.input_per_mtok, "input_per_mtok")?,
            output_per_mtok: price(raw.output_per_mtok, "output_per_mtok")?,
            cache_read_per_mtok: price(raw.cache_read_per_mtok, "cache_read_per_mtok")?,
            cache_write_per_mtok: price(raw.cache_write_per_mtok, "cache_write_per_mtok")?,
        })
    }

    fn mock(&self, raw: MockFile, path: &str) -> Result<MockSettings, ConfigError> {
        let defaults = MockSettings::default();
        let failure_rate = raw.failure_rate.unwrap_or(defaults.failure_rate);
        if !(0.0..=1.0).contains(&failure_rate) {
            return Err(self.invalid(
                &field_path(path, "failure_rate"),
                format!(
                    "{failure_rate} is out of range; it is the fraction of requests that fail, \
                     from 0.0 (none) to 1.0 (all)"
                ),
            ));
        }
        Ok(MockSettings {
            latency_ms: raw.latency_ms.unwrap_or(defaults.latency_ms),
            chunk_delay_ms: raw.chunk_delay_ms.unwrap_or(defaults.chunk_delay_ms),
            failure_rate,
        })
    }

    /// One entry of `configs:`: a sane id and a config Portkey's schema accepts. Whether the
    /// providers it names exist is checked when the catalog is applied, since providers also
    /// come from the environment and the admin API.
    fn config(&self, raw: ConfigFile, path: &str) -> Result<RoutingConfigEntry, ConfigError> {
        let id_path = field_path(path, "id");
        let id = self.required(
            raw.id,
            &id_path,
            "the name keys and the x-portkey-config header use for the config, like reliable",
        )?;
        let valid_id = id.len() <= MAX_CONFIG_ID_CHARS
            && id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_id {
            return Err(self.invalid(
                &id_path,
                format!(
                    "{id:?} is not a valid config id; use 1 to {MAX_CONFIG_ID_CHARS} letters, \
                     digits, `-`, `_` and `.`, starting with a letter or digit"
                ),
            ));
        }
        let config_path = field_path(path, "config");
        let Some(config) = raw.config.filter(|c| !c.is_null()) else {
            return Err(self.invalid(
                &config_path,
                "is required: the routing config (strategy, targets, retry, ...; see \
                 docs/routing-config.md)",
            ));
        };
        if let Err(e) = portico_routing::RoutingConfig::parse(&config) {
            let at = if e.path.is_empty() {
                config_path
            } else if e.path.starts_with('[') {
                format!("{config_path}{}", e.path)
            } else {
                field_path(&config_path, &e.path)
            };
            return Err(self.invalid(&at, e.message));
        }
        Ok(RoutingConfigEntry { id, config })
    }

    /// `guardrails:`: each entry Portkey's guardrail shape with an `id`, compiled (regexes
    /// too); ids unique.
    fn guardrails(
        &self,
        raw: Vec<serde_json::Value>,
    ) -> Result<Vec<portico_guardrails::Guardrail>, ConfigError> {
        let mut out: Vec<portico_guardrails::Guardrail> = Vec::new();
        for (i, value) in raw.iter().enumerate() {
            let path = item_path("guardrails", i);
            if value
                .get("id")
                .and_then(serde_json::Value::as_str)
                .is_none()
            {
                return Err(self.invalid(
                    &field_path(&path, "id"),
                    "is required: the name configs use in input_guardrails / output_guardrails, like pii-check",
                ));
            }
            let guardrail = portico_guardrails::Guardrail::parse(value, "").map_err(|e| {
                let at = e.clone().under(&path).path;
                self.invalid(&at, e.message)
            })?;
            if let Some(first) = out.iter().position(|g| g.id == guardrail.id) {
                return Err(self.invalid(
                    &field_path(&path, "id"),
                    format!(
                        "the id {:?} is already used by guardrails[{first}]; guardrail ids must be unique",
                        guardrail.id
                    ),
                ));
            }
            out.push(guardrail);
        }
        Ok(out)
    }

    fn key(&self, raw: KeyFile, path: &str) -> Result<KeyConfig, ConfigError> {
        let name_path = field_path(path, "name");
        let name = self.required(
            raw.name,
            &name_path,
            "a unique name for the key, like backend-service",
        )?;
        if name.chars().any(char::is_control) {
            return Err(self.invalid(
                &name_path,
                "contains control characters (such as a line break); use plain text",
            ));
        }
        if name.trim() != name {
            return Err(self.invalid(
                &name_path,
                format!("{name:?} has leading or trailing spaces; remove them"),
            ));
        }

        let type_path = field_path(path, "type");
        let kind = match present(raw.kind).as_deref().map(str::trim) {
            None | Some("service") => KeyKind::Service,
            Some("user") => KeyKind::User,
            Some("gateway") => KeyKind::Gateway,
            Some(other) => {
                return Err(self.invalid(
                    &type_path,
                    format!("{other:?} is not a key type; use service, user or gateway"),
                ));
            }
        };

        let user_path = field_path(path, "user");
        let user = present(raw.user);
        match (kind, &user) {
            (KeyKind::User, None) => {
                return Err(self.invalid(
                    &user_path,
                    "is required for `type: user` keys: the person the key belongs to, like \
                     alice@example.com",
                ));
            }
            (KeyKind::Service | KeyKind::Gateway, Some(_)) => {
                return Err(self.invalid(
                    &user_path,
                    "is only allowed on `type: user` keys; add `type: user` or remove it",
                ));
            }
            _ => {}
        }

        let key = self.secret(raw.key, &field_path(path, "key"), Some(MIN_KEY_CHARS))?;

        let allowed_path = field_path(path, "allowed_models");
        let allowed_models = raw
            .allowed_models
            .map(|patterns| self.allowed_models(patterns, &allowed_path))
            .transpose()?;
        let limits = self.limits(raw.budget, raw.rate_limit, path)?;
        let expires_at_ms = self.expires_at(raw.expires_at, &field_path(path, "expires_at"))?;

        Ok(KeyConfig {
            name,
            kind,
            user,
            key,
            allowed_models,
            log_payloads: raw.log_payloads.unwrap_or(true),
            config: present(raw.config).map(|c| c.trim().to_owned()),
            limits,
            expires_at_ms,
        })
    }

    /// Checks syntax only: whether `@slug` names a provider is decided at run time, since
    /// providers also come from the environment and the admin API.
    fn allowed_models(
        &self,
        patterns: Vec<String>,
        path: &str,
    ) -> Result<Vec<String>, ConfigError> {
        if patterns.is_empty() {
            return Err(self.invalid(
                path,
                "is an empty list, which would allow no model at all; remove `allowed_models:` \
                 to allow every model, or list patterns like @openai or @openai/gpt-4o-mini",
            ));
        }
        for (i, pattern) in patterns.iter().enumerate() {
            if let Err(message) = check_model_pattern(pattern) {
                return Err(self.invalid(&item_path(path, i), message));
            }
        }
        Ok(patterns)
    }
}

/// Validates one provider object outside a file (the admin API's body), with no environment.
pub(crate) fn provider(raw: ProviderFile, origin: &str) -> Result<ProviderConfig, ConfigError> {
    Validator { origin }.provider(raw, "")
}

/// Validates one `budgets:` entry outside a file (the admin API's body), with no environment.
pub(crate) fn budget_entry(raw: BudgetEntryFile, origin: &str) -> Result<NamedBudget, ConfigError> {
    Validator { origin }.named_budget(raw, "")
}

/// Validates a key's limits outside a file (the admin API's body), with no environment.
pub(crate) fn limits(raw: LimitsFile, origin: &str) -> Result<Limits, ConfigError> {
    Validator { origin }.limits(raw.budget, raw.rate_limit, "")
}

/// `@slug` (every model of a provider) or `@slug/model` (one model); the error says what is
/// wrong with `pattern`.
pub fn check_model_pattern(pattern: &str) -> Result<(), String> {
    let Some(rest) = pattern.strip_prefix('@') else {
        return Err(format!(
            "{pattern:?} must start with `@`: write @provider or @provider/model"
        ));
    };
    let (slug, model) = match rest.split_once('/') {
        Some((slug, model)) => (slug, Some(model)),
        None => (rest, None),
    };
    if !is_valid_slug(slug) {
        return Err(format!(
            "{pattern:?} has an invalid provider slug; slugs use lowercase letters, digits, `-` \
             and `_`"
        ));
    }
    if model.is_some_and(|m| m.trim().is_empty()) {
        return Err(format!(
            "{pattern:?} has no model after `/`; write @{slug} for every model of the provider, \
             or @{slug}/model-name for one"
        ));
    }
    Ok(())
}
