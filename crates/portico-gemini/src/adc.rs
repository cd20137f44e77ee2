//! Google access tokens for Vertex AI, for a provider without `api_key`, found as Google's
//! client libraries find application default credentials, first found wins:
//!
//! 1. the catalog's `vertex_service_account_json` (a service account's JSON key file);
//! 2. the file `GOOGLE_APPLICATION_CREDENTIALS` names (a service account's key file, or the
//!    `authorized_user` file `gcloud auth application-default login` writes), read at each
//!    fetch so a rotated file is picked up;
//! 3. the metadata server of the machine (Compute Engine, GKE, Cloud Run), at
//!    `GCE_METADATA_HOST` when set (as Google's libraries read it), else
//!    `metadata.google.internal`, asked with `Metadata-Flavor: Google`.
//!
//! A service account signs a JWT (RS256, with its private key) and exchanges it at its key
//! file's `token_uri` (OAuth's JWT bearer grant); an authorized user exchanges its refresh
//! token there. Tokens are for the `cloud-platform` scope, cached and refreshed by
//! [`TokenCache`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portico_core::Secret;
use portico_providers::SetupError;
use portico_providers::http::HttpClient;
use portico_providers::redact::LiveSecrets;
use portico_providers::token::{Mint, MintError, Minted, TokenAnswer, TokenCache, request_token};
use serde_json::Value;

/// The OAuth scope of Vertex AI calls.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where a key file without `token_uri` exchanges its grant.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The metadata server's host when `GCE_METADATA_HOST` is not set.
const METADATA_HOST: &str = "metadata.google.internal";

/// The metadata server's token path for the machine's default service account.
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// How long a signed assertion is valid (Google's maximum).
const ASSERTION_SECONDS: u64 = 3600;

/// A key file, parsed.
#[derive(Clone)]
enum KeyFile {
    ServiceAccount {
        client_email: String,
        private_key: Secret,
        private_key_id: Option<String>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
    },
}

/// Where a provider's tokens come from.
#[derive(Clone)]
enum Source {
    Catalog(KeyFile),
    File(String),
    Metadata(String),
}

/// The token cache of a Vertex AI provider without `api_key`.
///
/// # Errors
///
/// [`SetupError`] naming `vertex_service_account_json` when the catalog's key file cannot be
/// used (never quoting it).
pub(crate) fn token_cache(
    slug: &str,
    service_account: Option<&Secret>,
    client: &HttpClient,
    env: &dyn Fn(&str) -> Option<String>,
    live: Arc<LiveSecrets>,
) -> Result<TokenCache<Secret>, SetupError> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let source = match service_account {
        Some(json) => Source::Catalog(parse_key_file(json.expose()).map_err(|problem| {
            SetupError::setting(slug, "vertex_service_account_json", problem)
        })?),
        None => match env("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(path) => Source::File(path),
            None => {
                let host = env("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_owned());
                Source::Metadata(format!(
                    "http://{}{METADATA_TOKEN_PATH}",
                    host.trim_end_matches('/')
                ))
            }
        },
    };
    let context = context(slug, &source);
    let client = client.clone();
    let mint: Mint<Secret> = Arc::new(move || {
        let source = source.clone();
        let client = client.clone();
        let context = context.clone();
        Box::pin(async move {
            let (answer, mut secrets) = fetch(&client, &source)
                .await
                .map_err(|e| e.context(&context))?;
            secrets.push(answer.access_token.clone());
            Ok(Minted {
                value: answer.access_token,
                expires_in: answer.expires_in,
                secrets,
            })
        })
    });
    Ok(TokenCache::new(mint, live))
}

