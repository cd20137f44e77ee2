//! The admin API's log filters, page and analytics parameters, parsed from query pairs.
//!
//! Parsing is strict, so a typo does not silently widen a search: an unknown parameter, a
//! parameter given twice or a bad value is a [`ParamError`] naming the parameter. An empty
//! value counts as absent (a form that sends `model=` means "any model").
//!
//! Everything that reaches SQL is bounded here, so no query string can make the store fail
//! (a 500) instead of answering 400:
//! - at most [`MAX_METADATA_FILTERS`] `metadata.*` filters: each is one more subquery in the
//!   WHERE clause, and about a thousand exceed SQLite's expression depth;
//! - no NUL byte in any parameter's name or value: SQLite reads a `LIKE` pattern as a C
//!   string, so `q=%00` became the pattern `%` and matched every row;
//! - `q` at most [`MAX_Q_CHARS`] characters: SQLite refuses `LIKE` patterns over 50,000
//!   bytes.

use crate::time::parse_time;

/// The largest page.
pub(crate) const MAX_LIMIT: u32 = 500;
/// The most `metadata.<key>=<value>` filters one search may give. Each is an indexed
/// subquery; 20 is more than any dashboard or script combines, and far below the ~1,000 at
/// which SQLite gives up on the expression's depth.
/// The default; `--log-search-max-metadata-filters` sets the process's own
/// ([`set_max_metadata_filters`]).
pub const MAX_METADATA_FILTERS: usize = 20;

static METADATA_FILTERS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(MAX_METADATA_FILTERS);

/// Sets the most metadata filters one search may give, for the process (at start).
pub fn set_max_metadata_filters(n: usize) {
    METADATA_FILTERS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The most metadata filters one search may give in this process.
pub fn max_metadata_filters() -> usize {
    METADATA_FILTERS.load(std::sync::atomic::Ordering::Relaxed)
}
/// The longest `q`, in characters. Escaped and wrapped in `%`, even 4-byte characters stay
/// far below SQLite's 50,000-byte limit on a `LIKE` pattern.
pub const MAX_Q_CHARS: usize = 1000;
/// The page size when `limit` is absent.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A bad query parameter: which one, and what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// The parameter at fault, as sent.
    pub param: String,
    /// What was wrong and how to fix it.
    pub message: String,
}

impl ParamError {
    fn new(param: &str, message: impl Into<String>) -> ParamError {
        ParamError {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

/// `status=`: one status or a class of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this status (`429`).
    Code(u16),
    /// Every status of the class (`4xx` is `Class(4)`).
    Class(u8),
}

impl StatusFilter {
    /// The inclusive range of statuses matched.
    pub fn range(self) -> (u16, u16) {
        match self {
            StatusFilter::Code(code) => (code, code),
            StatusFilter::Class(class) => (u16::from(class) * 100, u16::from(class) * 100 + 99),
        }
    }

    fn parse(value: &str) -> Option<StatusFilter> {
        let lower = value.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u8>() {
                Ok(c @ 1..=5) => Some(StatusFilter::Class(c)),
                _ => None,
            };
        }
        match lower.parse::<u16>() {
            Ok(code @ 100..=599) => Some(StatusFilter::Code(code)),
            _ => None,
        }
    }
}

/// The filters shared by the log list and analytics; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// `trace_id`: exactly.
    pub trace_id: Option<String>,
    /// `metadata.<key>=<value>`: each pair must match.
    pub metadata: Vec<(String, String)>,
    /// `key`: the gateway key's name.
    pub key: Option<String>,
    /// `gateway`: the hybrid gateway that served the request (its key's name).
    pub gateway: Option<String>,
    /// `user`: the end user.
    pub user: Option<String>,
    /// `provider`: the slug, without `@`.
    pub provider: Option<String>,
    /// `model`: the model name sent upstream.
    pub model: Option<String>,
    /// `status`.
    pub status: Option<StatusFilter>,
    /// `from`: arrival at or after, Unix ms.
    pub from_ms: Option<i64>,
    /// `to`: arrival before, Unix ms.
    pub to_ms: Option<i64>,
    /// `q`: a substring of the id, trace id, model, error message or a metadata value.
    pub q: Option<String>,
}

