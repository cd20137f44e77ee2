//! The OpenAI-compatible data plane: chat completions, completions, embeddings, models.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_core::{ApiError, Endpoint, RequestRecord};
use portico_providers::UpstreamResponse;

use crate::AppState;
use crate::error::ErrorResponse;
use crate::relay::{self, Forwarded};
use crate::request;
use crate::stream::StreamDialect;

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
    let (started, mut record) = relay::begin(endpoint.as_str());
    let result = forward(&state, &headers, body, endpoint, started, &mut record).await;
    relay::conclude(&state, record, started, result, |err| {
        ErrorResponse(err).into_response()
    })
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
    let key = relay::identify(state, headers, request::gateway_secret(headers), record)?;
    let parsed = request::parse_body(body.map_err(relay::body_rejection)?)?;
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
            Ok(relay::complete(status, body))
        }
        UpstreamResponse::Stream { status, events } => {
            let dialect = StreamDialect::OpenAi { client_wants_usage };
            relay::streaming(state, &route.slug, status, events, record, started, dialect).await
        }
    }
}
