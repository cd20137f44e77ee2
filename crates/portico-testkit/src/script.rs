//! Scripted replies for [`MockUpstream`](crate::MockUpstream): what the next request gets.
//!
//! A [`MockReply`] is a status, extra headers, an optional delay before the response head
//! and a body: JSON, raw bytes, an SSE script, an endless body or "never answer"; or a reply
//! computed from the request itself (an upstream echoing its headers). An [`SseScript`] is a
//! list of steps (send these exact bytes as one body chunk / wait) plus how the stream ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::RecordedRequest;

/// One scripted reply. Build with [`MockReply::json`], [`MockReply::error`],
/// [`MockReply::sse`], [`MockReply::stream`], [`MockReply::raw`], [`MockReply::hang`],
/// [`MockReply::echo`], [`MockReply::endless`] or [`MockReply::from_request`] (and its
/// header-echoing forms), then refine with [`MockReply::header`] and [`MockReply::delay`].
#[derive(Debug, Clone)]
pub struct MockReply {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) delay: Option<Duration>,
    pub(crate) body: ReplyBody,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    /// Compute the built-in default reply for the request.
    Echo,
    Bytes {
        content_type: &'static str,
        body: Bytes,
    },
    Sse(SseScript),
    Hang,
    /// `first` once, then the same chunk over and over, until the client goes away.
    Endless {
        content_type: &'static str,
        first: Bytes,
        chunk: Bytes,
    },
    /// A reply computed from the request when it arrives.
    FromRequest(Responder),
}

/// Computes a reply from the request it answers.
#[derive(Clone)]
pub(crate) struct Responder(pub(crate) Arc<dyn Fn(&RecordedRequest) -> MockReply + Send + Sync>);

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder")
    }
}

impl MockReply {
    fn new(status: u16, body: ReplyBody) -> Self {
        Self {
            status: status_code(status),
            headers: Vec::new(),
            delay: None,
            body,
        }
    }

    /// A JSON body with the given status.
    pub fn json(status: u16, body: Value) -> Self {
        Self::new(
            status,
            ReplyBody::Bytes {
                content_type: "application/json",
                body: Bytes::from(body.to_string()),
            },
        )
    }