impl LogFilter {
    /// Takes one parameter if it is a filter; `Ok(false)` when it is not one.
    fn take(&mut self, name: &str, value: &str) -> Result<bool, ParamError> {
        if let Some(key) = name.strip_prefix("metadata.") {
            if key.is_empty() {
                return Err(ParamError::new(
                    name,
                    "a metadata filter names its key: metadata.<key>=<value>",
                ));
            }
            if value.is_empty() {
                return Ok(true);
            }
            if self.metadata.iter().any(|(k, _)| k == key) {
                return Err(twice(name));
            }
            let limit = max_metadata_filters();
            if self.metadata.len() >= limit {
                return Err(ParamError::new(
                    name,
                    format!(
                        "at most {limit} metadata.<key> filters may be combined in one search; remove some (the limit is --log-search-max-metadata-filters)"
                    ),
                ));
            }
            self.metadata.push((key.to_owned(), value.to_owned()));
            return Ok(true);
        }
        let slot = match name {
            "trace_id" => &mut self.trace_id,
            "key" => &mut self.key,
            "gateway" => &mut self.gateway,
            "user" => &mut self.user,
            "provider" => {
                // The slug is stored without `@`; accept it either way.
                return set_once(
                    &mut self.provider,
                    name,
                    value.strip_prefix('@').unwrap_or(value),
                );
            }
            "model" => &mut self.model,
            "q" => {
                let value = value.trim();
                if value.chars().count() > MAX_Q_CHARS {
                    return Err(ParamError::new(
                        name,
                        format!(
                            "`q` is at most {MAX_Q_CHARS} characters; search for a shorter part"
                        ),
                    ));
                }
                return set_once(&mut self.q, name, value);
            }
            "status" => {
                if value.is_empty() {
                    return Ok(true);
                }
                if self.status.is_some() {
                    return Err(twice(name));
                }
                self.status = Some(StatusFilter::parse(value).ok_or_else(|| {
                    ParamError::new(
                        name,
                        format!(
                            "status `{value}` is neither an HTTP status (100-599) nor a class like `4xx`"
                        ),
                    )
                })?);
                return Ok(true);
            }
            "from" | "to" => {
                if value.is_empty() {
                    return Ok(true);
                }
                let slot = if name == "from" {
                    &mut self.from_ms
                } else {
                    &mut self.to_ms
                };
                if slot.is_some() {
                    return Err(twice(name));
                }
                *slot = Some(parse_time(value).ok_or_else(|| {
                    ParamError::new(
                        name,
                        format!(
                            "`{name}` must be an RFC 3339 time (2026-11-25T15:04:05Z) or Unix milliseconds, not `{value}`"
                        ),
                    )
                })?);
                return Ok(true);
            }
            _ => return Ok(false),
        };
        set_once(slot, name, value)
    }
}

/// Refuses a NUL byte in a parameter's name or value: no stored text holds one, and SQLite
/// would cut a `LIKE` pattern at it (so `q=%00` matched everything).
fn check_nul(name: &str, value: &str) -> Result<(), ParamError> {
    if name.contains('\0') || value.contains('\0') {
        let shown = name.replace('\0', "%00");
        return Err(ParamError::new(
            &shown,
            format!("`{shown}` contains a NUL byte (%00), which no search can match; remove it"),
        ));
    }
    Ok(())
}

fn set_once(slot: &mut Option<String>, name: &str, value: &str) -> Result<bool, ParamError> {
    if value.is_empty() {
        return Ok(true);
    }
    if slot.is_some() {
        return Err(twice(name));
    }
    *slot = Some(value.to_owned());
    Ok(true)
}

fn twice(name: &str) -> ParamError {
    ParamError::new(name, format!("`{name}` is given twice; give it once"))
}

fn unknown(name: &str, known: &str) -> ParamError {
    ParamError::new(
        name,
        format!("unknown parameter `{name}`; the parameters are {known}"),
    )
}

const FILTERS: &str =
    "trace_id, metadata.<key>, key, gateway, user, provider, model, status, from, to, q";

/// A position in the newest-first order: the last entry of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The entry's arrival, Unix ms.
    pub created_at_ms: i64,
    /// The entry's storage sequence number (breaks ties of equal arrival times).
    pub seq: i64,
}

