//! The binary `application/vnd.amazon.eventstream` framing ConverseStream answers in.
//!
//! A frame is: total length (4 bytes, big-endian), headers length (4), a CRC32 of those 8
//! bytes, the headers (`:message-type`, `:event-type` or `:exception-type`,
//! `:content-type`), the payload (JSON here), and a CRC32 of everything before it. Frames
//! arrive split across TCP reads at any byte, so [`FrameReader`] buffers until a frame's total
//! length is there, then hands the frame to `aws-smithy-eventstream`, which checks both CRCs
//! and parses the headers.
//!
//! [`encode_event`] and [`encode_exception`] write frames the same way Bedrock does; tests and
//! mock upstreams use them.

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Buf, Bytes, BytesMut};
use portico_providers::ProviderError;

/// The largest frame accepted unless told otherwise: the default upstream answer limit,
/// 64 MiB, far above any real event (a few hundred bytes); the adapter passes the configured
/// limit (`--max-upstream-body-bytes`), so a broken upstream cannot make the gateway buffer
/// without bound.
pub const MAX_FRAME_BYTES: usize = portico_providers::http::DEFAULT_MAX_UPSTREAM_BODY_BYTES;

/// The smallest possible frame: prelude (12 bytes) and message CRC (4).
const MIN_FRAME_BYTES: usize = 16;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `:message-type: event`: an event named by `:event-type`, with its JSON payload.
    Event {
        /// `messageStart`, `contentBlockDelta`, ...
        event_type: String,
        /// The event's JSON.
        payload: Bytes,
    },
    /// `:message-type: exception` (named by `:exception-type`) or `error` (named by
    /// `:error-code`): the stream failed.
    Exception {
        /// `throttlingException`, `modelStreamErrorException`, ...
        name: String,
        /// `{"message": ...}`, or the `:error-message` header's text.
        payload: Bytes,
    },
}

/// Buffers bytes and cuts them into frames.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    /// The largest frame accepted.
    max_frame_bytes: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader::new()
    }
}

impl FrameReader {
    /// An empty reader accepting frames up to [`MAX_FRAME_BYTES`].
    pub fn new() -> FrameReader {
        FrameReader::with_max_frame_bytes(MAX_FRAME_BYTES)
    }

