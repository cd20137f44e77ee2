//! The OpenAI-compatible data plane: chat completions, completions, embeddings, models.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use portico_core::{ApiError, Endpoint, ErrorCode};
use portico_providers::{ProviderError, UpstreamResponse};

use crate::AppState;
use crate::error::ErrorResponse;
use crate::request::{self, REQUEST_ID, TRACE_ID};
use crate::stream::{ForwardStream, StreamLog};

/// `POST /v1/chat/completions`
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    proxy(state, headers, body, Endpoint::ChatCompletions).await
}

/// `POST /v1/completions`
pub(crate) async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    proxy(state, headers, body, Endpoint::Completions).await
}

/// `POST /v1/embeddings`
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    proxy(state, headers, body, Endpoint::Embeddings).await
}

/// `GET /v1/models`: the `@slug/model` ids the calling key may use, in OpenAI's list shape.
pub(crate) async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let key = match state
        .gateway
        .authenticate(request::gateway_secret(&headers))
    {
        Ok(key) => key,
        Err(err) => return ErrorResponse(err).into_response(),
    };
    let data: Vec<serde_json::Value> = state
        .gateway
        .visible_models(&key)
        .into_iter()
        .map(|(slug, model)| {
            serde_json::json!({
                "id": format!("@{slug}/{model}"),
                "object": "model",
                "created": 0,
                "owned_by": slug,
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

/// The ids every answer carries.
struct RequestIds {
    request_id: String,
    trace_id: String,
}

async fn proxy(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
) -> Response {
    let started = Instant::now();
    let mut ids = RequestIds {
        request_id: uuid::Uuid::now_v7().to_string(),
        trace_id: String::new(),
    };
    let mut provider = None;
    let result = async {
        ids.trace_id = request::trace_id(&headers)?;
        let _metadata = request::metadata(&headers)?;
        let key = state
            .gateway
            .authenticate(request::gateway_secret(&headers))?;
        let bytes = body.map_err(body_rejection)?;
        let parsed = request::parse_body(bytes)?;
        let route = state
            .gateway
            .route(&key, &parsed.model, request::provider_header(&headers))?;
        provider = Some(route.slug.clone());
        let stream = parsed.stream && endpoint.can_stream();
        let answer = state
            .gateway
            .send(&route, endpoint, parsed.body, stream)
            .await?;
        match answer {
            UpstreamResponse::Complete {
                status,
                body,
                usage,
            } => {
                tracing::info!(
                    request_id = %ids.request_id,
                    trace_id = %ids.trace_id,
                    key = %key.name,
                    provider = %route.slug,
                    model = %route.model,
                    endpoint = endpoint.as_str(),
                    stream = false,
                    status,
                    prompt_tokens = usage.map(|u| u.prompt_tokens),
                    completion_tokens = usage.map(|u| u.completion_tokens),
                    latency_ms = started.elapsed().as_millis() as u64,
                    "request finished"
                );
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                Ok((
                    status,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response())
            }
            UpstreamResponse::Stream { status, mut events } => {
                // Wait for the first event before answering 200, so that an upstream that
                // fails at once still gets a proper error status.
                let first = match events.next().await {
                    Some(Ok(event)) => event,
                    Some(Err(err)) => return Err(err.to_api_error(&route.slug)),
                    None => {
                        return Err(ProviderError::StreamBroken(
                            "the upstream closed the stream before sending any event".into(),
                        )
                        .to_api_error(&route.slug));
                    }
                };
                let log = StreamLog {
                    request_id: ids.request_id.clone(),
                    trace_id: ids.trace_id.clone(),
                    key: key.name.clone(),
                    provider: route.slug.clone(),
                    model: route.model.clone(),
                    started,
                };
                let body = Body::from_stream(ForwardStream::new(first, events, log));
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                Ok((
                    status,
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/event-stream"),
                        ),
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    ],
                    body,
                )
                    .into_response())
            }
        }
    }
    .await;

    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            log_error(&ids, provider.as_deref(), endpoint, &err, started);
            ErrorResponse(err).into_response()
        }
    };
    set_ids(response.headers_mut(), &ids, provider.as_deref());
    response
}

fn set_ids(headers: &mut HeaderMap, ids: &RequestIds, provider: Option<&str>) {
    if !ids.trace_id.is_empty()
        && let Ok(v) = HeaderValue::from_str(&ids.trace_id)
    {
        headers.insert(TRACE_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        headers.insert(REQUEST_ID, v);
    }
    if let Some(slug) = provider
        && let Ok(v) = HeaderValue::from_str(&format!("@{slug}"))
    {
        headers.insert("x-portkey-provider", v);
    }
}

fn log_error(
    ids: &RequestIds,
    provider: Option<&str>,
    endpoint: Endpoint,
    err: &ApiError,
    started: Instant,
) {
    tracing::warn!(
        request_id = %ids.request_id,
        trace_id = %ids.trace_id,
        provider = provider.unwrap_or(""),
        endpoint = endpoint.as_str(),
        status = err.status,
        code = err.code_string(),
        latency_ms = started.elapsed().as_millis() as u64,
        "request failed: {}",
        err.message
    );
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the gateway accepts (PORTICO_MAX_BODY_BYTES)",
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the request body could not be read: {rejection}"),
        )
    }
}
