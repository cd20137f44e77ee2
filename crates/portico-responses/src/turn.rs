//! One turn of a Responses conversation: the ids it answers with, what its Response object
//! echoes from the request, and what a stored response hands on to the next turn.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::request::ResponsesRequest;

/// What a response answers with besides its output: its id, its time, and the request's
/// settings echoed as OpenAI echoes them (with OpenAI's defaults where the request was
/// silent).
#[derive(Debug, Clone)]
pub struct Turn {
    /// `resp_` and 32 hex digits.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    echo: Map<String, Value>,
}

impl Turn {
    /// The turn answering `req`, now.
    pub fn new(req: &ResponsesRequest) -> Turn {
        let mut echo = Map::new();
        let or = |v: Option<Value>, default: Value| v.unwrap_or(default);
        echo.insert(
            "instructions".into(),
            or(req.instructions.clone().map(Value::String), Value::Null),
        );
        echo.insert(
            "max_output_tokens".into(),
            or(req.max_output_tokens.map(Value::from), Value::Null),
        );
        echo.insert(
            "parallel_tool_calls".into(),
            Value::Bool(req.parallel_tool_calls.unwrap_or(true)),
        );
        echo.insert(
            "previous_response_id".into(),
            or(
                req.previous_response_id.clone().map(Value::String),
                Value::Null,
            ),
        );
        echo.insert(
            "reasoning".into(),
            or(
                req.reasoning.clone(),
                json!({"effort": null, "summary": null}),
            ),
        );
        echo.insert("store".into(), Value::Bool(req.store.unwrap_or(true)));
        echo.insert(
            "temperature".into(),
            or(req.temperature.map(Value::from), json!(1.0)),
        );
        echo.insert(
            "text".into(),
            or(req.text.clone(), json!({"format": {"type": "text"}})),
        );
        echo.insert(
            "tool_choice".into(),
            or(req.tool_choice.clone(), json!("auto")),
        );
        echo.insert(
            "tools".into(),
            or(req.tools.clone().map(Value::Array), json!([])),
        );
        echo.insert("top_p".into(), or(req.top_p.map(Value::from), json!(1.0)));
        echo.insert(
            "truncation".into(),
            or(req.truncation.clone().map(Value::String), json!("disabled")),
        );
        echo.insert(
            "user".into(),
            or(req.user.clone().map(Value::String), Value::Null),
        );
        echo.insert("metadata".into(), or(req.metadata.clone(), json!({})));
        Turn {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            created_at: portico_providers::chat::created_now(),
            echo,
        }
    }

    /// The id of this response's `n`th output item, with OpenAI's prefix for its type
    /// (`msg`, `fc`, `rs`).
    pub fn item_id(&self, prefix: &str, n: usize) -> String {
        let own = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{own}{n:03}")
    }

    /// The Response object: `status` `in_progress`, `completed` or `incomplete` (with
    /// `incomplete` naming why), its output items and usage.
    pub fn response(
        &self,
        model: &str,
        status: &str,
        output: Vec<Value>,
        usage: Option<Value>,
        incomplete: Option<&str>,
    ) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), Value::String(self.id.clone()));
        object.insert("object".into(), json!("response"));
        object.insert("created_at".into(), json!(self.created_at));
        object.insert("status".into(), json!(status));
        object.insert("error".into(), Value::Null);
        object.insert(
            "incomplete_details".into(),
            incomplete.map_or(Value::Null, |reason| json!({"reason": reason})),
        );
        object.insert("model".into(), json!(model));
        object.insert("output".into(), Value::Array(output));
        for (k, v) in &self.echo {
            object.insert(k.clone(), v.clone());
        }
        object.insert("usage".into(), usage.unwrap_or(Value::Null));
        Value::Object(object)
    }
}

/// The Responses API's usage block, from OpenAI chat counts (`input_tokens` includes the
/// cached ones, as in chat completions).
pub fn usage_json(input: u64, output: u64, cached: u64, reasoning: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output,
    })
}