    /// An error in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with a
    /// `type`/`code` that OpenAI uses for that status (429 is `requests`/`rate_limit_exceeded`,
    /// 401 is `invalid_api_key`, 5xx is `server_error`, other 4xx `invalid_request_error`).
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(status, openai_error(status, message))
    }

    /// Exact body bytes with the given status and content type.
    pub fn raw(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self::new(
            status,
            ReplyBody::Bytes {
                content_type,
                body: body.into(),
            },
        )
    }

    /// A `200 text/event-stream` reply played from `script`.
    pub fn sse(script: SseScript) -> Self {
        Self::new(200, ReplyBody::Sse(script))
    }

    /// A `200` streamed reply with another content type (such as Bedrock's binary
    /// `application/vnd.amazon.eventstream`), played from `script` chunk by chunk exactly
    /// like [`MockReply::sse`].
    pub fn stream(content_type: &'static str, mut script: SseScript) -> Self {
        script.content_type = Some(content_type);
        Self::new(200, ReplyBody::Sse(script))
    }

    /// Never answer: no status, no headers, until the client goes away (which counts as a
    /// disconnect).
    pub fn hang() -> Self {
        Self::new(200, ReplyBody::Hang)
    }

    /// A body that never ends: `chunk` sent over and over (chunked transfer encoding, no
    /// `Content-Length`) as fast as the client reads, until it goes away (which counts as a
    /// disconnect). An upstream that would fill the gateway's memory if it read without a
    /// limit.
    pub fn endless(status: u16, content_type: &'static str, chunk: impl Into<Bytes>) -> Self {
        Self::endless_after(status, content_type, Bytes::new(), chunk)
    }

    /// Like [`MockReply::endless`], but `first` is sent once before the repeated chunk: a
    /// stream's opening events, then content events forever.
    pub fn endless_after(
        status: u16,
        content_type: &'static str,
        first: impl Into<Bytes>,
        chunk: impl Into<Bytes>,
    ) -> Self {
        Self::new(
            status,
            ReplyBody::Endless {
                content_type,
                first: first.into(),
                chunk: chunk.into(),
            },
        )
    }

    /// A reply computed from the request when it arrives (its headers, body, path). The
    /// delay and headers of this reply are added to the computed one's.
    pub fn from_request(
        reply: impl Fn(&RecordedRequest) -> MockReply + Send + Sync + 'static,
    ) -> Self {
        Self::new(200, ReplyBody::FromRequest(Responder(Arc::new(reply))))
    }

    /// An OpenAI-shaped error (as [`MockReply::error`]) whose message echoes every request
    /// header, as careless upstreams do: `Incorrect API key provided: authorization: Bearer
    /// sk-...; x-api-key: ...`.
    pub fn echo_headers_error(status: u16) -> Self {
        Self::from_request(move |req| {
            let message = format!("Incorrect API key provided: {}", header_list(req, "; "));
            MockReply::error(status, &message)
        })
    }

    /// A `text/plain` body listing every request header, one `name: value` per line, like a
    /// debugging proxy's error page.
    pub fn echo_headers_text(status: u16) -> Self {
        Self::from_request(move |req| {
            let body = format!("Request headers:\n{}\n", header_list(req, "\n"));
            MockReply::raw(status, "text/plain", body)
        })
    }

    /// The reply the mock gives when nothing is scripted (echo chat, etc.). Useful with
    /// [`MockReply::delay`] for a slow but otherwise normal upstream.
    pub fn echo() -> Self {
        Self::new(200, ReplyBody::Echo)
    }

    /// Replace the status (ignored by [`MockReply::echo`], which picks its own).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status_code(status);
        self
    }

    /// Add a response header, e.g. `retry-after`. Panics on an invalid name or value.
    #[expect(
        clippy::expect_used,
        reason = "test support: a bad header is a bug in the test"
    )]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name).expect("valid header name");
        let value = HeaderValue::try_from(value).expect("valid header value");
        self.headers.push((name, value));
        self
    }

    /// Wait this long before sending the response head (slow first byte).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// Every header of `req` as `name: value`, joined by `separator` (values that are not text
/// are shown lossily).
fn header_list(req: &RecordedRequest, separator: &str) -> String {
    req.headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect::<Vec<_>>()
        .join(separator)
}

#[expect(
    clippy::expect_used,
    reason = "test support: a bad status is a bug in the test"
)]
fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).expect("valid HTTP status")
}

/// OpenAI's error body for `status` and `message`.
pub(crate) fn openai_error(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Value::from("invalid_api_key")),
        403 => ("permission_error", Value::Null),
        404 => ("invalid_request_error", Value::from("model_not_found")),
        429 => ("requests", Value::from("rate_limit_exceeded")),
        500.. => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

/// One step of an [`SseScript`].
#[derive(Debug, Clone)]
pub enum SseStep {
    /// Send exactly these bytes as one HTTP body chunk.
    Send(Bytes),
    /// Pause before the next step.
    Wait(Duration),
}

/// How an [`SseScript`] ends after its last step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SseEnd {
    /// End the body normally.
    #[default]
    Finish,
    /// Drop the connection abruptly: what was sent is flushed, then the connection closes
    /// without ending the body, so the client sees an error after the data. (With no steps,
    /// the client gets no response head at all.) Not counted as a disconnect: the mock did
    /// it on purpose.
    Abort,
    /// Keep the stream open forever; it only ends when the client goes away (which counts as
    /// a disconnect).
    Hang,
}

