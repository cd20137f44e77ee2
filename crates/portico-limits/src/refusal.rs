//! [`Refusal`]: why a request was not admitted, and the client's error for it (412 for a
//! budget, 429 with `Retry-After` for a rate limit), with a message that names the subject
//! and the limit, says when it resets, and what to do.

use std::sync::Arc;

use portico_core::{ApiError, ErrorCode, LimitKind, Period, rfc3339_utc};

/// Which budget figure refused, with the numbers for the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetDimension {
    /// USD.
    Cost {
        /// The budget.
        limit: f64,
        /// Charged this period.
        spent: f64,
        /// Held by requests in flight.
        reserved: f64,
        /// This request's estimate.
        estimate: f64,
    },
    /// Tokens.
    Tokens {
        /// The budget.
        limit: u64,
        /// Charged this period.
        spent: u64,
        /// Held by requests in flight.
        reserved: u64,
        /// This request's estimate.
        estimate: u64,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A budget has no room for it: 412.
    Budget {
        /// `key:backend-service`.
        subject: Arc<str>,
        /// The budget's period.
        period: Period,
        /// When the period ends and the spend resets, Unix milliseconds.
        resets_at_ms: i64,
        /// What ran out.
        dimension: BudgetDimension,
    },
    /// A rate limit is reached: 429.
    Rate {
        /// `key:backend-service`.
        subject: Arc<str>,
        /// Requests or tokens per minute.
        kind: LimitKind,
        /// The limit per minute.
        limit: u64,
        /// Counted in the last minute.
        used: u64,
        /// What this request needs.
        asked: u64,
        /// How long until it fits; `None` when it never can (more than the limit itself).
        retry_after_ms: Option<i64>,
    },
}

/// `Retry-After` when a request can never fit: a minute, the window's length (the client
/// should change the request rather than wait).
const NEVER_FITS_RETRY_SECS: u32 = 60;

impl Refusal {
    /// The subject that refused, as shown (`key:backend-service`).
    pub fn subject(&self) -> &str {
        match self {
            Refusal::Budget { subject, .. } | Refusal::Rate { subject, .. } => subject,
        }
    }

    /// Which limit refused.
    pub fn kind(&self) -> LimitKind {
        match self {
            Refusal::Budget { .. } => LimitKind::Budget,
            Refusal::Rate { kind, .. } => *kind,
        }
    }

    /// The error the client gets: 412 `budget_exceeded` or 429 `rate_limit_exceeded` (with
    /// OpenAI's error `type` `requests` or `tokens`, and `Retry-After`).
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Refusal::Budget {
                subject,
                period,
                resets_at_ms,
                dimension,
            } => {
                let resets = rfc3339_utc(*resets_at_ms);
                let message = match *dimension {
                    BudgetDimension::Cost {
                        limit,
                        spent,
                        reserved,
                        estimate,
                    } => budget_message(
                        subject,
                        *period,
                        &resets,
                        &usd(limit),
                        &usd(spent),
                        (reserved > 0.0).then(|| usd(reserved)),
                        spent + reserved >= limit,
                        &usd(estimate),
                    ),
                    BudgetDimension::Tokens {
                        limit,
                        spent,
                        reserved,
                        estimate,
                    } => budget_message(
                        subject,
                        *period,
                        &resets,
                        &format!("{limit} tokens"),
                        &format!("{spent} tokens"),
                        (reserved > 0).then(|| format!("{reserved} tokens")),
                        spent.saturating_add(reserved) >= limit,
                        &format!("{estimate} tokens"),
                    ),
                };
                ApiError::new(ErrorCode::BudgetExceeded, message)
            }
            Refusal::Rate {
                subject,
                kind,
                limit,
                used,
                asked,
                retry_after_ms,
            } => {
                let unit = match kind {
                    LimitKind::TokensPerMinute => "tokens",
                    _ => "requests",
                };
                // "1 request per minute", "600 requests per minute".
                let per = if *limit == 1 {
                    unit.trim_end_matches('s')
                } else {
                    unit
                };
                let (message, retry_after) = match retry_after_ms {
                    Some(ms) => {
                        let secs = u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX).max(1);
                        (
                            format!(
                                "rate limit `{subject}` reached: {limit} {per} per minute \
                                 ({}), {used} in the last minute; retry after {secs} s",
                                kind.as_str()
                            ),
                            secs,
                        )
                    }
                    None => (
                        format!(
                            "rate limit `{subject}` allows {limit} {per} per minute ({}), and \
                             this request alone may use {asked} (its prompt plus max_tokens); \
                             lower max_tokens or shorten the request",
                            kind.as_str()
                        ),
                        NEVER_FITS_RETRY_SECS,
                    ),
                };
                let mut error = ApiError::new(ErrorCode::RateLimited, message);
                // OpenAI's own rate-limit errors name the limit's unit as their type.
                error.error_type = Some(unit.to_owned());
                error.retry_after = Some(retry_after);
                error
            }
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one message, two units: the figures are already formatted by the caller"
)]
fn budget_message(
    subject: &str,
    period: Period,
    resets: &str,
    limit: &str,
    spent: &str,
    reserved: Option<String>,
    exhausted: bool,
    estimate: &str,
) -> String {
    let held = reserved
        .map(|r| format!(", {r} more held by requests in flight"))
        .unwrap_or_default();
    if exhausted {
        format!(
            "budget `{subject}` is exhausted: {spent} of {limit} spent this {period}{held}; it \
             resets at {resets}"
        )
    } else {
        format!(
            "budget `{subject}` has no room for this request: {spent} of {limit} spent this \
             {period}{held}, and this request may use up to {estimate} (its prompt plus \
             max_tokens); lower max_tokens, or wait until the budget resets at {resets}"
        )
    }
}

