//! OpenAI and every OpenAI-compatible upstream (Mistral, Groq, DeepSeek, Together, Ollama, any
//! server that speaks the API).
//!
//! The request is OpenAI's already, so this adapter only sets the credentials and forwards the
//! body; a stream's events are forwarded one by one as they arrive.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::{Endpoint, JsonBody, ProviderKind, Secret, Usage};
use serde::Deserialize;

use crate::http::HttpClient;
pub use crate::http::transport_error;
use crate::passthrough::{PassthroughAnswer, PassthroughRequest};
use crate::{Provider, ProviderError, UpstreamRequest, UpstreamResponse};

use crate::dialect::MAX_ERROR_BODY;

/// An OpenAI-style upstream.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    kind: ProviderKind,
    client: HttpClient,
    base_url: String,
    /// The full URL of each endpoint, parsed once: parsing it per request (with its IDNA
    /// host check) was a few percent of a request's CPU. `None` when the base URL does not
    /// parse, in which case the request reports that.
    urls: std::sync::Arc<[Option<reqwest::Url>; Endpoint::ALL.len()]>,
    api_key: Option<Secret>,
}

impl OpenAiProvider {
    /// An adapter for `base_url` (which includes `/v1` or its equivalent), sending `api_key` as
    /// a bearer token when there is one.
    pub fn new(
        kind: ProviderKind,
        client: HttpClient,
        base_url: impl Into<String>,
        api_key: Option<Secret>,
    ) -> OpenAiProvider {
        let mut base_url = base_url.into();
        while base_url.ends_with('/') {
            base_url.pop();
        }
        let urls =
            Endpoint::ALL.map(|e| reqwest::Url::parse(&format!("{base_url}{}", e.path())).ok());
        OpenAiProvider {
            kind,
            client,
            base_url,
            urls: std::sync::Arc::new(urls),
            api_key,
        }
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        let body = crate::http::request_body(&req.body);
        let builder = match &self.urls[req.endpoint as usize] {
            Some(url) => self.client.post(url.clone()),
            None => self
                .client
                .post(format!("{}{}", self.base_url, req.endpoint.path())),
        };
        let mut builder = builder
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        if req.stream {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        let response = builder.send().await.map_err(transport_error)?;
        read_answer(&self.client, response).await
    }

    async fn send_moderation(&self, body: JsonBody) -> Option<Result<Bytes, ProviderError>> {
        Some(self.moderate(&body).await)
    }

    /// OpenAI itself has the Responses API; the OpenAI-compatible servers are not assumed to
    /// (most answer chat completions only), so theirs is translated.
    fn speaks_responses(&self) -> bool {
        self.kind == ProviderKind::OpenAi
    }

    async fn send_passthrough(
        &self,
        req: PassthroughRequest,
    ) -> Option<Result<PassthroughAnswer, ProviderError>> {
        Some(self.pass_through(req).await)
    }
}

impl OpenAiProvider {
    /// `POST {base_url}{path}` with the provider's key, the body as the client sent it (but
    /// for `model`) under its own Content-Type.
    async fn pass_through(
        &self,
        req: PassthroughRequest,
    ) -> Result<PassthroughAnswer, ProviderError> {
        let (body, content_type) = req.wire_body()?;
        let builder = match &self.urls[req.endpoint as usize] {
            Some(url) => self.client.post(url.clone()),
            None => self
                .client
                .post(format!("{}{}", self.base_url, req.endpoint.path())),
        };
        let mut builder = builder
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        crate::passthrough::send(&self.client, builder).await
    }

