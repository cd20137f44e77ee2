//! Model-name normalisation: how a name a client or a catalog sends finds its table entry.
//!
//! Every function here borrows from its input: a lookup runs per request and allocates
//! nothing (the lower-casing goes through a stack buffer in [`crate::PriceTable::lookup`]).

/// Vendor prefixes of Bedrock model ids; a first segment that is not one of these, followed
/// by a vendor, is a cross-Region inference profile prefix (`us.`, `eu.`, `global.`, ...).
const BEDROCK_VENDORS: [&str; 12] = [
    "anthropic",
    "amazon",
    "meta",
    "mistral",
    "cohere",
    "ai21",
    "deepseek",
    "qwen",
    "openai",
    "writer",
    "twelvelabs",
    "stability",
];

/// Where a Bedrock request ran, which decides Claude's regional surcharge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BedrockScope {
    /// A `global.` inference profile.
    Global,
    /// A geographic profile (`us.`, `eu.`, `apac.`, ...) or a plain in-region model id.
    Regional,
}

/// The model id inside a Bedrock name: the ARN's last path segment, without the inference
/// profile prefix and without the version suffix (`-v1:0`, `-v2`, `:0`, `:200k`).
pub(crate) fn bedrock_model(name: &str) -> (&str, BedrockScope) {
    let mut id = name.rsplit('/').next().unwrap_or(name);
    let mut scope = BedrockScope::Regional;
    if let Some((first, rest)) = id.split_once('.')
        && !BEDROCK_VENDORS.contains(&first)
        && rest.contains('.')
    {
        if first == "global" {
            scope = BedrockScope::Global;
        }
        id = rest;
    }
    // `:0`, then `:200k` (a context-window variant): `-v1:0:200k`.
    while let Some((base, tail)) = id.rsplit_once(':')
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit() || b == b'k')
    {
        id = base;
    }
    // `-v1`, `-v2`.
    if let Some((base, tail)) = id.rsplit_once("-v")
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        id = base;
    }
    (id, scope)
}

/// `name` without a trailing snapshot date: `-2024-08-06` (OpenAI) or `-20250929`
/// (Anthropic, Bedrock). `None` when it has none.
pub(crate) fn strip_date(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    if n > 11
        && bytes[n - 11] == b'-'
        && bytes[n - 6] == b'-'
        && bytes[n - 3] == b'-'
        && digits(n - 10..n - 6)
        && digits(n - 5..n - 3)
        && digits(n - 2..n)
    {
        return Some(&name[..n - 11]);
    }
    if n > 9 && bytes[n - 9] == b'-' && digits(n - 8..n) && bytes[n - 8..n - 6] == *b"20" {
        return Some(&name[..n - 9]);
    }
    None
}

/// `name` without Gemini's three-digit version suffix (`gemini-2.0-flash-001`).
pub(crate) fn strip_gemini_version(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let n = bytes.len();
    (n > 4 && bytes[n - 4] == b'-' && bytes[n - 3..].iter().all(u8::is_ascii_digit))
        .then(|| &name[..n - 4])
}

/// The part after the last `/`: `models/gemini-2.5-pro`, `publishers/google/models/x`,
/// `openai/gpt-4o` → the bare model name.
pub(crate) fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Lower-cases ASCII letters of `name` into `buf`, returning the result, or `None` when the
/// name does not fit (the caller then allocates).
pub(crate) fn lowercase_into<'b>(name: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    let bytes = name.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    out.copy_from_slice(bytes);
    out.make_ascii_lowercase();
    // Only ASCII bytes changed, so the bytes are still the UTF-8 they were.
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_ids_lose_profile_prefix_and_version() {
        let cases = [
            (
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "anthropic.claude-sonnet-4-5-20250929",
                BedrockScope::Regional,
            ),
            (
                "global.anthropic.claude-opus-5-5",
                "anthropic.claude-opus-5-5",
                BedrockScope::Global,
            ),
            (
                "anthropic.claude-opus-4-6-v1",
                "anthropic.claude-opus-4-6",
                BedrockScope::Regional,
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.amazon.nova-pro-v1:0",
                "amazon.nova-pro",
                BedrockScope::Regional,
            ),
            (
                "anthropic.claude-3-haiku-20240307-v1:0:200k",
                "anthropic.claude-3-haiku-20240307",
                BedrockScope::Regional,
            ),
            (
                "apac.meta.llama3-3-70b-instruct-v1:0",
                "meta.llama3-3-70b-instruct",
                BedrockScope::Regional,
            ),
        ];
        for (input, id, scope) in cases {
            assert_eq!(bedrock_model(input), (id, scope), "{input}");
        }
    }

    #[test]
    fn dates_are_stripped_only_when_they_are_dates() {
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            strip_date("claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("mistral-large-2512"), None);
        assert_eq!(strip_date("model-12345678"), None);
        assert_eq!(strip_date("-2024-08-06"), None);
        assert_eq!(strip_date(""), None);
    }

    #[test]
    fn gemini_versions_and_paths() {
        assert_eq!(
            strip_gemini_version("gemini-2.0-flash-001"),
            Some("gemini-2.0-flash")
        );
        assert_eq!(strip_gemini_version("gemini-2.5-pro"), None);
        assert_eq!(last_segment("models/gemini-2.5-pro"), "gemini-2.5-pro");
        assert_eq!(last_segment("gpt-4o"), "gpt-4o");
    }

    #[test]
    fn lowercase_uses_the_buffer_or_declines() {
        let mut buf = [0u8; 8];
        assert_eq!(lowercase_into("GPT-4o", &mut buf), Some("gpt-4o"));
        assert_eq!(lowercase_into("much-too-long", &mut buf), None);
        let mut buf = [0u8; 16];
        assert_eq!(lowercase_into("Modèle-X", &mut buf), Some("modèle-x"));
    }
}