impl Cursor {
    /// The opaque text answered as `next_cursor`.
    pub fn encode(self) -> String {
        format!("{}.{}", self.created_at_ms, self.seq)
    }

    /// Reads a `next_cursor` back.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (at, seq) = text.split_once('.')?;
        Some(Cursor {
            created_at_ms: at.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// `GET /admin/v1/logs`: filters and the page.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    /// Which entries.
    pub filter: LogFilter,
    /// How many (1 to 500).
    pub limit: u32,
    /// Continue after this entry.
    pub cursor: Option<Cursor>,
}

impl Default for LogQuery {
    fn default() -> LogQuery {
        LogQuery {
            filter: LogFilter::default(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl LogQuery {
    /// Parses the query parameters of a log search.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LogQuery, ParamError> {
        let mut query = LogQuery::default();
        let (mut limit_seen, mut cursor_seen) = (false, false);
        for (name, value) in pairs {
            check_nul(name, value)?;
            if query.filter.take(name, value)? {
                continue;
            }
            match name {
                "limit" => {
                    if std::mem::replace(&mut limit_seen, true) {
                        return Err(twice(name));
                    }
                    query.limit = match value.parse::<u32>() {
                        Ok(n @ 1..=MAX_LIMIT) => n,
                        _ => {
                            return Err(ParamError::new(
                                name,
                                format!(
                                    "`limit` must be a number from 1 to {MAX_LIMIT}, not `{value}`"
                                ),
                            ));
                        }
                    };
                }
                "cursor" => {
                    if std::mem::replace(&mut cursor_seen, true) {
                        return Err(twice(name));
                    }
                    if !value.is_empty() {
                        query.cursor = Some(Cursor::decode(value).ok_or_else(|| {
                            ParamError::new(
                                name,
                                "`cursor` is not a `next_cursor` this API answered; pass it back unchanged",
                            )
                        })?);
                    }
                }
                _ => return Err(unknown(name, &format!("{FILTERS}, limit, cursor"))),
            }
        }
        Ok(query)
    }
}

/// Analytics buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// One bucket per hour (UTC).
    Hour,
    /// One bucket per day (UTC).
    Day,
}

impl Interval {
    /// The bucket's length in ms.
    pub fn ms(self) -> i64 {
        match self {
            Interval::Hour => HOUR_MS,
            Interval::Day => DAY_MS,
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    /// The default range: the last 24 hours for `hour`, 30 days for `day`.
    fn default_span(self) -> i64 {
        match self {
            Interval::Hour => DAY_MS,
            Interval::Day => 30 * DAY_MS,
        }
    }
}

/// What analytics groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// The model name sent upstream.
    Model,
    /// The provider slug.
    Provider,
    /// The gateway key's name.
    Key,
    /// The end user.
    User,
    /// One metadata key's value.
    Metadata(String),
}

impl GroupBy {
    /// The parameter's value, as answered in `group_by`.
    pub fn label(&self) -> String {
        match self {
            GroupBy::Model => "model".into(),
            GroupBy::Provider => "provider".into(),
            GroupBy::Key => "key".into(),
            GroupBy::User => "user".into(),
            GroupBy::Metadata(key) => format!("metadata.{key}"),
        }
    }

    fn parse(value: &str) -> Option<GroupBy> {
        Some(match value {
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "key" => GroupBy::Key,
            "user" => GroupBy::User,
            _ => GroupBy::Metadata(
                value
                    .strip_prefix("metadata.")
                    .filter(|k| !k.is_empty())?
                    .to_owned(),
            ),
        })
    }
}

/// `GET /admin/v1/analytics`: filters, buckets and grouping, with the range resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsQuery {
    /// Which entries; `from_ms` and `to_ms` are always set.
    pub filter: LogFilter,
    /// Bucket length.
    pub interval: Interval,
    /// Grouping, if any.
    pub group_by: Option<GroupBy>,
}

impl AnalyticsQuery {
    /// Parses the query parameters of an analytics request; a missing range is the last 24
    /// hours (`hour`) or 30 days (`day`) up to the end of the current bucket.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        now_ms: i64,
    ) -> Result<AnalyticsQuery, ParamError> {
        let mut filter = LogFilter::default();
        let mut interval = None;
        let mut group_by = None;
        for (name, value) in pairs {
            check_nul(name, value)?;
            if filter.take(name, value)? {
                continue;
            }
            match name {
                "interval" => {
                    if interval.is_some() {
                        return Err(twice(name));
                    }
                    interval = Some(match value {
                        "hour" | "" => Interval::Hour,
                        "day" => Interval::Day,
                        _ => {
                            return Err(ParamError::new(
                                name,
                                format!("`interval` is `hour` or `day`, not `{value}`"),
                            ));
                        }
                    });
                }
                "group_by" => {
                    if group_by.is_some() {
                        return Err(twice(name));
                    }
                    if !value.is_empty() {
                        group_by = Some(GroupBy::parse(value).ok_or_else(|| {
                            ParamError::new(
                                name,
                                format!(
                                    "`group_by` is model, provider, key, user or metadata.<key>, not `{value}`"
                                ),
                            )
                        })?);
                    }
                }
                _ => return Err(unknown(name, &format!("{FILTERS}, interval, group_by"))),
            }
        }
        let interval = interval.unwrap_or(Interval::Hour);
        let span = interval.default_span();
        let to = match filter.to_ms {
            Some(to) => to,
            // The end of the current bucket, so the newest bucket is whole.
            None => (now_ms.div_euclid(interval.ms()) + 1) * interval.ms(),
        };
        let from = filter.from_ms.unwrap_or(to - span);
        if from >= to {
            return Err(ParamError::new(
                if filter.from_ms.is_some() {
                    "from"
                } else {
                    "to"
                },
                "`from` must be before `to`",
            ));
        }
        filter.from_ms = Some(from);
        filter.to_ms = Some(to);
        Ok(AnalyticsQuery {
            filter,
            interval,
            group_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(query: &[(&str, &str)]) -> Result<LogQuery, ParamError> {
        LogQuery::parse(query.iter().copied())
    }

    #[test]
    fn every_filter_is_read() {
        let q = log(&[
            ("trace_id", "t-1"),
            ("metadata.team", "backend"),
            ("metadata.project", "api-v2"),
            ("key", "service"),
            ("gateway", "edge-eu"),
            ("user", "ada"),
            ("provider", "@openai"),
            ("model", "gpt-4o"),
            ("status", "4xx"),
            ("from", "1000"),
            ("to", "2026-11-25T00:00:00Z"),
            ("q", " boom "),
            ("limit", "10"),
            ("cursor", "5.7"),
        ])
        .unwrap();
        let f = &q.filter;
        assert_eq!(f.trace_id.as_deref(), Some("t-1"));
        assert_eq!(
            f.metadata,
            [
                ("team".into(), "backend".into()),
                ("project".into(), "api-v2".into())
            ]
        );
        assert_eq!(f.key.as_deref(), Some("service"));
        assert_eq!(f.gateway.as_deref(), Some("edge-eu"));
        assert_eq!(f.user.as_deref(), Some("ada"));
        assert_eq!(f.provider.as_deref(), Some("openai"));
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert_eq!(f.status, Some(StatusFilter::Class(4)));
        assert_eq!(f.from_ms, Some(1000));
        assert_eq!(f.to_ms, Some(1_795_564_800_000));
        assert_eq!(f.q.as_deref(), Some("boom"));
        assert_eq!(q.limit, 10);
        assert_eq!(
            q.cursor,
            Some(Cursor {
                created_at_ms: 5,
                seq: 7
            })
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, param) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "501")], "limit"),
            (vec![("limit", "ten")], "limit"),
            (vec![("status", "600")], "status"),
            (vec![("status", "9xx")], "status"),
            (vec![("from", "yesterday")], "from"),
            (vec![("cursor", "abc")], "cursor"),
            (vec![("modle", "x")], "modle"),
            (vec![("metadata.", "x")], "metadata."),
            (vec![("model", "a"), ("model", "b")], "model"),
            (vec![("gateway", "a"), ("gateway", "b")], "gateway"),
            (vec![("metadata.t", "a"), ("metadata.t", "b")], "metadata.t"),
        ] {
            let err = log(&query).unwrap_err();
            assert_eq!(err.param, param, "{query:?}: {err}");
        }
    }

    #[test]
    fn metadata_filters_are_bounded() {
        let names: Vec<String> = (0..=MAX_METADATA_FILTERS)
            .map(|i| format!("metadata.k{i}"))
            .collect();
        let pairs = |n: usize| {
            names[..n]
                .iter()
                .map(|k| (k.as_str(), "v"))
                .collect::<Vec<_>>()
        };
        let q = log(&pairs(MAX_METADATA_FILTERS)).unwrap();
        assert_eq!(q.filter.metadata.len(), MAX_METADATA_FILTERS);
        let err = log(&pairs(MAX_METADATA_FILTERS + 1)).unwrap_err();
        assert_eq!(err.param, format!("metadata.k{MAX_METADATA_FILTERS}"));
        assert!(err.message.contains("at most 20 metadata"), "{err}");
        // Empty values are absent, so they do not count.
        let mut with_empty = pairs(MAX_METADATA_FILTERS);
        with_empty.push(("metadata.blank", ""));
        assert!(log(&with_empty).is_ok());
        // Analytics reads the same filters.
        let err = AnalyticsQuery::parse(pairs(MAX_METADATA_FILTERS + 1), 0).unwrap_err();
        assert!(err.param.starts_with("metadata."), "{err}");
    }

    #[test]
    fn a_nul_byte_anywhere_is_refused() {
        for pairs in [
            vec![("q", "\0")],
            vec![("q", "a\0b")],
            vec![("model", "gpt\0")],
            vec![("trace_id", "\0")],
            vec![("metadata.team", "x\0")],
            vec![("metadata.te\0am", "x")],
            vec![("cursor", "1.2\0")],
        ] {
            let err = log(&pairs).unwrap_err();
            assert!(err.message.contains("NUL"), "{pairs:?}: {err}");
            assert!(!err.param.contains('\0'), "{pairs:?}: {err:?}");
        }
        for pairs in [
            vec![("group_by", "metadata.a\0")],
            vec![("q", "\0")],
            vec![("interval", "hour\0")],
        ] {
            let err = AnalyticsQuery::parse(pairs.iter().copied(), 0).unwrap_err();
            assert!(err.message.contains("NUL"), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn q_is_bounded() {
        let long = "é".repeat(MAX_Q_CHARS);
        assert_eq!(
            log(&[("q", &long)]).unwrap().filter.q.as_deref(),
            Some(long.as_str())
        );
        let longer = format!("{long}x");
        assert_eq!(log(&[("q", &longer)]).unwrap_err().param, "q");
    }

    #[test]
    fn empty_values_mean_absent() {
        let q = log(&[("model", ""), ("status", ""), ("metadata.team", "")]).unwrap();
        assert_eq!(q, LogQuery::default());
    }

    #[test]
    fn status_ranges() {
        assert_eq!(StatusFilter::Code(429).range(), (429, 429));
        assert_eq!(StatusFilter::Class(5).range(), (500, 599));
    }

    #[test]
    fn analytics_defaults_end_at_the_current_bucket() {
        let now = 1_764_083_045_123; // 2025-11-25T15:04:05.123Z
        let a = AnalyticsQuery::parse([], now).unwrap();
        assert_eq!(a.interval, Interval::Hour);
        assert_eq!(a.filter.to_ms, Some(1_764_086_400_000)); // 16:00
        assert_eq!(a.filter.from_ms, Some(1_764_086_400_000 - DAY_MS));
        let d = AnalyticsQuery::parse([("interval", "day"), ("group_by", "metadata.team")], now)
            .unwrap();
        assert_eq!(d.filter.to_ms, Some(1_764_115_200_000)); // next midnight
        assert_eq!(d.filter.from_ms, Some(1_764_115_200_000 - 30 * DAY_MS));
        assert_eq!(d.group_by, Some(GroupBy::Metadata("team".into())));
        for (query, param) in [
            (vec![("interval", "week")], "interval"),
            (vec![("group_by", "color")], "group_by"),
            (vec![("group_by", "metadata.")], "group_by"),
            (vec![("limit", "5")], "limit"),
            (vec![("from", "2000"), ("to", "1000")], "from"),
        ] {
            let err = AnalyticsQuery::parse(query.iter().copied(), now).unwrap_err();
            assert_eq!(err.param, param, "{query:?}: {err}");
        }
    }
}
