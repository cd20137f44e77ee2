//! Forwarding an upstream event stream to the client, event by event.
//!
//! Each event is written as soon as the upstream sends it; events that arrive together leave
//! together, in one write, and nothing waits for more. An upstream failure after the first byte cannot change the status any more, so
//! it becomes an in-band error event in the client's dialect ([`StreamDialect`]): for OpenAI
//! clients `data: {"error": {...}}`, which OpenAI SDKs raise as an `APIError`; for Anthropic
//! clients `event: error` with Anthropic's error body. Then the stream ends. When the stream ends or the client goes away (the body is
//! dropped, which also drops and so cancels the upstream request), the request's record is
//! finished and handed to the request sink.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use std::sync::Arc;

use portico_anthropic::passthrough::EventObserver;
use portico_core::{ApiError, Outcome, RequestRecord, Usage};
use portico_engine::Gateway;
use portico_providers::{EventStream, SseEvent};

use crate::relay::elapsed_ms;
use crate::routes::messages::anthropic_error;

/// The API family of the events a client receives: how usage is read from them and how an
/// in-band error is written.
pub(crate) enum StreamDialect {
    /// OpenAI chunks. Usage comes from the usage chunk, which is dropped when the client did
    /// not ask for it (`stream_options.include_usage`): the gateway always asks upstream.
    OpenAi {
        /// Whether the client asked for the usage chunk.
        client_wants_usage: bool,
    },
    /// Anthropic events (`/v1/messages`). Usage comes from `message_start` and
    /// `message_delta`; nothing is dropped.
    Anthropic(EventObserver),
}

impl StreamDialect {
    /// The in-band error event for a failure after the stream started.
    fn error_event(&self, err: &ApiError) -> SseEvent {
        match self {
            StreamDialect::OpenAi { .. } => SseEvent::data(Bytes::from(err.to_json().to_string())),
            StreamDialect::Anthropic(_) => {
                SseEvent::named("error", Bytes::from(anthropic_error(err).to_string()))
            }
        }
    }
}

/// The record a stream finishes, and where it goes.
pub(crate) struct StreamLog {
    /// The request's record, filled up to the first event.
    pub(crate) record: RequestRecord,
    /// Arrival time, for the latency.
    pub(crate) started: Instant,
    /// Receives the record at the end.
    pub(crate) gateway: Arc<Gateway>,
}

/// The client-facing body of a streamed answer.
pub(crate) struct ForwardStream {
    first: Option<SseEvent>,
    events: EventStream,
    log: StreamLog,
    usage: Option<Usage>,
    events_sent: u64,
    finished: bool,
    /// Code and message of an in-band error.
    error: Option<(String, String)>,
    /// The client's API family.
    dialect: StreamDialect,
    /// What the client received, for the request log (shared chunks, not copies), up to
    /// [`MAX_CAPTURE`] bytes; empty when the key does not log payloads.
    captured: Vec<Bytes>,
    captured_len: usize,
}

/// The most of a stream kept for the request log: enough for any chat answer, while a
/// runaway stream cannot hold the gateway's memory.
const MAX_CAPTURE: usize = 8 * 1024 * 1024;

impl ForwardStream {
    /// Forwards `first` (already awaited, so fallback was still possible) and then `events`.
    pub(crate) fn new(
        first: SseEvent,
        events: EventStream,
        log: StreamLog,
        dialect: StreamDialect,
    ) -> ForwardStream {
        ForwardStream {
            first: Some(first),
            events,
            log,
            usage: None,
            events_sent: 0,
            finished: false,
            error: None,
            dialect,
            captured: Vec::new(),
            captured_len: 0,
        }
    }

    /// Reads usage from the event; returns whether the event goes to the client.
    fn observe(&mut self, event: &SseEvent) -> bool {
        self.events_sent += 1;
        let client_wants_usage = match &mut self.dialect {
            StreamDialect::OpenAi { client_wants_usage } => *client_wants_usage,
            StreamDialect::Anthropic(observer) => {
                observer.observe(event);
                self.usage = observer.usage();
                return true;
            }
        };
        // Only the usage chunk (or a final chunk carrying usage) needs parsing; a substring test
        // keeps the common content chunk free of a JSON parse.
        if memchr_usage(&event.data)
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&event.data)
            && let Some(usage) = Usage::from_openai(&value)
        {
            self.usage = Some(usage);
            let usage_only = value
                .get("choices")
                .and_then(serde_json::Value::as_array)
                .is_some_and(Vec::is_empty);
            if usage_only && !client_wants_usage {
                self.events_sent -= 1;
                return false;
            }
        }
        true
    }
}

fn memchr_usage(data: &[u8]) -> bool {
    data.windows(8).any(|w| w == b"\"usage\":")
}

/// The most bytes of already-available events gathered into one write.
const MAX_BATCH: usize = 64 * 1024;

impl Stream for ForwardStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    /// Hands the client every event the upstream has already delivered, in one chunk: a
    /// provider often sends a whole burst of events in one read, and writing them one by one
    /// would cost a system call each. Nothing waits for more events: as soon as the upstream
    /// has nothing more ready, what was gathered goes out.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let mut batch: Vec<u8> = Vec::new();
        if let Some(first) = self.first.take()
            && self.observe(&first)
        {
            batch.reserve(first.encoded_len());
            first.encode_into(&mut batch);
        }
        while batch.len() < MAX_BATCH {
            match self.events.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(event))) => {
                    if self.observe(&event) {
                        event.encode_into(&mut batch);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    self.finished = true;
                    let slug = self.log.record.provider.as_deref().unwrap_or_default();
                    let api = err.to_api_error(slug);
                    self.error = Some((api.code_string().to_owned(), api.message.clone()));
                    self.dialect.error_event(&api).encode_into(&mut batch);
                    break;
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let chunk = Bytes::from(batch);
            if self.log.record.log_payloads && self.captured_len < MAX_CAPTURE {
                self.captured_len += chunk.len();
                self.captured.push(chunk.clone());
            }
            Poll::Ready(Some(Ok(chunk)))
        } else if self.finished {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ForwardStream {
    fn drop(&mut self) {
        if self.error.is_none()
            && let StreamDialect::Anthropic(observer) = &self.dialect
            && let Some(error) = observer.error()
        {
            // An Anthropic upstream's own in-band error, passed on as it was.
            self.error = Some((error.kind.clone(), error.message.clone()));
        }
        let log = &mut self.log;
        log.record.outcome = match (&self.error, self.finished) {
            (Some(_), _) => Outcome::StreamBroken,
            (None, true) => Outcome::Completed,
            (None, false) => Outcome::ClientDisconnected,
        };
        if let Some((code, message)) = self.error.take() {
            log.record.error_code = Some(code);
            log.record.error = Some(message);
        }
        log.record.set_usage(self.usage);
        if log.record.log_payloads {
            let mut text = Vec::with_capacity(self.captured_len);
            for chunk in self.captured.drain(..) {
                text.extend_from_slice(&chunk);
            }
            log.record.response = Some(Bytes::from(text));
        }
        log.record.latency_ms = elapsed_ms(log.started);
        let endpoint = log.record.endpoint;
        let record = std::mem::replace(
            &mut log.record,
            RequestRecord::new(String::new(), 0, endpoint),
        );
        log.gateway.record(record);
    }
}
