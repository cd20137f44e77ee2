//! Server-sent events: an incremental parser for upstream streams and the framing for ours.
//!
//! What this is: [`SseParser`] turns bytes, arriving in chunks split anywhere, into
//! [`SseEvent`]s following the WHATWG `text/event-stream` rules; [`sse_events`] adapts a byte
//! stream (such as `reqwest::Response::bytes_stream`) into a stream of events; and
//! [`SseEvent::encode`] frames an event for the client.
//!
//! What it is not: it knows nothing of any provider's JSON. An event's `data` is handed on as
//! bytes, and `[DONE]` is recognised only by [`SseEvent::is_done`].
//!
//! Two deliberate departures from the WHATWG parser, both for proxying rather than for a
//! browser:
//! - bytes are kept as they are (not decoded to text), so a multi-byte UTF-8 character split
//!   across chunks is simply reassembled, and `data` can be forwarded without re-encoding;
//! - at end of input, [`SseParser::finish`] dispatches an event that lacks its final blank line,
//!   because some upstreams close the connection straight after `data: [DONE]`.
//!
//! One event may hold at most a set number of bytes (by default [`MAX_EVENT_BYTES`]; adapters
//! use the gateway's upstream answer limit, through [`crate::http::HttpClient::sse_events`]);
//! beyond that the parser fails rather than let a broken or malicious upstream grow our memory
//! without bound.

use std::fmt::Display;

use bytes::Bytes;
use futures::{Stream, StreamExt, stream};

use crate::ProviderError;

/// The most bytes one event may hold (its data plus the line being read) unless told
/// otherwise: the default upstream answer limit, 64 MiB.
///
/// Far above any real chunk (a chat completion chunk is a few hundred bytes; a whole embedding
/// body is a few MiB), and low enough that a single stream cannot exhaust the gateway.
pub const MAX_EVENT_BYTES: usize = crate::http::DEFAULT_MAX_UPSTREAM_BODY_BYTES;

/// The `data` of OpenAI's end-of-stream sentinel.
const DONE: &[u8] = b"[DONE]";

/// The UTF-8 byte-order mark, which the WHATWG rules skip at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One server-sent event: an optional `event:` name and its `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` for the default (`message`) type, as OpenAI sends.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (no trailing newline), as bytes.
    pub data: Bytes,
}

impl SseEvent {
    /// An unnamed event carrying `data` (typically one JSON chunk).
    pub fn data(data: impl Into<Bytes>) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
        }
    }

    /// An event named `event` carrying `data` (Anthropic-style streams name every event).
    pub fn named(event: impl Into<String>, data: impl Into<Bytes>) -> SseEvent {
        SseEvent {
            event: Some(event.into()),
            data: data.into(),
        }
    }

    /// OpenAI's end-of-stream sentinel, `data: [DONE]`.
    pub fn done() -> SseEvent {
        SseEvent::data(Bytes::from_static(DONE))
    }

    /// Whether this is the `[DONE]` sentinel (surrounding whitespace tolerated).
    pub fn is_done(&self) -> bool {
        self.data.trim_ascii() == DONE
    }

    /// The data as text, when it is valid UTF-8.
    pub fn data_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }

    /// The event framed for the wire: `event: NAME` (when named), one `data: ` line per line
    /// of data, then a blank line.
    ///
    /// Line breaks in `data` (`\n`, `\r\n` or `\r`) start a new `data:` line, so a parser
    /// reading the output gets `data` back with its breaks as `\n`. Line breaks in the name
    /// are dropped: written as they are, they would start a field of their own.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        Bytes::from(out)
    }

    /// Appends the event's wire form to `out`, so several events can share one write.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        if let Some(name) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend(name.bytes().filter(|b| !matches!(b, b'\r' | b'\n')));
            out.push(b'\n');
        }
        for line in Lines::new(&self.data) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.push(b'\n');
    }

    /// About how many bytes [`SseEvent::encode`] writes (exact for one-line data).
    pub fn encoded_len(&self) -> usize {
        self.data.len() + self.event.as_ref().map_or(0, |e| e.len() + 8) + 8
    }
}

