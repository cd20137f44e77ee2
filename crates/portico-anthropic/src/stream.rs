//! Anthropic's stream events → OpenAI's chunk sequence.
//!
//! [`StreamTranslator`] is the state machine: fed one [`SseEvent`] at a time, it writes
//! OpenAI chunks through a [`ChunkWriter`]:
//! - `message_start` gives the id, the model, the input usage, and the first chunk with
//!   `role: "assistant"`;
//! - `text_delta` → `content`; `thinking_delta` → `reasoning_content`, and at the thinking
//!   block's end one `thinking_blocks` delta with its text and signature (so a client can
//!   send it back); a `redacted_thinking` block → one `thinking_blocks` delta;
//! - a `tool_use` block → a tool call whose OpenAI `index` counts tool blocks only (not
//!   Anthropic's block index), its `input_json_delta` fragments → `arguments` fragments; a
//!   call whose input never arrived gets `{}`;
//! - `message_delta` → the stop reason and the cumulative output tokens;
//! - `message_stop` → the finish chunk, the usage chunk (always: the gateway strips it for
//!   clients that did not ask) and `[DONE]`;
//! - `ping` and unknown events are ignored; input that ends before `message_stop` is
//!   [`ProviderError::StreamBroken`], and so is an `error` event after `message_start` (before
//!   it, nothing was sent: the error keeps its status, as an error answer does).
//!
//! [`translate`] runs the machine over an upstream byte stream, with the translating
//! adapters' one stream loop ([`portico_providers::dialect::translate`]).

use std::collections::HashMap;
use std::fmt::Display;

use bytes::Bytes;
use futures::Stream;
use portico_providers::chat::{ChunkWriter, ThinkingBlock, UsageWire};
use portico_providers::dialect::{self, Translate};
use portico_providers::sse::sse_events;
use portico_providers::{EventStream, ProviderError, SseEvent};

use crate::error::from_event;

use crate::wire::{BlockDelta, ContentBlock, DeltaUsage, StreamEvent, WireUsage, finish_reason};

/// What a content block of the stream is, by Anthropic's block index.
#[derive(Debug)]
enum Block {
    Text,
    Tool {
        /// The OpenAI tool-call index.
        index: u32,
        /// Whether any argument text was written.
        has_arguments: bool,
    },
    Thinking {
        text: String,
        signature: String,
    },
    Other,
}

/// The Anthropic → OpenAI stream state machine (see the module docs).
#[derive(Debug)]
pub struct StreamTranslator {
    writer: ChunkWriter,
    blocks: HashMap<u32, Block>,
    tools: u32,
    usage: WireUsage,
    stop_reason: Option<String>,
    started: bool,
}

impl StreamTranslator {
    /// A translator for a stream of `model`, stamped with `created` (Unix seconds); the id
    /// comes from `message_start`.
    pub fn new(model: &str, created: u64) -> StreamTranslator {
        StreamTranslator {
            writer: ChunkWriter::new("msg", created, model),
            blocks: HashMap::new(),
            tools: 0,
            usage: WireUsage::default(),
            stop_reason: None,
            started: false,
        }
    }

    /// Whether `[DONE]` has been written (after `message_stop`).
    pub fn is_done(&self) -> bool {
        self.writer.is_done()
    }

