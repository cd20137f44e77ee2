//! Kind-specific provider settings, typed: read once from the stored record when a snapshot
//! is built, and handed to the adapters as values they use without checking again.
//!
//! What this is: [`KindSettings`], one variant per kind that has settings of its own
//! ([`AzureSettings`], [`AnthropicSettings`], [`GeminiSettings`], [`BedrockSettings`], the
//! mock's [`MockOptions`]), parsed by [`KindSettings::parse`] from a record's `settings`
//! (a JSON object under the catalog file's field names) and `credentials`; and
//! [`SetupError`], the one error of building an adapter, which names the provider and the
//! setting to fix.
//!
//! The forms of the values (a region, a project ID, a dated version, beta names) are
//! `portico_core::settings`'s, the ones the catalog file is validated with, so a record the
//! file or the admin API wrote always parses. The check here is for what the store holds
//! whatever wrote it. Unknown fields are ignored, so settings written by a newer version
//! still load.
//!
//! What it is not: the catalog file's validation (portico-config, which reports field paths
//! like `providers[2].aws_region`), or the environment and the cloud credential chains
//! (the adapters read their variables when they are built, and fetch tokens at run time:
//! see [`crate::token`]).

use std::collections::BTreeMap;

use portico_core::settings::{
    DEFAULT_ANTHROPIC_VERSION, DEFAULT_AZURE_API_VERSION, is_azure_api_version, is_beta_name,
    is_date, is_project_id, is_region,
};
use portico_core::{ProviderKind, Secret};
use serde_json::{Map, Value};

use crate::mock::MockOptions;
use crate::redact::RedactorError;

/// Why a catalog provider cannot become an adapter. Every variant names the provider; none
/// quotes a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    /// A setting cannot be used as stored: its type or form is wrong, or it needs another.
    #[error("provider @{slug}: {field} {problem}")]
    Setting {
        /// The provider's slug.
        slug: String,
        /// The setting, under the catalog file's name (`vertex_region`, `aws_region`).
        field: &'static str,
        /// What is wrong and how to fix it, phrased to follow the field's name.
        problem: String,
    },
    /// The provider lacks something its adapter needs: a key, a base URL, a region,
    /// credentials.
    #[error("provider @{slug} (kind {kind}) {problem}")]
    Incomplete {
        /// The provider's slug.
        slug: String,
        /// The provider's kind.
        kind: ProviderKind,
        /// What is missing and where to set it, phrased to follow the kind (`has no api_key;
        /// ...`).
        problem: String,
    },
    /// The redactor of the provider's secrets could not be built, so it must not be used.
    #[error("provider @{slug}: {error}")]
    Redactor {
        /// The provider's slug.
        slug: String,
        /// Why.
        error: RedactorError,
    },
}

impl SetupError {
    /// A setting of provider `slug` that cannot be used.
    pub fn setting(slug: &str, field: &'static str, problem: impl Into<String>) -> SetupError {
        SetupError::Setting {
            slug: slug.to_owned(),
            field,
            problem: problem.into(),
        }
    }

    /// Something provider `slug` of `kind` lacks.
    pub fn incomplete(slug: &str, kind: ProviderKind, problem: impl Into<String>) -> SetupError {
        SetupError::Incomplete {
            slug: slug.to_owned(),
            kind,
            problem: problem.into(),
        }
    }
}

/// A provider record's kind-specific part, as the store keeps it.
#[derive(Debug, Clone, Copy)]
pub struct StoredSettings<'a> {
    /// The provider's slug, for messages.
    pub slug: &'a str,
    /// Its kind, which says which settings it has.
    pub kind: ProviderKind,
    /// Its settings: a JSON object under the catalog file's field names, or `null`.
    pub settings: &'a Value,
    /// Its kind-specific secrets (`aws_access_key_id`, ...).
    pub credentials: &'a BTreeMap<String, Secret>,
}

/// The kind-specific settings of one provider, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum KindSettings {
    /// OpenAI and the OpenAI-compatible kinds: nothing beyond the base URL and key.
    OpenAi,
    /// The built-in mock: its delays and failure rate.
    Mock(MockOptions),
    /// Azure OpenAI.
    AzureOpenAi(AzureSettings),
    /// Anthropic.
    Anthropic(AnthropicSettings),
    /// Gemini (AI Studio or Vertex AI).
    Gemini(GeminiSettings),
    /// AWS Bedrock.
    Bedrock(BedrockSettings),
}

