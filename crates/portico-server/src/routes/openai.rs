//! The OpenAI-compatible data plane: chat completions, completions, embeddings, models.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use portico_core::{ApiError, Endpoint};

use crate::AppState;
use crate::error::ErrorResponse;
use crate::relay::{self, Forwarded, PendingRecord, Ready, RouteHeaders};
use crate::request;
use crate::stream::StreamDialect;

/// `POST /v1/chat/completions`
pub(crate) async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    proxy(state, request, Endpoint::ChatCompletions).await
}

/// `POST /v1/completions`
pub(crate) async fn completions(State(state): State<AppState>, request: Request) -> Response {
    proxy(state, request, Endpoint::Completions).await
}

/// `POST /v1/embeddings`
pub(crate) async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    proxy(state, request, Endpoint::Embeddings).await
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

async fn proxy(state: AppState, request: Request, endpoint: Endpoint) -> Response {
    let mut pending = PendingRecord::begin(&state, endpoint.as_str());
    let mut route_headers = RouteHeaders::default();
    let (parts, body) = request.into_parts();
    let result = relay::unless_cut(
        &state,
        forward(
            &state,
            &parts.headers,
            body,
            endpoint,
            &mut pending,
            &mut route_headers,
        ),
    )
    .await;
    relay::conclude(&state, pending, result, &route_headers, |err| {
        ErrorResponse(err).into_response()
    })
}

/// Authenticates (on the headers alone), reads the body, routes and sends one request,
/// filling the record as it learns things.
async fn forward(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
    pending: &mut PendingRecord,
    route_headers: &mut RouteHeaders,
) -> Result<Forwarded, ApiError> {
    let started = pending.started();
    let record = pending.record();
    let key = relay::identify(state, headers, request::gateway_secret(headers), record)?;
    let raw = state.body_limits.read(headers, body).await?;
    relay::keep_request(record, &key, &raw);
    let parsed = request::parse_body(raw)?;
    let stream = parsed.stream && endpoint.can_stream();
    record.stream = stream;
    let dispatch = relay::plan(state, headers, &key, &parsed, record, endpoint.path())?;
    let gateway = &state.gateway;
    let outcome = gateway
        .dispatch(
            &dispatch,
            &key,
            &parsed.body,
            record,
            |route, body| async move {
                let answer = gateway.send(&route, endpoint, body, stream).await?;
                Ready::from_upstream(answer).await
            },
        )
        .await;
    *route_headers = RouteHeaders::of(&outcome);
    let (answer, _route) = outcome.result?;
    match answer {
        Ready::Complete {
            status,
            body,
            usage,
        } => {
            record.set_usage(usage);
            relay::keep_response(record, &body);
            Ok(relay::complete(status, body))
        }
        Ready::Stream {
            status,
            first,
            events,
        } => {
            let dialect = StreamDialect::OpenAi {
                client_wants_usage: parsed.include_usage,
            };
            Ok(relay::streaming(
                state, status, first, events, record, started, dialect,
            ))
        }
    }
}
