//! [`Bedrock`]: the dialect of Converse / ConverseStream (through the translating adapters'
//! one skeleton, [`Translating`]) and InvokeModel embeddings: settings and credentials read
//! once when the adapter is built, URLs, SigV4.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::settings::is_region;
use portico_core::{ProviderKind, Secret};
use portico_providers::chat::{ChatRequest, ChatResponse};
use portico_providers::dialect::{Answered, Call, Dialect, Inputs, Translating};
use portico_providers::http::{HttpClient, transport_error};
use portico_providers::redact::LiveSecrets;
use portico_providers::settings::BedrockSettings;
use portico_providers::token::MintError;
use portico_providers::{
    ProviderError, ProviderSetup, SetupError, UpstreamRequest, UpstreamResponse,
};
use reqwest::header::HeaderMap;

use crate::credentials::{RegionSource, resolve_auth};
use crate::embeddings::{self, CallAnswer, Family};
use crate::error::{from_response, invalid_request};
use crate::eventstream::Frame;
use crate::request::to_converse;
use crate::response::to_chat_response;
use crate::sign::{Auth, auth_headers};
use crate::stream::{Translator, frames};
use crate::wire::{ConverseRequest, ConverseResponse};

/// The content type of ConverseStream answers.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// An AWS Bedrock upstream: the translating skeleton over [`Bedrock`]'s dialect.
pub type BedrockProvider = Translating<Bedrock>;

