//! [`BedrockProvider`]: settings read once at start-up, and the HTTP calls.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::{Endpoint, ProviderKind, Secret};
use portico_providers::chat::ChatRequest;
use portico_providers::http::HttpClient;
use portico_providers::openai::{read_capped, retry_after, transport_error};
use portico_providers::{
    Provider, ProviderError, ProviderSetup, UpstreamRequest, UpstreamResponse,
};

use crate::embeddings::{self, CallAnswer, Family};
use crate::error::{from_response, invalid_request};
use crate::request::to_converse;
use crate::response::to_chat_response;
use crate::sign::{Auth, AwsCredentials, auth_headers};
use crate::stream::{Translator, converse_events};

/// Error bodies larger than this are cut before parsing.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The content type of ConverseStream answers.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// An AWS Bedrock upstream: chat through Converse / ConverseStream, embeddings through
/// InvokeModel.
#[derive(Debug, Clone)]
pub struct BedrockProvider {
    client: HttpClient,
    base_url: String,
    region: String,
    auth: Auth,
}

impl BedrockProvider {
    /// Builds the adapter from a catalog provider, reading `AWS_*` variables of the process
    /// environment for what the catalog leaves out.
    ///
    /// Fails with a message naming the provider and the setting to add when no region or no
    /// credentials can be found.
    pub fn new(setup: ProviderSetup<'_>) -> Result<BedrockProvider, String> {
        BedrockProvider::with_env(setup, |name| std::env::var(name).ok())
    }

    /// [`BedrockProvider::new`] with `env` standing in for the process environment.
    pub fn with_env(
        setup: ProviderSetup<'_>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BedrockProvider, String> {
        let slug = setup.slug;
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let region = setup
            .settings
            .get("aws_region")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .filter(|r| !r.trim().is_empty())
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                format!(
                    "provider @{slug} (kind bedrock) has no AWS region; set `aws_region` in the catalog (e.g. us-east-1) or AWS_REGION in the environment"
                )
            })?;
        let region = region.trim().to_owned();
        if !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(format!(
                "provider @{slug} (kind bedrock): `{region}` is not an AWS region name (such as us-east-1)"
            ));
        }
        let auth = resolve_auth(slug, &setup, &env)?;
        let base_url = match setup.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        };
        Ok(BedrockProvider {
            client: setup.client.clone(),
            base_url,
            region,
            auth,
        })
    }

    /// The URL of an operation (`converse`, `converse-stream`, `invoke`) on `model`.
    fn url(&self, model: &str, operation: &str) -> String {
        format!(
            "{}/model/{}/{operation}",
            self.base_url,
            encode_model_id(model)
        )
    }

    /// POSTs `body` to `url`, authenticated; a non-2xx answer becomes the error.
    async fn post(
        &self,
        url: &str,
        body: Bytes,
        accept: &'static str,
    ) -> Result<reqwest::Response, ProviderError> {
        let headers = [("content-type", "application/json"), ("accept", accept)];
        let auth = auth_headers(
            &self.auth,
            &self.region,
            "POST",
            url,
            &headers,
            &body,
            SystemTime::now(),
        )
        .map_err(|e| ProviderError::Unreachable(e.into()))?;
        let mut builder = self.client.post(url).body(body);
        for (name, value) in headers.into_iter() {
            builder = builder.header(name, value);
        }
        for (name, value) in auth {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(transport_error)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let kind = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_capped(response, MAX_ERROR_BODY).await;
        let mut err = from_response(status, kind.as_deref(), &body);
        if let ProviderError::Status { retry_after, .. } = &mut err {
            *retry_after = wait;
        }
        Err(err)
    }

    async fn chat(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let chat: ChatRequest = req.body.deserialize().map_err(|e| {
            invalid_request(format!("the chat request could not be read: {e}"), None)
        })?;
        let converse = to_converse(&chat)?;
        let body = serde_json::to_vec(&converse).map_err(|e| {
            ProviderError::Malformed(format!("the Bedrock request could not be written: {e}"))
        })?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if req.stream {
            let url = self.url(&req.model, "converse-stream");
            let response = self
                .post(&url, Bytes::from(body), EVENT_STREAM_CONTENT_TYPE)
                .await?;
            let id = completion_id(&response);
            let translator = Translator::new(id, created, req.model.clone());
            let events = converse_events(
                response.bytes_stream(),
                translator,
                transport_error,
                self.client.max_body_bytes(),
            );
            return Ok(UpstreamResponse::Stream {
                status: 200,
                events: Box::pin(events),
            });
        }
        let url = self.url(&req.model, "converse");
        let response = self
            .post(&url, Bytes::from(body), "application/json")
            .await?;
        let id = completion_id(&response);
        let bytes = self.client.read_body(response).await?;
        let answer = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Malformed(format!("Bedrock's Converse answer could not be read: {e}"))
        })?;
        let chat = to_chat_response(answer, id, created, &req.model);
        let usage = chat.usage.map(|u| u.to_usage());
        let body = serde_json::to_vec(&chat).map_err(|e| {
            ProviderError::Malformed(format!("the chat completion could not be written: {e}"))
        })?;
        Ok(UpstreamResponse::Complete {
            status: 200,
            body: Bytes::from(body),
            usage,
        })
    }

    async fn embeddings(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
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
        let url = self.url(&req.model, "invoke");
        embeddings::embed(family, &req.model, &parsed, |body| {
            let url = url.clone();
            async move {
                let response = self.post(&url, body, "application/json").await?;
                let input_tokens_header = response
                    .headers()
                    .get("x-amzn-bedrock-input-token-count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok());
                let body = self.client.read_body(response).await?;
                Ok(CallAnswer {
                    body,
                    input_tokens_header,
                })
            }
        })
        .await
    }
}