/// A streamed reply: steps played in order, then an [`SseEnd`].
///
/// ```
/// use std::time::Duration;
/// use portico_testkit::SseScript;
/// use serde_json::json;
///
/// let script = SseScript::new()
///     .data(&json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]}))
///     .wait(Duration::from_millis(10))
///     .bytes("data: {\"choi")  // half an event...
///     .bytes("ces\": []}\n\n") // ...and the rest in the next chunk
///     .done();
/// ```
#[derive(Debug, Clone, Default)]
pub struct SseScript {
    pub(crate) steps: VecDeque<SseStep>,
    pub(crate) end: SseEnd,
    /// The reply's content type; `None` is `text/event-stream`.
    pub(crate) content_type: Option<&'static str>,
}

impl SseScript {
    /// An empty script that finishes normally.
    pub fn new() -> Self {
        Self::default()
    }

    /// A complete, normal chat stream: role chunk, one content chunk per piece, a
    /// `finish_reason: "stop"` chunk and `data: [DONE]`.
    pub fn chat_text(pieces: &[&str]) -> Self {
        let mut script = Self::new().data(&crate::sse::chat_chunk(
            json!({ "role": "assistant", "content": "" }),
            None,
        ));
        for piece in pieces {
            script = script.data(&crate::sse::chat_chunk(json!({ "content": piece }), None));
        }
        script
            .data(&crate::sse::chat_chunk(json!({}), Some("stop")))
            .done()
    }

    /// Send these exact bytes as one body chunk.
    pub fn bytes(mut self, bytes: impl Into<Bytes>) -> Self {
        self.steps.push_back(SseStep::Send(bytes.into()));
        self
    }

    /// Send one event `data: <json>\n\n` as one body chunk.
    pub fn data(self, value: &Value) -> Self {
        self.bytes(format!("data: {value}\n\n"))
    }

    /// Send `data: [DONE]\n\n` as one body chunk.
    pub fn done(self) -> Self {
        self.bytes("data: [DONE]\n\n")
    }

    /// Send one binary AWS event-stream frame (Bedrock's `application/vnd.amazon.eventstream`)
    /// as one body chunk: an event named `event_type` with `payload` as its JSON. Play it with
    /// [`MockReply::stream`].
    pub fn aws_event(self, event_type: &str, payload: &Value) -> Self {
        self.bytes(aws_frame(
            &[
                (":event-type", event_type),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        ))
    }

    /// Send one binary AWS event-stream exception frame (`:message-type: exception`, e.g.
    /// `throttlingException`) with `{"message": ...}` as one body chunk.
    pub fn aws_exception(self, name: &str, message: &str) -> Self {
        self.bytes(aws_frame(
            &[
                (":exception-type", name),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({ "message": message }).to_string().as_bytes(),
        ))
    }

    /// Pause before the next step.
    pub fn wait(mut self, duration: Duration) -> Self {
        self.steps.push_back(SseStep::Wait(duration));
        self
    }

    /// End by dropping the connection abruptly (see [`SseEnd::Abort`]).
    pub fn abort(mut self) -> Self {
        self.end = SseEnd::Abort;
        self
    }

    /// End by keeping the stream open until the client leaves (see [`SseEnd::Hang`]).
    pub fn hang(mut self) -> Self {
        self.end = SseEnd::Hang;
        self
    }

    /// The steps, in order.
    pub fn steps(&self) -> impl Iterator<Item = &SseStep> {
        self.steps.iter()
    }

    /// How the script ends.
    pub fn end(&self) -> SseEnd {
        self.end
    }
}

/// One AWS event-stream frame (prelude, string headers, payload, CRCs) as the AWS SDKs write
/// it.
#[expect(
    clippy::expect_used,
    reason = "test support: only over-long headers fail, which the fixed ones here are not"
)]
pub(crate) fn aws_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let headers = headers
        .iter()
        .map(|(name, value)| {
            Header::new(
                (*name).to_owned(),
                HeaderValue::String((*value).to_owned().into()),
            )
        })
        .collect();
    let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out)
        .expect("an event-stream frame with short headers");
    Bytes::from(out)
}