/// USD for a message: cents, with up to six decimals for amounts below a dollar.
fn usd(amount: f64) -> String {
    if amount.abs() >= 1.0 {
        return format!("${amount:.2}");
    }
    let mut text = format!("{amount:.6}");
    // Keep at least cents: "0.50", not "0.5".
    while text.ends_with('0') && text.len() - text.find('.').unwrap_or(0) > 3 {
        text.pop();
    }
    format!("${text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refusal_is_a_412_naming_the_budget_and_its_reset() {
        let refusal = Refusal::Budget {
            subject: Arc::from("key:backend-service"),
            period: Period::Month,
            resets_at_ms: 1_796_083_200_000,
            dimension: BudgetDimension::Cost {
                limit: 100.0,
                spent: 100.25,
                reserved: 0.0,
                estimate: 0.01,
            },
        };
        let error = refusal.to_api_error();
        assert_eq!(error.status, 412);
        assert_eq!(error.code_string(), "budget_exceeded");
        assert_eq!(
            error.message,
            "budget `key:backend-service` is exhausted: $100.25 of $100.00 spent this month; \
             it resets at 2026-12-01T00:00:00Z"
        );
        assert_eq!(error.retry_after, None);
        assert_eq!(refusal.kind(), LimitKind::Budget);
        assert_eq!(refusal.subject(), "key:backend-service");

        let tight = Refusal::Budget {
            subject: Arc::from("user:alice@example.com"),
            period: Period::Day,
            resets_at_ms: 0,
            dimension: BudgetDimension::Tokens {
                limit: 1000,
                spent: 900,
                reserved: 50,
                estimate: 80,
            },
        };
        let message = tight.to_api_error().message;
        assert!(
            message.starts_with(
                "budget `user:alice@example.com` has no room for this request: 900 tokens of \
                 1000 tokens spent this day, 50 tokens more held by requests in flight, and \
                 this request may use up to 80 tokens"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_rate_refusal_is_a_429_with_retry_after_in_whole_seconds() {
        let refusal = Refusal::Rate {
            subject: Arc::from("provider:openai"),
            kind: LimitKind::RequestsPerMinute,
            limit: 2,
            used: 2,
            asked: 1,
            retry_after_ms: Some(2_100),
        };
        let error = refusal.to_api_error();
        assert_eq!(error.status, 429);
        assert_eq!(error.code_string(), "rate_limit_exceeded");
        assert_eq!(error.type_str(), "requests");
        assert_eq!(error.retry_after, Some(3));
        assert_eq!(
            error.message,
            "rate limit `provider:openai` reached: 2 requests per minute (requests_per_minute), \
             2 in the last minute; retry after 3 s"
        );
        let never = Refusal::Rate {
            subject: Arc::from("key:k"),
            kind: LimitKind::TokensPerMinute,
            limit: 100,
            used: 0,
            asked: 500,
            retry_after_ms: None,
        }
        .to_api_error();
        assert_eq!(never.type_str(), "tokens");
        assert_eq!(never.retry_after, Some(60));
        assert!(
            never.message.contains("lower max_tokens"),
            "{}",
            never.message
        );
        // The Messages API's shape.
        assert_eq!(
            error.to_anthropic_json()["error"]["type"],
            "rate_limit_error"
        );
    }

    #[test]
    fn dollars_print_readably() {
        assert_eq!(usd(100.0), "$100.00");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.000_123), "$0.000123");
        assert_eq!(usd(0.0), "$0.00");
    }
}
