//! `POST /v1/messages`: Anthropic's Messages API in, any provider out.
//!
//! Authentication also accepts `x-api-key` (what Anthropic SDKs send). When the routed
//! provider speaks the Messages API natively, the request goes upstream untouched but for
//! `model`, and the answer comes back untouched; otherwise the request is translated to chat
//! completions and the answer (whole or streamed) back to Anthropic's shapes
//! ([`portico_anthropic::inbound`]). Errors are answered in Anthropic's shape,
//! `{"type": "error", "error": {"type", "message"}}`, so Anthropic SDKs raise their own
//! exception types. Ids, headers and the request record are the OpenAI routes' own
//! ([`crate::relay`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use portico_anthropic::inbound;
use portico_anthropic::passthrough::EventObserver;
use portico_anthropic::wire::MessagesRequest;
use portico_core::{ApiError, Endpoint, ErrorCode, JsonBody};
use portico_engine::{Answer, AttemptError, Gateway, Route};
use portico_providers::UpstreamResponse;

use crate::AppState;
use crate::relay::{self, Forwarded, PendingRecord, Ready, RouteHeaders};
use crate::request::{self, API_KEY};
use crate::stream::StreamDialect;

/// The header Anthropic SDKs send the API key in.
const X_API_KEY: &str = "x-api-key";

/// Anthropic's error types; an upstream's own type is kept when it is one of them.
const ANTHROPIC_ERROR_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "timeout_error",
    "api_error",
    "overloaded_error",
];

/// `POST /v1/messages`
pub(crate) async fn messages(State(state): State<AppState>, request: Request) -> Response {
    let mut pending = PendingRecord::begin(&state, "messages");
    let mut route_headers = RouteHeaders::default();
    let (parts, body) = request.into_parts();
    let result = relay::unless_cut(
        &state,
        forward(
            &state,
            &parts.headers,
            body,
            &mut pending,
            &mut route_headers,
        ),
    )
    .await;
    relay::conclude(&state, pending, result, &route_headers, render)
}

/// A Messages answer, and whether it was translated from chat completions.
struct MessagesReady {
    ready: Ready,
    translated: bool,
}

impl Answer for MessagesReady {
    fn status(&self) -> u16 {
        self.ready.status()
    }
}

/// The gateway key: `x-portkey-api-key`, else `x-api-key`, else `Authorization: Bearer`.
fn gateway_secret(headers: &HeaderMap) -> Option<&str> {
    if headers.contains_key(API_KEY) {
        return request::gateway_secret(headers);
    }
    match headers.get(X_API_KEY).and_then(|v| v.to_str().ok()) {
        Some(key) => Some(key.trim()),
        None => request::gateway_secret(headers),
    }
}

async fn forward(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    pending: &mut PendingRecord,
    route_headers: &mut RouteHeaders,
) -> Result<Forwarded, ApiError> {
    let started = pending.started();
    let record = pending.record();
    let secret = gateway_secret(headers);
    let key = relay::identify(state, headers, secret, record).map_err(|mut err| {
        if err.code == ErrorCode::MissingApiKey {
            err.message = "missing gateway key: send `x-api-key: <key>` (the Anthropic SDKs' `api_key`), `Authorization: Bearer <key>` or `x-portkey-api-key: <key>`".to_owned();
        }
        err
    })?;
    let raw = state.body_limits.read(headers, body).await?;
    relay::keep_request(record, &key, &raw);
    let parsed = request::parse_body(raw)?;
    let stream = parsed.stream;
    record.stream = stream;
    let dispatch = relay::plan(state, headers, &key, &parsed, record, "/v1/messages")?;
    let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok());
    let gateway = &state.gateway;
    let outcome = gateway
        .dispatch(
            &dispatch,
            &key,
            &parsed.body,
            record,
            |route, body| async move {
                let native = route
                    .provider
                    .send_anthropic_messages(body.clone(), stream, beta)
                    .await;
                if let Some(answer) = native {
                    let ready = Ready::from_upstream(answer?).await?;
                    return Ok(MessagesReady {
                        ready,
                        translated: false,
                    });
                }
                let ready = match translate_and_send(gateway, &route, &body, stream).await? {
                    UpstreamResponse::Stream { status, events } => {
                        let events = inbound::to_messages_events(events, &route.model);
                        Ready::first_event(status, events).await?
                    }
                    complete => Ready::from_upstream(complete).await?,
                };
                Ok(MessagesReady {
                    ready,
                    translated: true,
                })
            },
        )
        .await;
    *route_headers = RouteHeaders::of(&outcome);
    let (MessagesReady { ready, translated }, route) = outcome.result?;
    match ready {
        Ready::Complete {
            status,
            body,
            usage,
        } => {
            record.set_usage(usage);
            let body = if translated {
                let message =
                    inbound::from_chat_body(&body).map_err(|e| e.to_api_error(&route.slug))?;
                Bytes::from(serde_json::to_vec(&message).map_err(|e| {
                    ApiError::new(
                        ErrorCode::Internal,
                        format!("could not write the answer: {e}"),
                    )
                })?)
            } else {
                body
            };
            relay::keep_response(record, &body);
            Ok(relay::complete(status, body))
        }
        Ready::Stream {
            status,
            first,
            events,
        } => {
            let dialect = StreamDialect::Anthropic(EventObserver::new());
            Ok(relay::streaming(
                state, status, first, events, record, started, dialect,
            ))
        }
    }
}

