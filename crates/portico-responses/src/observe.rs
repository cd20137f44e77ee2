//! Reads a Responses event stream as it passes, whoever wrote it (an OpenAI upstream, or
//! [`crate::ResponsesStreamWriter`]): the usage and the final Response object from its
//! terminal event, and an upstream's own in-band error.

use portico_core::Usage;
use portico_providers::SseEvent;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The terminal events, which carry the whole response.
const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// What a Responses stream said about itself (see the module docs).
#[derive(Debug, Default)]
pub struct ResponsesObserver {
    response: Option<Box<RawValue>>,
    usage: Option<Usage>,
    error: Option<(String, String)>,
}

/// A terminal event: the response, kept as its text.
#[derive(Deserialize)]
struct Terminal {
    response: Box<RawValue>,
}

/// The parts of a Response object the gateway reads.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// The event's type: its SSE name, else the `type` its data names (some servers send data
/// lines only).
fn kind_of(event: &SseEvent) -> Option<String> {
    if let Some(name) = &event.event {
        return Some(name.clone());
    }
    // Only the few events that matter are parsed; the common delta skips this.
    let data = &event.data[..];
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if !(has(b"\"response.completed\"")
        || has(b"\"response.incomplete\"")
        || has(b"\"response.failed\"")
        || has(b"\"error\""))
    {
        return None;
    }
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Kind>(data).ok().map(|k| k.kind)
}

impl ResponsesObserver {
    /// An observer that has seen nothing.
    pub fn new() -> ResponsesObserver {
        ResponsesObserver::default()
    }

    /// Reads `event`.
    pub fn observe(&mut self, event: &SseEvent) {
        let Some(kind) = kind_of(event) else {
            return;
        };
        if TERMINAL.contains(&kind.as_str()) {
            let Ok(terminal) = serde_json::from_slice::<Terminal>(&event.data) else {
                return;
            };
            let Ok(head) = serde_json::from_str::<Head>(terminal.response.get()) else {
                return;
            };
            self.usage = head.usage.as_ref().and_then(usage_of_block);
            if kind == "response.failed" {
                let text = |field: &str| {
                    head.error
                        .as_ref()
                        .and_then(|e| e.get(field))
                        .and_then(Value::as_str)
                        .unwrap_or("response.failed")
                        .to_owned()
                };
                self.error = Some((text("code"), text("message")));
            } else {
                self.response = Some(terminal.response);
            }
        } else if kind == "error" {
            let Ok(value) = serde_json::from_slice::<Value>(&event.data) else {
                return;
            };
            let text = |field: &str| {
                value
                    .get(field)
                    .or_else(|| value.get("error").and_then(|e| e.get(field)))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            self.error = Some((text("code"), text("message")));
        }
    }

    /// The usage the terminal event reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// An upstream's in-band error: (code, message).
    pub fn error(&self) -> Option<&(String, String)> {
        self.error.as_ref()
    }

    /// The final Response object (as its JSON text), once a terminal event other than
    /// `response.failed` has passed.
    pub fn take_response(&mut self) -> Option<Box<RawValue>> {
        self.response.take()
    }
}

/// A Response object's usage in OpenAI's chat meaning.
pub fn usage_of(response: &Value) -> Option<Usage> {
    usage_of_block(response.get("usage")?)
}

/// A Responses `usage` block in OpenAI's chat meaning.
fn usage_of_block(usage: &Value) -> Option<Usage> {
    let usage = Some(usage).filter(|u| u.is_object())?;
    let count = |path: &str| usage.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: count("/input_tokens"),
        completion_tokens: count("/output_tokens"),
        cached_tokens: count("/input_tokens_details/cached_tokens"),
        cache_write_tokens: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_usage_and_the_response_from_the_terminal_event() {
        let mut o = ResponsesObserver::new();
        o.observe(&SseEvent::named(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "delta": "x"}).to_string(),
        ));
        assert!(o.usage().is_none());
        // Data-only, as some servers send it.
        o.observe(&SseEvent::data(
            json!({"type": "response.completed", "response": {"id": "resp_1", "output": [],
                "usage": {"input_tokens": 9, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 3}}}})
            .to_string(),
        ));
        let usage = o.usage().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (9, 4, 3)
        );
        let kept: Value = serde_json::from_str(o.take_response().unwrap().get()).unwrap();
        assert_eq!(kept["id"], "resp_1");
        assert!(o.error().is_none());
    }

    #[test]
    fn reads_an_upstreams_error() {
        let mut o = ResponsesObserver::new();
        o.observe(&SseEvent::named(
            "error",
            json!({"type": "error", "code": "server_error", "message": "boom"}).to_string(),
        ));
        assert_eq!(
            o.error().unwrap(),
            &("server_error".to_owned(), "boom".to_owned())
        );
        let mut failed = ResponsesObserver::new();
        failed.observe(&SseEvent::named(
            "response.failed",
            json!({"type": "response.failed", "response": {"id": "r", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}}).to_string(),
        ));
        assert_eq!(failed.error().unwrap().0, "rate_limit_exceeded");
        assert!(failed.take_response().is_none());
    }
}
