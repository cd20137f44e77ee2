//! Token usage in OpenAI's meaning.

use serde::{Deserialize, Serialize};

/// Token counts of one request, in OpenAI's meaning: `prompt_tokens` includes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache (a subset of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; a subset of `prompt_tokens`, priced apart).
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Reads the `usage` object of an OpenAI-shaped response or stream chunk.
    ///
    /// Returns `None` when the object is absent, `null`, or carries no token counts, so a
    /// chunk with `"usage": null` never counts as a report of zero tokens.
    pub fn from_openai(value: &serde_json::Value) -> Option<Usage> {
        let usage = value.get("usage")?;
        let count = |field: &str| usage.get(field).and_then(serde_json::Value::as_u64);
        let prompt = count("prompt_tokens");
        let completion = count("completion_tokens");
        if prompt.is_none() && completion.is_none() {
            return None;
        }
        let detail = |field: &str| {
            usage
                .get("prompt_tokens_details")
                .and_then(|d| d.get(field))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        Some(Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
            cached_tokens: detail("cached_tokens"),
            cache_write_tokens: detail("cache_creation_tokens"),
        })
    }

    /// Total tokens, as OpenAI reports `total_tokens`.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_openai_usage_with_cached_tokens() {
        let body = json!({"usage": {"prompt_tokens": 120, "completion_tokens": 7,
            "total_tokens": 127, "prompt_tokens_details": {"cached_tokens": 100}}});
        let usage = Usage::from_openai(&body).unwrap();
        assert_eq!(usage.prompt_tokens, 120);
        assert_eq!(usage.completion_tokens, 7);
        assert_eq!(usage.cached_tokens, 100);
        assert_eq!(usage.total_tokens(), 127);
    }

    #[test]
    fn null_or_missing_usage_is_no_report() {
        assert_eq!(Usage::from_openai(&json!({"usage": null})), None);
        assert_eq!(Usage::from_openai(&json!({"choices": []})), None);
        assert_eq!(Usage::from_openai(&json!({"usage": {}})), None);
    }
}