/// Splits bytes on `\r\n`, `\r` or `\n`; always yields at least one (possibly empty) line.
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Lines<'a> {
        Lines { rest: Some(bytes) }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(end) => {
                let skip = if rest[end..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
                self.rest = Some(&rest[end + skip..]);
                Some(&rest[..end])
            }
        }
    }
}

/// An incremental `text/event-stream` parser: [`push`](SseParser::push) bytes as they arrive,
/// then take events with [`next_event`](SseParser::next_event) until it returns `Ok(None)`;
/// at end of input, take the rest with [`finish`](SseParser::finish).
///
/// Each byte is scanned once, however the input is chunked: the parser remembers how far it
/// has looked for a line ending, so a long line arriving in many small chunks costs linear,
/// not quadratic, time.
#[derive(Debug)]
pub struct SseParser {
    /// Input not yet consumed; `buf[line_start..]` is the current, unfinished line onwards.
    buf: Vec<u8>,
    /// Where the next line starts in `buf`. Consumed bytes before it are dropped on the next
    /// `push`, once per chunk rather than once per line, which keeps many-line chunks linear.
    line_start: usize,
    /// `buf[line_start..scanned]` is known to hold no line ending.
    scanned: usize,
    /// The last line ended with a `\r` at the very end of the input so far: if the next byte is
    /// `\n`, it belongs to that same line ending.
    after_cr: bool,
    /// Whether the start of the stream has been checked for a byte-order mark.
    bom_checked: bool,
    /// The `event:` name of the event being built.
    event: Option<String>,
    /// The `data:` lines of the event being built, joined with `\n`.
    data: Vec<u8>,
    /// Whether the event being built has had a `data:` line (possibly empty); only such
    /// events are dispatched.
    has_data: bool,
    /// The size limit of one event.
    max_event_bytes: usize,
    /// Input has ended: an unterminated last line counts as a line.
    eof: bool,
    /// An event was too large; every later call repeats the error.
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser that allows events up to [`MAX_EVENT_BYTES`].
    pub fn new() -> SseParser {
        SseParser::with_max_event_bytes(MAX_EVENT_BYTES)
    }

    /// A parser that allows events up to `max_event_bytes` (data plus the line being read).
    pub fn with_max_event_bytes(max_event_bytes: usize) -> SseParser {
        SseParser {
            buf: Vec::new(),
            line_start: 0,
            scanned: 0,
            after_cr: false,
            bom_checked: false,
            event: None,
            data: Vec::new(),
            has_data: false,
            max_event_bytes,
            eof: false,
            failed: false,
        }
    }

