//! The shape a request may have (how deep its JSON nests, how many messages and tools it
//! carries) and how many streams may be open at once: the gateway's protective limits on a
//! request's body, checked after it is read and before anything else reads it.
//!
//! The shape checks walk the body's bytes without parsing them (`portico_core::json_shape`):
//! the depth over the whole body, the counts over the `messages`, `input` and `tools` values
//! the top-level index already located. A streamed request takes a slot ([`StreamSlot`]) that
//! its stream holds until it ends or its client leaves; past `--max-streams` it is refused
//! with 503 `overloaded` before any upstream is called.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portico_core::json_shape::{array_len, nesting_depth, nests_deeper_than};
use portico_core::{ApiError, Endpoint, ErrorCode, JsonBody, ServerLimit, ServerLimitObserver};

use crate::pipeline::Family;

/// Default [`RequestLimits::max_json_depth`]: deeper than any tool schema in use (each schema
/// level is two JSON levels), and below the 128 levels past which `serde_json`, which the
/// translating adapters parse bodies with, gives up.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 100;
/// Default [`RequestLimits::max_messages`]: a long coding-agent session sends a few thousand
/// messages at most before its context window is full; OpenAI sets no limit of its own.
pub const DEFAULT_MAX_MESSAGES: usize = 10_000;
/// Default [`RequestLimits::max_tools`]: four times OpenAI's own limit (128), so that a
/// gateway never refuses what a provider would take (Anthropic and Gemini take more tools
/// than OpenAI).
pub const DEFAULT_MAX_TOOLS: usize = 512;
/// Default [`RequestLimits::max_streams`]: the default `--max-in-flight`, so that by default
/// streams are bounded by that limit alone.
pub const DEFAULT_MAX_STREAMS: usize = 4096;

/// Seconds a client refused for the stream limit is told to wait (`Retry-After`).
const RETRY_AFTER_SECS: u32 = 1;

/// What a request's body may look like, and how many streams may be open.
#[derive(Clone)]
pub struct RequestLimits {
    /// Deepest nesting of arrays and objects in a JSON body, the top-level object counting 1
    /// (`--max-json-depth`).
    pub max_json_depth: usize,
    /// Most `messages` (chat completions, Anthropic Messages) or `input` items (Responses)
    /// of one request (`--max-messages`).
    pub max_messages: usize,
    /// Most `tools` of one request (`--max-tools`).
    pub max_tools: usize,
    /// Most streamed answers open at once (`--max-streams`).
    pub max_streams: usize,
    /// Where refusals are counted (the metrics); `None`: nowhere.
    pub observer: Option<Arc<dyn ServerLimitObserver>>,
    /// Streams open now.
    open_streams: Arc<AtomicUsize>,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits::new(
            DEFAULT_MAX_JSON_DEPTH,
            DEFAULT_MAX_MESSAGES,
            DEFAULT_MAX_TOOLS,
            DEFAULT_MAX_STREAMS,
        )
    }
}

impl std::fmt::Debug for RequestLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimits")
            .field("max_json_depth", &self.max_json_depth)
            .field("max_messages", &self.max_messages)
            .field("max_tools", &self.max_tools)
            .field("max_streams", &self.max_streams)
            .field("open_streams", &self.open_streams())
            .finish_non_exhaustive()
    }
}

