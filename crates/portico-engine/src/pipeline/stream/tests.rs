use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Waker;

use portico_core::RequestSink;
use portico_providers::ProviderError;

use super::*;
use crate::pipeline::Family;
use crate::snapshot::Snapshot;

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

fn forward(events: usize, silent_after: usize) -> (AnswerStream, Arc<Kept>) {
    forward_until(events, silent_after, CancellationToken::new())
}

fn forward_until(
    events: usize,
    silent_after: usize,
    cut: CancellationToken,
) -> (AnswerStream, Arc<Kept>) {
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
    let end = StreamEnd {
        record: RequestRecord::new("id".into(), 0, "chat.completions"),
        runs: Runs::default(),
        started: Instant::now(),
        gateway,
        _slot: None,
    };
    let family = Family::OpenAi(portico_core::Endpoint::ChatCompletions);
    let observer = StreamObserver::new(family, true);
    let stream = AnswerStream::new(event(0), Box::pin(upstream), end, family, observer, cut);
    (stream, kept)
}

/// Polls like a runtime would, `polls` times at most: the chunks handed out, in order,
/// and whether the stream ended.
fn drive(stream: &mut AnswerStream, polls: usize) -> (Vec<String>, bool) {
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