/// What a failure is put in: which provider, what was tried, what to fix.
fn context(slug: &str, source: &Source) -> String {
    let fix = "set vertex_service_account_json (a service account's JSON key), point \
               GOOGLE_APPLICATION_CREDENTIALS at one, or run Portico on Google Cloud with a \
               service account that has the Vertex AI User role";
    match source {
        Source::Catalog(_) => format!(
            "provider @{slug} (gemini, Vertex AI) got no access token with its \
             vertex_service_account_json; check that the key is active and the service account \
             has the Vertex AI User role"
        ),
        Source::File(path) => format!(
            "provider @{slug} (gemini, Vertex AI) got no access token with the credentials file \
             {path} (GOOGLE_APPLICATION_CREDENTIALS); {fix}"
        ),
        Source::Metadata(_) => format!(
            "provider @{slug} (gemini, Vertex AI) has no api_key, no vertex_service_account_json \
             and no GOOGLE_APPLICATION_CREDENTIALS, and got no token from the metadata server; \
             {fix}"
        ),
    }
}

/// A token, and the secrets used to get it that no catalog record holds (for the redactor).
async fn fetch(
    client: &HttpClient,
    source: &Source,
) -> Result<(TokenAnswer, Vec<Secret>), MintError> {
    let key_file = match source {
        Source::Catalog(key) => key.clone(),
        Source::File(path) => {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                MintError::from(format!("the file could not be read ({})", e.kind()))
            })?;
            parse_key_file(&text)
                .map_err(|problem| MintError::from(format!("the file {problem}")))?
        }
        Source::Metadata(url) => {
            let request = client
                .reqwest()
                .get(url)
                .query(&[("scopes", SCOPE)])
                .header("metadata-flavor", "Google");
            return Ok((
                request_token(request, "the metadata server").await?,
                Vec::new(),
            ));
        }
    };
    let http = client.reqwest();
    match key_file {
        KeyFile::ServiceAccount {
            client_email,
            private_key,
            private_key_id,
            token_uri,
        } => {
            let assertion = assertion(&client_email, &private_key, private_key_id, &token_uri)?;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            let answer =
                request_token(http.post(&token_uri).form(&form), "Google's token endpoint").await?;
            Ok((answer, vec![private_key, Secret::new(assertion)]))
        }
        KeyFile::AuthorizedUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
        } => {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.expose()),
                ("refresh_token", refresh_token.expose()),
            ];
            let answer =
                request_token(http.post(&token_uri).form(&form), "Google's token endpoint").await?;
            Ok((answer, vec![client_secret, refresh_token]))
        }
    }
}

/// The signed JWT a service account exchanges for an access token.
fn assertion(
    client_email: &str,
    private_key: &Secret,
    private_key_id: Option<String>,
    token_uri: &str,
) -> Result<String, MintError> {
    let key = EncodingKey::from_rsa_pem(private_key.expose().as_bytes()).map_err(|_| {
        MintError::from(
            "the service account's private_key is not an RSA key in PEM form".to_owned(),
        )
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "iss": client_email,
        "scope": SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = private_key_id;
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|_| MintError::from("the service account's key could not sign".to_owned()))
}

/// A key file's text, parsed; the error says what is wrong without quoting it, phrased to
/// follow the file's name.
fn parse_key_file(text: &str) -> Result<KeyFile, String> {
    let json: Value = serde_json::from_str(text).map_err(|_| "is not JSON".to_owned())?;
    let field = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let required = |name: &str| field(name).ok_or_else(|| format!("has no `{name}`"));
    let token_uri = field("token_uri").unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
    match field("type").as_deref() {
        Some("service_account") => {
            let private_key = Secret::new(required("private_key")?);
            EncodingKey::from_rsa_pem(private_key.expose().as_bytes()).map_err(|_| {
                "has a private_key that is not an RSA key in PEM form; download a new JSON key"
                    .to_owned()
            })?;
            Ok(KeyFile::ServiceAccount {
                client_email: required("client_email")?,
                private_key,
                private_key_id: field("private_key_id"),
                token_uri,
            })
        }
        Some("authorized_user") => Ok(KeyFile::AuthorizedUser {
            client_id: required("client_id")?,
            client_secret: Secret::new(required("client_secret")?),
            refresh_token: Secret::new(required("refresh_token")?),
            token_uri,
        }),
        _ => Err(
            "is neither a service account key (`type: service_account`) nor an authorized user \
             file (`type: authorized_user`)"
                .to_owned(),
        ),
    }
}
