//! A streamed answer on its way to the client: events in the client's family, written as they
//! arrive, and the request's record and policies finished when the stream ends or the client
//! leaves.
//!
//! Each event is handed on as soon as the upstream has sent it: events that hyper's client
//! already holds leave together, in one write, and nothing waits for the network (see
//! [`AnswerStream`]'s `poll_next`). An upstream failure after the first byte cannot change the
//! status any more, so it becomes an in-band error event in the client's family
//! ([`Family::error_event`]), and the stream ends; so does the shutdown deadline. When the
//! stream ends or is dropped (the client went away; dropping it also drops, and so cancels,
//! the upstream request), the record is finished and the policies' `after` hooks run.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use portico_core::{ApiError, Outcome, RequestRecord};
use portico_providers::{EventStream, SseEvent};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::gateway::Gateway;
use crate::pipeline::family::{Family, StreamObserver};
use crate::pipeline::policy::{Output, OutputBody, OutputCheck, Refusal, Runs};
use crate::pipeline::record::{elapsed_ms, shutting_down};

/// What a stream finishes when it ends: the request's record and its policy runs.
pub(crate) struct StreamEnd {
    /// The request's record, filled up to the first event.
    pub(crate) record: RequestRecord,
    /// The policies at work on the request.
    pub(crate) runs: Runs,
    /// Arrival time, for the latency.
    pub(crate) started: Instant,
    /// Finishes the record.
    pub(crate) gateway: Arc<Gateway>,
    /// The stream's place under `--max-streams`, given back when the stream ends or its
    /// client leaves (`None` for a stream that was not asked for, such as a replay).
    pub(crate) _slot: Option<crate::request_limits::StreamSlot>,
}

/// The client-facing body of a streamed answer: the bytes to write, in order.
pub struct AnswerStream {
    first: Option<SseEvent>,
    events: EventStream,
    end: StreamEnd,
    family: Family,
    observer: StreamObserver,
    finished: bool,
    /// Code and message of an in-band error.
    error: Option<(String, String)>,
    /// What the client received, for the request log and the policies (shared chunks, not
    /// copies), up to [`MAX_CAPTURE`] bytes; not kept when nobody reads it.
    capture: bool,
    captured: Vec<Bytes>,
    captured_len: usize,
    /// Encoded events not yet handed to the client (see `poll_next`).
    pending: Vec<u8>,
    /// Turns the stream has waited in a row with events gathered and nothing new.
    idle_turns: u8,
    /// Fires at the shutdown deadline: the stream then ends with an error event.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Output checks (a policy's `check_output`): the stream's last events are held back
    /// until they pass. `None` when no policy checks answers.
    hold: Option<Hold>,
}

/// The held-back end of a stream whose output is checked before it is released: the last
/// content event and every event after it (finish reason, usage, `[DONE]`,
/// `message_stop`), and the check once the upstream has ended.
#[derive(Default)]
struct Hold {
    held: Vec<SseEvent>,
    checking: Option<OutputChecking>,
}

/// A stream's output check in progress: it owns the runs that check answers and gives them
/// back with the verdict.
type OutputChecking =
    Pin<Box<dyn std::future::Future<Output = (Runs, Result<(), Refusal>)> + Send>>;

