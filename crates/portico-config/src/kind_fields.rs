//! The provider fields only some kinds take, under Portkey's flat names: `aws_region`,
//! `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` (bedrock),
//! `azure_api_version`, `azure_tenant_id`, `azure_client_id` and `azure_client_secret`
//! (azure-openai), `vertex_project_id`, `vertex_region` and `vertex_service_account_json`
//! (gemini), `anthropic_version` and `anthropic_beta` (anthropic).
//!
//! Each is allowed on its own kind only; on another one the error names the field and the kind
//! it belongs to. Text values go to [`ProviderConfig::settings`](crate::ProviderConfig) and
//! secrets to [`ProviderConfig::credentials`](crate::ProviderConfig), both keyed by the field's
//! name: that name is also what the adapters read.
//!
//! Values that end up in a URL or a header (regions, project ids, versions) are checked for
//! their form here, so a stray `/` or space is a start-up error naming the field rather than a
//! baffling 404 from the provider.

use std::collections::BTreeMap;

// The forms are defined once, in portico-core, so the adapters built from the stored record
// accept exactly what this validation lets through.
pub use portico_core::settings::{DEFAULT_ANTHROPIC_VERSION, DEFAULT_AZURE_API_VERSION};
use portico_core::settings::{beta_list, is_azure_api_version, is_date, is_project_id, is_region};
use portico_core::{ProviderKind, Secret};
use serde_json::{Map, Value};

use crate::error::{ConfigError, field_path};
use crate::file::ProviderFile;
use crate::validate::{Validator, present};

/// Every kind-specific field and the kind it belongs to, in the order they are checked.
const OWNERS: [(&str, ProviderKind); 13] = [
    ("aws_region", ProviderKind::Bedrock),
    ("aws_access_key_id", ProviderKind::Bedrock),
    ("aws_secret_access_key", ProviderKind::Bedrock),
    ("aws_session_token", ProviderKind::Bedrock),
    ("azure_api_version", ProviderKind::AzureOpenAi),
    ("azure_tenant_id", ProviderKind::AzureOpenAi),
    ("azure_client_id", ProviderKind::AzureOpenAi),
    ("azure_client_secret", ProviderKind::AzureOpenAi),
    ("vertex_project_id", ProviderKind::Gemini),
    ("vertex_region", ProviderKind::Gemini),
    ("vertex_service_account_json", ProviderKind::Gemini),
    ("anthropic_version", ProviderKind::Anthropic),
    ("anthropic_beta", ProviderKind::Anthropic),
];

/// The settings a provider of `kind` has when its entry sets none: the documented defaults
/// (`azure_api_version`, `anthropic_version`). Providers detected from the environment get
/// these too.
pub(crate) fn default_settings(kind: ProviderKind) -> Map<String, Value> {
    let mut settings = Map::new();
    let default = match kind {
        ProviderKind::AzureOpenAi => Some(("azure_api_version", DEFAULT_AZURE_API_VERSION)),
        ProviderKind::Anthropic => Some(("anthropic_version", DEFAULT_ANTHROPIC_VERSION)),
        _ => None,
    };
    if let Some((field, value)) = default {
        settings.insert(field.to_owned(), Value::from(value));
    }
    settings
}

/// The validated kind-specific fields of one provider entry.
pub(crate) struct KindFields {
    /// Text values, with the kind's defaults filled in.
    pub(crate) settings: Map<String, Value>,
    /// Secrets.
    pub(crate) credentials: BTreeMap<String, Secret>,
}

/// The kind-specific fields of one entry, taken out of the raw struct; blank values (as
/// `${VAR:-}` gives) are absent, text is trimmed.
struct Present {
    text: Vec<(&'static str, String)>,
    secrets: Vec<(&'static str, Secret)>,
}

impl Present {
    fn text(&self, field: &str) -> Option<&str> {
        self.text
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, v)| v.as_str())
    }

    fn has_secret(&self, field: &str) -> bool {
        self.secrets.iter().any(|(name, _)| *name == field)
    }
}