    /// `POST {base_url}/moderations` with the provider's key; the answer's JSON body.
    async fn moderate(&self, body: &JsonBody) -> Result<Bytes, ProviderError> {
        let mut builder = self
            .client
            .post(format!("{}/moderations", self.base_url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(crate::http::request_body(body));
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = builder.send().await.map_err(transport_error)?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        self.client.read_body(response).await
    }
}

/// Reads an OpenAI-style answer under `client`'s limit: an error status becomes
/// [`error_from_response`]'s error, a `text/event-stream` answer a stream of its events as they
/// arrive, anything else a complete JSON body with its usage.
pub(crate) async fn read_answer(
    client: &HttpClient,
    response: reqwest::Response,
) -> Result<UpstreamResponse, ProviderError> {
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(error_from_response(response).await);
    }
    if crate::http::is_event_stream(&response) {
        return Ok(UpstreamResponse::Stream {
            status,
            events: Box::pin(checked_events(client.sse_events(response))),
        });
    }
    let body = client.read_body(response).await?;
    let usage = read_usage(&body)?;
    Ok(UpstreamResponse::Complete {
        status,
        body,
        usage,
    })
}

/// The events of an OpenAI-style stream, each checked before it is forwarded: its data must
/// be UTF-8 JSON (else [`ProviderError::Malformed`]: a client must never get an event it
/// cannot parse), and an event that is an error object (`{"error": {...}}`, which OpenAI
/// sends when a stream fails) is the upstream's error ([`answered_error`]), not content.
/// Either ends the stream: before its first event the request can still fall back; after,
/// the client gets an in-band error event and the log a broken stream.
fn checked_events(
    events: impl futures::Stream<Item = Result<crate::SseEvent, ProviderError>> + Send + 'static,
) -> impl futures::Stream<Item = Result<crate::SseEvent, ProviderError>> + Send + 'static {
    use futures::StreamExt as _;
    events.map(|item| {
        let event = item?;
        if event.is_done() {
            return Ok(event);
        }
        #[derive(Deserialize)]
        struct Probe<'a> {
            #[serde(borrow, default)]
            error: Option<&'a serde_json::value::RawValue>,
        }
        // serde_json checks UTF-8 only where it decodes a string, so the bytes first.
        let text = std::str::from_utf8(&event.data).map_err(|e| {
            ProviderError::Malformed(format!("a stream event is not valid UTF-8: {e}"))
        })?;
        let probe: Probe<'_> = serde_json::from_str(text).map_err(|e| {
            ProviderError::Malformed(format!(
                "a stream event is not JSON ({e}): {}",
                crate::error::quote(text)
            ))
        })?;
        match probe.error {
            Some(error) if error.get() != "null" => Err(answered_error(event.data.as_ref())),
            _ => Ok(event),
        }
    })
}

/// A successful (2xx) answer, or stream event, whose body is an error object: the upstream's
/// error with its message, type and code, answered 502.
fn answered_error(body: &[u8]) -> ProviderError {
    crate::error::answered_error(parse_error_body(502, body))
}

/// Checks that a complete answer is JSON and reads its usage without building a tree. An
/// answer that is an error object (`{"error": {...}}` with no `choices`, `data` or
/// `output`) is the upstream's error ([`answered_error`]).
pub(crate) fn read_usage(body: &Bytes) -> Result<Option<Usage>, ProviderError> {
    #[derive(Deserialize)]
    struct WithUsage<'a> {
        usage: Option<UsageWire>,
        #[serde(borrow, default)]
        error: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        choices: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        data: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        output: Option<&'a serde_json::value::RawValue>,
    }
    // The Responses API names the same counts `input_tokens` and `output_tokens`.
    #[derive(Deserialize)]
    struct UsageWire {
        #[serde(alias = "input_tokens")]
        prompt_tokens: Option<u64>,
        #[serde(alias = "output_tokens")]
        completion_tokens: Option<u64>,
        #[serde(alias = "input_tokens_details")]
        prompt_tokens_details: Option<PromptDetails>,
    }
    #[derive(Deserialize)]
    struct PromptDetails {
        cached_tokens: Option<u64>,
        cache_creation_tokens: Option<u64>,
    }
    // serde_json checks UTF-8 only where it decodes a string; the body goes to the client
    // as it is, so all of it.
    let text = std::str::from_utf8(body)
        .map_err(|e| ProviderError::Malformed(format!("the answer is not valid UTF-8: {e}")))?;
    let parsed: WithUsage<'_> = serde_json::from_str(text)
        .map_err(|e| ProviderError::Malformed(format!("the answer is not a JSON object: {e}")))?;
    if parsed.error.is_some_and(|e| e.get().starts_with('{'))
        && parsed.choices.is_none()
        && parsed.data.is_none()
        && parsed.output.is_none()
    {
        return Err(answered_error(body));
    }
    Ok(parsed.usage.and_then(|u| {
        if u.prompt_tokens.is_none() && u.completion_tokens.is_none() {
            return None;
        }
        let details = u.prompt_tokens_details;
        Some(Usage {
            prompt_tokens: u.prompt_tokens.unwrap_or(0),
            completion_tokens: u.completion_tokens.unwrap_or(0),
            cached_tokens: details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: details
                .as_ref()
                .and_then(|d| d.cache_creation_tokens)
                .unwrap_or(0),
        })
    }))
}