/// One open stream's place under `--max-streams`, given back when dropped.
#[derive(Debug)]
pub(crate) struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestLimits {
    /// These limits, with no stream open and no observer.
    pub fn new(
        max_json_depth: usize,
        max_messages: usize,
        max_tools: usize,
        max_streams: usize,
    ) -> RequestLimits {
        RequestLimits {
            max_json_depth,
            max_messages,
            max_tools,
            max_streams,
            observer: None,
            open_streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same limits reporting refusals to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ServerLimitObserver>) -> RequestLimits {
        self.observer = Some(observer);
        self
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::Acquire)
    }

    fn refused(&self, limit: ServerLimit, error: ApiError) -> ApiError {
        if let Some(observer) = &self.observer {
            observer.hit(limit);
        }
        error
    }

    /// Refuses a JSON body nested deeper than the limit, before it is parsed.
    pub(crate) fn check_depth(&self, raw: &[u8]) -> Result<(), ApiError> {
        if !nests_deeper_than(raw, self.max_json_depth) {
            return Ok(());
        }
        // Refused: measure the whole depth for the message (this walk is the refusal's only).
        let depth = nesting_depth(raw);
        Err(self.refused(
            ServerLimit::MaxJsonDepth,
            ApiError::new(
                ErrorCode::JsonTooDeep,
                format!(
                    "the request body nests arrays and objects {depth} levels deep; the gateway accepts at most {} (--max-json-depth / PORTICO_MAX_JSON_DEPTH)",
                    self.max_json_depth
                ),
            ),
        ))
    }

    /// Refuses a body with more messages (or Responses input items) or tools than the
    /// limits. Only the arrays are walked, from where the top-level index found them.
    pub(crate) fn check_counts(&self, family: Family, body: &JsonBody) -> Result<(), ApiError> {
        let conversation = match family {
            Family::OpenAi(Endpoint::Responses) => "input",
            _ => "messages",
        };
        self.check_count(
            body,
            conversation,
            self.max_messages,
            ServerLimit::MaxMessages,
            "--max-messages / PORTICO_MAX_MESSAGES",
        )?;
        self.check_count(
            body,
            "tools",
            self.max_tools,
            ServerLimit::MaxTools,
            "--max-tools / PORTICO_MAX_TOOLS",
        )
    }

    fn check_count(
        &self,
        body: &JsonBody,
        field: &'static str,
        max: usize,
        limit: ServerLimit,
        flag: &str,
    ) -> Result<(), ApiError> {
        let Some(count) = body
            .get_raw(field)
            .and_then(|raw| array_len(raw.as_bytes()))
        else {
            return Ok(());
        };
        if count <= max {
            return Ok(());
        }
        Err(self.refused(
            limit,
            ApiError::new(
                ErrorCode::ArrayTooLong,
                format!("`{field}` has {count} items; the gateway accepts at most {max} ({flag})"),
            )
            .with_param(field),
        ))
    }

    /// A slot for one more stream, or the 503 that refuses it.
    pub(crate) fn open_stream(&self) -> Result<StreamSlot, ApiError> {
        let before = self.open_streams.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot(Arc::clone(&self.open_streams));
        if before < self.max_streams {
            return Ok(slot);
        }
        drop(slot);
        let mut error = ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "the gateway is at its limit of {} open streams; retry after {RETRY_AFTER_SECS} s, send the request without `stream`, or raise the limit with --max-streams (PORTICO_MAX_STREAMS)",
                self.max_streams
            ),
        );
        error.retry_after = Some(RETRY_AFTER_SECS);
        Err(self.refused(ServerLimit::MaxStreams, error))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn body(text: &str) -> JsonBody {
        JsonBody::parse(Bytes::from(text.to_owned())).unwrap()
    }

    #[test]
    fn refuses_a_body_deeper_than_the_limit_naming_both() {
        let limits = RequestLimits::new(3, 10, 10, 10);
        assert!(limits.check_depth(br#"{"a":[{"b":"[[[[[["}]}"#).is_ok());
        let err = limits.check_depth(br#"{"a":[{"b":[]}]}"#).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.code_string(), "json_too_deep");
        assert!(err.message.contains("4 levels deep"), "{}", err.message);
        assert!(err.message.contains("at most 3"), "{}", err.message);
        assert!(err.message.contains("--max-json-depth"), "{}", err.message);
    }

    #[test]
    fn counts_messages_input_and_tools_by_family() {
        let limits = RequestLimits::new(100, 2, 1, 10);
        let chat = Family::OpenAi(Endpoint::ChatCompletions);
        let ok = body(r#"{"messages":[{"role":"user"},{"role":"assistant"}],"tools":[{}]}"#);
        assert!(limits.check_counts(chat, &ok).is_ok());
        let err = limits
            .check_counts(chat, &body(r#"{"messages":[1,2,3]}"#))
            .unwrap_err();
        assert_eq!(err.code_string(), "array_above_max_length");
        assert_eq!(err.param.as_deref(), Some("messages"));
        assert!(err.message.contains("has 3 items"), "{}", err.message);
        assert!(err.message.contains("at most 2"), "{}", err.message);
        let err = limits
            .check_counts(Family::Messages, &body(r#"{"tools":[{},{}]}"#))
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("tools"));
        let responses = Family::OpenAi(Endpoint::Responses);
        let err = limits
            .check_counts(responses, &body(r#"{"input":[1,2,3]}"#))
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("input"));
        // A string input, or an embeddings batch, is not a conversation.
        assert!(
            limits
                .check_counts(responses, &body(r#"{"input":"hi"}"#))
                .is_ok()
        );
        let embeddings = Family::OpenAi(Endpoint::Embeddings);
        assert!(
            limits
                .check_counts(embeddings, &body(r#"{"input":[1,2,3]}"#))
                .is_ok()
        );
    }

    #[test]
    fn stream_slots_are_given_back_when_dropped() {
        let limits = RequestLimits::new(100, 10, 10, 2);
        let a = limits.open_stream().unwrap();
        let _b = limits.open_stream().unwrap();
        let err = limits.open_stream().unwrap_err();
        assert_eq!(err.status, 503);
        assert_eq!(err.retry_after, Some(1));
        assert!(err.message.contains("--max-streams"), "{}", err.message);
        assert_eq!(limits.open_streams(), 2, "a refusal holds no slot");
        drop(a);
        assert_eq!(limits.open_streams(), 1);
        assert!(limits.open_stream().is_ok());
    }
}