impl KindSettings {
    /// Reads the settings of `stored.kind` from the stored record.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the provider and the setting, when one has the wrong
    /// type or form or needs another that is missing.
    pub fn parse(stored: StoredSettings<'_>) -> Result<KindSettings, SetupError> {
        let StoredSettings {
            slug,
            kind,
            settings,
            credentials,
        } = stored;
        Ok(match kind {
            ProviderKind::Mock => KindSettings::Mock(mock_options(slug, settings)?),
            ProviderKind::AzureOpenAi => {
                KindSettings::AzureOpenAi(AzureSettings::parse(slug, settings, credentials)?)
            }
            ProviderKind::Anthropic => {
                KindSettings::Anthropic(AnthropicSettings::parse(slug, settings)?)
            }
            ProviderKind::Gemini => {
                let mut gemini = GeminiSettings::parse(slug, settings)?;
                if let Some(vertex) = &mut gemini.vertex {
                    vertex.service_account = credentials
                        .get("vertex_service_account_json")
                        .filter(|s| !s.expose().trim().is_empty())
                        .cloned();
                }
                KindSettings::Gemini(gemini)
            }
            ProviderKind::Bedrock => {
                KindSettings::Bedrock(BedrockSettings::parse(slug, settings, credentials)?)
            }
            ProviderKind::OpenAi
            | ProviderKind::OpenAiCompatible
            | ProviderKind::Mistral
            | ProviderKind::Groq
            | ProviderKind::DeepSeek
            | ProviderKind::Together
            | ProviderKind::Ollama => KindSettings::OpenAi,
        })
    }
}

/// Azure OpenAI's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// `azure_api_version`: a dated version (`2024-10-21`, `2025-04-01-preview`) or `v1`;
    /// [`DEFAULT_AZURE_API_VERSION`] when not set.
    pub api_version: String,
    /// Who the provider is in Entra ID, for when it has no `api_key`.
    pub identity: AzureIdentity,
}

/// How an Azure OpenAI provider without `api_key` gets its Entra ID tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AzureIdentity {
    /// The client credentials flow: `azure_tenant_id`, `azure_client_id`,
    /// `azure_client_secret`.
    ClientSecret {
        /// The directory (tenant) id or domain.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
    },
    /// The managed identity of the machine Portico runs on: the system-assigned one, or the
    /// user-assigned one whose client id is `azure_client_id`.
    ManagedIdentity {
        /// The user-assigned identity's client id.
        client_id: Option<String>,
    },
    /// No catalog field: the system-assigned managed identity.
    #[default]
    Default,
}

impl AzureSettings {
    /// Reads `azure_api_version`, `azure_tenant_id` and `azure_client_id` from provider
    /// `slug`'s stored settings and `azure_client_secret` from its credentials.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] when a field is not a text, the version is not one, or the
    /// client credentials are incomplete.
    pub fn parse(
        slug: &str,
        settings: &Value,
        credentials: &BTreeMap<String, Secret>,
    ) -> Result<AzureSettings, SetupError> {
        let fields = Fields::of(slug, settings)?;
        let wrong = || {
            format!("must be a text like {DEFAULT_AZURE_API_VERSION} or 2025-04-01-preview, or v1")
        };
        let api_version = match fields.text("azure_api_version", wrong)? {
            None => DEFAULT_AZURE_API_VERSION.to_owned(),
            Some(v) if is_azure_api_version(v) => v.to_owned(),
            Some(v) => {
                return Err(fields.error("azure_api_version", format!("{} (not {v:?})", wrong())));
            }
        };
        let id = || "must be a text: an Entra ID (a GUID)".to_owned();
        let tenant = fields.text("azure_tenant_id", id)?;
        let client = fields.text("azure_client_id", id)?;
        let secret = credentials
            .get("azure_client_secret")
            .filter(|s| !s.expose().trim().is_empty());
        let identity = match (tenant, client, secret) {
            (Some(tenant), Some(client), Some(secret)) => AzureIdentity::ClientSecret {
                tenant_id: tenant.to_owned(),
                client_id: client.to_owned(),
                client_secret: secret.clone(),
            },
            (None, client, None) => match client {
                Some(client) => AzureIdentity::ManagedIdentity {
                    client_id: Some(client.to_owned()),
                },
                None => AzureIdentity::Default,
            },
            _ => {
                return Err(fields.error(
                    "azure_client_secret",
                    "is incomplete: Entra ID client credentials are azure_tenant_id, \
                     azure_client_id and azure_client_secret together; set them all, or none \
                     to use a managed identity",
                ));
            }
        };
        Ok(AzureSettings {
            api_version,
            identity,
        })
    }
}

