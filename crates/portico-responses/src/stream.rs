//! Chat-completions chunk stream → the Responses API's typed events, for a streamed
//! Responses request a provider answered in chat completions.
//!
//! [`ResponsesStreamWriter`] writes OpenAI's order: `response.created` and
//! `response.in_progress` on the first chunk; then each output item in turn, one open at a
//! time — reasoning (`response.reasoning_summary_*`), a message (`response.content_part.added`,
//! `response.output_text.delta`…, `response.output_text.done`, `response.content_part.done`),
//! each function call (`response.function_call_arguments.delta`…, `…done`), each between
//! `response.output_item.added` and `response.output_item.done`; and last
//! `response.completed` (or `response.incomplete` when the token limit cut the answer) with
//! the whole response and its usage (the gateway always asks upstream for the usage chunk).
//! Every event is named by its type and carries a `sequence_number`. An in-band upstream
//! error, or a stream that ends before saying why it stopped, is
//! [`ProviderError::StreamBroken`], which the gateway ends the stream with as an `error` event.

use std::collections::HashMap;

use portico_providers::chat::{Delta, LenientChunk};
use portico_providers::dialect::{self, Translate};
use portico_providers::{EventStream, ProviderError, SseEvent};
use serde_json::{Value, json};

use crate::response::{message_item, reasoning_item, status_of, text_part};
use crate::turn::{Turn, usage_json};

/// The output item being written: its index in `output` and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning(usize),
    Message(usize),
    Call(usize),
}

/// The chat → Responses stream state machine (see the module docs).
#[derive(Debug)]
pub struct ResponsesStreamWriter {
    turn: Turn,
    model: String,
    sequence: u64,
    started: bool,
    /// The output items so far, each as the final Response object will hold it.
    output: Vec<Value>,
    open: Option<Open>,
    /// Chat tool-call index → output index.
    calls: HashMap<u32, usize>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl ResponsesStreamWriter {
    /// A writer answering `turn` with `model` (replaced by the model the first chunk names).
    pub fn new(turn: Turn, model: &str) -> ResponsesStreamWriter {
        ResponsesStreamWriter {
            turn,
            model: model.to_owned(),
            sequence: 0,
            started: false,
            output: Vec::new(),
            open: None,
            calls: HashMap::new(),
            finish_reason: None,
            usage: None,
            done: false,
        }
    }

    /// Whether the final event has been written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn emit(&mut self, kind: &str, mut body: Value, out: &mut Vec<SseEvent>) {
        if let Some(object) = body.as_object_mut() {
            object.insert("type".into(), json!(kind));
            object.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        // Serialising a `Value` cannot fail; an empty object is the harmless fallback.
        out.push(SseEvent::named(
            kind,
            serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec()),
        ));
    }