#[async_trait]
impl Provider for BedrockProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Bedrock
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
        }
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        match req.endpoint {
            Endpoint::ChatCompletions => self.chat(req).await,
            Endpoint::Embeddings => self.embeddings(req).await,
            Endpoint::Completions => Err(ProviderError::Unsupported {
                kind: "bedrock",
                endpoint: req.endpoint,
            }),
        }
    }
}

/// Credentials in order: the catalog's key pair, the catalog's API key, the environment's
/// key pair, the environment's Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`).
fn resolve_auth(
    slug: &str,
    setup: &ProviderSetup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Auth, String> {
    let catalog = |name: &str| {
        setup
            .credentials
            .get(name)
            .filter(|s| !s.expose().trim().is_empty())
            .cloned()
    };
    let pair = |id: Option<Secret>, secret: Option<Secret>, token: Option<Secret>, from: &str| {
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some(Auth::SigV4(AwsCredentials {
                access_key_id: id.expose().trim().to_owned(),
                secret_access_key: secret,
                session_token: token,
            }))),
            (Some(_), None) => Err(format!(
                "provider @{slug} (kind bedrock): {from} has an AWS access key id but no secret access key; add it"
            )),
            (None, Some(_)) => Err(format!(
                "provider @{slug} (kind bedrock): {from} has an AWS secret access key but no access key id; add it"
            )),
            (None, None) => Ok(None),
        }
    };
    if let Some(auth) = pair(
        catalog("aws_access_key_id"),
        catalog("aws_secret_access_key"),
        catalog("aws_session_token"),
        "the catalog",
    )? {
        return Ok(auth);
    }
    if let Some(key) = setup.api_key.filter(|k| !k.expose().trim().is_empty()) {
        return Ok(Auth::Bearer(key.clone()));
    }
    let from_env = |name: &str| env(name).map(Secret::new);
    if let Some(auth) = pair(
        from_env("AWS_ACCESS_KEY_ID"),
        from_env("AWS_SECRET_ACCESS_KEY"),
        from_env("AWS_SESSION_TOKEN"),
        "the environment",
    )? {
        return Ok(auth);
    }
    if let Some(key) = from_env("AWS_BEARER_TOKEN_BEDROCK") {
        return Ok(Auth::Bearer(key));
    }
    Err(format!(
        "provider @{slug} (kind bedrock) has no AWS credentials; set `aws_access_key_id` and `aws_secret_access_key` (or a Bedrock API key as `api_key`) in the catalog, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
    ))
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

/// A completion id from Bedrock's request id, so a response can be found in AWS's logs; a
/// fresh one when the header is missing.
fn completion_id(response: &reqwest::Response) -> String {
    let request_id = response
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128);
    match request_id {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
    }
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
    ) -> Result<BedrockProvider, String> {
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
        BedrockProvider::with_env(
            ProviderSetup {
                slug: "bedrock-prod",
                base_url: None,
                api_key: api_key.as_ref(),
                settings: &settings,
                credentials: &credentials,
                client: &client,
            },
            |name| env.get(name).cloned(),
        )
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
        assert_eq!(p.region, "eu-west-1");
        assert_eq!(
            p.base_url,
            "https://bedrock-runtime.eu-west-1.amazonaws.com"
        );
        let p = build(
            serde_json::json!({}),
            &creds,
            None,
            &[("AWS_DEFAULT_REGION", "ap-south-1")],
        )
        .unwrap();
        assert_eq!(p.region, "ap-south-1");
        let err = build(serde_json::json!({}), &creds, None, &[]).unwrap_err();
        assert!(
            err.contains("@bedrock-prod") && err.contains("aws_region"),
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
        let secrets = |p: &BedrockProvider| -> Vec<String> {
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
        let err = build(region, &[], None, &[]).unwrap_err();
        assert!(err.contains("no AWS credentials"), "{err}");
        assert!(!format!("{p:?}").contains("abk"));
    }
}
