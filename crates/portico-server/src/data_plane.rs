//! The data plane's handlers: the route names the API family, the engine's pipeline
//! ([`portico_engine::Gateway::handle`]) does everything else, and its [`Reply`] is written
//! here in HTTP.
//!
//! The body is handed to the pipeline unread: it reads it (within [`crate::BodyLimits`]) only
//! after the caller is authenticated on the headers.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_core::Endpoint;
use portico_engine::responses::KeptAction;
use portico_engine::{Family, Reply};

use crate::AppState;
use crate::error::render;

/// `POST /v1/chat/completions`
pub(crate) async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::ChatCompletions), request).await
}

/// `POST /v1/completions`
pub(crate) async fn completions(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::Completions), request).await
}

/// `POST /v1/embeddings`
pub(crate) async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::Embeddings), request).await
}

/// `POST /v1/moderations`
pub(crate) async fn moderations(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::Moderations), request).await
}

/// `POST /v1/images/generations`
pub(crate) async fn image_generations(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::ImageGenerations), request).await
}

/// `POST /v1/audio/transcriptions`: a `multipart/form-data` upload, forwarded intact but for
/// its `model` field.
pub(crate) async fn audio_transcriptions(
    State(state): State<AppState>,
    request: Request,
) -> Response {
    relay(
        state,
        Family::OpenAi(Endpoint::AudioTranscriptions),
        request,
    )
    .await
}

/// `POST /v1/audio/speech`: answered with the upstream's audio bytes and Content-Type.
pub(crate) async fn audio_speech(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::AudioSpeech), request).await
}

/// `POST /v1/messages`: Anthropic's Messages API in, any provider out. Errors are answered in
/// Anthropic's shape, which Anthropic SDKs parse.
pub(crate) async fn messages(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::Messages, request).await
}

/// `POST /v1/responses`: OpenAI's Responses API, any provider out.
pub(crate) async fn responses(State(state): State<AppState>, request: Request) -> Response {
    relay(state, Family::OpenAi(Endpoint::Responses), request).await
}

/// `GET /v1/responses/{id}`: a kept response.
pub(crate) async fn get_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    kept(&state, &headers, &id, KeptAction::Get).await
}

/// `GET /v1/responses/{id}/input_items`: a kept response's input items.
pub(crate) async fn response_input_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    kept(&state, &headers, &id, KeptAction::InputItems).await
}

/// `DELETE /v1/responses/{id}`.
pub(crate) async fn delete_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    kept(&state, &headers, &id, KeptAction::Delete).await
}

async fn kept(state: &AppState, headers: &HeaderMap, id: &str, action: KeptAction) -> Response {
    match state.gateway.kept_response(headers, id, action).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => render(Family::OpenAi(Endpoint::Responses), &error),
    }
}

/// One request of `family` through the pipeline.
async fn relay(state: AppState, family: Family, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(refusal) = state.admission.check(state.lifecycle.in_flight()) {
        let reply = state.gateway.refuse(family, &parts.headers, refusal).await;
        let mut response = write(family, reply);
        // The connection closes after the refusal, as proxies shed load (Envoy's overload
        // manager turns keep-alive off): a client that ignores `Retry-After` and sends again
        // at once must first connect again, which leaves the gateway's core to the requests
        // it admitted instead of to refusing the same client in a loop.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let body = state.body_limits.read(&parts.headers, body);
    let reply = state
        .gateway
        .handle(family, &parts.headers, body, state.lifecycle.cut_signal())
        .await;
    write(family, reply)
}

/// A pipeline's reply as an HTTP response.
fn write(family: Family, reply: Reply) -> Response {
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let (mut response, headers) = match reply {
        Reply::Whole {
            status: code,
            body,
            content_type,
            headers,
        } => (
            (
                status(code),
                [(
                    header::CONTENT_TYPE,
                    content_type.unwrap_or(HeaderValue::from_static("application/json")),
                )],
                body,
            )
                .into_response(),
            headers,
        ),
        Reply::Stream {
            status: code,
            body,
            headers,
        } => (
            (
                status(code),
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/event-stream"),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                ],
                Body::from_stream(body),
            )
                .into_response(),
            headers,
        ),
        Reply::Error { error, headers } => (render(family, &error), headers),
    };
    headers.apply(response.headers_mut());
    response
}
