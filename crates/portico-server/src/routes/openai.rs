//! The OpenAI-compatible data plane: chat completions, completions, embeddings, models.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use portico_core::{ApiError, Endpoint, ErrorCode, Outcome, RequestRecord};
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

async fn proxy(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
) -> Response {
    let started = Instant::now();
    let mut record = RequestRecord::new(uuid::Uuid::now_v7().to_string(), now_ms(), endpoint);
    let result = forward(&state, &headers, body, endpoint, started, &mut record).await;
    let mut response = match result {
        Ok(Forwarded::Streaming(response)) => {
            // The stream's body finishes the record when it ends.
            response
        }
        Ok(Forwarded::Complete(response)) => {
            record.status = response.status().as_u16();
            record.latency_ms = elapsed_ms(started);
            finish(&state, &record, response)
        }
        Err(err) => {
            record.status = err.status;
            record.outcome = Outcome::Failed;
            record.error_code = Some(err.code_string().to_owned());
            record.error = Some(err.message.clone());
            record.latency_ms = elapsed_ms(started);
            tracing::debug!(id = %record.id, status = err.status, "request failed: {}", err.message);
            finish(&state, &record, ErrorResponse(err).into_response())
        }
    };
    set_ids(response.headers_mut(), &record);
    response
}

/// What [`forward`] produced.
enum Forwarded {
    /// A whole answer; the record is finished by the caller.
    Complete(Response),
    /// A stream; its body owns the record and finishes it.
    Streaming(Response),
}

/// Authenticates, routes and sends one request, filling `record` as it learns things.
async fn forward(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
    started: Instant,
    record: &mut RequestRecord,
) -> Result<Forwarded, ApiError> {
    record.trace_id = request::trace_id(headers)?;
    record.metadata = request::metadata(headers)?;
    let key = state
        .gateway
        .authenticate(request::gateway_secret(headers))?;
    record.key_name = Some(key.name.clone());
    record.user = record
        .metadata
        .as_ref()
        .and_then(|m| m.get("_user"))
        .and_then(|u| u.as_str())
        .map(str::to_owned)
        .or_else(|| key.user.clone());
    let parsed = request::parse_body(body.map_err(body_rejection)?)?;
    let route = state
        .gateway
        .route(&key, &parsed.model, request::provider_header(headers))?;
    record.provider = Some(route.slug.clone());
    record.model = Some(route.model.clone());
    let stream = parsed.stream && endpoint.can_stream();
    record.stream = stream;
    let client_wants_usage = parsed.include_usage;
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
            record.set_usage(usage);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            Ok(Forwarded::Complete(
                (
                    status,
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response(),
            ))
        }
        UpstreamResponse::Stream { status, mut events } => {
            // Wait for the first event before answering 200, so that an upstream that fails
            // at once still gets a proper error status.
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
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut stream_record = record.clone();
            stream_record.status = status.as_u16();
            stream_record.ttft_ms = Some(elapsed_ms(started));
            let forward = ForwardStream::new(
                first,
                events,
                StreamLog {
                    record: stream_record,
                    started,
                    gateway: Arc::clone(&state.gateway),
                },
                client_wants_usage,
            );
            Ok(Forwarded::Streaming(
                (
                    status,
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/event-stream"),
                        ),
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    ],
                    Body::from_stream(forward),
                )
                    .into_response(),
            ))
        }
    }
}

/// Hands the record of a finished request to the sink and returns the response.
fn finish(state: &AppState, record: &RequestRecord, response: Response) -> Response {
    state.gateway.record(record.clone());
    response
}

fn set_ids(headers: &mut HeaderMap, record: &RequestRecord) {
    if !record.trace_id.is_empty()
        && let Ok(v) = HeaderValue::from_str(&record.trace_id)
    {
        headers.insert(TRACE_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&record.id) {
        headers.insert(REQUEST_ID, v);
    }
    if let Some(slug) = &record.provider
        && let Ok(v) = HeaderValue::from_str(&format!("@{slug}"))
    {
        headers.insert("x-portkey-provider", v);
    }
}

pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
