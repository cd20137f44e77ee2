//! A chat-completions stream chunk read leniently, for the translators that turn an
//! OpenAI-style stream into another API's events (`/v1/messages`, `/v1/responses`):
//! OpenAI-compatible servers differ in what they omit, so every field is optional.

use serde::Deserialize;
use serde_json::Value;

use super::Delta;
use crate::ProviderError;

/// One chunk, every field optional.
#[derive(Debug, Deserialize)]
pub struct LenientChunk {
    /// The answer's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answered.
    #[serde(default)]
    pub model: Option<String>,
    /// The choices' deltas.
    #[serde(default)]
    pub choices: Vec<LenientChoice>,
    /// The usage chunk's counts.
    #[serde(default)]
    pub usage: Option<Value>,
    /// An in-band error, which [`LenientChunk::parse`] turns into a broken stream.
    #[serde(default)]
    error: Option<Value>,
}

/// One choice of a [`LenientChunk`].
#[derive(Debug, Deserialize)]
pub struct LenientChoice {
    /// Which choice.
    #[serde(default)]
    pub index: u32,
    /// What it adds.
    #[serde(default)]
    pub delta: Option<Delta>,
    /// Why it stopped, on its last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

impl LenientChunk {
    /// Reads one event's data.
    ///
    /// # Errors
    ///
    /// [`ProviderError::StreamBroken`] for an in-band error (`{"error": ...}`), with the
    /// upstream's message; [`ProviderError::Malformed`] for data that is not a chunk.
    pub fn parse(data: &[u8]) -> Result<LenientChunk, ProviderError> {
        let mut chunk: LenientChunk = serde_json::from_slice(data).map_err(|e| {
            ProviderError::Malformed(format!(
                "a stream event is not a chat completion chunk: {e}"
            ))
        })?;
        if let Some(error) = chunk.error.take() {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(ProviderError::StreamBroken(message));
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_is_there_and_errors_as_broken_streams() {
        let chunk = LenientChunk::parse(br#"{"choices":[{"delta":{"content":"x"}}]}"#).unwrap();
        assert_eq!(chunk.choices[0].index, 0);
        assert_eq!(
            chunk.choices[0].delta.as_ref().unwrap().content.as_deref(),
            Some("x")
        );
        assert!(chunk.id.is_none() && chunk.usage.is_none());
        assert!(matches!(
            LenientChunk::parse(br#"{"error":{"message":"overloaded"}}"#),
            Err(ProviderError::StreamBroken(m)) if m == "overloaded"
        ));
        assert!(matches!(
            LenientChunk::parse(b"[1]"),
            Err(ProviderError::Malformed(_))
        ));
    }
}
