//! A stream's output as stored and replayed: the events the client received, read back from
//! the bytes it was sent, and checked to write those same bytes again.

use bytes::Bytes;
use portico_cache::{CachedAnswer, CachedEvent, Payload};
use portico_providers::SseEvent;
use portico_providers::sse::SseParser;

use crate::pipeline::policy::Canned;

/// Streams longer than this are not stored. It is below what a stream keeps of its output
/// for the policies (8 MiB), so a stream that fits was kept whole.
pub(super) const MAX_STREAM_BYTES: usize = 4 * 1024 * 1024;

/// The events of a stream's output, as sent to the client in `chunks`; `None` when they
/// cannot be replayed exactly (too long, or bytes that re-encoding would not give back, such
/// as comment lines), so the stream is not stored.
pub(super) fn events(chunks: &[Bytes]) -> Option<Vec<CachedEvent>> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    if total == 0 || total >= MAX_STREAM_BYTES {
        return None;
    }
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        while let Some(event) = parser.next_event().ok()? {
            events.push(event);
        }
    }
    if let Some(event) = parser.finish().ok()? {
        events.push(event);
    }
    // Byte for byte: what the replay writes must be what the client got.
    let mut again = Vec::with_capacity(total);
    for event in &events {
        event.encode_into(&mut again);
    }
    let mut offset = 0;
    for chunk in chunks {
        if again.get(offset..offset + chunk.len()) != Some(&chunk[..]) {
            return None;
        }
        offset += chunk.len();
    }
    if offset != again.len() {
        return None;
    }
    Some(
        events
            .into_iter()
            .map(|e| CachedEvent {
                name: e.event,
                data: e.data,
            })
            .collect(),
    )
}

/// The pipeline's answer for a hit on `answer`.
pub(super) fn canned(answer: &CachedAnswer) -> Canned {
    match &answer.payload {
        Payload::Whole(body) => Canned::Whole {
            status: answer.status,
            body: body.clone(),
            usage: None,
        },
        Payload::Stream(events) => Canned::Stream {
            status: answer.status,
            events: events
                .iter()
                .map(|e| SseEvent {
                    event: e.name.clone(),
                    data: e.data.clone(),
                })
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_read_back_into_events_that_write_the_same_bytes() {
        let chunks = [
            Bytes::from_static(b"data: {\"a\":1}\n\n"),
            Bytes::from_static(b"event: message_stop\ndata: {}\n\ndata: [DONE]\n\n"),
        ];
        let events = events(&chunks).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[1].name.as_deref(), Some("message_stop"));
        let mut out = Vec::new();
        for e in &events {
            SseEvent {
                event: e.name.clone(),
                data: e.data.clone(),
            }
            .encode_into(&mut out);
        }
        assert_eq!(out, chunks.concat());
    }

    #[test]
    fn output_that_would_not_replay_exactly_is_refused() {
        // A comment line is dropped by the parser.
        assert!(events(&[Bytes::from_static(b": ping\n\ndata: x\n\n")]).is_none());
        // A stream cut in the middle of an event.
        assert!(events(&[Bytes::from_static(b"data: {\"a\"")]).is_none());
        assert!(events(&[]).is_none());
        let huge = Bytes::from(vec![b'x'; MAX_STREAM_BYTES]);
        assert!(events(&[huge]).is_none());
    }
}