/// Translates the Messages request to chat completions and sends it along `route`.
async fn translate_and_send(
    gateway: &Gateway,
    route: &Route,
    body: &JsonBody,
    stream: bool,
) -> Result<UpstreamResponse, AttemptError> {
    let req: MessagesRequest = body.deserialize().map_err(|e| {
        AttemptError::Fatal(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("the body is not a valid Messages request: {e}"),
        ))
    })?;
    let chat =
        inbound::to_chat_request(&req, route.provider.kind()).map_err(AttemptError::Fatal)?;
    let bytes = serde_json::to_vec(&chat).map_err(|e| {
        AttemptError::Fatal(ApiError::new(
            ErrorCode::Internal,
            format!("could not write the chat request: {e}"),
        ))
    })?;
    let chat_body = JsonBody::parse(Bytes::from(bytes)).map_err(|e| {
        AttemptError::Fatal(ApiError::new(
            ErrorCode::Internal,
            format!("could not read the chat request back: {e}"),
        ))
    })?;
    Ok(gateway
        .send(route, Endpoint::ChatCompletions, chat_body, stream)
        .await?)
}

/// Anthropic's error `type` for an error: the upstream's own when it is an Anthropic type,
/// else the one Anthropic uses for the status.
fn anthropic_type(err: &ApiError) -> &str {
    if let Some(kind) = err.error_type.as_deref()
        && ANTHROPIC_ERROR_TYPES.contains(&kind)
    {
        return kind;
    }
    match err.status {
        400 | 405 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.
pub(crate) fn anthropic_error(err: &ApiError) -> serde_json::Value {
    serde_json::json!({
        "type": "error",
        "error": { "type": anthropic_type(err), "message": err.message },
    })
}

/// Renders an error as Anthropic does: status, `Retry-After` when set, Anthropic's body.
fn render(err: ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        anthropic_error(&err).to_string(),
    )
        .into_response();
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_key_comes_from_any_of_three_headers() {
        assert_eq!(gateway_secret(&headers(&[("x-api-key", "a")])), Some("a"));
        assert_eq!(
            gateway_secret(&headers(&[("x-api-key", "a"), (API_KEY, "p")])),
            Some("p")
        );
        assert_eq!(
            gateway_secret(&headers(&[
                ("x-api-key", "a"),
                ("authorization", "Bearer b")
            ])),
            Some("a")
        );
        assert_eq!(
            gateway_secret(&headers(&[("authorization", "Bearer b")])),
            Some("b")
        );
        assert_eq!(gateway_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn errors_take_anthropics_types() {
        let err = |status: u16, kind: Option<&str>| {
            let mut e = ApiError::new(ErrorCode::UpstreamError, "m");
            e.status = status;
            e.error_type = kind.map(str::to_owned);
            anthropic_error(&e)["error"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(err(529, Some("overloaded_error")), "overloaded_error");
        assert_eq!(err(429, Some("requests")), "rate_limit_error");
        assert_eq!(err(404, None), "not_found_error");
        assert_eq!(err(401, None), "authentication_error");
        assert_eq!(err(502, Some("upstream_error")), "api_error");
        let body = anthropic_error(&ApiError::new(ErrorCode::InvalidJson, "bad"));
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["message"], "bad");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
