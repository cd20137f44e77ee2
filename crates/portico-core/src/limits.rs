//! Budgets and rate limits as declared (spec section 6): what a subject may spend per
//! calendar period, and how fast it may send; whom they apply to; and the state the ledger
//! persists. Pure values and UTC calendar arithmetic: the enforcement (reservations,
//! windows, spend) is `portico-limits`', the policy that applies it the engine's.
//!
//! - [`Period`]: a UTC calendar day, ISO week or month, with its start and end.
//! - [`BudgetSpec`], [`RateLimitSpec`], [`Limits`]: what the catalog declares.
//! - [`Subject`]: whom a budget or limit applies to (`key:…`, `provider:…`, `user:…`,
//!   `budget:…`), and [`NamedBudget`]: a budget of the catalog's `budgets:` list, matched on
//!   request metadata.
//! - [`LimitObserver`]: where refusals and charges are reported (metrics).
//! - [`SpendState`]: one subject's persisted spend and rate window.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A budget's period: a UTC calendar day, ISO week (Monday to Sunday) or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// From 00:00 UTC to the next 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC to the next Monday.
    Week,
    /// From the 1st 00:00 UTC to the next month's 1st.
    Month,
}

const DAY_MS: i64 = 86_400_000;

impl Period {
    /// Every period, in the order the docs list them.
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The period named `name` (`day`, `week`, `month`).
    pub fn parse(name: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The start of the period that contains `now_ms` (Unix milliseconds).
    pub fn start(self, now_ms: i64) -> i64 {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Period::Day => day * DAY_MS,
            Period::Week => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let since_monday = (day + 3).rem_euclid(7);
                (day - since_monday) * DAY_MS
            }
            Period::Month => {
                let (year, month, _) = civil_from_days(day);
                days_from_civil(year, month, 1) * DAY_MS
            }
        }
    }

    /// The start of the period after the one that contains `now_ms`: when a budget resets.
    pub fn end(self, now_ms: i64) -> i64 {
        let start = self.start(now_ms);
        match self {
            Period::Day => start + DAY_MS,
            Period::Week => start + 7 * DAY_MS,
            Period::Month => {
                let (year, month, _) = civil_from_days(start.div_euclid(DAY_MS));
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                days_from_civil(year, month, 1) * DAY_MS
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01): (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction (1-31 and 1-12).
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix milliseconds as RFC 3339 in UTC, to the second (`2026-12-01T00:00:00Z`): when a
/// budget resets, in its error messages. (The admin API formats its own times.)
pub fn rfc3339_utc(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// What a subject may spend per period: USD, tokens, or both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// The most USD per period, priced from the reported usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The most tokens (prompt and completion) per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// The calendar period (UTC).
    pub period: Period,
}

/// How fast a subject may send: a sliding window of one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// The most requests in any minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// The most tokens (prompt and completion) in any minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// A subject's budget and rate limit, either or both: what `budget:` and `rate_limit:` of a
/// provider, a key or a `budgets:` entry declare.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Spend per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
    /// Requests and tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

impl Limits {
    /// Whether neither a budget nor a rate limit is declared.
    pub fn is_empty(&self) -> bool {
        self.budget.is_none() && self.rate_limit.is_none()
    }
}

/// Whom a budget or rate limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A gateway key, by name.
    Key(String),
    /// A provider of the catalog, by slug.
    Provider(String),
    /// An end user: a user key's `user`, a JWT's user claim.
    User(String),
    /// A named budget of the catalog's `budgets:` list (matched on metadata).
    Budget(String),
}

impl Subject {
    /// `key`, `provider`, `user` or `budget`: the prefix of the displayed form.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Key(_) => "key",
            Subject::Provider(_) => "provider",
            Subject::User(_) => "user",
            Subject::Budget(_) => "budget",
        }
    }

    /// The name after the prefix.
    pub fn name(&self) -> &str {
        match self {
            Subject::Key(s) | Subject::Provider(s) | Subject::User(s) | Subject::Budget(s) => s,
        }
    }

    /// Reads the displayed form back (`key:backend-service`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Subject> {
        let (kind, name) = text.split_once(':')?;
        if name.is_empty() {
            return None;
        }
        let name = name.to_owned();
        match kind {
            "key" => Some(Subject::Key(name)),
            "provider" => Some(Subject::Provider(name)),
            "user" => Some(Subject::User(name)),
            "budget" => Some(Subject::Budget(name)),
            _ => None,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// A budget of the catalog's `budgets:` list: limits shared by every request whose
/// `x-portkey-metadata` carries the given values (`match: { metadata.team: backend }`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamedBudget {
    /// Unique name; the subject is `budget:<name>`.
    pub name: String,
    /// Metadata key (without `metadata.`) → the value it must have; all must match, and
    /// there is at least one.
    pub matches: BTreeMap<String, String>,
    /// The budget and rate limit (at least one of them).
    pub limits: Limits,
}

impl NamedBudget {
    /// Whether a request with this metadata falls under the budget.
    pub fn applies_to(
        &self,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> bool {
        let Some(metadata) = metadata else {
            return false;
        };
        !self.matches.is_empty()
            && self
                .matches
                .iter()
                .all(|(key, want)| metadata.get(key).and_then(|v| v.as_str()) == Some(want))
    }

    /// The `match` object as the catalog file and the admin API write it:
    /// `{"metadata.team": "backend"}`.
    pub fn match_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.matches
                .iter()
                .map(|(k, v)| {
                    (
                        format!("metadata.{k}"),
                        serde_json::Value::String(v.clone()),
                    )
                })
                .collect(),
        )
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// A budget (cost or tokens per period): 412.
    Budget,
    /// `requests_per_minute`: 429.
    RequestsPerMinute,
    /// `tokens_per_minute`: 429.
    TokensPerMinute,
}

impl LimitKind {
    /// The metric label and message name.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Budget => "budget",
            LimitKind::RequestsPerMinute => "requests_per_minute",
            LimitKind::TokensPerMinute => "tokens_per_minute",
        }
    }
}