    /// An empty reader accepting frames up to `max_frame_bytes` (at least the 16-byte
    /// smallest frame).
    pub fn with_max_frame_bytes(max_frame_bytes: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            max_frame_bytes: max_frame_bytes.max(MIN_FRAME_BYTES),
        }
    }

    /// Adds bytes as they arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes of an unfinished frame are waiting.
    pub fn has_partial_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next whole frame, `None` until its last byte arrived. A frame that is too large,
    /// fails a CRC, or lacks its type header is an error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProviderError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let total = (&self.buf[..4]).get_u32() as usize;
        if total > self.max_frame_bytes {
            // Refused from its declared length, before its bytes are buffered.
            return Err(portico_providers::http::too_large(
                "an event of the stream",
                self.max_frame_bytes,
            ));
        }
        if total < MIN_FRAME_BYTES {
            return Err(ProviderError::Malformed(format!(
                "Bedrock sent an event-stream frame of {total} bytes; the smallest frame is {MIN_FRAME_BYTES} bytes"
            )));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        let message = read_message_from(frame).map_err(|e| {
            ProviderError::Malformed(format!("Bedrock sent a corrupt event-stream frame: {e}"))
        })?;
        classify(&message).map(Some)
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// Reads a frame's kind and name from its headers.
fn classify(message: &Message) -> Result<Frame, ProviderError> {
    let payload = message.payload().clone();
    match header(message, ":message-type") {
        Some("event") => {
            let event_type = header(message, ":event-type").ok_or_else(|| {
                ProviderError::Malformed("an event-stream event frame has no :event-type".into())
            })?;
            Ok(Frame::Event {
                event_type: event_type.to_owned(),
                payload,
            })
        }
        Some("exception") => Ok(Frame::Exception {
            name: header(message, ":exception-type")
                .unwrap_or("unknownException")
                .to_owned(),
            payload,
        }),
        Some("error") => {
            let text = header(message, ":error-message").unwrap_or_default();
            Ok(Frame::Exception {
                name: header(message, ":error-code")
                    .unwrap_or("unknownError")
                    .to_owned(),
                payload: Bytes::from(serde_json::json!({ "message": text }).to_string()),
            })
        }
        other => Err(ProviderError::Malformed(format!(
            "an event-stream frame has :message-type {other:?}; expected event, exception or error"
        ))),
    }
}

fn encode(headers: Vec<Header>, payload: &[u8]) -> Bytes {
    let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
    let mut out = Vec::with_capacity(payload.len() + 96);
    // Writing fails only for over-long headers or payloads, which these short fixed headers
    // and event JSON are not; an empty buffer is then the harmless result.
    if write_message_to(&message, &mut out).is_err() {
        out.clear();
    }
    Bytes::from(out)
}

fn string(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

/// An event frame as Bedrock writes it: `:event-type`, `:content-type: application/json`,
/// `:message-type: event`, then the JSON payload.
pub fn encode_event(event_type: &str, payload: &[u8]) -> Bytes {
    encode(
        vec![
            string(":event-type", event_type),
            string(":content-type", "application/json"),
            string(":message-type", "event"),
        ],
        payload,
    )
}

/// An exception frame: `:exception-type`, `:content-type`, `:message-type: exception`, and
/// `{"message": ...}`.
pub fn encode_exception(name: &str, message: &str) -> Bytes {
    let payload = serde_json::json!({ "message": message }).to_string();
    encode(
        vec![
            string(":exception-type", name),
            string(":content-type", "application/json"),
            string(":message-type", "exception"),
        ],
        payload.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_split_anywhere() {
        let mut bytes =
            encode_event("contentBlockDelta", br#"{"delta":{"text":"h\u00e9"}}"#).to_vec();
        bytes.extend_from_slice(&encode_exception("throttlingException", "slow down"));
        for cut in 0..=bytes.len() {
            let mut reader = FrameReader::new();
            let mut frames = Vec::new();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                reader.push(piece);
                while let Some(frame) = reader.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            assert!(!reader.has_partial_frame());
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert!(
                matches!(&frames[0], Frame::Event { event_type, .. } if event_type == "contentBlockDelta")
            );
            assert!(
                matches!(&frames[1], Frame::Exception { name, .. } if name == "throttlingException")
            );
        }
    }

    #[test]
    fn corrupt_and_oversized_frames_fail() {
        let mut bytes = encode_event("messageStart", br#"{"role":"assistant"}"#).to_vec();
        let last = bytes.len() - 5;
        bytes[last] ^= 0xff;
        let mut reader = FrameReader::new();
        reader.push(&bytes);
        assert!(
            reader.next_frame().is_err(),
            "a flipped payload byte fails the CRC"
        );

        let mut reader = FrameReader::new();
        reader.push(&u32::MAX.to_be_bytes());
        assert!(
            reader.next_frame().is_err(),
            "a 4 GiB frame is refused at once"
        );

        let frame = encode_event("contentBlockDelta", &[b' '; 200]);
        let mut reader = FrameReader::with_max_frame_bytes(128);
        reader.push(&frame[..8]);
        let err = reader.next_frame().unwrap_err().to_string();
        assert!(
            err.contains("128-byte limit") && err.contains("--max-upstream-body-bytes"),
            "refused from its prelude, naming the limit: {err}"
        );
        let mut roomy = FrameReader::with_max_frame_bytes(frame.len());
        roomy.push(&frame);
        assert!(
            roomy.next_frame().unwrap().is_some(),
            "a frame at the limit passes"
        );
    }
}
