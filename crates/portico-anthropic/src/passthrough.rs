//! Native Messages answers passed through untouched: reading their usage, and making sure a
//! truncated stream is reported rather than silently cut short.

use futures::{Stream, StreamExt, stream};
use portico_core::Usage;
use portico_providers::{EventStream, ProviderError, SseEvent};
use serde::Deserialize;

use crate::wire::{ErrorBody, StreamEvent, WireUsage};

/// The usage of a whole Messages answer, in OpenAI's meaning (`None` when it has none).
///
/// # Errors
///
/// [`ProviderError::Malformed`] when the body is not a JSON object.
pub fn read_usage(body: &[u8]) -> Result<Option<Usage>, ProviderError> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<WireUsage>,
    }
    let parsed: WithUsage = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Malformed(format!("the answer is not a JSON object: {e}")))?;
    Ok(parsed.usage.map(|u| crate::response::usage(&u).to_usage()))
}

/// Passes Anthropic stream events on as they are, ending with
/// [`ProviderError::StreamBroken`] when the input stops before `message_stop` (an in-band
/// `error` event is passed on and ends the stream: it already tells the client).
pub fn checked_events<S>(events: S) -> EventStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    Box::pin(stream::unfold(
        (Box::pin(events), false),
        |(mut events, ended)| async move {
            if ended {
                return None;
            }
            match events.next().await {
                Some(Ok(event)) => {
                    let last = is_last(&event);
                    Some((Ok(event), (events, last)))
                }
                Some(Err(err)) => Some((Err(err), (events, true))),
                None => Some((
                    Err(ProviderError::StreamBroken(
                        "the Anthropic stream ended before `message_stop`; the answer is incomplete"
                            .to_owned(),
                    )),
                    (events, true),
                )),
            }
        },
    ))
}

/// Whether an event ends an Anthropic stream: `message_stop`, or an `error`. Anthropic
/// names every event; an unnamed one is recognised by its data.
fn is_last(event: &SseEvent) -> bool {
    match event.event.as_deref() {
        Some(name) => matches!(name, "message_stop" | "error"),
        None => matches!(
            serde_json::from_slice::<StreamEvent>(&event.data),
            Ok(StreamEvent::MessageStop | StreamEvent::Error { .. })
        ),
    }
}

/// Reads the usage and any in-band error from Anthropic stream events as they pass, without
/// changing them: for the request log of a `/v1/messages` stream.
#[derive(Debug, Default)]
pub struct EventObserver {
    usage: WireUsage,
    seen: bool,
    error: Option<ErrorBody>,
}

impl EventObserver {
    /// An observer that has seen nothing.
    pub fn new() -> EventObserver {
        EventObserver::default()
    }

    /// Looks at one event. Only `message_start`, `message_delta` and `error` are parsed;
    /// content deltas, the bulk of a stream, are not.
    pub fn observe(&mut self, event: &SseEvent) {
        match event.event.as_deref() {
            Some("message_start" | "message_delta" | "error") | None => {}
            Some(_) => return,
        }
        let Ok(parsed) = serde_json::from_slice::<StreamEvent>(&event.data) else {
            return;
        };
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.usage = message.usage;
                self.seen = true;
            }
            StreamEvent::MessageDelta {
                usage: Some(usage), ..
            } => {
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
                self.seen = true;
            }
            StreamEvent::Error { error } => self.error = Some(error),
            _ => {}
        }
    }

    /// The usage seen so far, in OpenAI's meaning.
    pub fn usage(&self) -> Option<Usage> {
        self.seen
            .then(|| crate::response::usage(&self.usage).to_usage())
    }

    /// The in-band error event, if one passed.
    pub fn error(&self) -> Option<&ErrorBody> {
        self.error.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    fn named(name: &str, data: &str) -> SseEvent {
        SseEvent::named(name, data.to_owned())
    }

    #[test]
    fn usage_is_read_from_start_and_delta() {
        let mut obs = EventObserver::new();
        assert_eq!(obs.usage(), None);
        obs.observe(&named(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":100,"cache_creation_input_tokens":5}}}"#,
        ));
        obs.observe(&named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"usage"}}"#,
        ));
        obs.observe(&named(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        ));
        let usage = obs.usage().unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (115, 42, 100)
        );
        obs.observe(&named(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ));
        assert_eq!(obs.error().unwrap().kind, "overloaded_error");
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_broken() {
        let events = vec![
            Ok(named("message_start", "{}")),
            Ok(named("ping", r#"{"type":"ping"}"#)),
        ];
        let out: Vec<_> = block_on(checked_events(stream::iter(events)).collect());
        assert_eq!(out.len(), 3);
        assert!(matches!(&out[2], Err(ProviderError::StreamBroken(_))));
        let complete = vec![
            Ok(named("message_stop", r#"{"type":"message_stop"}"#)),
            Ok(named("ping", r#"{"type":"ping"}"#)),
        ];
        let out: Vec<_> = block_on(checked_events(stream::iter(complete)).collect());
        assert_eq!(out.len(), 1, "nothing is read after message_stop");
        assert!(read_usage(b"not json").is_err());
        assert_eq!(read_usage(b"{}").unwrap(), None);
    }
}