/// Anthropic's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicSettings {
    /// `anthropic_version`, the `anthropic-version` header: a date, [`DEFAULT_ANTHROPIC_VERSION`]
    /// when not set.
    pub version: String,
    /// `anthropic_beta`, the beta names sent as `anthropic-beta` (a comma-separated text or a
    /// list in the store); empty when not set.
    pub beta: Vec<String>,
}

impl AnthropicSettings {
    /// Reads `anthropic_version` and `anthropic_beta` from provider `slug`'s stored settings.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] when either has the wrong type or form.
    pub fn parse(slug: &str, settings: &Value) -> Result<AnthropicSettings, SetupError> {
        let fields = Fields::of(slug, settings)?;
        let wrong_version =
            || format!("must be a date such as \"{DEFAULT_ANTHROPIC_VERSION}\" (a text)");
        let version = match fields.text("anthropic_version", wrong_version)? {
            None => DEFAULT_ANTHROPIC_VERSION.to_owned(),
            Some(v) if is_date(v) => v.to_owned(),
            Some(v) => {
                return Err(fields.error(
                    "anthropic_version",
                    format!("{}, not {v:?}", wrong_version()),
                ));
            }
        };
        let wrong_beta = "must be a string or a list of strings of beta names (letters, digits, \
                          '-', '_' and '.'), like prompt-caching-2024-07-31";
        let names: Vec<&str> = match fields.get("anthropic_beta") {
            None => Vec::new(),
            Some(Value::String(list)) => list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::trim))
                .collect::<Option<Vec<&str>>>()
                .ok_or_else(|| fields.error("anthropic_beta", wrong_beta))?,
            Some(_) => return Err(fields.error("anthropic_beta", wrong_beta)),
        };
        if !names.iter().all(|name| is_beta_name(name)) {
            return Err(fields.error("anthropic_beta", wrong_beta));
        }
        Ok(AnthropicSettings {
            version,
            beta: names.into_iter().map(str::to_owned).collect(),
        })
    }
}

/// Gemini's settings: AI Studio, or Vertex AI when both Vertex fields are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiSettings {
    /// `vertex_project_id` and `vertex_region`; `None` for AI Studio.
    pub vertex: Option<VertexSettings>,
}

/// Where on Vertex AI a Gemini provider's models are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSettings {
    /// The Google Cloud project ID (or number).
    pub project: String,
    /// The region (`us-central1`, `global`, ...).
    pub region: String,
    /// `vertex_service_account_json`: the service account's JSON key file, when the catalog
    /// has one (else application default credentials are looked for).
    pub service_account: Option<Secret>,
}

impl GeminiSettings {
    /// Reads `vertex_project_id` and `vertex_region` from provider `slug`'s stored settings.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] when one is set without the other, or has the wrong form.
    pub fn parse(slug: &str, settings: &Value) -> Result<GeminiSettings, SetupError> {
        let fields = Fields::of(slug, settings)?;
        let project = fields.text("vertex_project_id", || {
            "must be a text: a Google Cloud project ID".to_owned()
        })?;
        let region = fields.text("vertex_region", || {
            "must be a text: a Google Cloud region".to_owned()
        })?;
        let vertex = match (project, region) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(fields.error(
                    "vertex_project_id",
                    "is set but vertex_region is not; set both for Vertex AI (e.g. \
                     vertex_region: us-central1), or neither for AI Studio",
                ));
            }
            (None, Some(_)) => {
                return Err(fields.error(
                    "vertex_region",
                    "is set but vertex_project_id is not; set both for Vertex AI, or neither \
                     for AI Studio",
                ));
            }
            (Some(project), Some(_)) if !is_project_id(project) => {
                return Err(fields.error(
                    "vertex_project_id",
                    format!(
                        "must be a Google Cloud project ID (like my-project-123) or number, \
                         not {project:?}"
                    ),
                ));
            }
            (Some(_), Some(region)) if !is_region(region) => {
                return Err(fields.error(
                    "vertex_region",
                    format!("must be a Google Cloud region like us-central1, not {region:?}"),
                ));
            }
            (Some(project), Some(region)) => Some(VertexSettings {
                project: project.to_owned(),
                region: region.to_owned(),
                service_account: None,
            }),
        };
        Ok(GeminiSettings { vertex })
    }
}