impl Validator<'_> {
    /// Checks the kind-specific fields of the provider entry at `path` (of kind `kind`, with
    /// or without an `api_key`), returning its settings and credentials.
    pub(crate) fn kind_fields(
        &self,
        raw: &mut ProviderFile,
        kind: ProviderKind,
        has_api_key: bool,
        path: &str,
    ) -> Result<KindFields, ConfigError> {
        let fields = self.take_present(raw, path)?;
        let names = fields
            .text
            .iter()
            .map(|(name, _)| *name)
            .chain(fields.secrets.iter().map(|(name, _)| *name));
        for name in names {
            let owner = OWNERS
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, owner)| *owner);
            if let Some(owner) = owner
                && owner != kind
            {
                return Err(self.invalid(
                    &field_path(path, name),
                    format!(
                        "is only allowed on kind {owner} (this provider is kind {kind}); remove \
                         it, or set `kind: {owner}`"
                    ),
                ));
            }
        }

        let at = |field: &str| field_path(path, field);
        match kind {
            ProviderKind::Bedrock => self.bedrock(&fields, has_api_key, &at)?,
            ProviderKind::AzureOpenAi => {
                self.entra(&fields, has_api_key, &at)?;
                if let Some(version) = fields.text("azure_api_version")
                    && !is_azure_api_version(version)
                {
                    return Err(self.invalid(
                        &at("azure_api_version"),
                        format!(
                            "{version:?} is not an Azure OpenAI API version; write a dated one \
                             like {DEFAULT_AZURE_API_VERSION} or 2025-04-01-preview, or v1 for \
                             Azure's v1 API (https://NAME.openai.azure.com/openai/v1/...)"
                        ),
                    ));
                }
            }
            ProviderKind::Gemini => self.vertex(&fields, has_api_key, &at)?,
            ProviderKind::Anthropic => {
                if let Some(version) = fields.text("anthropic_version")
                    && !is_date(version)
                {
                    return Err(self.invalid(
                        &at("anthropic_version"),
                        format!(
                            "{version:?} is not an Anthropic API version; write a date like \
                             {DEFAULT_ANTHROPIC_VERSION}"
                        ),
                    ));
                }
                if let Some(beta) = fields.text("anthropic_beta")
                    && beta_list(beta).is_none()
                {
                    return Err(self.invalid(
                        &at("anthropic_beta"),
                        format!(
                            "{beta:?} is not a list of beta names; write them separated by \
                             commas, like prompt-caching-2024-07-31,output-128k-2025-02-19"
                        ),
                    ));
                }
            }
            _ => {}
        }

        let mut settings = default_settings(kind);
        for (name, value) in fields.text {
            let value = match name {
                "anthropic_beta" => beta_list(&value).unwrap_or(value),
                _ => value,
            };
            settings.insert(name.to_owned(), Value::String(value));
        }
        let credentials = fields
            .secrets
            .into_iter()
            .map(|(name, secret)| (name.to_owned(), secret))
            .collect();
        Ok(KindFields {
            settings,
            credentials,
        })
    }

    fn take_present(&self, raw: &mut ProviderFile, path: &str) -> Result<Present, ConfigError> {
        let text = [
            ("aws_region", raw.aws_region.take()),
            ("azure_api_version", raw.azure_api_version.take()),
            ("azure_tenant_id", raw.azure_tenant_id.take()),
            ("azure_client_id", raw.azure_client_id.take()),
            ("vertex_project_id", raw.vertex_project_id.take()),
            ("vertex_region", raw.vertex_region.take()),
            ("anthropic_version", raw.anthropic_version.take()),
            ("anthropic_beta", raw.anthropic_beta.take()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, present(value)?.trim().to_owned())))
        .collect();
        let mut secrets = Vec::new();
        for (name, value) in [
            ("aws_access_key_id", raw.aws_access_key_id.take()),
            ("aws_secret_access_key", raw.aws_secret_access_key.take()),
            ("aws_session_token", raw.aws_session_token.take()),
            ("azure_client_secret", raw.azure_client_secret.take()),
        ] {
            if let Some(secret) = self.secret(value, &field_path(path, name), None)? {
                secrets.push((name, secret));
            }
        }
        // A JSON document, spaces and line breaks included: checked for its form, not for
        // stray whitespace like a key.
        let account = raw
            .vertex_service_account_json
            .take()
            .map(|f| f.0)
            .filter(|s| !s.expose().trim().is_empty());
        if let Some(account) = account {
            let at = field_path(path, "vertex_service_account_json");
            if let Err(problem) = service_account_problem(account.expose()) {
                return Err(self.invalid(&at, problem));
            }
            secrets.push(("vertex_service_account_json", account));
        }
        Ok(Present { text, secrets })
    }

    fn bedrock(
        &self,
        fields: &Present,
        has_api_key: bool,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        match fields.text("aws_region") {
            Some(region) if !is_region(region) => {
                return Err(self.invalid(
                    &at("aws_region"),
                    format!("{region:?} is not an AWS region; write one like us-east-1"),
                ));
            }
            // Without one, the adapter reads AWS_REGION, AWS_DEFAULT_REGION, then the AWS
            // profile's region, and says so when none has one.
            _ => {}
        }
        let id = fields.has_secret("aws_access_key_id");
        let secret = fields.has_secret("aws_secret_access_key");
        if id && !secret {
            return Err(self.invalid(
                &at("aws_secret_access_key"),
                "is required with aws_access_key_id (AWS access keys come in pairs); set it, \
                 for example `aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}`",
            ));
        }
        if secret && !id {
            return Err(self.invalid(
                &at("aws_access_key_id"),
                "is required with aws_secret_access_key (AWS access keys come in pairs); set \
                 it, for example `aws_access_key_id: ${AWS_ACCESS_KEY_ID}`",
            ));
        }
        if fields.has_secret("aws_session_token") && !id {
            return Err(self.invalid(
                &at("aws_session_token"),
                "is only used with aws_access_key_id and aws_secret_access_key (temporary \
                 credentials are all three); set those too, or remove it",
            ));
        }
        if id && has_api_key {
            return Err(self.invalid(
                &at("api_key"),
                "a bedrock provider authenticates with either api_key (a Bedrock API key, sent \
                 as a bearer token) or aws_access_key_id and aws_secret_access_key (SigV4), \
                 not both; remove one",
            ));
        }
        Ok(())
    }

    /// Entra ID client credentials: all three fields, or `azure_client_id` alone (the
    /// client id of a user-assigned managed identity), or none.
    fn entra(
        &self,
        fields: &Present,
        has_api_key: bool,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        let tenant = fields.text("azure_tenant_id");
        let client = fields.text("azure_client_id");
        let secret = fields.has_secret("azure_client_secret");
        for (field, value) in [("azure_tenant_id", tenant), ("azure_client_id", client)] {
            if let Some(value) = value
                && !is_entra_id(value)
            {
                return Err(self.invalid(
                    &at(field),
                    format!(
                        "{value:?} is not an Entra ID; write the GUID (or, for the tenant, its \
                         domain like contoso.onmicrosoft.com) shown in the Azure portal"
                    ),
                ));
            }
        }
        match (tenant.is_some(), client.is_some(), secret) {
            (true, true, true) | (false, true, false) | (false, false, false) => {}
            (_, _, true) | (true, _, _) => {
                let missing: Vec<&str> = [
                    ("azure_tenant_id", tenant.is_none()),
                    ("azure_client_id", client.is_none()),
                    ("azure_client_secret", !secret),
                ]
                .into_iter()
                .filter_map(|(name, gone)| gone.then_some(name))
                .collect();
                return Err(self.invalid(
                    &at(missing[0]),
                    format!(
                        "is required: Entra ID client credentials are azure_tenant_id, \
                         azure_client_id and azure_client_secret together (missing: {}); set \
                         them all, or none to use a managed identity",
                        missing.join(", ")
                    ),
                ));
            }
        }
        if has_api_key && (secret || client.is_some()) {
            return Err(self.invalid(
                &at("api_key"),
                "an azure-openai provider authenticates with either api_key or Entra ID \
                 (azure_tenant_id, azure_client_id, azure_client_secret, or a managed identity's \
                 azure_client_id), not both; remove one",
            ));
        }
        Ok(())
    }

    fn vertex(
        &self,
        fields: &Present,
        has_api_key: bool,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        let project = fields.text("vertex_project_id");
        let region = fields.text("vertex_region");
        if fields.has_secret("vertex_service_account_json") {
            if project.is_none() {
                return Err(self.invalid(
                    &at("vertex_project_id"),
                    "is required with vertex_service_account_json (a service account is for \
                     Vertex AI); set vertex_project_id and vertex_region, or remove the \
                     service account to use the Gemini API with an api_key",
                ));
            }
            if has_api_key {
                return Err(self.invalid(
                    &at("api_key"),
                    "a Vertex AI provider authenticates with either api_key (an access token) \
                     or vertex_service_account_json, not both; remove one",
                ));
            }
        }
        match (project, region) {
            (Some(_), None) => Err(self.invalid(
                &at("vertex_region"),
                "is required with vertex_project_id (together they select Vertex AI); set it, \
                 like `vertex_region: us-central1` (or global)",
            )),
            (None, Some(_)) => Err(self.invalid(
                &at("vertex_project_id"),
                "is required with vertex_region (together they select Vertex AI); set it to \
                 your Google Cloud project ID, or remove vertex_region to use the Gemini API",
            )),
            (Some(project), Some(_)) if !is_project_id(project) => Err(self.invalid(
                &at("vertex_project_id"),
                format!(
                    "{project:?} is not a Google Cloud project ID; use the project's ID (like \
                     my-project-123) or number, not its display name"
                ),
            )),
            (Some(_), Some(region)) if !is_region(region) => Err(self.invalid(
                &at("vertex_region"),
                format!("{region:?} is not a Google Cloud region; write one like us-central1"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether an AI Studio provider (no `vertex_project_id`) lacks the API key it needs;
    /// Vertex AI finds credentials itself (service account, application default credentials).
    pub(crate) fn gemini_needs_api_key(raw: &ProviderFile) -> bool {
        raw.vertex_project_id
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
    }

    /// `base_url` of an azure-openai provider: the resource endpoint, without the API path
    /// that the adapter appends.
    pub(crate) fn azure_endpoint(&self, s: &str, path: &str) -> Result<String, ConfigError> {
        let url = self.base_url(s, path)?;
        let url_path = url::Url::parse(&url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        if url_path.ends_with("/openai") || url_path.contains("/openai/") {
            return Err(self.invalid(
                path,
                "includes the API path (`/openai...`); give only the resource endpoint, like \
                 https://NAME.openai.azure.com, since Portico appends \
                 /openai/deployments/DEPLOYMENT/... (or /openai/v1/...) itself",
            ));
        }
        Ok(url)
    }
}

/// An Entra tenant or client id: a GUID, or a tenant's domain name.
fn is_entra_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// What is wrong with a service-account key file's text, if anything: it must be the JSON
/// Google Cloud downloads (`type: service_account`, `client_email`, `private_key`). The
/// message quotes nothing from it.
fn service_account_problem(text: &str) -> Result<(), String> {
    let help = "paste the whole JSON key file of the service account (IAM > Service accounts > \
                Keys > Add key > JSON), e.g. `vertex_service_account_json: ${GCP_SA_JSON}`; \
                the value is not shown because it is a secret";
    let value: Value = serde_json::from_str(text).map_err(|_| format!("is not JSON; {help}"))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if field("type") != Some("service_account") {
        return Err(format!(
            "is not a service-account key (its `type` is not `service_account`); {help}"
        ));
    }
    for name in ["client_email", "private_key"] {
        if field(name).is_none() {
            return Err(format!("has no `{name}`; {help}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_forms() {
        assert!(is_region("us-east-1") && is_region("global") && is_region("europe-west4"));
        assert!(!is_region("US-EAST-1") && !is_region("us east") && !is_region("1us"));
        assert!(!is_region("") && !is_region("us-east-1/x"));
        assert!(is_project_id("my-project-123") && is_project_id("123456789012"));
        assert!(is_project_id("example.com:proj"));
        assert!(!is_project_id("My Project") && !is_project_id("a/b") && !is_project_id(""));
        assert!(is_date("2023-06-01") && !is_date("2023-6-01") && !is_date("2023_06_01"));
        assert!(is_azure_api_version("2024-10-21") && is_azure_api_version("v1"));
        assert!(is_azure_api_version("2025-04-01-preview"));
        assert!(!is_azure_api_version("latest") && !is_azure_api_version("2024-10-21-beta"));
        assert_eq!(beta_list("a-1, b_2.x").as_deref(), Some("a-1,b_2.x"));
        assert_eq!(beta_list("a,,b"), None);
        assert_eq!(beta_list("a b"), None);
    }

    #[test]
    fn every_owned_field_is_a_file_field() {
        for (field, _) in OWNERS {
            assert!(
                crate::schema::provider_fields().contains(&field),
                "{field} is not in the schema"
            );
        }
    }
}
