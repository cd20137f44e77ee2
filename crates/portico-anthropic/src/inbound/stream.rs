//! OpenAI chunk stream → Anthropic stream events, for `/v1/messages` streams answered by a
//! provider that does not speak Anthropic's API.
//!
//! [`MessagesStreamWriter`] writes Anthropic's exact event order: `message_start` (on the
//! first chunk), then for each block `content_block_start`, its deltas and
//! `content_block_stop` (one block open at a time: reasoning → `thinking`, text → `text`,
//! each tool call → `tool_use` with `input_json_delta` fragments), then `message_delta` with
//! the stop reason and the usage (the gateway always asks upstream for the usage chunk), and
//! `message_stop`. An in-band OpenAI error, or a stream that ends before saying why it
//! stopped, is [`ProviderError::StreamBroken`].

use std::collections::HashMap;

use portico_providers::chat::{Delta, LenientChunk};
use portico_providers::dialect::{self, Translate};
use portico_providers::{EventStream, ProviderError, SseEvent};
use serde_json::{Map, Value, json};

use super::response::{message_id, wire_usage};
use crate::wire::{
    BlockDelta, ContentBlock, DeltaUsage, MessageDeltaBody, MessagesResponse, StreamEvent,
    WireUsage, stop_reason,
};

/// The block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

/// The OpenAI → Anthropic stream state machine (see the module docs).
#[derive(Debug)]
pub struct MessagesStreamWriter {
    model: String,
    started: bool,
    /// The open block: its kind and Anthropic index.
    open: Option<(Open, u32)>,
    next_index: u32,
    /// OpenAI tool-call index → Anthropic block index.
    tools: HashMap<u32, u32>,
    finish_reason: Option<String>,
    usage: WireUsage,
    done: bool,
}