/// A response the gateway keeps, so that `previous_response_id` continues its conversation
/// on any provider, and `GET`/`DELETE /v1/responses/{id}` find it.
///
/// The input and the response are kept as the JSON text they were sent in: they are read only
/// when a later request continues the conversation, and text is cheap to keep, write and drop
/// (a tree of values per response made dropping evicted ones a fifth of a request's CPU).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The response's id.
    pub id: String,
    /// Who may read, continue or delete it: the gateway key's name (and the user, for a
    /// user's key or token), so one caller cannot read another's conversation.
    pub owner: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The response it continued.
    pub previous_response_id: Option<String>,
    /// This turn's own input items (not those of the responses before it): a JSON array.
    pub input: Box<RawValue>,
    /// The Response object as the client received it.
    pub response: Box<RawValue>,
    /// The provider slug whose upstream keeps this response itself (an OpenAI provider it
    /// was passed through to with `store` on): a continuation routed there again can send
    /// `previous_response_id` as it is.
    pub upstream: Option<String>,
}

impl AsRef<StoredResponse> for StoredResponse {
    fn as_ref(&self) -> &StoredResponse {
        self
    }
}

impl StoredResponse {
    /// This turn's input items.
    pub fn input_items(&self) -> Vec<Value> {
        serde_json::from_str(self.input.get()).unwrap_or_default()
    }

    /// The output items of the stored response.
    pub fn output(&self) -> Vec<Value> {
        #[derive(Deserialize)]
        struct Output {
            #[serde(default)]
            output: Vec<Value>,
        }
        serde_json::from_str::<Output>(self.response.get())
            .map(|o| o.output)
            .unwrap_or_default()
    }
}

/// The items that continue a conversation: for each stored response, oldest first, its
/// input and then its output. Item ids and statuses are left out and reasoning items
/// dropped: they belong to the upstream that made them, and the next turn may go to
/// another.
pub fn conversation_of<R: AsRef<StoredResponse>>(chain: &[R]) -> Vec<Value> {
    let mut items = Vec::new();
    for stored in chain.iter().map(AsRef::as_ref) {
        for mut item in stored.input_items().into_iter().chain(stored.output()) {
            if item.get("type").and_then(Value::as_str) == Some("reasoning") {
                continue;
            }
            if let Some(object) = item.as_object_mut() {
                object.remove("id");
                object.remove("status");
            }
            items.push(item);
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, input: Value, output: Value) -> StoredResponse {
        let raw = |v: Value| serde_json::value::to_raw_value(&v).unwrap();
        StoredResponse {
            id: id.into(),
            owner: "k".into(),
            created_at_ms: 0,
            previous_response_id: None,
            input: raw(input),
            response: raw(json!({"id": id, "output": output})),
            upstream: None,
        }
    }

    #[test]
    fn the_conversation_is_each_turns_input_then_output_without_ids() {
        let first = stored(
            "resp_1",
            json!([{"type": "message", "role": "user", "content": "hi"}]),
            json!([
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "hello", "annotations": []}]}
            ]),
        );
        let second = stored(
            "resp_2",
            json!([{"role": "user", "content": "and?"}]),
            json!([{"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": "{}"}]),
        );
        let items = conversation_of(&[first, second]);
        assert_eq!(items.len(), 4);
        assert_eq!(items[0]["content"], "hi");
        assert_eq!(items[1]["content"][0]["text"], "hello");
        assert!(items[1].get("id").is_none() && items[1].get("status").is_none());
        assert_eq!(items[2]["content"], "and?");
        assert_eq!(items[3]["call_id"], "c1");
        assert!(items[3].get("id").is_none());
    }

    #[test]
    fn a_turn_echoes_the_request_with_openais_defaults() {
        let req: ResponsesRequest = serde_json::from_value(json!({
            "model": "m", "input": "x", "instructions": "be brief", "store": false,
            "max_output_tokens": 50
        }))
        .unwrap();
        let turn = Turn::new(&req);
        assert!(turn.id.starts_with("resp_") && turn.id.len() == 37);
        let r = turn.response("m", "completed", vec![], None, None);
        assert_eq!(r["object"], "response");
        assert_eq!(r["instructions"], "be brief");
        assert_eq!(r["store"], false);
        assert_eq!(r["max_output_tokens"], 50);
        assert_eq!(r["tool_choice"], "auto");
        assert_eq!(r["text"]["format"]["type"], "text");
        assert_eq!(r["incomplete_details"], Value::Null);
        let cut = turn.response("m", "incomplete", vec![], None, Some("max_output_tokens"));
        assert_eq!(cut["incomplete_details"]["reason"], "max_output_tokens");
        assert_ne!(turn.item_id("msg", 0), turn.item_id("msg", 1));
        assert!(turn.item_id("fc", 2).starts_with("fc_"));
    }
}