    /// Translates one upstream event, appending the OpenAI events it produces to `out`.
    ///
    /// # Errors
    ///
    /// An in-band `error` event: [`ProviderError::StreamBroken`] once the message started,
    /// before that the error's status (see [`crate::error`]); [`ProviderError::Malformed`] for
    /// an event whose data is not an Anthropic event.
    pub fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError> {
        if self.writer.is_done() {
            return Ok(());
        }
        let parsed: StreamEvent = serde_json::from_slice(&event.data).map_err(|e| {
            let what = format!(
                "a stream event{}",
                event
                    .event
                    .as_deref()
                    .map(|n| format!(" `{n}`"))
                    .unwrap_or_default()
            );
            portico_providers::error::unreadable_event(&what, "an Anthropic event", &event.data, &e)
        })?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.writer.set_id(message.id);
                if !message.model.is_empty() {
                    self.writer.set_model(message.model);
                }
                self.usage = message.usage;
                self.writer.start(out);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, content_block, out),
            StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta, out),
            StreamEvent::ContentBlockStop { index } => self.block_stop(index, out),
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(usage) = usage {
                    self.add_usage(&usage);
                }
            }
            StreamEvent::MessageStop => {
                self.writer
                    .finish(finish_reason(self.stop_reason.as_deref()), out);
                self.writer.done(Some(self.usage()), out);
            }
            // Before `message_start` the client has been sent nothing: a real status, as
            // for an error answer. After it, the stream is broken.
            StreamEvent::Error { error } if !self.started => return Err(from_event(error)),
            StreamEvent::Error { error } => {
                return Err(ProviderError::StreamBroken(format!(
                    "Anthropic sent an error event mid-stream: {}: {}",
                    error.kind, error.message
                )));
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
        }
        Ok(())
    }

    /// The input has ended: fine after `message_stop`, a broken stream otherwise.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] when `message_stop` never came.
    pub fn finish(&self) -> Result<(), ProviderError> {
        if self.writer.is_done() {
            return Ok(());
        }
        Err(ProviderError::StreamBroken(if self.started {
            "the Anthropic stream ended before `message_stop`; the answer is incomplete".to_owned()
        } else {
            "the Anthropic stream ended without any message".to_owned()
        }))
    }

    /// The usage so far, in OpenAI's meaning.
    pub fn usage(&self) -> UsageWire {
        crate::response::usage(&self.usage)
    }

    fn add_usage(&mut self, usage: &DeltaUsage) {
        self.usage.output_tokens = usage.output_tokens;
        if let Some(n) = usage.input_tokens {
            self.usage.input_tokens = n;
        }
        if let Some(n) = usage.cache_creation_input_tokens {
            self.usage.cache_creation_input_tokens = Some(n);
        }
        if let Some(n) = usage.cache_read_input_tokens {
            self.usage.cache_read_input_tokens = Some(n);
        }
    }

    fn block_start(&mut self, index: u32, block: ContentBlock, out: &mut Vec<SseEvent>) {
        let state = match block {
            ContentBlock::Text { text, .. } => {
                self.writer.content(&text, out);
                Block::Text
            }
            ContentBlock::ToolUse { id, name, .. } => {
                // The input arrives in `input_json_delta`s; the start carries `{}`.
                let tool = self.tools;
                self.tools += 1;
                self.writer.tool_call_start(tool, &id, &name, out);
                Block::Tool {
                    index: tool,
                    has_arguments: false,
                }
            }
            ContentBlock::Thinking {
                thinking,
                signature,
            } => {
                self.writer.reasoning(&thinking, out);
                Block::Thinking {
                    text: thinking,
                    signature,
                }
            }
            ContentBlock::RedactedThinking { data } => {
                self.writer
                    .thinking_block(ThinkingBlock::redacted(data), out);
                Block::Other
            }
            _ => Block::Other,
        };
        self.blocks.insert(index, state);
    }

    fn block_delta(&mut self, index: u32, delta: BlockDelta, out: &mut Vec<SseEvent>) {
        let block = self.blocks.get_mut(&index);
        match (delta, block) {
            (BlockDelta::TextDelta { text }, _) => self.writer.content(&text, out),
            (
                BlockDelta::InputJsonDelta { partial_json },
                Some(Block::Tool {
                    index,
                    has_arguments,
                }),
            ) => {
                *has_arguments |= !partial_json.is_empty();
                self.writer.tool_call_arguments(*index, &partial_json, out);
            }
            (BlockDelta::ThinkingDelta { thinking }, block) => {
                if let Some(Block::Thinking { text, .. }) = block {
                    text.push_str(&thinking);
                }
                self.writer.reasoning(&thinking, out);
            }
            (
                BlockDelta::SignatureDelta { signature },
                Some(Block::Thinking { signature: s, .. }),
            ) => {
                *s = signature;
            }
            // Citations, fragments for a block never started, unknown deltas.
            _ => {}
        }
    }

    fn block_stop(&mut self, index: u32, out: &mut Vec<SseEvent>) {
        match self.blocks.remove(&index) {
            Some(Block::Tool {
                index,
                has_arguments: false,
            }) => self.writer.tool_call_arguments(index, "{}", out),
            Some(Block::Thinking { text, signature }) => self
                .writer
                .thinking_block(ThinkingBlock::signed(text, Some(signature)), out),
            _ => {}
        }
    }
}

/// Translates an upstream Anthropic SSE byte stream into OpenAI chunk events, lazily: each
/// upstream event is read only when the client side polls, and dropping the result drops
/// (and so cancels) the upstream.
pub fn translate<S, E>(bytes: S, translator: StreamTranslator) -> EventStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Display + 'static,
{
    translate_events(sse_events(bytes), translator)
}

/// [`translate`] over already-parsed events.
pub fn translate_events<S>(events: S, translator: StreamTranslator) -> EventStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    dialect::translate(events, translator)
}

impl Translate for StreamTranslator {
    type Input = SseEvent;

    fn on_input(&mut self, event: SseEvent, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.on_event(&event, out)
    }

    fn on_end(&mut self, _out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.finish()
    }

    fn is_done(&self) -> bool {
        self.writer.is_done()
    }
}
