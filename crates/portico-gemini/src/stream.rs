//! `streamGenerateContent?alt=sse` → OpenAI's chunk sequence.
//!
//! Each SSE event is one `GenerateContentResponse` holding the next parts. Gemini sends no
//! `[DONE]`: the stream ends when the connection closes, and a complete stream's last event
//! carries `finishReason` (and the final `usageMetadata`, repeated and growing on earlier
//! events). So the finish chunk, the usage chunk and `[DONE]` are written at the end of the
//! input, and a stream that ends without a `finishReason` is reported as broken rather than
//! passed off as complete.
//!
//! Function calls arrive whole, never in fragments: each becomes a tool-call start and its
//! full arguments, numbered with OpenAI's `index` counter.

use portico_providers::ProviderError;
use portico_providers::chat::{ChunkWriter, finish};
use portico_providers::dialect::Translate;
use portico_providers::sse::SseEvent;

use crate::error::from_detail;
use crate::ids::tool_call_id;
use crate::response::{arguments, finish_reason, id_seed, usage};
use crate::wire::{GenerateContentResponse, UsageMetadata};

/// The state of one stream's translation.
#[derive(Debug)]
pub struct StreamTranslator {
    writer: ChunkWriter,
    /// Seeds the tool call ids (the `responseId`, once seen).
    seed: Option<String>,
    /// Tool calls written so far (OpenAI's `index` of the next one).
    calls: u32,
    /// `finishReason` of candidate 0, once seen.
    finish: Option<String>,
    /// A finish message that came with it.
    finish_message: Option<String>,
    /// The prompt was blocked.
    blocked: bool,
    /// The latest `usageMetadata`.
    usage: Option<UsageMetadata>,
}

impl StreamTranslator {
    /// A translator whose chunks carry `created` and, until Gemini names its version, `model`.
    pub(crate) fn new(model: &str, created: u64) -> StreamTranslator {
        StreamTranslator {
            writer: ChunkWriter::new(crate::response::chat_id(None), created, model),
            seed: None,
            calls: 0,
            finish: None,
            finish_message: None,
            blocked: false,
            usage: None,
        }
    }

    /// Translates one event's `data` into chunks appended to `out`.
    ///
    /// # Errors
    ///
    /// An in-band error from Gemini (with its status), data that is not a Gemini chunk, or a
    /// finish reason that means the answer failed.
    pub(crate) fn event(
        &mut self,
        data: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), ProviderError> {
        if data.trim_ascii().is_empty() || data == b"[DONE]" {
            return Ok(());
        }
        let chunk: GenerateContentResponse = serde_json::from_slice(data).map_err(|e| {
            ProviderError::StreamBroken(format!(
                "Gemini sent a stream event that is not a response chunk: {e}"
            ))
        })?;
        if let Some(error) = chunk.error {
            let status = error
                .code
                .filter(|c| (400..=599).contains(c))
                .unwrap_or(500);
            return Err(from_detail(status, error));
        }
        if self.seed.is_none() {
            if let Some(id) = chunk.response_id.as_deref().filter(|id| !id.is_empty()) {
                self.writer.set_id(format!("chatcmpl-{id}"));
            }
            self.seed = Some(id_seed(chunk.response_id.as_deref()));
        }
        if let Some(version) = &chunk.model_version {
            self.writer.set_model(version.clone());
        }
        if chunk.usage_metadata.is_some() {
            self.usage = chunk.usage_metadata;
        }
        let blocked = chunk
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if blocked && chunk.candidates.is_empty() {
            // A blocked prompt: the role chunk now, `content_filter` at the end.
            self.blocked = true;
            self.writer.start(out);
        }
        let seed = self.seed.clone().unwrap_or_default();
        // `n > 1` is refused for streams, so only the first candidate is expected.
        for candidate in chunk
            .candidates
            .iter()
            .filter(|c| c.index.unwrap_or(0) == 0)
        {
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                if let Some(call) = &part.function_call {
                    let args = arguments(call);
                    let id = tool_call_id(
                        &seed,
                        self.calls,
                        &call.name,
                        &args,
                        part.thought_signature.as_deref(),
                    );
                    self.writer
                        .tool_call_start(self.calls, &id, &call.name, out);
                    self.writer.tool_call_arguments(self.calls, &args, out);
                    self.calls += 1;
                } else if let Some(text) = &part.text {
                    if part.thought {
                        self.writer.reasoning(text, out);
                    } else {
                        self.writer.content(text, out);
                    }
                }
            }
            if let Some(reason) = &candidate.finish_reason {
                // Fail now rather than at the end, when the reason says the answer failed.
                finish_reason(
                    Some(reason),
                    self.calls > 0,
                    candidate.finish_message.as_deref(),
                )?;
                self.finish = Some(reason.clone());
                self.finish_message.clone_from(&candidate.finish_message);
            }
        }
        Ok(())
    }

    /// Ends the stream at the end of the input: the finish chunk, usage and `[DONE]`.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] when Gemini never said why it stopped: the connection
    /// closed before the last chunk.
    pub(crate) fn end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        let reason = if self.blocked && self.finish.is_none() {
            finish::CONTENT_FILTER
        } else if let Some(reason) = &self.finish {
            finish_reason(Some(reason), self.calls > 0, self.finish_message.as_deref())?
        } else {
            return Err(ProviderError::StreamBroken(
                "the Gemini stream ended before its last chunk (no finishReason); the answer is incomplete".to_owned(),
            ));
        };
        self.writer.finish(reason, out);
        self.writer.done(
            Some(self.usage.as_ref().map(usage).unwrap_or_default()),
            out,
        );
        Ok(())
    }
}

impl Translate for StreamTranslator {
    type Input = SseEvent;

    fn on_input(&mut self, event: SseEvent, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.event(&event.data, out)
    }

    fn on_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.end(out)
    }

    fn is_done(&self) -> bool {
        self.writer.is_done()
    }
}