    /// Translates one chat event, appending Responses events to `out`.
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
            return self.finish(out);
        }
        let chunk = LenientChunk::parse(&ev.data)?;
        self.start(chunk.model.as_deref(), out);
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
            self.usage = Some(usage_json(
                count("/prompt_tokens"),
                count("/completion_tokens"),
                count("/prompt_tokens_details/cached_tokens"),
                count("/completion_tokens_details/reasoning_tokens"),
            ));
        }
        Ok(())
    }

    /// The input has ended (or said `[DONE]`). A stream that said why it stopped is closed
    /// normally; one that did not is broken.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] when the stream stopped before a finish reason.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if self.finish_reason.is_none() {
            return Err(ProviderError::StreamBroken(
                "the upstream stream ended before the answer was complete".to_owned(),
            ));
        }
        self.start(None, out);
        self.close(out);
        self.done = true;
        let (status, incomplete) = status_of(self.finish_reason.as_deref());
        let response = self.turn.response(
            &self.model,
            status,
            self.output.clone(),
            self.usage.clone(),
            incomplete,
        );
        let kind = if incomplete.is_some() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(kind, json!({"response": response}), out);
        Ok(())
    }

    fn start(&mut self, model: Option<&str>, out: &mut Vec<SseEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(model) = model.filter(|m| !m.is_empty()) {
            self.model = model.to_owned();
        }
        let response = self
            .turn
            .response(&self.model, "in_progress", Vec::new(), None, None);
        self.emit(
            "response.created",
            json!({"response": response.clone()}),
            out,
        );
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    fn delta(&mut self, delta: Delta, out: &mut Vec<SseEvent>) {
        if let Some(reasoning) = delta.reasoning_content.filter(|r| !r.is_empty()) {
            let index = self.open_reasoning(out);
            self.append(index, "/summary/0/text", &reasoning);
            let id = self.id_of(index);
            self.emit(
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": reasoning}),
                out,
            );
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            let index = self.open_message(out);
            self.append(index, "/content/0/text", &text);
            let id = self.id_of(index);
            self.emit(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                out,
            );
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let index = match self.calls.get(&call.index) {
                Some(index) => *index,
                None => {
                    self.close(out);
                    let index = self.output.len();
                    let item = json!({
                        "type": "function_call",
                        "id": self.turn.item_id("fc", index),
                        "call_id": call.id.clone().unwrap_or_else(|| format!("call_portico_{}", call.index)),
                        "name": call.function.name.clone().unwrap_or_default(),
                        "arguments": "",
                        "status": "in_progress",
                    });
                    self.output.push(item.clone());
                    self.calls.insert(call.index, index);
                    self.open = Some(Open::Call(index));
                    self.emit(
                        "response.output_item.added",
                        json!({"output_index": index, "item": item}),
                        out,
                    );
                    index
                }
            };
            if let Some(fragment) = call.function.arguments.filter(|a| !a.is_empty()) {
                self.append(index, "/arguments", &fragment);
                let id = self.id_of(index);
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": index, "delta": fragment}),
                    out,
                );
            }
        }
    }

    fn id_of(&self, index: usize) -> String {
        self.output[index]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Appends `text` to the string at `pointer` in output item `index`.
    fn append(&mut self, index: usize, pointer: &str, text: &str) {
        if let Some(Value::String(s)) = self
            .output
            .get_mut(index)
            .and_then(|i| i.pointer_mut(pointer))
        {
            s.push_str(text);
        }
    }

    fn open_reasoning(&mut self, out: &mut Vec<SseEvent>) -> usize {
        if let Some(Open::Reasoning(index)) = self.open {
            return index;
        }
        self.close(out);
        let index = self.output.len();
        let mut item = reasoning_item(self.turn.item_id("rs", index), "");
        self.output.push(item.clone());
        item["summary"] = json!([]);
        self.open = Some(Open::Reasoning(index));
        let id = self.id_of(index);
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
            out,
        );
        self.emit(
            "response.reasoning_summary_part.added",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
            out,
        );
        index
    }

    fn open_message(&mut self, out: &mut Vec<SseEvent>) -> usize {
        if let Some(Open::Message(index)) = self.open {
            return index;
        }
        self.close(out);
        let index = self.output.len();
        let id = self.turn.item_id("msg", index);
        self.output
            .push(message_item(id.clone(), vec![text_part("")], "in_progress"));
        self.open = Some(Open::Message(index));
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": message_item(id.clone(), Vec::new(), "in_progress")}),
            out,
        );
        self.emit(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part("")}),
            out,
        );
        index
    }

    /// Ends the open item with its `done` events.
    fn close(&mut self, out: &mut Vec<SseEvent>) {
        let Some(open) = self.open.take() else {
            return;
        };
        match open {
            Open::Reasoning(index) => {
                let id = self.id_of(index);
                let text = self.output[index]["summary"][0]["text"].clone();
                self.emit(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    out,
                );
                self.emit(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": text}}),
                    out,
                );
                self.item_done(index, out);
            }
            Open::Message(index) => {
                let id = self.id_of(index);
                let part = self.output[index]["content"][0].clone();
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": part["text"], "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                    out,
                );
                self.output[index]["status"] = json!("completed");
                self.item_done(index, out);
            }
            Open::Call(index) => {
                let item = &self.output[index];
                let body = json!({
                    "item_id": item["id"], "output_index": index,
                    "name": item["name"], "arguments": item["arguments"],
                });
                self.emit("response.function_call_arguments.done", body, out);
                self.output[index]["status"] = json!("completed");
                self.item_done(index, out);
            }
        }
    }

    fn item_done(&mut self, index: usize, out: &mut Vec<SseEvent>) {
        let item = self.output[index].clone();
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
    }
}

/// Translates a chat-completions event stream into Responses events answering `turn`,
/// lazily, with the translating adapters' one stream loop
/// ([`portico_providers::dialect::translate`]).
pub fn to_response_events(events: EventStream, turn: Turn, model: &str) -> EventStream {
    dialect::translate(events, ResponsesStreamWriter::new(turn, model))
}

