//! The forms of the kind-specific provider settings (`aws_region`, `azure_api_version`,
//! `vertex_project_id`, `vertex_region`, `anthropic_version`, `anthropic_beta`) and their
//! defaults: one definition for the catalog file's validation (portico-config) and for the
//! adapters' typed settings (portico-providers), so whatever the file accepts, the adapter
//! built from the stored record accepts too.
//!
//! These values end up in URLs and headers, which is why their forms are checked at all: a
//! stray `/` or space is a start-up error naming the field, not a baffling 404 upstream.

/// The Azure OpenAI `api-version` used when `azure_api_version` is not set: the newest GA
/// version of the classic (deployment URL) API.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// The `anthropic-version` header sent when `anthropic_version` is not set.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// An AWS or Google Cloud region: lowercase letters, digits and `-`, starting with a letter
/// (`us-east-1`, `europe-west4`, `global`).
pub fn is_region(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A Google Cloud project ID or number (`my-project-123`, `123456789012`, or a legacy
/// domain-scoped `example.com:my-project`).
pub fn is_project_id(s: &str) -> bool {
    s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
}

/// `YYYY-MM-DD` (an `anthropic_version`).
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// `v1` (Azure's v1 API), or a dated version `YYYY-MM-DD` with an optional `-preview`.
pub fn is_azure_api_version(s: &str) -> bool {
    s == "v1" || is_date(s.strip_suffix("-preview").unwrap_or(s))
}

/// A comma-separated list of beta names (`anthropic_beta`), normalised to `a,b` (no spaces);
/// `None` when a name is empty or holds anything but letters, digits, `-`, `_` and `.`.
pub fn beta_list(s: &str) -> Option<String> {
    let names: Vec<&str> = s.split(',').map(str::trim).collect();
    names
        .iter()
        .all(|name| is_beta_name(name))
        .then(|| names.join(","))
}

/// One beta name: letters, digits, `-`, `_` and `.`, at least one.
pub fn is_beta_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
