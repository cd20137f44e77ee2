//! What `GET /admin/v1/budgets` lists: one [`LimitStatus`] per budget and per rate limit in
//! force, with what its subject spent (or sent, in the last minute) and when that resets.

use std::sync::Arc;

use portico_core::{Limits, Subject};
use portico_limits::Account;

use super::LimitsPolicy;

/// Whether an entry is a budget or a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatusKind {
    /// Cost and tokens per calendar period.
    Budget,
    /// Requests and tokens per minute, sliding.
    RateLimit,
}

impl StatusKind {
    /// `budget` or `rate_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Budget => "budget",
            StatusKind::RateLimit => "rate_limit",
        }
    }
}

/// One budget or rate limit in force and where its subject stands.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitStatus {
    /// `key:backend-service`, `provider:anthropic-prod`, `user:alice@example.com`,
    /// `budget:team-backend`.
    pub subject: String,
    /// Budget or rate limit.
    pub kind: StatusKind,
    /// `day`, `week`, `month`; `minute` for a rate limit.
    pub period: &'static str,
    /// The budget's USD per period.
    pub cost_usd_limit: Option<f64>,
    /// Tokens per period (budget) or per minute (rate limit).
    pub tokens_limit: Option<u64>,
    /// Requests per minute (rate limit).
    pub requests_limit: Option<u64>,
    /// USD charged this period (budget).
    pub cost_usd_spent: Option<f64>,
    /// Tokens charged this period (budget), or counted in the last minute (rate limit).
    pub tokens_spent: u64,
    /// Requests in the last minute (rate limit).
    pub requests_spent: Option<u64>,
    /// USD and tokens held by requests in flight (budget).
    pub cost_usd_reserved: Option<f64>,
    /// Tokens held by requests in flight (budget).
    pub tokens_reserved: Option<u64>,
    /// When the period ends (budget), or when everything in the window has slid out (rate
    /// limit; `None` when it is empty), Unix milliseconds.
    pub resets_at_ms: Option<i64>,
}

impl LimitsPolicy {
    /// Every budget and rate limit in force, ordered by subject (budget before rate limit).
    pub fn status(&self) -> Vec<LimitStatus> {
        let now = self.clock.now_ms();
        let table = self.table.load();
        let mut bound: Vec<(Limits, Arc<Account>)> = Vec::new();
        for bound_provider in table.providers.values() {
            bound.push((bound_provider.limits, Arc::clone(&bound_provider.account)));
        }
        for key in table.snapshot.keys() {
            if let Some(account) = table.keys.get(&key.name) {
                bound.push((key.limits, Arc::clone(account)));
            }
        }
        for user in table.users.values() {
            bound.push((user.limits, Arc::clone(&user.account)));
        }
        for (budget, account) in &table.budgets {
            bound.push((budget.limits, Arc::clone(account)));
        }
        // Users the catalog does not list (JWT subjects on `auth.jwt.budget`), with the
        // limits they were last checked against.
        for account in self.ledger.accounts() {
            if let Subject::User(user) = account.subject()
                && !table.users.contains_key(user)
                && let Some(limits) = account.last_limits()
            {
                bound.push((limits, account));
            }
        }
        let mut out: Vec<LimitStatus> = bound
            .iter()
            .flat_map(|(limits, account)| entries(limits, account, now))
            .collect();
        out.sort_by(|a, b| a.subject.cmp(&b.subject).then(a.kind.cmp(&b.kind)));
        out
    }
}

fn entries(limits: &Limits, account: &Account, now: i64) -> Vec<LimitStatus> {
    let mut out = Vec::with_capacity(2);
    if let Some(budget) = &limits.budget {
        let spent = account.budget_status(budget.period, now);
        out.push(LimitStatus {
            subject: account.label().to_string(),
            kind: StatusKind::Budget,
            period: budget.period.as_str(),
            cost_usd_limit: budget.cost_usd,
            tokens_limit: budget.tokens,
            requests_limit: None,
            cost_usd_spent: Some(spent.cost_usd_spent),
            tokens_spent: spent.tokens_spent,
            requests_spent: None,
            cost_usd_reserved: Some(spent.cost_usd_reserved),
            tokens_reserved: Some(spent.tokens_reserved),
            resets_at_ms: Some(spent.resets_at_ms),
        });
    }
    if let Some(rate) = &limits.rate_limit {
        let window = account.window_status(now);
        out.push(LimitStatus {
            subject: account.label().to_string(),
            kind: StatusKind::RateLimit,
            period: "minute",
            cost_usd_limit: None,
            tokens_limit: rate.tokens_per_minute,
            requests_limit: rate.requests_per_minute,
            cost_usd_spent: None,
            tokens_spent: window.tokens,
            requests_spent: Some(window.requests),
            cost_usd_reserved: None,
            tokens_reserved: None,
            resets_at_ms: window.clears_at_ms,
        });
    }
    out
}