/// Turns an upstream error answer into [`ProviderError::Status`], keeping the upstream's own
/// message, type and code when its body is OpenAI-shaped (or close to it).
pub(crate) async fn error_from_response(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    let body = read_capped(response, MAX_ERROR_BODY).await;
    parse_error_body(status, &body).with_retry_after(retry_after)
}

/// Reads at most `cap` bytes of an (error) answer's body; a read error ends it early.
pub async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    out
}

/// Reads an error body in the shapes OpenAI-compatible servers use: `{"error": {...}}`,
/// `{"error": "text"}`, `{"message": "text"}`, `{"detail": "text"}`, or plain text.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> ProviderError {
    let text_of = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let mut message = None;
    let mut error_type = None;
    let mut code = None;
    let mut param = None;
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        match json.get("error") {
            Some(serde_json::Value::Object(e)) => {
                message = e.get("message").and_then(text_of);
                error_type = e.get("type").and_then(text_of);
                code = e.get("code").and_then(text_of);
                param = e.get("param").and_then(text_of);
            }
            Some(serde_json::Value::String(s)) => message = Some(s.clone()),
            _ => {}
        }
        if message.is_none() {
            message = json
                .get("message")
                .or_else(|| json.get("detail"))
                .and_then(text_of);
        }
    }
    let message =
        message.unwrap_or_else(|| crate::error::unreadable_answer("the upstream", status, body));
    ProviderError::Status {
        status,
        message,
        error_type,
        code,
        param,
        retry_after: None,
    }
}

/// `Retry-After` in seconds or as an HTTP date, or Azure's `retry-after-ms` /
/// `x-ms-retry-after-ms`.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header(name).and_then(|v| v.trim().parse::<f64>().ok())
            && ms.is_finite()
            && ms >= 0.0
        {
            return Some(Duration::from_millis(ms as u64));
        }
    }
    let value = header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let now = std::time::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(portico_core::now_ms()).unwrap_or(0));
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_openai_error_fields() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","param":null}}"#;
        match parse_error_body(429, body) {
            ProviderError::Status {
                status,
                message,
                error_type,
                code,
                param,
                ..
            } => {
                assert_eq!(status, 429);
                assert_eq!(message, "Rate limit reached");
                assert_eq!(error_type.as_deref(), Some("requests"));
                assert_eq!(code.as_deref(), Some("rate_limit_exceeded"));
                assert_eq!(param, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_other_error_shapes() {
        let msg = |body: &[u8]| match parse_error_body(500, body) {
            ProviderError::Status { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg(br#"{"error":"model overloaded"}"#), "model overloaded");
        assert_eq!(msg(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            msg(b"<html>bad gateway</html>"),
            "the upstream answered HTTP 500: <html>bad gateway</html>"
        );
        assert!(msg(b"").contains("empty body"));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut past = http::HeaderMap::new();
        past.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
    }

    #[test]
    fn usage_is_read_without_a_tree() {
        let body = Bytes::from_static(br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}"#);
        let usage = read_usage(&body).unwrap().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (3, 4, 1)
        );
        assert!(read_usage(&Bytes::from_static(b"not json")).is_err());
        assert_eq!(read_usage(&Bytes::from_static(b"{}")).unwrap(), None);
        let responses = Bytes::from_static(br#"{"object":"response","usage":{"input_tokens":9,"output_tokens":2,"input_tokens_details":{"cached_tokens":5}}}"#);
        let usage = read_usage(&responses).unwrap().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (9, 2, 5)
        );
    }
}