/// Where the limits policy reports what it did, for metrics. Calls come from the request
/// path: they must return quickly and never block.
pub trait LimitObserver: Send + Sync + 'static {
    /// A request was refused by `limit` of `subject` (`key:backend-service`).
    fn refused(&self, subject: &str, limit: LimitKind);

    /// A finished request was charged to `subject`.
    fn charged(&self, subject: &str, cost_usd: f64, tokens: u64);
}

/// One second of a rate-limit window as persisted: what was counted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowBucket {
    /// Unix seconds.
    pub second: i64,
    /// Requests counted.
    pub requests: u64,
    /// Tokens counted.
    pub tokens: u64,
}

/// One subject's state as the ledger persists it: the spend of its current period and the
/// seconds of its rate window that still count.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendState {
    /// Whom it belongs to.
    pub subject: Subject,
    /// The period the spend is counted over, when the subject has a budget.
    pub period: Option<Period>,
    /// Start of that period, Unix milliseconds.
    pub period_start_ms: i64,
    /// USD charged in the period.
    pub cost_usd: f64,
    /// Tokens charged in the period.
    pub tokens: u64,
    /// The non-empty seconds of the rate window, oldest first.
    pub window: Vec<WindowBucket>,
    /// When this state was taken, Unix milliseconds.
    pub updated_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix milliseconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hour: i64) -> i64 {
        days_from_civil(year, month, day) * DAY_MS + hour * 3_600_000
    }

    #[test]
    fn the_calendar_round_trips() {
        for days in [-1_000_000, -1, 0, 1, 59, 365, 10_957, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn periods_start_and_end_on_utc_calendar_boundaries() {
        let now = at(2026, 12, 6, 13); // a Sunday
        assert_eq!(Period::Day.start(now), at(2026, 12, 6, 0));
        assert_eq!(Period::Day.end(now), at(2026, 12, 7, 0));
        assert_eq!(
            Period::Week.start(now),
            at(2026, 11, 30, 0),
            "the Monday before"
        );
        assert_eq!(Period::Week.end(now), at(2026, 12, 7, 0));
        assert_eq!(Period::Month.start(now), at(2026, 12, 1, 0));
        assert_eq!(
            Period::Month.end(now),
            at(2027, 1, 1, 0),
            "December rolls into January"
        );
        let leap = at(2028, 2, 29, 23);
        assert_eq!(Period::Month.end(leap), at(2028, 3, 1, 0));
        assert_eq!(Period::Month.end(at(2027, 2, 10, 0)), at(2027, 3, 1, 0));
        // The last millisecond of a period is still in it; the next one is not.
        let end = Period::Day.end(now);
        assert_eq!(Period::Day.start(end - 1), Period::Day.start(now));
        assert_eq!(Period::Day.start(end), end);
        // Monday 00:00 starts its own week; a week can span two months and two years.
        let monday = at(2026, 12, 7, 0);
        assert_eq!(Period::Week.start(monday), monday);
        assert_eq!(Period::Week.start(at(2027, 1, 2, 5)), at(2026, 12, 28, 0));
        // Before 1970 too.
        assert_eq!(Period::Month.start(at(1969, 7, 20, 20)), at(1969, 7, 1, 0));
    }

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339_utc(at(2026, 12, 1, 0)), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(at(2028, 2, 29, 23) + 59 * 60_000 + 59_999),
            "2028-02-29T23:59:59Z"
        );
    }

    #[test]
    fn subjects_print_as_the_admin_api_names_them_and_read_back() {
        let all = [
            Subject::Key("svc".into()),
            Subject::Provider("a".into()),
            Subject::User("u@x:y".into()),
            Subject::Budget("team".into()),
        ];
        let shown: Vec<String> = all.iter().map(Subject::to_string).collect();
        assert_eq!(
            shown,
            ["key:svc", "provider:a", "user:u@x:y", "budget:team"]
        );
        for (subject, text) in all.iter().zip(&shown) {
            assert_eq!(Subject::parse(text).as_ref(), Some(subject));
        }
        assert_eq!(Subject::parse("team"), None);
        assert_eq!(Subject::parse("key:"), None);
        assert_eq!(Subject::parse("group:x"), None);
    }

    #[test]
    fn a_named_budget_applies_when_every_value_matches() {
        let budget = NamedBudget {
            name: "team-backend".into(),
            matches: [("team".to_owned(), "backend".to_owned())].into(),
            limits: Limits::default(),
        };
        let meta = |json: serde_json::Value| json.as_object().cloned();
        assert!(budget.applies_to(meta(serde_json::json!({"team": "backend", "x": "1"})).as_ref()));
        assert!(!budget.applies_to(meta(serde_json::json!({"team": "search"})).as_ref()));
        assert!(!budget.applies_to(None));
        assert_eq!(
            budget.match_json(),
            serde_json::json!({"metadata.team": "backend"})
        );
    }

    #[test]
    fn limits_serialize_without_absent_parts() {
        let limits = Limits {
            budget: Some(BudgetSpec {
                cost_usd: Some(5.0),
                tokens: None,
                period: Period::Month,
            }),
            rate_limit: None,
        };
        let json = serde_json::to_value(limits).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"budget": {"cost_usd": 5.0, "period": "month"}})
        );
        assert_eq!(serde_json::from_value::<Limits>(json).unwrap(), limits);
        assert!(Limits::default().is_empty());
    }
}