/// [`BedrockProvider`] with `env` standing in for the process environment (see
/// [`Bedrock::with_env`]).
///
/// # Errors
///
/// As [`Bedrock::with_env`].
pub fn with_env(
    setup: ProviderSetup<'_>,
    settings: &BedrockSettings,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BedrockProvider, SetupError> {
    Ok(Translating::with_dialect(
        Bedrock::with_env(setup, settings, env)?,
        setup.client,
    ))
}

/// Bedrock's dialect: chat through Converse / ConverseStream, embeddings through
/// InvokeModel, every call signed.
#[derive(Debug, Clone)]
pub struct Bedrock {
    slug: String,
    /// The catalog's base URL; `None` for the region's own endpoint.
    base_url: Option<String>,
    region: RegionSource,
    auth: Auth,
}

impl Bedrock {
    /// The dialect of a catalog provider, reading `AWS_*` variables from `env` for what the
    /// catalog leaves out: the region (`AWS_REGION`, `AWS_DEFAULT_REGION`; else the AWS
    /// profile's, at the first request) and credentials (else AWS's default chain, at the
    /// first request: see `credentials`).
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming the provider and the setting to fix, when the environment's
    /// region is not one or holds half a key pair.
    pub fn with_env(
        setup: ProviderSetup<'_>,
        settings: &BedrockSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Bedrock, SetupError> {
        let slug = setup.slug;
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let region = match &settings.region {
            Some(region) => RegionSource::Known(region.clone()),
            None => match ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .into_iter()
                .find_map(|var| env(var).map(|value| (var, value.trim().to_owned())))
            {
                Some((var, region)) if !is_region(&region) => {
                    return Err(SetupError::setting(
                        slug,
                        var,
                        format!("`{region}` is not an AWS region name (such as us-east-1)"),
                    ));
                }
                Some((_, region)) => RegionSource::Known(region),
                None => RegionSource::Profile(Arc::default()),
            },
        };
        let auth = resolve_auth(slug, setup.api_key, settings.keys.as_ref(), &env, &region)?;
        Ok(Bedrock {
            slug: slug.to_owned(),
            base_url: setup
                .base_url
                .map(|url| url.trim_end_matches('/').to_owned()),
            region,
            auth,
        })
    }

    /// The region, read from the AWS profile the first time when it is not known.
    async fn region(&self) -> Result<&str, ProviderError> {
        self.region
            .get(&self.slug)
            .await
            .map_err(MintError::into_provider_error)
    }

    /// The URL of an operation (`converse`, `converse-stream`, `invoke`) on `model`.
    async fn url(&self, model: &str, operation: &str) -> Result<String, ProviderError> {
        let model = encode_model_id(model);
        Ok(match &self.base_url {
            Some(base) => format!("{base}/model/{model}/{operation}"),
            None => {
                let region = self.region().await?;
                format!("https://bedrock-runtime.{region}.amazonaws.com/model/{model}/{operation}")
            }
        })
    }

    /// A POST of `body` to `url`, authenticated (signed with the clock's time for SigV4;
    /// credentials from AWS's default chain are fetched first when none are cached).
    async fn post(
        &self,
        client: &HttpClient,
        url: &str,
        body: Bytes,
        accept: &'static str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let now =
            UNIX_EPOCH + Duration::from_millis(u64::try_from(portico_core::now_ms()).unwrap_or(0));
        let fetched;
        let auth = match &self.auth {
            Auth::Chain { tokens, .. } => {
                let credentials = tokens.get().await.map_err(MintError::into_provider_error)?;
                fetched = Auth::SigV4(credentials);
                &fetched
            }
            resolved => resolved,
        };
        let region = self.region().await?;
        let auth = auth_headers(auth, region, "POST", url, &headers, &body, now)
            .map_err(|e| ProviderError::Unreachable(e.into()))?;
        let mut builder = client.post(url).body(body);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        for (name, value) in auth {
            builder = builder.header(name, value);
        }
        Ok(builder)
    }
}

#[async_trait]
impl Dialect for Bedrock {
    const KIND: ProviderKind = ProviderKind::Bedrock;
    const NAME: &'static str = "Bedrock";
    type Settings = BedrockSettings;
    type Request = ConverseRequest;
    type Response = ConverseResponse;
    type Translator = Translator;

    /// [`Bedrock::with_env`] over the process environment.
    fn new(setup: ProviderSetup<'_>, settings: &BedrockSettings) -> Result<Bedrock, SetupError> {
        Bedrock::with_env(setup, settings, |name| std::env::var(name).ok())
    }

    fn encode(
        &self,
        chat: &ChatRequest,
        _call: Call<'_>,
    ) -> Result<ConverseRequest, ProviderError> {
        to_converse(chat)
    }

    async fn request(
        &self,
        client: &HttpClient,
        call: Call<'_>,
        body: Bytes,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        if call.stream {
            let url = self.url(call.model, "converse-stream").await?;
            self.post(client, &url, body, EVENT_STREAM_CONTENT_TYPE)
                .await
        } else {
            let url = self.url(call.model, "converse").await?;
            self.post(client, &url, body, "application/json").await
        }
    }

    fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
        let kind = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        from_response(status, kind, body)
    }

    /// A completion id from Bedrock's request id, so a response can be found in AWS's logs;
    /// a fresh one when the header is missing.
    fn answer_id(&self, headers: &HeaderMap) -> Option<String> {
        let request_id = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128);
        Some(match request_id {
            Some(id) => format!("chatcmpl-{id}"),
            None => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    fn decode(
        &self,
        answer: ConverseResponse,
        cx: &Answered<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        Ok(to_chat_response(
            answer,
            completion_id(cx),
            cx.created,
            cx.model,
        ))
    }

    fn translator(&self, cx: &Answered<'_>) -> Translator {
        Translator::new(completion_id(cx), cx.created, cx.model.to_owned())
    }

    async fn inputs(
        &self,
        client: &HttpClient,
        response: reqwest::Response,
    ) -> Result<Inputs<Frame>, ProviderError> {
        Ok(Box::pin(frames(
            response.bytes_stream(),
            transport_error,
            client.max_body_bytes(),
        )))
    }

    /// Titan and Cohere models through InvokeModel.
    async fn embeddings(
        upstream: &BedrockProvider,
        req: UpstreamRequest,
    ) -> Result<UpstreamResponse, ProviderError> {
        embed(upstream, req).await
    }

    /// The credentials in use, wherever they came from: those of the `AWS_*` environment
    /// are in no catalog record, and the redactor must know them too.
    fn extra_secrets(&self) -> Vec<Secret> {
        match &self.auth {
            Auth::SigV4(creds) => {
                let mut secrets = vec![
                    Secret::new(creds.access_key_id.clone()),
                    creds.secret_access_key.clone(),
                ];
                secrets.extend(creds.session_token.clone());
                secrets
            }
            Auth::Bearer(key) => vec![key.clone()],
            // Reported as they are fetched, through `live_secrets`.
            Auth::Chain { .. } => Vec::new(),
        }
    }

    fn live_secrets(&self) -> Option<Arc<LiveSecrets>> {
        match &self.auth {
            Auth::Chain { live, .. } => Some(Arc::clone(live)),
            _ => None,
        }
    }
}

/// The answer's completion id ([`Dialect::answer_id`] always gives one).
fn completion_id(cx: &Answered<'_>) -> String {
    cx.id.clone().unwrap_or_default()
}

/// `/v1/embeddings` through InvokeModel, for the Titan and Cohere families.
async fn embed(
    upstream: &BedrockProvider,
    req: UpstreamRequest,
) -> Result<UpstreamResponse, ProviderError> {
    let Some(family) = Family::of(&req.model) else {
        return Err(invalid_request(
            format!(
                "`{}` is not an embedding model Portico can call on Bedrock; use an amazon.titan-embed-* or cohere.embed-* model",
                req.model
            ),
            Some("model"),
        ));
    };
    let parsed = embeddings::parse_request(&req.body)?;
    let bedrock = upstream.dialect();
    let url = bedrock.url(&req.model, "invoke").await?;
    embeddings::embed(family, &req.model, &parsed, |body| {
        let url = url.clone();
        async move {
            let request = bedrock
                .post(upstream.client(), &url, body, "application/json")
                .await?;
            let response = upstream.call(request).await?;
            let input_tokens_header = response
                .headers()
                .get("x-amzn-bedrock-input-token-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = upstream.client().read_body(response).await?;
            Ok(CallAnswer {
                body,
                input_tokens_header,
            })
        }
    })
    .await
}

/// A model id (a name, an inference profile such as `us.anthropic...:0`, or an ARN) as one
/// path segment: everything but unreserved characters percent-encoded, `/` and `:` included.
pub(crate) fn encode_model_id(model: &str) -> String {
    let mut out = String::with_capacity(model.len());
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    fn build(
        settings: serde_json::Value,
        credentials: &[(&str, &str)],
        api_key: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Bedrock, String> {
        let client = portico_providers::http::build_client(Default::default()).unwrap();
        let credentials: BTreeMap<String, Secret> = credentials
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
            .collect();
        let api_key = api_key.map(Secret::new);
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let settings = BedrockSettings::parse("bedrock-prod", &settings, &credentials)
            .map_err(|e| e.to_string())?;
        Bedrock::with_env(
            ProviderSetup {
                slug: "bedrock-prod",
                base_url: None,
                api_key: api_key.as_ref(),
                client: &client,
            },
            &settings,
            |name| env.get(name).cloned(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn model_ids_become_one_path_segment() {
        assert_eq!(
            encode_model_id("us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"
        );
        assert_eq!(
            encode_model_id("arn:aws:bedrock:us-east-1:123:inference-profile/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fx"
        );
    }

    #[test]
    fn region_from_catalog_then_environment() {
        let creds = [
            ("aws_access_key_id", "AKID"),
            ("aws_secret_access_key", "s"),
        ];
        let p = build(
            serde_json::json!({"aws_region": "eu-west-1"}),
            &creds,
            None,
            &[("AWS_REGION", "us-west-2")],
        )
        .unwrap();
        assert!(matches!(&p.region, RegionSource::Known(r) if r == "eu-west-1"));
        assert_eq!(p.base_url, None, "the region's own endpoint");
        let p = build(
            serde_json::json!({}),
            &creds,
            None,
            &[("AWS_DEFAULT_REGION", "ap-south-1")],
        )
        .unwrap();
        assert!(matches!(&p.region, RegionSource::Known(r) if r == "ap-south-1"));
        // Neither: the AWS profile's, read at the first request.
        let p = build(serde_json::json!({}), &creds, None, &[]).unwrap();
        assert!(matches!(&p.region, RegionSource::Profile(_)));
        let err = build(
            serde_json::json!({}),
            &creds,
            None,
            &[("AWS_REGION", "Paris")],
        )
        .unwrap_err();
        assert!(
            err.contains("AWS_REGION") && err.contains("not an AWS region"),
            "{err}"
        );
        let err = build(
            serde_json::json!({"aws_region": "us-east-1/evil"}),
            &creds,
            None,
            &[],
        )
        .unwrap_err();
        assert!(err.contains("not an AWS region"), "{err}");
    }

    #[test]
    fn the_credentials_in_use_are_reported_for_redaction() {
        let region = serde_json::json!({"aws_region": "us-east-1"});
        let secrets = |p: &Bedrock| -> Vec<String> {
            p.extra_secrets()
                .iter()
                .map(|s| s.expose().to_owned())
                .collect()
        };
        let from_env = build(
            region.clone(),
            &[],
            None,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT01"),
                ("AWS_SECRET_ACCESS_KEY", "env-secret-access-key"),
                ("AWS_SESSION_TOKEN", "env-session-token"),
            ],
        )
        .unwrap();
        assert_eq!(
            secrets(&from_env),
            [
                "AKIAENVIRONMENT01",
                "env-secret-access-key",
                "env-session-token"
            ]
        );
        let bearer = build(
            region,
            &[],
            None,
            &[("AWS_BEARER_TOKEN_BEDROCK", "env-bedrock-api-key")],
        )
        .unwrap();
        assert_eq!(secrets(&bearer), ["env-bedrock-api-key"]);
    }

    #[test]
    fn credentials_in_order_and_never_in_messages() {
        let region = serde_json::json!({"aws_region": "us-east-1"});
        let p = build(
            region.clone(),
            &[],
            Some("bedrock-key-xyz"),
            &[
                ("AWS_ACCESS_KEY_ID", "AKENV"),
                ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ],
        )
        .unwrap();
        assert!(
            matches!(p.auth, Auth::Bearer(_)),
            "the catalog's API key wins over the environment"
        );
        let p = build(
            region.clone(),
            &[],
            None,
            &[
                ("AWS_ACCESS_KEY_ID", "AKENV"),
                ("AWS_SECRET_ACCESS_KEY", "envsecret"),
                ("AWS_SESSION_TOKEN", "tok"),
            ],
        )
        .unwrap();
        match &p.auth {
            Auth::SigV4(c) => {
                assert_eq!(c.access_key_id, "AKENV");
                assert!(c.session_token.is_some());
            }
            other => panic!("{other:?}"),
        }
        let p = build(
            region.clone(),
            &[],
            None,
            &[("AWS_BEARER_TOKEN_BEDROCK", "abk")],
        )
        .unwrap();
        assert!(matches!(p.auth, Auth::Bearer(_)));
        let err = build(region.clone(), &[("aws_access_key_id", "AKID")], None, &[]).unwrap_err();
        assert!(err.contains("no secret access key"), "{err}");
        assert!(!format!("{p:?}").contains("abk"));
        // Nothing in the catalog or the variables read at start-up: AWS's default chain, at
        // the first request.
        let p = build(region, &[], None, &[]).unwrap();
        assert!(matches!(p.auth, Auth::Chain { .. }), "{:?}", p.auth);
        assert!(p.live_secrets().is_some());
        assert!(p.extra_secrets().is_empty());
    }
}
