//! The OpenAI-compatible operations a client can ask the gateway for.

use std::fmt;

use serde::{Serialize, Serializer};

/// One OpenAI-compatible operation, named after its path under `/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions` (legacy text completions)
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses` (OpenAI's Responses API), as sent to an upstream that speaks it.
    Responses,
    /// `POST /v1/moderations`
    Moderations,
    /// `POST /v1/images/generations`
    ImageGenerations,
    /// `POST /v1/audio/transcriptions` (a `multipart/form-data` upload)
    AudioTranscriptions,
    /// `POST /v1/audio/speech` (answered with audio bytes)
    AudioSpeech,
}

impl Endpoint {
    /// Every endpoint, in declaration order, so `ALL[e as usize] == e`: a table indexed by
    /// endpoint is an array, not a map.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
        Endpoint::Moderations,
        Endpoint::ImageGenerations,
        Endpoint::AudioTranscriptions,
        Endpoint::AudioSpeech,
    ];

    /// The path under the provider's base URL (which, for OpenAI-style kinds, ends in `/v1`).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
            Endpoint::Moderations => "/moderations",
            Endpoint::ImageGenerations => "/images/generations",
            Endpoint::AudioTranscriptions => "/audio/transcriptions",
            Endpoint::AudioSpeech => "/audio/speech",
        }
    }

    /// Whether this operation can answer with a server-sent-event stream.
    pub fn can_stream(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses
        )
    }

    /// Whether the operation is sent to a provider as it is, to OpenAI's own path, and only
    /// to providers that serve OpenAI's API (OpenAI-style kinds and Azure OpenAI): no
    /// translating adapter has an equivalent, and the answer may be something other than
    /// JSON (audio, subtitles).
    pub fn is_passthrough(self) -> bool {
        matches!(
            self,
            Endpoint::Moderations
                | Endpoint::ImageGenerations
                | Endpoint::AudioTranscriptions
                | Endpoint::AudioSpeech
        )
    }

    /// Whether the request body is a `multipart/form-data` upload rather than JSON.
    pub fn takes_form(self) -> bool {
        self == Endpoint::AudioTranscriptions
    }

    /// Whether the operation generates tokens (so a request may be budgeted by
    /// `max_tokens`): chat and text completions.
    pub fn generates_tokens(self) -> bool {
        matches!(
            self,
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Responses
        )
    }

    /// Stable name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Moderations => "moderations",
            Endpoint::ImageGenerations => "images.generations",
            Endpoint::AudioTranscriptions => "audio.transcriptions",
            Endpoint::AudioSpeech => "audio.speech",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, e) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(e as usize, i, "{e:?}");
        }
    }
}
