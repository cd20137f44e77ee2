//! ConverseStream events → OpenAI chat chunks.
//!
//! [`Translator`] is the state machine (pure, fed one decoded frame at a time); [`frames`]
//! cuts a byte stream into frames with a [`FrameReader`], and the translating adapters' one
//! stream loop (`portico_providers::dialect::translate`) runs the machine over them.
//!
//! The order of Bedrock's events and what each becomes:
//! - `messageStart`: nothing yet. The role chunk is written with the first content, so an
//!   exception frame that comes before any content still fails the request with a real
//!   status (the gateway waits for the first event before it answers 200).
//! - `contentBlockStart` with a `toolUse`: a tool call's first chunk (id, name), under an
//!   OpenAI index counted over the message's tool calls (Bedrock's block index counts text
//!   blocks too).
//! - `contentBlockDelta`: text, a piece of a tool call's arguments, or reasoning (its text
//!   streamed as `reasoning_content`; its signature kept until the block stops).
//! - `contentBlockStop`: for a signed reasoning block, one `thinking_blocks` chunk with the
//!   whole text and signature, so a client can send it back next turn.
//! - `messageStop`: the stop reason is held, because usage comes after it, in `metadata`.
//! - `metadata`: the finish chunk, the usage chunk and `[DONE]`.
//!
//! A stream that ends before `messageStop` is broken; one that ends after it without
//! `metadata` finishes without usage.

use std::collections::HashMap;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use portico_providers::chat::{ChunkWriter, ThinkingBlock, UsageWire};
use portico_providers::dialect::Translate;
use portico_providers::{ProviderError, SseEvent};
use serde::de::DeserializeOwned;

use crate::error::from_exception;
use crate::eventstream::{Frame, FrameReader};
use crate::response::{finish_reason, usage};
use crate::wire::{
    BlockDeltaEvent, BlockStartEvent, BlockStopEvent, MessageStopEvent, MetadataEvent,
};

/// Reasoning of one block, gathered until the block stops.
#[derive(Debug, Default)]
struct Reasoning {
    text: String,
    signature: Option<String>,
}

/// The per-stream state machine.
#[derive(Debug)]
pub struct Translator {
    writer: ChunkWriter,
    /// Bedrock block index → OpenAI tool-call index.
    tools: HashMap<u32, u32>,
    next_tool: u32,
    reasoning: HashMap<u32, Reasoning>,
    stop_reason: Option<Option<String>>,
    usage: Option<UsageWire>,
    /// Whether any chunk has been written (after that, an exception breaks the stream).
    started: bool,
}

impl Translator {
    /// A translator writing chunks with this id, time and model.
    pub(crate) fn new(id: String, created: u64, model: String) -> Translator {
        Translator {
            writer: ChunkWriter::new(id, created, model),
            tools: HashMap::new(),
            next_tool: 0,
            reasoning: HashMap::new(),
            stop_reason: None,
            usage: None,
            started: false,
        }
    }