/// Whether an event only ends a stream (no content): held back with the content before it.
fn trailing(event: &SseEvent) -> bool {
    if let Some(name) = event.event.as_deref() {
        return matches!(
            name,
            "message_delta" | "message_stop" | "content_block_stop" | "ping"
        );
    }
    let data = &event.data[..];
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    data == b"[DONE]" || has(b"\"finish_reason\":\"") || has(b"\"choices\":[]")
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("family", &self.family)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// The most of a stream kept for the request log: enough for any chat answer, while a
/// runaway stream cannot hold the gateway's memory.
const MAX_CAPTURE: usize = 8 * 1024 * 1024;
/// The most bytes of already-available events gathered into one write.
const MAX_BATCH: usize = 64 * 1024;
/// Scheduler turns gathered events wait, with nothing new arriving, before they are written.
const IDLE_TURNS: u8 = 2;

impl AnswerStream {
    /// Forwards `first` (already awaited, so fallback was still possible) and then `events`.
    pub(crate) fn new(
        first: SseEvent,
        events: EventStream,
        end: StreamEnd,
        family: Family,
        observer: StreamObserver,
        cut: CancellationToken,
    ) -> AnswerStream {
        let capture = end.record.log_payloads || !end.runs.is_empty();
        let hold = end.runs.checks_output().then(Hold::default);
        AnswerStream {
            first: Some(first),
            events,
            end,
            family,
            observer,
            finished: false,
            error: None,
            capture,
            captured: Vec::new(),
            captured_len: 0,
            pending: Vec::new(),
            idle_turns: 0,
            cut: Box::pin(cut.cancelled_owned()),
            hold,
        }
    }

    /// Hands `event` on: into the write buffer, or, when the output is checked, into the
    /// held-back end (a content event releases what was held before it).
    fn emit(&mut self, event: SseEvent) {
        match &mut self.hold {
            None => event.encode_into(&mut self.pending),
            Some(hold) => {
                if !trailing(&event) {
                    for held in hold.held.drain(..) {
                        held.encode_into(&mut self.pending);
                    }
                }
                hold.held.push(event);
            }
        }
    }

    /// The upstream has ended: starts the output check on what was sent and held.
    fn start_check(&mut self) {
        let Some(hold) = &mut self.hold else {
            self.finished = true;
            return;
        };
        let mut output: Vec<Bytes> = self.captured.clone();
        let mut tail = self.pending.clone();
        for event in &hold.held {
            event.encode_into(&mut tail);
        }
        output.push(Bytes::from(tail));
        let mut runs = self.end.runs.split_output_checkers();
        let family = self.family;
        hold.checking = Some(Box::pin(async move {
            let mut check = OutputCheck {
                family,
                body: OutputBody::Stream(&output),
            };
            let verdict = runs.check_output(&mut check).await;
            (runs, verdict)
        }));
    }

    /// Polls a running output check; when it is done, releases the held-back end or ends
    /// the stream with the refusal.
    fn poll_check(&mut self, cx: &mut Context<'_>) {
        let Some(hold) = &mut self.hold else { return };
        let Some(checking) = &mut hold.checking else {
            return;
        };
        let Poll::Ready((runs, verdict)) = checking.as_mut().poll(cx) else {
            return;
        };
        hold.checking = None;
        let held = std::mem::take(&mut hold.held);
        self.end.runs.rejoin(runs);
        self.finished = true;
        match verdict {
            Ok(()) => {
                for event in held {
                    event.encode_into(&mut self.pending);
                }
            }
            Err(refusal) => {
                self.error = Some((refusal.code.clone(), refusal.message.clone()));
                self.family
                    .refusal_event(&refusal.body)
                    .encode_into(&mut self.pending);
            }
        }
    }

    /// Ends the stream with an in-band error event in the client's family.
    fn fail(&mut self, api: &ApiError) {
        self.finished = true;
        if let Some(hold) = &mut self.hold {
            // What was held back goes out before the error (nothing is left to check).
            hold.checking = None;
            for held in hold.held.drain(..) {
                held.encode_into(&mut self.pending);
            }
        }
        self.error = Some((api.code_string().to_owned(), api.log_text().to_owned()));
        self.family.error_event(api).encode_into(&mut self.pending);
    }

    /// The gathered events as one chunk for the client, kept for the log and policies too.
    fn take_pending(&mut self) -> Bytes {
        let chunk = Bytes::from(std::mem::take(&mut self.pending));
        if self.capture && self.captured_len < MAX_CAPTURE {
            self.captured_len += chunk.len();
            self.captured.push(chunk.clone());
        }
        chunk
    }
}

impl Stream for AnswerStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    /// Hands the client every event the upstream has already delivered, in one chunk.
    ///
    /// A provider often sends a burst of events in one packet, but hyper's client hands its
    /// body over one HTTP chunk per run of the connection's task: polled once, the upstream
    /// shows one event and then "nothing ready", although the rest are already in the
    /// gateway's memory. So gathered events wait up to `IDLE_TURNS` turns of the scheduler
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
        if this.hold.is_some()
            && let Some(first) = this.first.take()
            && this.observer.observe(&first)
        {
            // A checked stream's first event waits with the others it may end with.
            this.emit(first);
        }
        if let Some(first) = this.first.take()
            && this.observer.observe(&first)
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
        let checking =
            |this: &AnswerStream| this.hold.as_ref().is_some_and(|h| h.checking.is_some());
        while !this.finished && !checking(this) && this.pending.len() < MAX_BATCH {
            match this.events.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(event))) => {
                    arrived = true;
                    if this.observer.observe(&event) {
                        this.emit(event);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    let slug = this.end.record.provider.as_deref().unwrap_or_default();
                    let api = err.to_api_error(slug);
                    this.fail(&api);
                }
                Poll::Ready(None) => this.start_check(),
            }
        }
        if checking(this) {
            this.poll_check(cx);
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

impl Drop for AnswerStream {
    fn drop(&mut self) {
        if self.error.is_none() {
            // An Anthropic upstream's own in-band error, passed on as it was.
            self.error = self.observer.upstream_error();
        }
        let end = &mut self.end;
        let record = &mut end.record;
        record.outcome = match (&self.error, self.finished) {
            (Some(_), _) => Outcome::StreamBroken,
            (None, true) => Outcome::Completed,
            (None, false) => Outcome::ClientDisconnected,
        };
        if let Some((code, message)) = self.error.take() {
            record.error_code = Some(code);
            record.error = Some(message);
        }
        record.set_usage(self.observer.usage());
        if record.outcome == Outcome::Completed
            && let Some(kept) = self.observer.take_kept()
        {
            end.gateway.responses().keep(kept);
        }
        if record.log_payloads {
            let mut text = Vec::with_capacity(self.captured_len);
            for chunk in &self.captured {
                text.extend_from_slice(chunk);
            }
            record.response = Some(Bytes::from(text));
        }
        record.latency_ms = elapsed_ms(end.started);
        let record = std::mem::replace(record, RequestRecord::new(String::new(), 0, ""));
        let captured = std::mem::take(&mut self.captured);
        end.gateway
            .finish(record, &mut end.runs, Output::Stream(&captured));
    }
}

#[cfg(test)]
mod tests;
