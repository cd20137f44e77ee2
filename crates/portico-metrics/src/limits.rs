//! Budgets and rate limits in the metrics: refusals and spend by subject. [`Metrics`] is the
//! limits policy's [`LimitObserver`].

use std::sync::Arc;

use portico_core::{LimitKind, LimitObserver};
use prometheus::{Counter, CounterVec, IntCounter, IntCounterVec, Opts, Registry};

use crate::Metrics;
use crate::labels::LabelCache;

/// Distinct subjects before the rest are counted as `other`: users come from JWTs, and
/// every one would be a new series.
const MAX_SUBJECTS: usize = 1_000;

/// The limit families and the handles of each subject seen.
pub(crate) struct LimitFamilies {
    refusals: IntCounterVec,
    spend_usd: CounterVec,
    spend_tokens: IntCounterVec,
    subjects: LabelCache<Arc<SubjectHandles>>,
}

/// One subject's handles.
struct SubjectHandles {
    refused_budget: IntCounter,
    refused_requests: IntCounter,
    refused_tokens: IntCounter,
    spend_usd: Counter,
    spend_tokens: IntCounter,
}

impl LimitFamilies {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<LimitFamilies, prometheus::Error> {
        let refusals = IntCounterVec::new(
            Opts::new(
                "portico_limit_refusals_total",
                "Requests refused by a budget (412) or a rate limit (429), by subject and limit.",
            ),
            &["subject", "limit"],
        )?;
        let spend_usd = CounterVec::new(
            Opts::new(
                "portico_budget_spend_usd_total",
                "USD charged to subjects with a budget or a rate limit.",
            ),
            &["subject"],
        )?;
        let spend_tokens = IntCounterVec::new(
            Opts::new(
                "portico_budget_spend_tokens_total",
                "Tokens charged to subjects with a budget or a rate limit.",
            ),
            &["subject"],
        )?;
        registry.register(Box::new(refusals.clone()))?;
        registry.register(Box::new(spend_usd.clone()))?;
        registry.register(Box::new(spend_tokens.clone()))?;
        Ok(LimitFamilies {
            refusals,
            spend_usd,
            spend_tokens,
            subjects: LabelCache::new(MAX_SUBJECTS),
        })
    }

    fn subject(&self, subject: &str) -> Arc<SubjectHandles> {
        self.subjects.get(subject, |label| {
            let refused =
                |limit: LimitKind| self.refusals.with_label_values(&[label, limit.as_str()]);
            Arc::new(SubjectHandles {
                refused_budget: refused(LimitKind::Budget),
                refused_requests: refused(LimitKind::RequestsPerMinute),
                refused_tokens: refused(LimitKind::TokensPerMinute),
                spend_usd: self.spend_usd.with_label_values(&[label]),
                spend_tokens: self.spend_tokens.with_label_values(&[label]),
            })
        })
    }
}

impl LimitObserver for Metrics {
    fn refused(&self, subject: &str, limit: LimitKind) {
        let handles = self.limits.subject(subject);
        match limit {
            LimitKind::Budget => handles.refused_budget.inc(),
            LimitKind::RequestsPerMinute => handles.refused_requests.inc(),
            LimitKind::TokensPerMinute => handles.refused_tokens.inc(),
        }
    }

    fn charged(&self, subject: &str, cost_usd: f64, tokens: u64) {
        let handles = self.limits.subject(subject);
        if cost_usd.is_finite() && cost_usd > 0.0 {
            handles.spend_usd.inc_by(cost_usd);
        }
        handles.spend_tokens.inc_by(tokens);
    }
}