fn event(ev: &StreamEvent) -> SseEvent {
    let name = match ev {
        StreamEvent::MessageStart { .. } => "message_start",
        StreamEvent::ContentBlockStart { .. } => "content_block_start",
        StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
        StreamEvent::ContentBlockStop { .. } => "content_block_stop",
        StreamEvent::MessageDelta { .. } => "message_delta",
        StreamEvent::MessageStop => "message_stop",
        StreamEvent::Ping => "ping",
        StreamEvent::Error { .. } => "error",
        StreamEvent::Unknown => "unknown",
    };
    // Serialising these plain types cannot fail; an empty object is the harmless fallback.
    SseEvent::named(
        name,
        serde_json::to_vec(ev).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

impl MessagesStreamWriter {
    /// A writer for a stream of `model` (replaced by the model the first chunk names).
    pub fn new(model: &str) -> MessagesStreamWriter {
        MessagesStreamWriter {
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            finish_reason: None,
            usage: WireUsage::default(),
            done: false,
        }
    }

    /// Whether `message_stop` has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates one OpenAI event, appending Anthropic events to `out`.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] for an in-band error; [`ProviderError::Malformed`]
    /// for data that is not a chunk.
    pub fn on_event(
        &mut self,
        ev: &SseEvent,
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if ev.is_done() {
            self.end(out);
            return Ok(());
        }
        let chunk = LenientChunk::parse(&ev.data)?;
        self.start(chunk.id.as_deref(), chunk.model.as_deref(), out);
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        if let Some(usage) = chunk.usage.filter(|u| !u.is_null()) {
            let count = |path: &str| usage.pointer(path).and_then(Value::as_u64).unwrap_or(0);
            self.usage = wire_usage(
                count("/prompt_tokens"),
                count("/completion_tokens"),
                count("/prompt_tokens_details/cached_tokens"),
                count("/prompt_tokens_details/cache_creation_tokens"),
            );
        }
        Ok(())
    }

    /// The input has ended. Without `[DONE]`, a stream that said why it stopped is closed
    /// normally; one that did not is broken.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] when the stream stopped before a finish reason.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if self.finish_reason.is_some() {
            self.end(out);
            return Ok(());
        }
        Err(ProviderError::StreamBroken(
            "the upstream stream ended before the answer was complete".to_owned(),
        ))
    }

    fn start(&mut self, id: Option<&str>, model: Option<&str>, out: &mut Vec<SseEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(model) = model.filter(|m| !m.is_empty()) {
            self.model = model.to_owned();
        }
        let message = MessagesResponse {
            id: message_id(id.unwrap_or("portico")),
            kind: "message".to_owned(),
            role: "assistant".to_owned(),
            model: self.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: wire_usage(0, 0, 0, 0),
            extra: Map::new(),
        };
        out.push(event(&StreamEvent::MessageStart { message }));
    }

    fn delta(&mut self, delta: Delta, out: &mut Vec<SseEvent>) {
        if let Some(reasoning) = delta.reasoning_content.filter(|r| !r.is_empty()) {
            let index = self.open_block(Open::Thinking, out);
            out.push(event(&StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::ThinkingDelta {
                    thinking: reasoning,
                },
            }));
        }
        for block in delta.thinking_blocks.into_iter().flatten() {
            if block.kind == "redacted_thinking" {
                self.close(out);
                let index = self.next_block();
                out.push(event(&StreamEvent::ContentBlockStart {
                    index,
                    content_block: ContentBlock::RedactedThinking {
                        data: block.data.unwrap_or_default(),
                    },
                }));
                out.push(event(&StreamEvent::ContentBlockStop { index }));
                continue;
            }
            // The reasoning text has already streamed when this thinking block is open;
            // otherwise the block carries it whole.
            let streamed = matches!(self.open, Some((Open::Thinking, _)));
            let index = self.open_block(Open::Thinking, out);
            if let Some(text) = block.thinking.filter(|t| !t.is_empty() && !streamed) {
                out.push(event(&StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::ThinkingDelta { thinking: text },
                }));
            }
            if let Some(signature) = block.signature.filter(|s| !s.is_empty()) {
                out.push(event(&StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::SignatureDelta { signature },
                }));
            }
            self.close(out);
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            let index = self.open_block(Open::Text, out);
            out.push(event(&StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text },
            }));
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let index = match self.tools.get(&call.index) {
                Some(index) => *index,
                None => {
                    self.close(out);
                    let index = self.next_block();
                    self.tools.insert(call.index, index);
                    self.open = Some((Open::Tool(call.index), index));
                    out.push(event(&StreamEvent::ContentBlockStart {
                        index,
                        content_block: ContentBlock::ToolUse {
                            id: call
                                .id
                                .clone()
                                .unwrap_or_else(|| format!("toolu_portico_{}", call.index)),
                            name: call.function.name.clone().unwrap_or_default(),
                            input: json!({}),
                            cache_control: None,
                        },
                    }));
                    index
                }
            };
            if let Some(fragment) = call.function.arguments.filter(|a| !a.is_empty()) {
                out.push(event(&StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: fragment,
                    },
                }));
            }
        }
    }

    fn next_block(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// The index of an open block of `kind`, starting one (and closing another) if needed.
    fn open_block(&mut self, kind: Open, out: &mut Vec<SseEvent>) -> u32 {
        if let Some((open, index)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next_block();
        let content_block = match kind {
            Open::Thinking => ContentBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            Open::Text | Open::Tool(_) => ContentBlock::text(""),
        };
        out.push(event(&StreamEvent::ContentBlockStart {
            index,
            content_block,
        }));
        self.open = Some((kind, index));
        index
    }

    fn close(&mut self, out: &mut Vec<SseEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(event(&StreamEvent::ContentBlockStop { index }));
        }
    }

    fn end(&mut self, out: &mut Vec<SseEvent>) {
        self.start(None, None, out);
        self.close(out);
        self.done = true;
        out.push(event(&StreamEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: Some(stop_reason(self.finish_reason.as_deref()).to_owned()),
                stop_sequence: None,
            },
            usage: Some(DeltaUsage {
                output_tokens: self.usage.output_tokens,
                input_tokens: Some(self.usage.input_tokens),
                cache_creation_input_tokens: self.usage.cache_creation_input_tokens,
                cache_read_input_tokens: self.usage.cache_read_input_tokens,
            }),
        }));
        out.push(event(&StreamEvent::MessageStop));
    }
}

/// Translates an OpenAI event stream into Anthropic events, lazily, with the translating
/// adapters' one stream loop ([`portico_providers::dialect::translate`]).
pub fn to_messages_events(events: EventStream, model: &str) -> EventStream {
    dialect::translate(events, MessagesStreamWriter::new(model))
}

impl Translate for MessagesStreamWriter {
    type Input = SseEvent;

    fn on_input(&mut self, event: SseEvent, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.on_event(&event, out)
    }

    fn on_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.finish(out)
    }

    fn is_done(&self) -> bool {
        MessagesStreamWriter::is_done(self)
    }
}
