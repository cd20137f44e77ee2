//! Stream chunks, and [`ChunkWriter`], which emits a well-formed OpenAI chunk sequence from a
//! translating adapter's stream state machine.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::response::UsageWire;
use crate::sse::SseEvent;

/// One `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The same id on every chunk of a stream.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// The same time on every chunk.
    pub created: u64,
    /// The model.
    pub model: String,
    /// Deltas; empty on the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Usage, on the usage chunk only (`null` elsewhere, as OpenAI sends it).
    #[serde(default)]
    pub usage: Option<UsageWire>,
}

/// One choice's delta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// The choice.
    pub index: u32,
    /// What this chunk adds.
    pub delta: Delta,
    /// Set on the choice's last chunk.
    pub finish_reason: Option<String>,
    /// Log probabilities.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

/// What a chunk adds to the message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant`, on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A text fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A reasoning fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// A finished reasoning block's signature, so clients can send the block back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<super::ThinkingBlock>>,
}

/// A fragment of a tool call; fragments with the same `index` belong together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call (a counter over the message's tool calls).
    pub index: u32,
    /// The call's id, on its first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on the first fragment.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name (first fragment) and argument text.
    pub function: FunctionDelta,
}

/// The function part of a tool-call fragment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FunctionDelta {
    /// The name, on the first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Writes OpenAI's chunk sequence for one choice: the role first, then deltas, one finish
/// chunk, a usage chunk, and `[DONE]`, whatever order the provider's events come in.
///
/// The usage chunk is always written: the gateway needs usage for every stream, and strips
/// the chunk again when the client did not ask for it (`stream_options.include_usage`).
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    role_sent: bool,
    finished: bool,
    done: bool,
}

impl ChunkWriter {
    /// A writer for a stream with this id, creation time and model.
    pub fn new(id: impl Into<String>, created: u64, model: impl Into<String>) -> ChunkWriter {
        ChunkWriter {
            id: id.into(),
            created,
            model: model.into(),
            role_sent: false,
            finished: false,
            done: false,
        }
    }

    /// Sets the id once the provider has told it (its first event often carries it).
    pub fn set_id(&mut self, id: impl Into<String>) {
        self.id = id.into();
    }

    /// Sets the model the provider reports.
    pub fn set_model(&mut self, model: impl Into<String>) {
        self.model = model.into();
    }

    /// Whether the finish chunk has been written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether `[DONE]` has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> SseEvent {
        let chunk = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                logprobs: None,
            }],
            usage: None,
        };
        encode(&chunk)
    }

    /// The first chunk, `{role: "assistant", content: ""}`, if not yet written.
    pub fn start(&mut self, out: &mut Vec<SseEvent>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(self.chunk(
                Delta {
                    role: Some("assistant".to_owned()),
                    content: Some(String::new()),
                    ..Delta::default()
                },
                None,
            ));
        }
    }

    /// A text fragment.
    pub fn content(&mut self, text: &str, out: &mut Vec<SseEvent>) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        out.push(self.chunk(
            Delta {
                content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        ));
    }

    /// A reasoning fragment.
    pub fn reasoning(&mut self, text: &str, out: &mut Vec<SseEvent>) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        out.push(self.chunk(
            Delta {
                reasoning_content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        ));
    }

    /// A finished reasoning block (its signature), for clients that send it back.
    pub fn thinking_block(&mut self, block: super::ThinkingBlock, out: &mut Vec<SseEvent>) {
        self.start(out);
        out.push(self.chunk(
            Delta {
                thinking_blocks: Some(vec![block]),
                ..Delta::default()
            },
            None,
        ));
    }

    /// The first fragment of tool call `index`: its id and name.
    pub fn tool_call_start(&mut self, index: u32, id: &str, name: &str, out: &mut Vec<SseEvent>) {
        self.start(out);
        out.push(self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: Some(id.to_owned()),
                    kind: Some("function".to_owned()),
                    function: FunctionDelta {
                        name: Some(name.to_owned()),
                        arguments: Some(String::new()),
                    },
                }]),
                ..Delta::default()
            },
            None,
        ));
    }

    /// A piece of tool call `index`'s JSON arguments.
    pub fn tool_call_arguments(&mut self, index: u32, fragment: &str, out: &mut Vec<SseEvent>) {
        if fragment.is_empty() {
            return;
        }
        self.start(out);
        out.push(self.chunk(
            Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: Some(fragment.to_owned()),
                    },
                }]),
                ..Delta::default()
            },
            None,
        ));
    }

    /// The finish chunk (once).
    pub fn finish(&mut self, reason: &str, out: &mut Vec<SseEvent>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.finished = true;
        out.push(self.chunk(Delta::default(), Some(reason.to_owned())));
    }

    /// The usage chunk (`choices: []`) and `[DONE]`; writes a finish chunk first if the
    /// provider never said why it stopped.
    pub fn done(&mut self, usage: Option<UsageWire>, out: &mut Vec<SseEvent>) {
        if self.done {
            return;
        }
        if !self.finished {
            self.finish(super::finish::STOP, out);
        }
        self.done = true;
        if let Some(usage) = usage {
            out.push(encode(&ChatChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".to_owned(),
                created: self.created,
                model: self.model.clone(),
                choices: Vec::new(),
                usage: Some(usage),
            }));
        }
        out.push(SseEvent::done());
    }
}

fn encode(chunk: &ChatChunk) -> SseEvent {
    // Serialising these plain structs cannot fail; an empty object is the harmless fallback.
    SseEvent::data(serde_json::to_vec(chunk).unwrap_or_else(|_| b"{}".to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(events: &[SseEvent]) -> Vec<Value> {
        events
            .iter()
            .filter(|e| !e.is_done())
            .map(|e| serde_json::from_slice(&e.data).unwrap())
            .collect()
    }

    #[test]
    fn writes_openais_sequence() {
        let mut w = ChunkWriter::new("chatcmpl-1", 7, "m");
        let mut out = Vec::new();
        w.content("Hel", &mut out);
        w.content("lo", &mut out);
        w.tool_call_start(0, "call_1", "read", &mut out);
        w.tool_call_arguments(0, "{\"p\":", &mut out);
        w.tool_call_arguments(0, "1}", &mut out);
        w.finish("tool_calls", &mut out);
        w.finish("stop", &mut out);
        w.done(Some(UsageWire::from_parts(3, 0, 0, 4, 0)), &mut out);
        assert!(out.last().unwrap().is_done());
        let chunks = json(&out);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hel");
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "call_1"
        );
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "read"
        );
        let finishes: Vec<_> = chunks
            .iter()
            .filter(|c| {
                !c["choices"].as_array().unwrap().is_empty()
                    && !c["choices"][0]["finish_reason"].is_null()
            })
            .collect();
        assert_eq!(finishes.len(), 1, "one finish chunk");
        assert_eq!(finishes[0]["choices"][0]["finish_reason"], "tool_calls");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
        assert!(
            chunks
                .iter()
                .all(|c| c["id"] == "chatcmpl-1" && c["created"] == 7)
        );
    }

    #[test]
    fn done_without_finish_still_finishes() {
        let mut w = ChunkWriter::new("x", 1, "m");
        let mut out = Vec::new();
        w.done(None, &mut out);
        let chunks = json(&out);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(out.len(), 3);
    }
}