    /// Appends the next chunk of input. Chunks may split lines, line endings and UTF-8
    /// characters anywhere. Input after [`finish`](SseParser::finish) or a failure is ignored.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed || self.eof || chunk.is_empty() {
            return;
        }
        if self.line_start > 0 {
            self.buf.drain(..self.line_start);
            self.scanned -= self.line_start;
            self.line_start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, or `Ok(None)` when more input is needed.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Malformed`], naming the limit, when an event (its data plus the line
    /// being read) exceeds the size limit. The parser then drops its buffers and repeats the
    /// error.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, ProviderError> {
        if self.failed {
            return Err(self.too_large());
        }
        if !self.skip_bom() {
            return Ok(None);
        }
        loop {
            if self.after_cr {
                match self.buf.get(self.line_start) {
                    None if !self.eof => return Ok(None),
                    Some(b'\n') => self.line_start += 1,
                    None | Some(_) => {}
                }
                self.after_cr = false;
            }
            let from = self.scanned.max(self.line_start);
            let found = self.buf[from..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r');
            let (line_end, next_start) = match found {
                Some(offset) => {
                    let end = from + offset;
                    match (self.buf[end], self.buf.get(end + 1)) {
                        (b'\r', Some(b'\n')) => (end, end + 2),
                        (b'\r', None) => {
                            // The `\n` of a `\r\n` may be the first byte of the next chunk.
                            self.after_cr = true;
                            (end, end + 1)
                        }
                        _ => (end, end + 1),
                    }
                }
                None if !self.eof => {
                    self.scanned = self.buf.len();
                    let pending = self.buf.len() - self.line_start;
                    if self.data.len() + pending > self.max_event_bytes {
                        return Err(self.fail());
                    }
                    return Ok(None);
                }
                // At end of input an unterminated last line still counts...
                None if self.line_start < self.buf.len() => (self.buf.len(), self.buf.len()),
                // ...and so does an event without its final blank line.
                None => return Ok(self.dispatch()),
            };

            let line = &self.buf[self.line_start..line_end];
            let mut event = None;
            if line.is_empty() {
                event = self.dispatch();
            } else if line[0] != b':' {
                // A line without a colon is a field name with an empty value.
                let (field, value) = match line.iter().position(|&b| b == b':') {
                    Some(colon) => {
                        let value = &line[colon + 1..];
                        (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                    }
                    None => (line, &b""[..]),
                };
                match field {
                    b"data" => {
                        if self.has_data {
                            self.data.push(b'\n');
                        }
                        self.data.extend_from_slice(value);
                        self.has_data = true;
                    }
                    b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
                    // `id` and `retry` steer a browser's reconnection, which a proxy does not
                    // do; unknown fields are ignored by the rules.
                    _ => {}
                }
            }
            // Lines starting with `:` are comments (keep-alives); nothing to do.

            self.line_start = next_start;
            self.scanned = next_start;
            if self.data.len() > self.max_event_bytes {
                return Err(self.fail());
            }
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    /// Ends the input and returns the next remaining event: call it until it returns
    /// `Ok(None)`. An unterminated last line counts as a line, and an event missing its final
    /// blank line is still dispatched (see the module docs for why).
    ///
    /// # Errors
    ///
    /// As [`next_event`](SseParser::next_event).
    pub fn finish(&mut self) -> Result<Option<SseEvent>, ProviderError> {
        self.eof = true;
        self.next_event()
    }

    /// Skips a byte-order mark at the start of the stream; `false` while too few bytes have
    /// arrived to tell.
    fn skip_bom(&mut self) -> bool {
        if self.bom_checked {
            return true;
        }
        let head = &self.buf[self.line_start..];
        if head.len() < BOM.len() && BOM.starts_with(head) && !self.eof {
            return false;
        }
        if head.starts_with(BOM) {
            self.line_start += BOM.len();
        }
        self.bom_checked = true;
        true
    }

    /// Ends the event being built: returns it when it had data, and resets either way.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take().filter(|name| !name.is_empty());
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event,
            data: Bytes::from(std::mem::take(&mut self.data)),
        })
    }

    /// Marks the parser failed and frees its buffers.
    fn fail(&mut self) -> ProviderError {
        self.failed = true;
        self.buf = Vec::new();
        self.data = Vec::new();
        self.line_start = 0;
        self.scanned = 0;
        self.too_large()
    }

    fn too_large(&self) -> ProviderError {
        crate::http::too_large("an event of the stream", self.max_event_bytes)
    }
}

/// Parses a byte stream into server-sent events of at most [`MAX_EVENT_BYTES`]; an error of
/// the byte stream becomes [`ProviderError::StreamBroken`]. See [`sse_events_with`].
pub fn sse_events<S, E>(bytes: S) -> impl Stream<Item = Result<SseEvent, ProviderError>>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Display,
{
    sse_events_with(bytes, MAX_EVENT_BYTES, |err: E| {
        ProviderError::StreamBroken(err.to_string())
    })
}

/// Parses a byte stream (such as `reqwest::Response::bytes_stream()`) into server-sent events
/// of at most `max_event_bytes` each.
///
/// An error from the byte stream becomes `map_err`'s error (for reqwest's, a read timeout is
/// a timeout, not a broken stream) and ends the stream, as does an event over the limit. At
/// the end of the bytes the parser is flushed, so a last event without its blank line is still
/// delivered. The stream is lazy: it reads only when polled, and dropping it drops the byte
/// stream (cancelling the upstream request).
pub fn sse_events_with<S, E>(
    bytes: S,
    max_event_bytes: usize,
    map_err: fn(E) -> ProviderError,
) -> impl Stream<Item = Result<SseEvent, ProviderError>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    /// Where the adapter is: reading input, draining the parser after the input ended, or done.
    enum Phase {
        Reading,
        Finishing,
        Done,
    }

    let parser = SseParser::with_max_event_bytes(max_event_bytes);
    let state = (Box::pin(bytes), parser, Phase::Reading);
    stream::unfold(
        state,
        move |(mut bytes, mut parser, mut phase)| async move {
            loop {
                let polled = match phase {
                    Phase::Done => return None,
                    Phase::Reading => parser.next_event(),
                    Phase::Finishing => parser.finish(),
                };
                match polled {
                    Ok(Some(event)) => return Some((Ok(event), (bytes, parser, phase))),
                    Err(err) => return Some((Err(err), (bytes, parser, Phase::Done))),
                    Ok(None) if matches!(phase, Phase::Finishing) => return None,
                    Ok(None) => {}
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => parser.push(&chunk),
                    Some(Err(err)) => {
                        return Some((Err(map_err(err)), (bytes, parser, Phase::Done)));
                    }
                    None => phase = Phase::Finishing,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one by one, draining events after each, then finishes.
    fn parse_pieces(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for piece in pieces {
            parser.push(piece);
            while let Some(event) = parser.next_event().unwrap() {
                events.push(event);
            }
        }
        while let Some(event) = parser.finish().unwrap() {
            events.push(event);
        }
        events
    }

    fn parse(input: &[u8]) -> Vec<SseEvent> {
        parse_pieces(&[input])
    }

    fn data(text: &str) -> SseEvent {
        SseEvent::data(text.to_owned())
    }

    /// Exercises every rule at once: each line-ending form, a BOM, comments, ignored fields,
    /// multi-line data, names, an empty data line, a multi-byte character and `[DONE]`.
    const SAMPLE: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\n\
        data: {\"a\":1}\n\n\
        event: ping\r\ndata:no space\r\n\r\n\
        data: line one\rdata:  two spaces\r\rid: 7\nretry: 100\n\n\
        data\n\n\
        data: caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\r\n\r\n\
        event: first\nevent: second\ndata: x\n\n\
        unknown: field\ndata: [DONE]\n\n";

    fn sample_events() -> Vec<SseEvent> {
        vec![
            data("{\"a\":1}"),
            SseEvent::named("ping", "no space"),
            data("line one\n two spaces"),
            data(""),
            data("café € 😀"),
            SseEvent::named("second", "x"),
            SseEvent::done(),
        ]
    }

    #[test]
    fn parses_the_sample_in_one_piece() {
        assert_eq!(parse(SAMPLE), sample_events());
    }

    #[test]
    fn every_single_split_point_gives_the_same_events() {
        for split in 0..=SAMPLE.len() {
            let (a, b) = SAMPLE.split_at(split);
            assert_eq!(parse_pieces(&[a, b]), sample_events(), "split at {split}");
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_the_same_events() {
        for i in 0..=SAMPLE.len() {
            for j in i..=SAMPLE.len() {
                let pieces = [&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]];
                assert_eq!(parse_pieces(&pieces), sample_events(), "splits at {i}, {j}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        let pieces: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(parse_pieces(&pieces), sample_events());
    }

    #[test]
    fn each_line_ending_form_ends_lines_and_events() {
        for ending in ["\n", "\r\n", "\r"] {
            let input = format!("data: a{ending}data: b{ending}{ending}data: c{ending}{ending}");
            assert_eq!(
                parse(input.as_bytes()),
                [data("a\nb"), data("c")],
                "{ending:?}"
            );
        }
    }

    #[test]
    fn cr_then_lf_in_the_next_chunk_is_one_line_ending() {
        // Were the `\n` taken as a second line ending, it would be a blank line and dispatch
        // `a` on its own.
        let events = parse_pieces(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, [data("a\nb")]);
    }

    #[test]
    fn cr_at_the_end_of_input_is_a_line_ending() {
        assert_eq!(parse_pieces(&[b"data: a\r", b"\r"]), [data("a")]);
        assert_eq!(parse(b"data: a\r"), [data("a")]);
    }

    #[test]
    fn utf8_split_across_chunks_is_reassembled() {
        let input = "data: 😀é\n\n".as_bytes();
        // The emoji occupies bytes 6..10: split inside it.
        for split in 7..10 {
            let events = parse_pieces(&[&input[..split], &input[split..]]);
            assert_eq!(events, [data("😀é")]);
            assert_eq!(events[0].data_str(), Some("😀é"));
        }
    }

    #[test]
    fn comments_and_ignored_fields_dispatch_nothing() {
        assert!(parse(b": ping\n\nid: 1\nretry: 5\n\nevent: x\n\n").is_empty());
        // A name without data is forgotten at the blank line, not carried to the next event.
        assert_eq!(parse(b"event: x\n\ndata: y\n\n"), [data("y")]);
    }

    #[test]
    fn only_one_space_after_the_colon_is_stripped() {
        assert_eq!(parse(b"data:  x \n\n"), [data(" x ")]);
        assert_eq!(parse(b"data:x:y\n\n"), [data("x:y")]);
    }

    #[test]
    fn unterminated_last_event_is_flushed_at_eof() {
        assert_eq!(parse(b"data: [DONE]"), [SseEvent::done()]);
        assert_eq!(parse(b"data: a\ndata: b\n"), [data("a\nb")]);
        assert!(parse(b"").is_empty());
        assert!(parse(b": only a comment").is_empty());
    }

    #[test]
    fn next_event_waits_for_the_blank_line() {
        let mut parser = SseParser::new();
        parser.push(b"data: a\n");
        assert_eq!(parser.next_event().unwrap(), None);
        parser.push(b"\n");
        assert_eq!(parser.next_event().unwrap(), Some(data("a")));
        assert_eq!(parser.next_event().unwrap(), None);
    }

    #[test]
    fn bom_only_at_the_start_is_skipped() {
        assert_eq!(
            parse_pieces(&[b"\xEF", b"\xBB", b"\xBFdata: a\n\n"]),
            [data("a")]
        );
        // Elsewhere it is part of the field name, so the line is an unknown field.
        assert_eq!(parse(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"), [data("a")]);
    }

    #[test]
    fn done_is_recognised() {
        assert!(SseEvent::done().is_done());
        assert!(data(" [DONE]\n").is_done());
        assert!(!data("{\"done\":true}").is_done());
        assert_eq!(
            SseEvent::done().encode(),
            Bytes::from_static(b"data: [DONE]\n\n")
        );
    }

    #[test]
    fn encode_frames_names_and_lines() {
        assert_eq!(data("{}").encode(), Bytes::from_static(b"data: {}\n\n"));
        assert_eq!(
            SseEvent::named("message_stop", "a\nb\r\nc").encode(),
            Bytes::from_static(b"event: message_stop\ndata: a\ndata: b\ndata: c\n\n")
        );
        assert_eq!(data("").encode(), Bytes::from_static(b"data: \n\n"));
        assert_eq!(
            SseEvent::named("a\nb", "x").encode(),
            Bytes::from_static(b"event: ab\ndata: x\n\n")
        );
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let events = vec![
            data("{\"choices\":[]}"),
            data(""),
            data("\n"),
            data("multi\nline\n\ndata"),
            data(" leading space"),
            SseEvent::named("content_block_delta", "{\"x\":\"é\"}"),
            SseEvent::done(),
        ];
        let wire: Vec<u8> = events.iter().flat_map(|e| e.encode().to_vec()).collect();
        assert_eq!(parse(&wire), events);
    }

    #[test]
    fn oversize_data_fails() {
        let mut parser = SseParser::with_max_event_bytes(16);
        parser.push(b"data: 0123456789\ndata: 0123456789\n");
        let err = parser.next_event().unwrap_err();
        assert!(
            matches!(&err, ProviderError::Malformed(m) if m.contains("16-byte limit")),
            "{err:?}"
        );
        // The failure sticks, and further input is ignored.
        parser.push(b"\n");
        assert!(parser.next_event().is_err());
        assert!(parser.finish().is_err());
    }

    #[test]
    fn oversize_unterminated_line_fails_before_it_ends() {
        let mut parser = SseParser::with_max_event_bytes(64);
        parser.push(b"data: ");
        let mut failed = false;
        for _ in 0..10 {
            parser.push(b"0123456789");
            if parser.next_event().is_err() {
                failed = true;
                break;
            }
        }
        assert!(
            failed,
            "a growing line must hit the limit without a line ending"
        );
    }

    #[test]
    fn many_small_events_in_one_chunk_are_not_oversize() {
        let mut parser = SseParser::with_max_event_bytes(16);
        let input = "data: 0123456789\n\n".repeat(100);
        parser.push(input.as_bytes());
        let mut count = 0;
        while let Some(event) = parser.next_event().unwrap() {
            assert_eq!(event, data("0123456789"));
            count += 1;
        }
        assert_eq!(count, 100);
    }

    fn collect<S>(events: S) -> Vec<Result<SseEvent, ProviderError>>
    where
        S: Stream<Item = Result<SseEvent, ProviderError>>,
    {
        futures::executor::block_on(events.collect())
    }

    #[test]
    fn sse_events_adapts_a_byte_stream() {
        let chunks: Vec<Result<Bytes, String>> = SAMPLE
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let events: Vec<SseEvent> = collect(sse_events(stream::iter(chunks)))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(events, sample_events());
    }

    #[test]
    fn sse_events_flushes_at_eof() {
        let chunks = vec![Ok::<_, String>(Bytes::from_static(
            b"data: a\n\ndata: [DONE]",
        ))];
        let events = collect(sse_events(stream::iter(chunks)));
        assert_eq!(events, [Ok(data("a")), Ok(SseEvent::done())]);
    }

    #[test]
    fn sse_events_turns_byte_errors_into_stream_broken_and_stops() {
        let chunks = vec![
            Ok(Bytes::from_static(b"data: a\n\n")),
            Err("connection reset"),
            Ok(Bytes::from_static(b"data: b\n\n")),
        ];
        let events = collect(sse_events(stream::iter(chunks)));
        assert_eq!(
            events,
            [
                Ok(data("a")),
                Err(ProviderError::StreamBroken("connection reset".to_owned()))
            ]
        );
    }

    #[test]
    fn sse_events_with_rejects_an_event_over_its_limit_and_stops() {
        let kib = Bytes::from(vec![b'a'; 1024]);
        let mut chunks = vec![
            Ok::<_, String>(Bytes::from_static(b"data: small\n\n")),
            Ok(Bytes::from_static(b"data: ")),
        ];
        chunks.extend((0..5).map(|_| Ok(kib.clone())));
        chunks.push(Ok(Bytes::from_static(b"\n\ndata: after\n\n")));
        let events = collect(sse_events_with(stream::iter(chunks), 4096, |e: String| {
            ProviderError::StreamBroken(e)
        }));
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], Ok(data("small")));
        assert!(
            matches!(&events[1], Err(ProviderError::Malformed(m)) if m.contains("4096-byte limit") && m.contains("--max-upstream-body-bytes")),
            "{events:?}"
        );
    }

    #[test]
    fn sse_events_with_maps_byte_errors_with_the_given_function() {
        let chunks = vec![
            Ok(Bytes::from_static(b"data: a\n\n")),
            Err("read timed out"),
        ];
        let events = collect(sse_events_with(stream::iter(chunks), 64, |_: &str| {
            ProviderError::Timeout(None)
        }));
        assert_eq!(events, [Ok(data("a")), Err(ProviderError::Timeout(None))]);
    }
}
