//! One upstream attempt in the client's family: what the dispatcher's retry and fallback loop
//! calls for each try.
//!
//! OpenAI-family requests go to the provider's adapter as they are (it translates when its
//! upstream speaks another dialect). A Messages request goes to a provider that speaks the
//! Messages API natively untouched, but for `model`; to any other it is translated to a chat
//! completion, and the answer back to Anthropic's shapes (a stream event by event here, a
//! whole answer once the dispatcher has chosen it: [`Ready::into_family`]).

use bytes::Bytes;
use portico_anthropic::inbound;
use portico_anthropic::wire::MessagesRequest;
use portico_core::{ApiError, Endpoint, ErrorCode, JsonBody, Usage};
use portico_providers::{EventStream, ProviderError, SseEvent, UpstreamResponse};

use crate::dispatch::{Answer, AttemptError};
use crate::gateway::Gateway;
use crate::pipeline::Family;
use crate::responses::ResponsesTurn;
use crate::route::Route;

/// An upstream's answer, ready to forward: a whole body, or a stream whose first event has
/// arrived (until then the dispatcher could still fail over).
pub(crate) enum Ready {
    /// A whole JSON body.
    Complete {
        /// The upstream's status.
        status: u16,
        /// The body.
        body: Bytes,
        /// Usage read from it.
        usage: Option<Usage>,
        /// A chat completion that answers a Messages request: translated back by
        /// [`Ready::into_family`].
        translated: bool,
    },
    /// A stream, already in the client's family, and its first event.
    Stream {
        /// The upstream's status.
        status: u16,
        /// The first event.
        first: SseEvent,
        /// The rest.
        events: EventStream,
    },
    /// A whole answer that is not JSON (audio, subtitles), of a pass-through operation.
    Media {
        /// The upstream's status.
        status: u16,
        /// The upstream's Content-Type.
        content_type: http::HeaderValue,
        /// The body.
        body: Bytes,
    },
}

impl Answer for Ready {
    fn status(&self) -> u16 {
        match self {
            Ready::Complete { status, .. }
            | Ready::Stream { status, .. }
            | Ready::Media { status, .. } => *status,
        }
    }
}

impl Ready {
    /// Waits for a stream's first event: an upstream that fails at once (an error event, or
    /// a stream closed before any event) is an attempt that failed, which may be retried or
    /// failed over, and still gets a proper error status.
    async fn from_upstream(
        answer: UpstreamResponse,
        translated: bool,
    ) -> Result<Ready, AttemptError> {
        match answer {
            UpstreamResponse::Complete {
                status,
                body,
                usage,
            } => Ok(Ready::Complete {
                status,
                body,
                usage,
                translated,
            }),
            UpstreamResponse::Stream { status, events } => Ready::first_event(status, events).await,
        }
    }

    /// A stream once its first event has arrived.
    async fn first_event(status: u16, mut events: EventStream) -> Result<Ready, AttemptError> {
        use futures::StreamExt as _;
        match events.next().await {
            Some(Ok(first)) => Ok(Ready::Stream {
                status,
                first,
                events,
            }),
            Some(Err(err)) => Err(AttemptError::Upstream(err)),
            None => Err(AttemptError::Upstream(ProviderError::StreamBroken(
                "the upstream closed the stream before sending any event".into(),
            ))),
        }
    }

    /// A whole answer's body in the client's family: a chat completion that answers a
    /// Messages request becomes a Messages response; one that answers a Responses request
    /// (`responses`) a Response object.
    pub(crate) fn whole_body(
        body: Bytes,
        translated: bool,
        route: &Route,
        responses: Option<&ResponsesTurn>,
    ) -> Result<Bytes, ApiError> {
        if !translated {
            return Ok(match responses {
                Some(turn) => turn.echo_previous(body, &route.slug),
                None => body,
            });
        }
        let written = match responses {
            Some(turn) => portico_responses::from_chat_body(&body, &turn.turn)
                .map_err(|e| e.to_api_error(&route.slug))
                .and_then(|r| serde_json::to_vec(&r).map_err(|e| internal(e.to_string()))),
            None => inbound::from_chat_body(&body)
                .map_err(|e| e.to_api_error(&route.slug))
                .and_then(|m| serde_json::to_vec(&m).map_err(|e| internal(e.to_string()))),
        };
        written.map(Bytes::from)
    }
}

fn internal(e: String) -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        format!("could not write the answer: {e}"),
    )
}

