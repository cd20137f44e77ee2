//! OpenAI's operations that are sent to a provider as they are, to OpenAI's own path
//! ([`Endpoint::is_passthrough`]): moderations, image generation, audio transcription (a
//! `multipart/form-data` upload) and speech (answered with audio bytes).
//!
//! Only adapters whose upstream serves OpenAI's API implement
//! [`Provider::send_passthrough`](crate::Provider::send_passthrough); for every other kind the
//! gateway answers 400 ([`crate::ProviderError::Unsupported`]) instead of calling anything.

use bytes::Bytes;
use http::HeaderValue;
use portico_core::{Endpoint, JsonBody};

use crate::ProviderError;
use crate::form::FormUpload;
use crate::http::HttpClient;
use crate::openai::{error_from_response, transport_error};

/// One pass-through call.
#[derive(Debug, Clone)]
pub struct PassthroughRequest {
    /// The operation.
    pub endpoint: Endpoint,
    /// The model name sent upstream (without the `@slug/`).
    pub model: String,
    /// The body.
    pub body: PassthroughBody,
}

/// A pass-through request's body.
#[derive(Debug, Clone)]
pub enum PassthroughBody {
    /// A JSON body whose `model` is already the upstream name.
    Json(JsonBody),
    /// A `multipart/form-data` upload, sent with its `model` field set to the upstream name
    /// ([`FormUpload::with_model`]).
    Form(std::sync::Arc<FormUpload>),
}

/// An upstream's successful answer, whatever its type.
#[derive(Debug, Clone)]
pub struct PassthroughAnswer {
    /// The upstream's 2xx status.
    pub status: u16,
    /// The upstream's Content-Type, when it sent one.
    pub content_type: Option<HeaderValue>,
    /// The whole body, read under the client's answer limit.
    pub body: Bytes,
}

impl PassthroughAnswer {
    /// Whether the answer is JSON (`application/json`, or `+json`).
    pub fn is_json(&self) -> bool {
        self.content_type
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| {
                let essence = essence.trim();
                essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
            })
    }
}

impl PassthroughRequest {
    /// The body and its Content-Type as sent upstream.
    pub(crate) fn wire_body(&self) -> Result<(reqwest::Body, HeaderValue), ProviderError> {
        match &self.body {
            PassthroughBody::Json(json) => Ok((
                crate::http::request_body(json),
                HeaderValue::from_static("application/json"),
            )),
            PassthroughBody::Form(form) => Ok((
                crate::http::shared_body(form.with_model(&self.model)?),
                form.content_type().clone(),
            )),
        }
    }
}

/// Sends a prepared request and reads its answer: an error status becomes the upstream's
/// error, anything else the whole body with its Content-Type.
pub(crate) async fn send(
    client: &HttpClient,
    builder: reqwest::RequestBuilder,
) -> Result<PassthroughAnswer, ProviderError> {
    let response = builder.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(error_from_response(response).await);
    }
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = client.read_body(response).await?;
    Ok(PassthroughAnswer {
        status,
        content_type,
        body,
    })
}
