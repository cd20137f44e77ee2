//! Forwarding an upstream event stream to the client, event by event.
//!
//! Each event is written as soon as the upstream has sent it: events that hyper's client
//! already holds leave together, in one write, and nothing waits for the network (see
//! [`ForwardStream`]'s `poll_next`). An upstream failure after the first byte cannot change
//! the status any more, so it becomes an in-band error event in the client's dialect
//! ([`StreamDialect`]): for OpenAI clients `data: {"error": {...}}`, which OpenAI SDKs raise as
//! an `APIError`; for Anthropic clients `event: error` with Anthropic's error body. Then the
//! stream ends. When the stream ends or the client goes away (the body is dropped, which also
//! drops and so cancels the upstream request), the request's record is finished and handed to
//! the request sink.

use std::future::Future as _;
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
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::relay::{elapsed_ms, shutting_down};
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
    /// Encoded events not yet handed to the client (see `poll_next`).
    pending: Vec<u8>,
    /// Turns the stream has waited in a row with events gathered and nothing new.
    idle_turns: u8,
    /// Fires at the shutdown deadline: the stream then ends with an error event.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
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
        cut: CancellationToken,
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
            pending: Vec::new(),
            idle_turns: 0,
            cut: Box::pin(cut.cancelled_owned()),
        }
    }

    /// Ends the stream with an in-band error event in the client's dialect.
    fn fail(&mut self, api: &ApiError) {
        self.finished = true;
        self.error = Some((api.code_string().to_owned(), api.log_text().to_owned()));
        self.dialect.error_event(api).encode_into(&mut self.pending);
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
/// Scheduler turns gathered events wait, with nothing new arriving, before they are written.
const IDLE_TURNS: u8 = 2;

impl Stream for ForwardStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    /// Hands the client every event the upstream has already delivered, in one chunk.
    ///
    /// A provider often sends a burst of events in one packet, but hyper's client hands its
    /// body over one HTTP chunk per run of the connection's task: polled once, the upstream
    /// shows one event and then "nothing ready", although the rest are already in the
    /// gateway's memory. So gathered events wait up to [`IDLE_TURNS`] turns of the scheduler
    /// (the task wakes itself at once) for more: the connection's task runs and hands over
    /// the next event, and a burst leaves in one write rather than one per event (strace: 19
    /// writes per 18-event stream before, 3 after). When the turns bring nothing new, what was
    /// gathered goes out: no event waits for the network, only for work already queued on
    /// this thread. The first event is written at once (time to first byte comes first).
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished && this.pending.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take()
            && this.observe(&first)
        {
            // The first event goes out at once: time to first byte comes first.
            first.encode_into(&mut this.pending);
            return Poll::Ready(Some(Ok(this.take_pending())));
        }
        if !this.finished && this.cut.as_mut().poll(cx).is_ready() {
            // The shutdown deadline: what is gathered goes out, then the error event.
            this.fail(&shutting_down());
        }
        let mut arrived = false;
        while !this.finished && this.pending.len() < MAX_BATCH {
            match this.events.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(event))) => {
                    arrived = true;
                    if this.observe(&event) {
                        event.encode_into(&mut this.pending);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    let slug = this.log.record.provider.as_deref().unwrap_or_default();
                    let api = err.to_api_error(slug);
                    this.fail(&api);
                }
                Poll::Ready(None) => this.finished = true,
            }
        }
        if arrived {
            this.idle_turns = 0;
        }
        if !this.pending.is_empty()
            && !this.finished
            && this.pending.len() < MAX_BATCH
            && this.idle_turns < IDLE_TURNS
        {
            this.idle_turns += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.idle_turns = 0;
        if !this.pending.is_empty() {
            Poll::Ready(Some(Ok(this.take_pending())))
        } else if this.finished {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl ForwardStream {
    /// The gathered events as one chunk for the client, kept for the request log too.
    fn take_pending(&mut self) -> Bytes {
        let chunk = Bytes::from(std::mem::take(&mut self.pending));
        if self.log.record.log_payloads && self.captured_len < MAX_CAPTURE {
            self.captured_len += chunk.len();
            self.captured.push(chunk.clone());
        }
        chunk
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::task::Waker;

    use portico_engine::{RequestSink, Snapshot};
    use portico_providers::ProviderError;

    use super::*;

    /// Keeps the records it is given.
    #[derive(Default)]
    struct Kept(Mutex<Vec<RequestRecord>>);

    impl RequestSink for Kept {
        fn observe(&self, record: &RequestRecord) {
            self.0.lock().unwrap().push(record.clone());
        }
    }

    /// An upstream body as hyper's client hands it over: one event per poll, with a
    /// self-woken "nothing ready" in between (the connection's task has to run first); after
    /// `silent_after` events it goes quiet without waking anyone, like an upstream that is
    /// thinking.
    struct OnePerTurn {
        events: VecDeque<SseEvent>,
        turn: bool,
        silent_after: usize,
        given: usize,
    }

    impl Stream for OnePerTurn {
        type Item = Result<SseEvent, ProviderError>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if self.given == self.silent_after {
                return Poll::Pending;
            }
            if !self.turn {
                self.turn = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.turn = false;
            self.given += 1;
            Poll::Ready(self.events.pop_front().map(Ok))
        }
    }

    fn event(i: usize) -> SseEvent {
        SseEvent::data(Bytes::from(format!("{{\"n\":{i}}}")))
    }

    fn forward(events: usize, silent_after: usize) -> (ForwardStream, Arc<Kept>) {
        forward_until(events, silent_after, CancellationToken::new())
    }

    fn forward_until(
        events: usize,
        silent_after: usize,
        cut: CancellationToken,
    ) -> (ForwardStream, Arc<Kept>) {
        let kept = Arc::new(Kept::default());
        let client = portico_providers::http::build_client(Default::default()).unwrap();
        let snapshot = Snapshot::build(Vec::new(), Vec::new(), Vec::new(), &client).unwrap();
        let sink: Arc<dyn RequestSink> = kept.clone();
        let gateway = Arc::new(Gateway::new(snapshot, client, sink));
        let upstream = OnePerTurn {
            events: (1..=events).map(event).collect(),
            turn: false,
            silent_after,
            given: 0,
        };
        let log = StreamLog {
            record: RequestRecord::new("id".into(), 0, "chat.completions"),
            started: Instant::now(),
            gateway,
        };
        let dialect = StreamDialect::OpenAi {
            client_wants_usage: true,
        };
        let stream = ForwardStream::new(event(0), Box::pin(upstream), log, dialect, cut);
        (stream, kept)
    }

    /// Polls like a runtime would, `polls` times at most: the chunks handed out, in order,
    /// and whether the stream ended.
    fn drive(stream: &mut ForwardStream, polls: usize) -> (Vec<String>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut chunks = Vec::new();
        for _ in 0..polls {
            match Pin::new(&mut *stream).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    chunks.push(String::from_utf8(chunk.to_vec()).unwrap());
                }
                Poll::Ready(None) => return (chunks, true),
                Poll::Pending => {}
            }
        }
        (chunks, false)
    }

    fn data_lines(chunks: &[String]) -> usize {
        chunks.iter().map(|c| c.matches("data: ").count()).sum()
    }

    #[test]
    fn a_burst_the_client_connection_holds_leaves_in_one_write_after_the_first_event() {
        let (mut stream, kept) = forward(15, usize::MAX);
        let (chunks, ended) = drive(&mut stream, 200);
        assert!(ended);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!(
            chunks[0], "data: {\"n\":0}\n\n",
            "the first event alone, at once"
        );
        assert_eq!(data_lines(&chunks[1..]), 15);
        let expected: String = (1..=15)
            .map(|i| format!("data: {{\"n\":{i}}}\n\n"))
            .collect();
        assert_eq!(chunks[1], expected, "in order, intact");
        drop(stream);
        let records = kept.0.lock().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].outcome, Outcome::Completed);
    }

    #[test]
    fn events_are_not_held_back_when_the_upstream_goes_quiet() {
        let (mut stream, kept) = forward(10, 3);
        // First event, then events 1-3 gathered over their turns, then nothing is ready and
        // nobody will wake the stream: what it has must go out now.
        let (chunks, ended) = drive(&mut stream, 50);
        assert!(!ended);
        assert_eq!(data_lines(&chunks), 4, "{chunks:?}");
        assert!(chunks.last().unwrap().ends_with("data: {\"n\":3}\n\n"));
        drop(stream);
        assert_eq!(
            kept.0.lock().unwrap()[0].outcome,
            Outcome::ClientDisconnected
        );
    }

    #[test]
    fn the_shutdown_deadline_ends_a_quiet_stream_with_an_error_event_and_a_record() {
        let cut = CancellationToken::new();
        let (mut stream, kept) = forward_until(10, 2, cut.clone());
        let (before, ended) = drive(&mut stream, 50);
        assert!(!ended, "the upstream is quiet, not finished");
        assert_eq!(data_lines(&before), 3);
        cut.cancel();
        let (after, ended) = drive(&mut stream, 50);
        assert!(ended, "the cut ends the stream");
        let last = after.concat();
        assert!(last.contains("\"code\":\"unavailable\""), "{last}");
        assert!(last.contains("shutting down"), "{last}");
        drop(stream);
        let records = kept.0.lock().unwrap();
        assert_eq!(records.len(), 1, "one record");
        assert_eq!(records[0].outcome, Outcome::StreamBroken);
        assert_eq!(records[0].error_code.as_deref(), Some("unavailable"));
    }
}
