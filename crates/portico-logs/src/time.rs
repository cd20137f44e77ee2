//! Times as the admin API writes them: RFC 3339 in UTC with milliseconds.
//!
//! The current time is not read here: it comes from a [`portico_core::Clock`] (the pruner's
//! in [`crate::PipelineOptions`]), or from `portico_core::now_ms()` where no test needs to
//! move it.

use chrono::{DateTime, SecondsFormat, Utc};

/// Unix milliseconds as `2026-11-25T15:04:05.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Unix milliseconds as `2026-11-25T15:00:00Z` (bucket and range bounds, whole seconds).
pub(crate) fn rfc3339_s(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads `from`/`to`: RFC 3339, or Unix milliseconds (digits only).
pub(crate) fn parse_time(value: &str) -> Option<i64> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok();
    }
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_both_forms() {
        assert_eq!(rfc3339_ms(1_764_083_045_123), "2025-11-25T15:04:05.123Z");
        assert_eq!(rfc3339_s(1_764_082_800_000), "2025-11-25T15:00:00Z");
        assert_eq!(parse_time("1764083045123"), Some(1_764_083_045_123));
        assert_eq!(
            parse_time("2025-11-25T15:04:05.123Z"),
            Some(1_764_083_045_123)
        );
        assert_eq!(
            parse_time("2025-11-25T16:04:05.123+01:00"),
            Some(1_764_083_045_123)
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }
}