    /// Handles one frame, appending the chunks it produces to `out`.
    pub(crate) fn on_frame(
        &mut self,
        frame: Frame,
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError> {
        if self.writer.is_done() {
            return Ok(());
        }
        let before = out.len();
        let result = match frame {
            Frame::Exception { name, payload } => {
                Err(from_exception(&name, &payload, self.started))
            }
            Frame::Event {
                event_type,
                payload,
            } => self.on_event(&event_type, &payload, out),
        };
        self.started |= out.len() > before;
        result
    }

    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError> {
        match event_type {
            "contentBlockStart" => {
                let event: BlockStartEvent = parse(event_type, payload)?;
                if let Some(call) = event.start.and_then(|s| s.tool_use) {
                    let index = self.next_tool;
                    self.next_tool += 1;
                    self.tools.insert(event.content_block_index, index);
                    self.writer
                        .tool_call_start(index, &call.tool_use_id, &call.name, out);
                }
            }
            "contentBlockDelta" => {
                let event: BlockDeltaEvent = parse(event_type, payload)?;
                let block = event.content_block_index;
                if let Some(text) = event.delta.text {
                    self.writer.content(&text, out);
                }
                if let Some(call) = event.delta.tool_use {
                    let Some(&index) = self.tools.get(&block) else {
                        return Err(ProviderError::Malformed(format!(
                            "Bedrock sent tool input for content block {block} before starting a tool call there"
                        )));
                    };
                    self.writer.tool_call_arguments(index, &call.input, out);
                }
                if let Some(r) = event.delta.reasoning_content {
                    let acc = self.reasoning.entry(block).or_default();
                    if let Some(text) = r.text {
                        acc.text.push_str(&text);
                        self.writer.reasoning(&text, out);
                    }
                    if let Some(signature) = r.signature {
                        acc.signature
                            .get_or_insert_with(String::new)
                            .push_str(&signature);
                    }
                    if let Some(data) = r.redacted_content {
                        self.writer
                            .thinking_block(ThinkingBlock::redacted(data), out);
                    }
                }
            }
            "contentBlockStop" => {
                let event: BlockStopEvent = parse(event_type, payload)?;
                if let Some(r) = self.reasoning.remove(&event.content_block_index)
                    && let Some(signature) = r.signature
                {
                    self.writer
                        .thinking_block(ThinkingBlock::signed(r.text, Some(signature)), out);
                }
            }
            "messageStop" => {
                let event: MessageStopEvent = parse(event_type, payload)?;
                self.stop_reason = Some(event.stop_reason);
                self.finish_if_ready(out);
            }
            "metadata" => {
                let event: MetadataEvent = parse(event_type, payload)?;
                self.usage = Some(event.usage.as_ref().map(usage).unwrap_or_default());
                self.finish_if_ready(out);
            }
            // `messageStart` carries only the role, which the first chunk states anyway;
            // event kinds added later are skipped.
            _ => {}
        }
        Ok(())
    }

    /// Once both the stop reason and the usage are known: finish, usage, `[DONE]`.
    fn finish_if_ready(&mut self, out: &mut Vec<SseEvent>) {
        if let (Some(reason), Some(usage)) = (&self.stop_reason, self.usage) {
            self.writer.finish(finish_reason(reason.as_deref()), out);
            self.writer.done(Some(usage), out);
        }
    }

    /// The upstream closed the stream: finish it if `messageStop` came, else it broke.
    pub(crate) fn on_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if self.writer.is_done() {
            return Ok(());
        }
        match &self.stop_reason {
            Some(reason) => {
                self.writer.finish(finish_reason(reason.as_deref()), out);
                self.writer.done(self.usage, out);
                Ok(())
            }
            None => Err(ProviderError::StreamBroken(
                "Bedrock's event stream ended before messageStop".into(),
            )),
        }
    }
}

fn parse<T: DeserializeOwned>(event_type: &str, payload: &[u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(payload).map_err(|e| {
        ProviderError::Malformed(format!(
            "Bedrock's {event_type} event could not be read: {e}"
        ))
    })
}

impl Translate for Translator {
    type Input = Frame;

    fn on_input(&mut self, frame: Frame, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.on_frame(frame, out)
    }

    fn on_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        Translator::on_end(self, out)
    }

    fn is_done(&self) -> bool {
        self.writer.is_done()
    }
}

/// The frames of a ConverseStream byte stream, each held to `max_frame_bytes`. A frame cut
/// off by the end of the stream is [`ProviderError::StreamBroken`]; a corrupt one, or a
/// transport error, ends the frames.
pub(crate) fn frames<S, E>(
    bytes: S,
    transport_error: fn(E) -> ProviderError,
    max_frame_bytes: usize,
) -> impl Stream<Item = Result<Frame, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    let reader = FrameReader::with_max_frame_bytes(max_frame_bytes);
    futures::stream::unfold(
        (bytes, reader, false),
        move |(mut bytes, mut reader, mut ended)| async move {
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => return Some((Ok(frame), (bytes, reader, ended))),
                    // Nothing follows an error: the stream ends with it.
                    Err(err) => return Some((Err(err), (bytes, FrameReader::new(), true))),
                    Ok(None) if ended => {
                        if !reader.has_partial_frame() {
                            return None;
                        }
                        let broken = ProviderError::StreamBroken(
                            "Bedrock's event stream ended in the middle of a frame".into(),
                        );
                        return Some((Err(broken), (bytes, FrameReader::new(), true)));
                    }
                    Ok(None) => {}
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => reader.push(&chunk),
                    Some(Err(err)) => {
                        return Some((
                            Err(transport_error(err)),
                            (bytes, FrameReader::new(), true),
                        ));
                    }
                    None => ended = true,
                }
            }
        },
    )
}
