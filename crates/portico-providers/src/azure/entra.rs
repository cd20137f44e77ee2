//! Entra ID tokens for Azure OpenAI, for a provider without `api_key`: the client
//! credentials flow (`azure_tenant_id`, `azure_client_id`, `azure_client_secret`), else the
//! managed identity of the machine (App Service's `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`,
//! else the instance metadata service, IMDS). Tokens are for the scope
//! [`SCOPE`], sent as `Authorization: Bearer`, cached and refreshed by [`TokenCache`].
//!
//! Endpoints, overridable by environment variables (tests point them at local servers):
//! - `AZURE_AUTHORITY_HOST` (as Azure's SDKs read it): the Entra host, by default
//!   `https://login.microsoftonline.com`; the token is `{host}/{tenant}/oauth2/v2.0/token`.
//! - `IDENTITY_ENDPOINT` with `IDENTITY_HEADER`: set by App Service and Functions.
//! - `PORTICO_AZURE_IMDS_ENDPOINT`: IMDS's token URL, by default [`IMDS_TOKEN_URL`].

use std::sync::Arc;

use http::HeaderValue;
use portico_core::Secret;

use crate::http::HttpClient;
use crate::redact::LiveSecrets;
use crate::settings::AzureIdentity;
use crate::token::{Mint, MintError, Minted, TokenCache, request_token};

/// The scope (resource) of Azure OpenAI's tokens.
pub const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// The resource managed identity endpoints take (the scope without `/.default`).
const RESOURCE: &str = "https://cognitiveservices.azure.com";

/// Entra ID's public-cloud host.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The token URL of Azure's instance metadata service.
pub const IMDS_TOKEN_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Where a provider's tokens come from, with the endpoints resolved.
#[derive(Clone)]
enum Source {
    ClientSecret {
        token_url: String,
        tenant_id: String,
        client_id: String,
        client_secret: Secret,
    },
    AppService {
        endpoint: String,
        header: Secret,
        client_id: Option<String>,
    },
    Imds {
        endpoint: String,
        client_id: Option<String>,
    },
}

/// The token cache of a provider without `api_key`, for its `identity`, with endpoints from
/// `env`.
pub(crate) fn token_cache(
    slug: &str,
    identity: &AzureIdentity,
    client: &HttpClient,
    env: &dyn Fn(&str) -> Option<String>,
    live: Arc<LiveSecrets>,
) -> TokenCache<HeaderValue> {
    let source = source(identity, env);
    if let Source::AppService { header, .. } = &source {
        // Not in the catalog, and as good as a token on that machine.
        live.add(std::slice::from_ref(header));
    }
    let context = context(slug, &source);
    let client = client.clone();
    let mint: Mint<HeaderValue> = Arc::new(move || {
        let source = source.clone();
        let client = client.clone();
        let context = context.clone();
        Box::pin(async move {
            let answer = fetch(&client, &source)
                .await
                .map_err(|e| e.context(&context))?;
            let mut header =
                HeaderValue::from_str(&format!("Bearer {}", answer.access_token.expose()))
                    .map_err(|_| {
                        MintError::from(format!("{context}: the token is not a header value"))
                    })?;
            header.set_sensitive(true);
            Ok(Minted {
                value: header,
                expires_in: answer.expires_in,
                secrets: vec![answer.access_token],
            })
        })
    });
    TokenCache::new(mint, live)
}

fn source(identity: &AzureIdentity, env: &dyn Fn(&str) -> Option<String>) -> Source {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let managed =
        |client_id: Option<String>| match (env("IDENTITY_ENDPOINT"), env("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => Source::AppService {
                endpoint,
                header: Secret::new(header),
                client_id,
            },
            _ => Source::Imds {
                endpoint: env("PORTICO_AZURE_IMDS_ENDPOINT")
                    .unwrap_or_else(|| IMDS_TOKEN_URL.to_owned()),
                client_id,
            },
        };
    match identity {
        AzureIdentity::ClientSecret {
            tenant_id,
            client_id,
            client_secret,
        } => {
            let host =
                env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY_HOST.to_owned());
            Source::ClientSecret {
                token_url: format!(
                    "{}/{tenant_id}/oauth2/v2.0/token",
                    host.trim_end_matches('/')
                ),
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            }
        }
        AzureIdentity::ManagedIdentity { client_id } => managed(client_id.clone()),
        AzureIdentity::Default => managed(None),
    }
}

/// What a failure is put in: which provider, what was tried, what to fix.
fn context(slug: &str, source: &Source) -> String {
    match source {
        Source::ClientSecret {
            tenant_id,
            client_id,
            ..
        } => format!(
            "provider @{slug} (azure-openai) got no Entra ID token with its client credentials \
             (client {client_id}, tenant {tenant_id}); check azure_tenant_id, azure_client_id \
             and azure_client_secret, and that the application has the Cognitive Services \
             OpenAI User role"
        ),
        Source::AppService { .. } | Source::Imds { .. } => {
            let endpoint = match source {
                Source::AppService { .. } => "App Service's identity endpoint (IDENTITY_ENDPOINT)",
                _ => "the instance metadata service (IMDS)",
            };
            format!(
                "provider @{slug} (azure-openai) has no api_key and no Entra ID client \
                 credentials, and got no managed identity token from {endpoint}; set api_key, \
                 or azure_tenant_id, azure_client_id and azure_client_secret, or run Portico \
                 on Azure with a managed identity that has the Cognitive Services OpenAI User \
                 role"
            )
        }
    }
}

async fn fetch(
    client: &HttpClient,
    source: &Source,
) -> Result<crate::token::TokenAnswer, MintError> {
    let http = client.reqwest();
    match source {
        Source::ClientSecret {
            token_url,
            client_id,
            client_secret,
            ..
        } => {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose()),
                ("scope", SCOPE),
            ];
            request_token(http.post(token_url).form(&form), "Entra ID").await
        }
        Source::AppService {
            endpoint,
            header,
            client_id,
        } => {
            let mut query = vec![("api-version", "2019-08-01"), ("resource", RESOURCE)];
            query.extend(client_id.as_deref().map(|id| ("client_id", id)));
            let request = http
                .get(endpoint)
                .query(&query)
                .header("x-identity-header", header.expose());
            request_token(request, "the identity endpoint").await
        }
        Source::Imds {
            endpoint,
            client_id,
        } => {
            let mut query = vec![("api-version", "2018-02-01"), ("resource", RESOURCE)];
            query.extend(client_id.as_deref().map(|id| ("client_id", id)));
            let request = http.get(endpoint).query(&query).header("metadata", "true");
            request_token(request, "IMDS").await
        }
    }
}