/// What an attempt needs besides the route and the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptSpec<'a> {
    /// The client's family.
    pub(crate) family: Family,
    /// Whether the client asked for a stream.
    pub(crate) stream: bool,
    /// The client's own `anthropic-beta` header (Claude Code turns features on with it), for
    /// a Messages request passed through.
    pub(crate) anthropic_beta: Option<&'a str>,
    /// A Responses request's turn: its ids and the conversation it continues.
    pub(crate) responses: Option<&'a ResponsesTurn>,
    /// The upload of a `multipart/form-data` request, sent in place of the JSON body.
    pub(crate) form: Option<&'a std::sync::Arc<portico_providers::form::FormUpload>>,
}

/// Sends `body` along `route` in the client's family and waits for the answer (for a stream,
/// its first event).
pub(crate) async fn attempt(
    gateway: &Gateway,
    spec: AttemptSpec<'_>,
    route: Route,
    body: JsonBody,
) -> Result<Ready, AttemptError> {
    match spec.family {
        Family::OpenAi(Endpoint::Responses) => {
            let Some(turn) = spec.responses else {
                return Err(AttemptError::Fatal(ApiError::new(
                    ErrorCode::Internal,
                    "a Responses request reached dispatch without its turn",
                )));
            };
            if route.provider.speaks_responses() {
                let body = turn
                    .passthrough_body(&body, &route.slug)
                    .map_err(AttemptError::Fatal)?;
                let answer = gateway
                    .send(&route, Endpoint::Responses, body, spec.stream)
                    .await?;
                return Ready::from_upstream(answer, false).await;
            }
            let req: portico_responses::ResponsesRequest = body.deserialize().map_err(|e| {
                AttemptError::Fatal(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("the body is not a valid Responses request: {e}"),
                ))
            })?;
            let chat =
                portico_responses::to_chat_request(&req, &turn.history, route.provider.kind())
                    .map_err(AttemptError::Fatal)?;
            match send_chat(gateway, &route, &chat, spec.stream).await? {
                UpstreamResponse::Stream { status, events } => {
                    let events = portico_responses::to_response_events(
                        events,
                        turn.turn.clone(),
                        &route.model,
                    );
                    Ready::first_event(status, events).await
                }
                complete => Ready::from_upstream(complete, true).await,
            }
        }
        Family::OpenAi(endpoint) if endpoint.is_passthrough() => {
            super::passthrough::attempt(&route, endpoint, body, spec.form).await
        }
        Family::OpenAi(endpoint) => {
            let answer = gateway.send(&route, endpoint, body, spec.stream).await?;
            Ready::from_upstream(answer, false).await
        }
        Family::Messages => {
            let native = route
                .provider
                .send_anthropic_messages(body.clone(), spec.stream, spec.anthropic_beta)
                .await;
            if let Some(answer) = native {
                return Ready::from_upstream(answer?, false).await;
            }
            match translate_and_send(gateway, &route, &body, spec.stream).await? {
                UpstreamResponse::Stream { status, events } => {
                    let events = inbound::to_messages_events(events, &route.model);
                    Ready::first_event(status, events).await
                }
                complete => Ready::from_upstream(complete, true).await,
            }
        }
    }
}

/// Translates a Messages request to chat completions and sends it along `route`.
async fn translate_and_send(
    gateway: &Gateway,
    route: &Route,
    body: &JsonBody,
    stream: bool,
) -> Result<UpstreamResponse, AttemptError> {
    let fatal =
        |code: ErrorCode, message: String| AttemptError::Fatal(ApiError::new(code, message));
    let req: MessagesRequest = body.deserialize().map_err(|e| {
        fatal(
            ErrorCode::InvalidParameter,
            format!("the body is not a valid Messages request: {e}"),
        )
    })?;
    let chat =
        inbound::to_chat_request(&req, route.provider.kind()).map_err(AttemptError::Fatal)?;
    send_chat(gateway, route, &chat, stream).await
}

/// Sends a chat request translated from another API along `route`.
async fn send_chat(
    gateway: &Gateway,
    route: &Route,
    chat: &portico_providers::chat::ChatRequest,
    stream: bool,
) -> Result<UpstreamResponse, AttemptError> {
    let fatal =
        |code: ErrorCode, message: String| AttemptError::Fatal(ApiError::new(code, message));
    let bytes = serde_json::to_vec(chat).map_err(|e| {
        fatal(
            ErrorCode::Internal,
            format!("could not write the chat request: {e}"),
        )
    })?;
    let chat_body = JsonBody::parse(Bytes::from(bytes)).map_err(|e| {
        fatal(
            ErrorCode::Internal,
            format!("could not read the chat request back: {e}"),
        )
    })?;
    Ok(gateway
        .send(route, Endpoint::ChatCompletions, chat_body, stream)
        .await?)
}