/// Bedrock's settings from the catalog; the adapter falls back on the `AWS_*` environment
/// for what they leave out.
#[derive(Debug, Clone, PartialEq)]
pub struct BedrockSettings {
    /// `aws_region`, when the catalog sets it.
    pub region: Option<String>,
    /// `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token`, when the
    /// catalog sets them.
    pub keys: Option<AwsKeys>,
}

/// An AWS access key pair, with the session token of temporary credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsKeys {
    /// The access key id (`AKIA...`).
    pub access_key_id: Secret,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl BedrockSettings {
    /// Reads `aws_region` from provider `slug`'s stored settings and the key pair from its
    /// credentials.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] for a region of the wrong form, half a key pair, or a session
    /// token without one.
    pub fn parse(
        slug: &str,
        settings: &Value,
        credentials: &BTreeMap<String, Secret>,
    ) -> Result<BedrockSettings, SetupError> {
        let fields = Fields::of(slug, settings)?;
        let region = match fields.text("aws_region", || {
            "must be a text: an AWS region like us-east-1".to_owned()
        })? {
            Some(region) if !is_region(region) => {
                return Err(fields.error(
                    "aws_region",
                    format!("`{region}` is not an AWS region name (such as us-east-1)"),
                ));
            }
            region => region.map(str::to_owned),
        };
        let secret = |name: &str| {
            credentials
                .get(name)
                .filter(|s| !s.expose().trim().is_empty())
                .cloned()
        };
        let keys = match (
            secret("aws_access_key_id"),
            secret("aws_secret_access_key"),
            secret("aws_session_token"),
        ) {
            (Some(id), Some(key), token) => Some(AwsKeys {
                access_key_id: Secret::new(id.expose().trim()),
                secret_access_key: key,
                session_token: token,
            }),
            (Some(_), None, _) => {
                return Err(fields.error(
                    "aws_secret_access_key",
                    "is missing: the catalog has an AWS access key id but no secret access \
                     key; add it",
                ));
            }
            (None, Some(_), _) => {
                return Err(fields.error(
                    "aws_access_key_id",
                    "is missing: the catalog has an AWS secret access key but no access key \
                     id; add it",
                ));
            }
            (None, None, Some(_)) => {
                return Err(fields.error(
                    "aws_session_token",
                    "is only used with aws_access_key_id and aws_secret_access_key (temporary \
                     credentials are all three); set those too, or remove it",
                ));
            }
            (None, None, None) => None,
        };
        Ok(BedrockSettings { region, keys })
    }
}

/// Reads the mock's options (each optional) from provider `slug`'s stored settings.
pub(crate) fn mock_options(slug: &str, settings: &Value) -> Result<MockOptions, SetupError> {
    let fields = Fields::of(slug, settings)?;
    let millis = |field: &'static str| match fields.get(field) {
        None => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            fields.error(
                field,
                format!("must be a whole number of milliseconds, got {v}"),
            )
        }),
    };
    let failure_rate = match fields.get("failure_rate") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|rate| (0.0..=1.0).contains(rate))
            .ok_or_else(|| {
                fields.error(
                    "failure_rate",
                    format!("must be a number from 0.0 to 1.0, got {v}"),
                )
            })?,
    };
    Ok(MockOptions {
        latency_ms: millis("latency_ms")?,
        chunk_delay_ms: millis("chunk_delay_ms")?,
        failure_rate,
    })
}

/// A stored settings object, read field by field: a typed deserialisation's error would not
/// say which setting is wrong.
struct Fields<'a> {
    slug: &'a str,
    object: Option<&'a Map<String, Value>>,
}

