//! Where a Bedrock provider's region and credentials come from, first found wins.
//!
//! Credentials: the catalog's `aws_access_key_id` and `aws_secret_access_key` (with
//! `aws_session_token`), the catalog's `api_key` (a Bedrock API key, as a bearer token),
//! `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`),
//! `AWS_BEARER_TOKEN_BEDROCK`; these are read when the adapter is built. Then AWS's own
//! default credentials chain (`aws-config`), at the first request: the environment again, the
//! shared credentials and config files with `AWS_PROFILE`, web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`, through STS
//! AssumeRoleWithWebIdentity), ECS container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI`
//! or `..._RELATIVE_URI`) and EC2 instance metadata (IMDSv2). Its temporary credentials are
//! cached by [`TokenCache`] and refreshed before they expire; the endpoint overrides of the
//! AWS SDKs apply (`AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, ...).
//!
//! Region: the catalog's `aws_region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's
//! `region` (read once, at the first request).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::meta::region::ProvideRegion as _;
use aws_config::profile::ProfileFileRegionProvider;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_types::error::display::DisplayErrorContext;
use portico_core::settings::is_region;
use portico_core::{ProviderKind, Secret};
use portico_providers::SetupError;
use portico_providers::redact::LiveSecrets;
use portico_providers::settings::AwsKeys;
use portico_providers::token::{Mint, MintError, Minted, TokenCache};
use tokio::sync::OnceCell;

use crate::sign::{Auth, AwsCredentials};

/// What was tried, for the message of a provider without credentials.
const TRIED: &str = "Portico looked in the catalog (aws_access_key_id and \
     aws_secret_access_key, api_key), at AWS_ACCESS_KEY_ID and AWS_BEARER_TOKEN_BEDROCK, then \
     through AWS's default chain (the shared credentials and config files with AWS_PROFILE, \
     web identity with AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, ECS container \
     credentials, EC2 instance metadata)";

/// How to fix a provider without credentials.
const FIX: &str = "set aws_access_key_id and aws_secret_access_key (or a Bedrock API key as \
     api_key) in the catalog, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, \
     or run Portico with an AWS role (EKS service account, ECS task role, EC2 instance profile)";

/// The provider's region: known when the adapter is built, or read from the AWS profile.
#[derive(Debug, Clone)]
pub(crate) enum RegionSource {
    /// From the catalog or the environment.
    Known(String),
    /// From the profile, at the first request (the cell is shared by clones).
    Profile(Arc<OnceCell<String>>),
}

impl RegionSource {
    /// The region, reading the profile the first time.
    ///
    /// # Errors
    ///
    /// [`MintError`] naming the provider, when the profile has no region (not remembered:
    /// the next request reads it again).
    pub(crate) async fn get(&self, slug: &str) -> Result<&str, MintError> {
        match self {
            RegionSource::Known(region) => Ok(region),
            RegionSource::Profile(cell) => cell
                .get_or_try_init(|| profile_region(slug))
                .await
                .map(String::as_str),
        }
    }
}

async fn profile_region(slug: &str) -> Result<String, MintError> {
    match ProfileFileRegionProvider::new().region().await {
        Some(region) if is_region(region.as_ref()) => Ok(region.to_string()),
        Some(region) => Err(MintError::from(format!(
            "provider @{slug} (bedrock): the AWS profile's region `{region}` is not an AWS \
             region name (such as us-east-1)"
        ))),
        None => Err(MintError::from(format!(
            "provider @{slug} (bedrock) has no AWS region: not in the catalog (aws_region), \
             AWS_REGION, AWS_DEFAULT_REGION, nor the AWS profile's `region`; set one of them \
             (e.g. `aws_region: us-east-1`)"
        ))),
    }
}

