//! The closed set of upstream dialects.

use std::fmt;
use std::str::FromStr;

/// The kind of an upstream integration: which API dialect it speaks and its default base URL.
///
/// A closed enum on purpose: every kind has an adapter, and a `match` over kinds is checked by
/// the compiler when one is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI itself.
    OpenAi,
    /// Any server that speaks OpenAI's API; `base_url` is required.
    OpenAiCompatible,
    /// Mistral's OpenAI-compatible API.
    Mistral,
    /// Groq's OpenAI-compatible API.
    Groq,
    /// DeepSeek's OpenAI-compatible API.
    DeepSeek,
    /// Together AI's OpenAI-compatible API.
    Together,
    /// A local Ollama server's OpenAI-compatible API (no key needed).
    Ollama,
    /// Portico's built-in simulated provider: no network, deterministic replies.
    Mock,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google Gemini (AI Studio `generateContent`, or Vertex AI).
    Gemini,
    /// AWS Bedrock's Converse API.
    Bedrock,
    /// Azure OpenAI (deployment URLs, `api-key` header).
    AzureOpenAi,
}

/// Returned by [`ProviderKind::from_str`] for a name that is not a kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider kind `{0}`; expected one of: {list}", list = ProviderKind::NAMES.join(", "))]
pub struct UnknownProviderKind(pub String);

impl ProviderKind {
    /// Every kind, in the order documentation lists them.
    pub const ALL: [ProviderKind; 12] = [
        ProviderKind::OpenAi,
        ProviderKind::OpenAiCompatible,
        ProviderKind::Mistral,
        ProviderKind::Groq,
        ProviderKind::DeepSeek,
        ProviderKind::Together,
        ProviderKind::Ollama,
        ProviderKind::Mock,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Bedrock,
        ProviderKind::AzureOpenAi,
    ];

    /// The names accepted in the catalog file, in the order of [`ProviderKind::ALL`].
    pub const NAMES: [&'static str; 12] = [
        "openai",
        "openai-compatible",
        "mistral",
        "groq",
        "deepseek",
        "together",
        "ollama",
        "mock",
        "anthropic",
        "gemini",
        "bedrock",
        "azure-openai",
    ];

    /// The name used in the catalog file and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai-compatible",
            ProviderKind::Mistral => "mistral",
            ProviderKind::Groq => "groq",
            ProviderKind::DeepSeek => "deepseek",
            ProviderKind::Together => "together",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Mock => "mock",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::AzureOpenAi => "azure-openai",
        }
    }

    /// The base URL the provider's official SDK uses, or `None` where the user must give one.
    ///
    /// OpenAI-style base URLs include the `/v1` (or equivalent) prefix, so an endpoint path such
    /// as `/chat/completions` is appended directly.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Mistral => Some("https://api.mistral.ai/v1"),
            ProviderKind::Groq => Some("https://api.groq.com/openai/v1"),
            ProviderKind::DeepSeek => Some("https://api.deepseek.com/v1"),
            ProviderKind::Together => Some("https://api.together.xyz/v1"),
            ProviderKind::Ollama => Some("http://127.0.0.1:11434/v1"),
            // Anthropic's SDKs use the host without `/v1`; Gemini's the host without
            // `/v1beta`.
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com"),
            // Bedrock's URL comes from the region; Azure's from the resource name.
            ProviderKind::OpenAiCompatible
            | ProviderKind::Mock
            | ProviderKind::Bedrock
            | ProviderKind::AzureOpenAi => None,
        }
    }

    /// Whether a request to this kind needs an API key from the catalog.
    pub fn requires_api_key(self) -> bool {
        // Bedrock signs with AWS credentials (from the catalog or the environment) instead.
        !matches!(
            self,
            ProviderKind::Ollama
                | ProviderKind::Mock
                | ProviderKind::OpenAiCompatible
                | ProviderKind::Bedrock
        )
    }

    /// Whether this kind needs a `base_url` in the catalog (it has no default).
    pub fn requires_base_url(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenAiCompatible | ProviderKind::AzureOpenAi
        )
    }

    /// The environment variable whose presence adds this kind to the catalog automatically,
    /// under the slug [`ProviderKind::as_str`].
    pub fn api_key_env(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Mistral => Some("MISTRAL_API_KEY"),
            ProviderKind::Groq => Some("GROQ_API_KEY"),
            ProviderKind::DeepSeek => Some("DEEPSEEK_API_KEY"),
            ProviderKind::Together => Some("TOGETHER_API_KEY"),
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::Gemini => Some("GEMINI_API_KEY"),
            ProviderKind::OpenAiCompatible
            | ProviderKind::Ollama
            | ProviderKind::Mock
            | ProviderKind::Bedrock
            | ProviderKind::AzureOpenAi => None,
        }
    }
}

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownProviderKind(s.to_owned()))
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (kind, name) in ProviderKind::ALL.into_iter().zip(ProviderKind::NAMES) {
            assert_eq!(kind.as_str(), name);
            assert_eq!(name.parse::<ProviderKind>().unwrap(), kind);
        }
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let err = "anthropic-ish".parse::<ProviderKind>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("anthropic-ish"), "{msg}");
        assert!(msg.contains("openai-compatible"), "{msg}");
    }
}