impl<'a> Fields<'a> {
    /// The settings of provider `slug`: an object, or `null` for none.
    fn of(slug: &'a str, settings: &'a Value) -> Result<Fields<'a>, SetupError> {
        match settings {
            Value::Null => Ok(Fields { slug, object: None }),
            Value::Object(object) => Ok(Fields {
                slug,
                object: Some(object),
            }),
            _ => Err(SetupError::setting(
                slug,
                "settings",
                "must be a JSON object of the kind's fields",
            )),
        }
    }

    /// A field's value; `null` counts as absent.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.object?.get(field).filter(|v| !v.is_null())
    }

    /// A text field, trimmed; absent when missing, `null` or blank (as `${VAR:-}` gives).
    /// `wrong` says what it must be, for a value of another type.
    fn text(
        &self,
        field: &'static str,
        wrong: impl Fn() -> String,
    ) -> Result<Option<&'a str>, SetupError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
            Some(_) => Err(self.error(field, wrong())),
        }
    }

    fn error(&self, field: &'static str, problem: impl Into<String>) -> SetupError {
        SetupError::setting(self.slug, field, problem)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(kind: ProviderKind, settings: Value) -> Result<KindSettings, String> {
        let credentials = BTreeMap::new();
        KindSettings::parse(StoredSettings {
            slug: "p",
            kind,
            settings: &settings,
            credentials: &credentials,
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_in_and_the_stored_forms_parse() {
        assert_eq!(
            parse(ProviderKind::Anthropic, Value::Null),
            Ok(KindSettings::Anthropic(AnthropicSettings {
                version: DEFAULT_ANTHROPIC_VERSION.to_owned(),
                beta: Vec::new(),
            }))
        );
        let listed = json!({"anthropic_beta": ["a-1", " b.2"], "anthropic_version": "2024-01-01"});
        let commas = json!({"anthropic_beta": "a-1, b.2", "anthropic_version": "2024-01-01"});
        assert_eq!(
            parse(ProviderKind::Anthropic, listed),
            parse(ProviderKind::Anthropic, commas)
        );
        assert_eq!(
            parse(ProviderKind::AzureOpenAi, json!({"future": 1})),
            Ok(KindSettings::AzureOpenAi(AzureSettings {
                api_version: DEFAULT_AZURE_API_VERSION.to_owned(),
                identity: AzureIdentity::Default,
            }))
        );
        // The catalog file accepts domain-scoped project IDs; so does the adapter.
        assert!(matches!(
            parse(
                ProviderKind::Gemini,
                json!({"vertex_project_id": "example.com:p", "vertex_region": "global"})
            ),
            Ok(KindSettings::Gemini(GeminiSettings { vertex: Some(_) }))
        ));
        assert_eq!(
            parse(ProviderKind::Groq, json!({})),
            Ok(KindSettings::OpenAi)
        );
    }

    #[test]
    fn errors_name_the_provider_and_the_setting() {
        let cases = [
            (
                ProviderKind::Anthropic,
                json!({"anthropic_version": 1}),
                "anthropic_version must be a date",
            ),
            (
                ProviderKind::Anthropic,
                json!({"anthropic_beta": ["a b"]}),
                "anthropic_beta must be",
            ),
            (
                ProviderKind::AzureOpenAi,
                json!({"azure_api_version": "latest"}),
                "azure_api_version must be",
            ),
            (
                ProviderKind::Gemini,
                json!({"vertex_region": "us"}),
                "vertex_region is set but",
            ),
            (
                ProviderKind::Bedrock,
                json!({"aws_region": "US"}),
                "not an AWS region",
            ),
            (
                ProviderKind::Mock,
                json!({"failure_rate": 2}),
                "failure_rate",
            ),
            (
                ProviderKind::Mock,
                json!([1]),
                "settings must be a JSON object",
            ),
        ];
        for (kind, settings, needle) in cases {
            let err = parse(kind, settings).unwrap_err();
            assert!(err.starts_with("provider @p"), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn aws_keys_come_in_pairs() {
        let region = json!({"aws_region": "us-east-1"});
        let keys = |pairs: &[(&str, &str)]| -> Result<BedrockSettings, String> {
            let credentials = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
                .collect();
            BedrockSettings::parse("b", &region, &credentials).map_err(|e| e.to_string())
        };
        let both = keys(&[
            ("aws_access_key_id", " AKID "),
            ("aws_secret_access_key", "s"),
        ]);
        assert_eq!(both.unwrap().keys.unwrap().access_key_id.expose(), "AKID");
        assert!(
            keys(&[("aws_access_key_id", "AKID")])
                .unwrap_err()
                .contains("no secret access key")
        );
        assert!(
            keys(&[("aws_session_token", "t")])
                .unwrap_err()
                .contains("aws_session_token")
        );
        assert_eq!(keys(&[]).unwrap().keys, None);
    }
}