impl Translate for ResponsesStreamWriter {
    type Input = SseEvent;

    fn on_input(&mut self, event: SseEvent, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.on_event(&event, out)
    }

    fn on_end(&mut self, out: &mut Vec<SseEvent>) -> Result<(), ProviderError> {
        self.finish(out)
    }

    fn is_done(&self) -> bool {
        ResponsesStreamWriter::is_done(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResponsesRequest;

    fn writer() -> ResponsesStreamWriter {
        let req: ResponsesRequest =
            serde_json::from_value(json!({"model": "m", "input": "x", "stream": true})).unwrap();
        ResponsesStreamWriter::new(Turn::new(&req), "m")
    }

    fn feed(w: &mut ResponsesStreamWriter, chunks: &[Value]) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for c in chunks {
            w.on_event(&SseEvent::data(c.to_string()), &mut out)
                .unwrap();
        }
        w.on_event(&SseEvent::data("[DONE]".to_owned()), &mut out)
            .unwrap();
        out.into_iter()
            .map(|e| {
                let data: Value = serde_json::from_slice(&e.data).unwrap();
                assert_eq!(e.event.as_deref(), data["type"].as_str());
                (e.event.unwrap(), data)
            })
            .collect()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "c", "model": "claude-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn text_streams_in_openais_event_order_with_usage_last() {
        let mut w = writer();
        let events = feed(
            &mut w,
            &[
                chunk(json!({"role": "assistant", "content": "Hel"}), None),
                chunk(json!({"content": "lo"}), None),
                chunk(json!({}), Some("stop")),
                json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}),
            ],
        );
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i);
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[0].1["response"]["model"], "claude-x");
        assert_eq!(events[6].1["text"], "Hello");
        let done = &events[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][0]["status"], "completed");
        assert_eq!(done["usage"]["input_tokens"], 7);
        assert_eq!(done["usage"]["output_tokens"], 2);
        assert!(w.is_done());
    }

    #[test]
    fn tool_calls_stream_as_function_call_items() {
        let mut w = writer();
        let call = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
            chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": args}}]}),
                None,
            )
        };
        let events = feed(
            &mut w,
            &[
                chunk(json!({"reasoning_content": "hmm"}), None),
                call(0, Some("call_a"), Some("weather"), ""),
                call(0, None, None, "{\"city\":"),
                call(0, None, None, "\"Oslo\"}"),
                call(1, Some("call_b"), Some("time"), "{}"),
                chunk(json!({}), Some("tool_calls")),
            ],
        );
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[2], "response.output_item.added");
        assert_eq!(names[3], "response.reasoning_summary_part.added");
        assert_eq!(names[4], "response.reasoning_summary_text.delta");
        assert!(names.contains(&"response.function_call_arguments.delta"));
        assert_eq!(
            names
                .iter()
                .filter(|n| **n == "response.function_call_arguments.done")
                .count(),
            2
        );
        let args_done = events
            .iter()
            .find(|(n, _)| n == "response.function_call_arguments.done")
            .unwrap();
        assert_eq!(args_done.1["arguments"], "{\"city\":\"Oslo\"}");
        let last = &events.last().unwrap().1["response"];
        let output = last["output"].as_array().unwrap();
        assert_eq!(output.len(), 3);
        assert_eq!(output[0]["summary"][0]["text"], "hmm");
        assert_eq!(output[1]["call_id"], "call_a");
        assert_eq!(output[1]["name"], "weather");
        assert_eq!(output[2]["call_id"], "call_b");
        assert_eq!(output[2]["status"], "completed");
    }

    #[test]
    fn a_cut_answer_is_incomplete_and_a_broken_stream_an_error() {
        let mut w = writer();
        let events = feed(&mut w, &[chunk(json!({"content": "a"}), Some("length"))]);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(
            data["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );

        let mut broken = writer();
        let mut out = Vec::new();
        broken
            .on_event(
                &SseEvent::data(chunk(json!({"content": "a"}), None).to_string()),
                &mut out,
            )
            .unwrap();
        assert!(matches!(
            broken.finish(&mut out),
            Err(ProviderError::StreamBroken(_))
        ));
        let err = broken.on_event(
            &SseEvent::data(json!({"error": {"message": "overloaded"}}).to_string()),
            &mut out,
        );
        assert!(matches!(err, Err(ProviderError::StreamBroken(m)) if m == "overloaded"));
    }
}
