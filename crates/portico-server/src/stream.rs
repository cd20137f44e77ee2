//! Forwarding an upstream event stream to the client, event by event.
//!
//! Each event is written as soon as the upstream sends it; nothing is buffered beyond the event
//! being parsed. An upstream failure after the first byte cannot change the status any more, so
//! it becomes an in-band error event (`data: {"error": {...}}`, which OpenAI SDKs raise as an
//! `APIError`) and the stream ends. When the stream ends or the client goes away (the body is
//! dropped, which also drops and so cancels the upstream request), one log line is written.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use portico_core::Usage;
use portico_providers::{EventStream, SseEvent};

/// What the completion log line of a stream reports.
pub(crate) struct StreamLog {
    pub(crate) request_id: String,
    pub(crate) trace_id: String,
    pub(crate) key: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) started: Instant,
}

/// The client-facing body of a streamed answer.
pub(crate) struct ForwardStream {
    first: Option<SseEvent>,
    events: EventStream,
    log: StreamLog,
    usage: Option<Usage>,
    events_sent: u64,
    finished: bool,
    error: Option<String>,
}

impl ForwardStream {
    /// Forwards `first` (already awaited, so fallback was still possible) and then `events`.
    pub(crate) fn new(first: SseEvent, events: EventStream, log: StreamLog) -> ForwardStream {
        ForwardStream {
            first: Some(first),
            events,
            log,
            usage: None,
            events_sent: 0,
            finished: false,
            error: None,
        }
    }

    fn observe(&mut self, event: &SseEvent) {
        self.events_sent += 1;
        // Only the usage chunk (or a final chunk carrying usage) needs parsing; a substring test
        // keeps the common content chunk free of a JSON parse.
        if memchr_usage(&event.data)
            && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&event.data)
            && let Some(usage) = Usage::from_openai(&value)
        {
            self.usage = Some(usage);
        }
    }
}

fn memchr_usage(data: &[u8]) -> bool {
    data.windows(8).any(|w| w == b"\"usage\":")
}

impl Stream for ForwardStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            self.observe(&first);
            return Poll::Ready(Some(Ok(first.encode())));
        }
        match self.events.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(event))) => {
                self.observe(&event);
                Poll::Ready(Some(Ok(event.encode())))
            }
            Poll::Ready(Some(Err(err))) => {
                self.finished = true;
                let api = err.to_api_error(&self.log.provider);
                self.error = Some(api.message.clone());
                let event = SseEvent::data(Bytes::from(api.to_json().to_string()));
                Poll::Ready(Some(Ok(event.encode())))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for ForwardStream {
    fn drop(&mut self) {
        let log = &self.log;
        let outcome = match (&self.error, self.finished) {
            (Some(_), _) => "upstream_error",
            (None, true) => "completed",
            (None, false) => "client_disconnected",
        };
        tracing::info!(
            request_id = %log.request_id,
            trace_id = %log.trace_id,
            key = %log.key,
            provider = %log.provider,
            model = %log.model,
            stream = true,
            outcome,
            error = self.error.as_deref().unwrap_or(""),
            events = self.events_sent,
            prompt_tokens = self.usage.map(|u| u.prompt_tokens),
            completion_tokens = self.usage.map(|u| u.completion_tokens),
            latency_ms = log.started.elapsed().as_millis() as u64,
            "request finished"
        );
    }
}