/// The credentials a provider starts with: the catalog's key pair, the catalog's API key,
/// the environment's key pair, the environment's Bedrock API key, else AWS's default chain
/// behind a [`TokenCache`].
///
/// # Errors
///
/// [`SetupError`] for half a key pair in the environment.
pub(crate) fn resolve_auth(
    slug: &str,
    api_key: Option<&Secret>,
    keys: Option<&AwsKeys>,
    env: &dyn Fn(&str) -> Option<String>,
    region: &RegionSource,
) -> Result<Auth, SetupError> {
    let incomplete = |problem: &str| SetupError::incomplete(slug, ProviderKind::Bedrock, problem);
    if let Some(keys) = keys {
        return Ok(Auth::SigV4(AwsCredentials {
            access_key_id: keys.access_key_id.expose().to_owned(),
            secret_access_key: keys.secret_access_key.clone(),
            session_token: keys.session_token.clone(),
        }));
    }
    if let Some(key) = api_key.filter(|k| !k.expose().trim().is_empty()) {
        return Ok(Auth::Bearer(key.clone()));
    }
    let from_env = |name: &str| env(name).map(Secret::new);
    match (
        from_env("AWS_ACCESS_KEY_ID"),
        from_env("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => {
            return Ok(Auth::SigV4(AwsCredentials {
                access_key_id: id.expose().trim().to_owned(),
                secret_access_key: secret,
                session_token: from_env("AWS_SESSION_TOKEN"),
            }));
        }
        (Some(_), None) => {
            return Err(incomplete(
                "has an AWS access key id in the environment (AWS_ACCESS_KEY_ID) but no secret \
                 access key; set AWS_SECRET_ACCESS_KEY",
            ));
        }
        (None, Some(_)) => {
            return Err(incomplete(
                "has an AWS secret access key in the environment (AWS_SECRET_ACCESS_KEY) but no \
                 access key id; set AWS_ACCESS_KEY_ID",
            ));
        }
        (None, None) => {}
    }
    if let Some(key) = from_env("AWS_BEARER_TOKEN_BEDROCK") {
        return Ok(Auth::Bearer(key));
    }
    let live = LiveSecrets::new();
    let tokens = default_chain(slug, region.clone(), Arc::clone(&live));
    Ok(Auth::Chain { tokens, live })
}

/// AWS's default credentials chain, built at the first fetch (it needs the region, for STS)
/// and kept; its credentials cached.
fn default_chain(
    slug: &str,
    region: RegionSource,
    live: Arc<LiveSecrets>,
) -> TokenCache<AwsCredentials> {
    let chain: Arc<OnceCell<DefaultCredentialsChain>> = Arc::new(OnceCell::new());
    let slug = slug.to_owned();
    let mint: Mint<AwsCredentials> = Arc::new(move || {
        let chain = Arc::clone(&chain);
        let region = region.clone();
        let slug = slug.clone();
        Box::pin(async move {
            let region = region.get(&slug).await?.to_owned();
            let chain = chain
                .get_or_init(|| {
                    DefaultCredentialsChain::builder()
                        .region(aws_config::Region::new(region))
                        .build()
                })
                .await;
            let found = chain
                .provide_credentials()
                .await
                .map_err(|e| explain(&slug, &e))?;
            let expires_in = found.expiry().map(|at| {
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            });
            let credentials = AwsCredentials {
                access_key_id: found.access_key_id().to_owned(),
                secret_access_key: Secret::new(found.secret_access_key()),
                session_token: found.session_token().map(Secret::new),
            };
            let mut secrets = vec![
                Secret::new(found.access_key_id()),
                credentials.secret_access_key.clone(),
            ];
            secrets.extend(credentials.session_token.clone());
            Ok(Minted {
                value: credentials,
                expires_in,
                secrets,
            })
        })
    });
    TokenCache::new(mint, live)
}

/// The chain's failure, said for a client (what was tried, how to fix it) and, with AWS's
/// whole error (addresses, files), for the log.
fn explain(slug: &str, err: &CredentialsError) -> MintError {
    let outcome = match err {
        CredentialsError::CredentialsNotLoaded(_) => "found no credentials anywhere",
        CredentialsError::ProviderTimedOut(_) => "a source of credentials did not answer in time",
        CredentialsError::InvalidConfiguration(_) => "a source of credentials is misconfigured",
        _ => "a source of credentials failed (the gateway log says which and why)",
    };
    let reason =
        format!("provider @{slug} (bedrock) has no AWS credentials: {TRIED}, and {outcome}; {FIX}");
    let detail = format!("{reason} (AWS: {})", DisplayErrorContext(err));
    MintError::new(reason, detail)
}
