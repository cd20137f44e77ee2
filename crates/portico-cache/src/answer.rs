//! [`CachedAnswer`]: what a cache hit replays, and what the request log says about it.

use bytes::Bytes;

/// One upstream answer, kept to answer the same request again.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    /// The status it was answered with (only successes are stored).
    pub status: u16,
    /// The body, whole or as a stream's events.
    pub payload: Payload,
    /// The provider slug that answered, without `@`.
    pub provider: Option<String>,
    /// The model name sent upstream.
    pub model: Option<String>,
    /// Input tokens the answer used.
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    pub completion_tokens: Option<u64>,
    /// What the answer cost, in USD: what every hit on it saves.
    pub cost_usd: Option<f64>,
    /// Unix milliseconds when it was stored: a hit needs `now - stored_at_ms` within the
    /// asking request's `max_age`.
    pub stored_at_ms: i64,
}

/// A cached answer's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A whole body, as the client received it.
    Whole(Bytes),
    /// A stream's events, in order, as the client received them.
    Stream(Vec<CachedEvent>),
}

/// One server-sent event of a cached stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedEvent {
    /// The `event:` name, when it had one.
    pub name: Option<String>,
    /// The data.
    pub data: Bytes,
}

/// What one entry costs besides its bytes (the entry, the index, the LRU's links).
const ENTRY_OVERHEAD: usize = 192;
/// What one event costs besides its bytes.
const EVENT_OVERHEAD: usize = 48;

impl CachedAnswer {
    /// About how many bytes the entry holds in memory, which the store's bound counts.
    pub fn size(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let payload = match &self.payload {
            Payload::Whole(body) => body.len(),
            Payload::Stream(events) => events
                .iter()
                .map(|e| e.data.len() + text(&e.name) + EVENT_OVERHEAD)
                .sum(),
        };
        ENTRY_OVERHEAD + payload + text(&self.provider) + text(&self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_counts_the_payload_and_the_overhead() {
        let whole = CachedAnswer {
            status: 200,
            payload: Payload::Whole(Bytes::from(vec![b'x'; 1000])),
            provider: Some("oa".into()),
            model: Some("m".into()),
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            stored_at_ms: 0,
        };
        assert_eq!(whole.size(), 1000 + 3 + ENTRY_OVERHEAD);
        let stream = CachedAnswer {
            payload: Payload::Stream(vec![
                CachedEvent {
                    name: Some("ping".into()),
                    data: Bytes::from_static(b"{}"),
                };
                2
            ]),
            ..whole
        };
        assert_eq!(
            stream.size(),
            2 * (2 + 4 + EVENT_OVERHEAD) + 3 + ENTRY_OVERHEAD
        );
    }
}
