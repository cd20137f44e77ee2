//! [`LimitsRun`]: the limits' work on one request, across the pipeline's hooks.

use std::sync::Arc;

use async_trait::async_trait;
use portico_core::{ApiError, Clock, LimitObserver, Limits, Outcome};
use portico_limits::{
    Account, Charge, Estimate, Hold, Refusal, SharedHold, SharedLimits, SharedRefusal, reserve_all,
};

use super::Table;
use super::estimate::Size;
use crate::pipeline::policy::{Before, Finished, PolicyRequest, PolicyRun};
use crate::route::Route;

/// What the limits hold for one request.
pub(super) struct LimitsRun {
    table: Arc<Table>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn LimitObserver>>,
    /// The key, user and metadata subjects, until `before` admits the request on them.
    pending: Vec<(Arc<Account>, Limits)>,
    /// Their reservations once admitted.
    holds: Vec<Hold>,
    /// Reservations on the providers attempted, by slug.
    providers: Vec<(String, Hold)>,
    /// The request's size in tokens, and its estimate (priced at the model it named, when
    /// known).
    size: Size,
    estimate: Estimate,
    /// Whether any subject has a cost budget, so estimates need a price.
    priced: bool,
    /// The shared ledger the pending subjects are admitted on, when there is one.
    shared: Option<Arc<dyn SharedLimits>>,
    /// Their reservation there once admitted.
    shared_hold: Option<SharedHold>,
}

impl LimitsRun {
    pub(super) fn new(
        table: Arc<Table>,
        clock: Arc<dyn Clock>,
        observer: Option<Arc<dyn LimitObserver>>,
        pending: Vec<(Arc<Account>, Limits)>,
        shared: Option<Arc<dyn SharedLimits>>,
    ) -> LimitsRun {
        let has_cost = |l: &Limits| l.budget.is_some_and(|b| b.cost_usd.is_some());
        let priced = pending.iter().any(|(_, l)| has_cost(l))
            || table.providers.values().any(|b| has_cost(&b.limits));
        LimitsRun {
            table,
            clock,
            observer,
            pending,
            holds: Vec::new(),
            providers: Vec::new(),
            size: Size::default(),
            estimate: Estimate::default(),
            priced,
            shared,
            shared_hold: None,
        }
    }

    /// The client's error for a refusal, reported to the observer.
    fn refuse(&self, refusal: &Refusal) -> ApiError {
        if let Some(observer) = &self.observer {
            observer.refused(refusal.subject(), refusal.kind());
        }
        refusal.to_api_error()
    }

    /// Ends one hold: the request's charge, or (cut short before the provider reported its
    /// usage) what the hold reserved, so that leaving early is no way around a budget.
    fn settle(&self, hold: Hold, charge: Option<Charge>, now_ms: i64) {
        let label = Arc::clone(hold.account().label());
        let charged = match charge {
            Some(charge) => {
                hold.settle(charge, now_ms);
                charge
            }
            None => hold.settle_as_estimated(now_ms),
        };
        if let Some(observer) = &self.observer
            && !charged.is_zero()
        {
            observer.charged(&label, charged.cost_usd, charged.tokens);
        }
    }
}

#[async_trait]
impl PolicyRun for LimitsRun {
    async fn before(&mut self, request: &mut PolicyRequest<'_>) -> Result<Before, ApiError> {
        self.size = Size::of(request);
        self.estimate = self.size.estimate();
        if self.priced
            && let Some(cost) = self.size.cost_at_named(&self.table.snapshot, request.model)
        {
            self.estimate = self.estimate.priced(cost);
        }
        if self.pending.is_empty() {
            return Ok(Before::Continue);
        }
        let now = self.clock.now_ms();
        if let Some(shared) = &self.shared {
            let pending = std::mem::take(&mut self.pending);
            return match SharedHold::reserve(shared, pending, now, &self.estimate).await {
                Ok(hold) => {
                    self.shared_hold = Some(hold);
                    Ok(Before::Continue)
                }
                Err(SharedRefusal::Limit(refusal)) => Err(self.refuse(&refusal)),
                Err(SharedRefusal::Unavailable(error)) => Err(*error),
            };
        }
        match reserve_all(self.pending.drain(..), now, &self.estimate) {
            Ok(holds) => {
                self.holds = holds;
                Ok(Before::Continue)
            }
            Err(refusal) => Err(self.refuse(&refusal)),
        }
    }

    fn before_attempt(&mut self, route: &Route) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        // Priced at the target actually tried: a fallback to a pricier model holds more.
        let route_cost = if self.priced {
            self.size
                .cost_at(&self.table.snapshot, &route.slug, &route.model)
        } else {
            None
        };
        if let Some(cost) = route_cost {
            let mut refused = None;
            for hold in &mut self.holds {
                let has_cost = hold.limits().budget.is_some_and(|b| b.cost_usd.is_some());
                if has_cost
                    && cost > hold.reserved_cost_usd()
                    && let Err(refusal) = hold.raise_cost_to(cost, now)
                {
                    refused = Some(refusal);
                    break;
                }
            }
            if let Some(refusal) = refused {
                return Err(self.refuse(&refusal));
            }
            if let Some(hold) = &mut self.shared_hold {
                // Held without a check: this hook cannot wait for the shared ledger.
                hold.raise_cost_to(cost);
            }
        }
        let Some(bound) = self.table.providers.get(&route.slug) else {
            return Ok(());
        };
        if let Some((_, hold)) = self.providers.iter().find(|(s, _)| *s == route.slug) {
            // A retry of the same provider: one more request against its rate limit.
            let counted = hold.count_request(now);
            return counted.map_err(|refusal| self.refuse(&refusal));
        }
        let estimate = match route_cost {
            Some(cost) => self.estimate.priced(cost),
            None => self.estimate,
        };
        match Hold::reserve(Arc::clone(&bound.account), bound.limits, now, &estimate) {
            Ok(hold) => {
                self.providers.push((route.slug.clone(), hold));
                Ok(())
            }
            Err(refusal) => Err(self.refuse(&refusal)),
        }
    }

    fn after(&mut self, finished: &Finished<'_>) {
        let now = self.clock.now_ms();
        let record = finished.record;
        let reported = record.prompt_tokens.is_some() || record.completion_tokens.is_some();
        // An upstream was generating when the answer was cut off (the client left, the
        // stream broke) and no usage came: it is charged its estimate.
        let cut_short = !reported
            && record.provider.is_some()
            && matches!(
                record.outcome,
                Outcome::ClientDisconnected | Outcome::StreamBroken
            );
        let charge = if cut_short {
            None
        } else {
            Some(Charge {
                cost_usd: record.cost_usd.unwrap_or(0.0),
                tokens: record
                    .prompt_tokens
                    .unwrap_or(0)
                    .saturating_add(record.completion_tokens.unwrap_or(0)),
            })
        };
        for hold in std::mem::take(&mut self.holds) {
            self.settle(hold, charge, now);
        }
        if let Some(hold) = self.shared_hold.take() {
            let observer = self.observer.as_deref();
            hold.settle(charge, now, |label, charged| {
                if let Some(observer) = observer
                    && !charged.is_zero()
                {
                    observer.charged(label, charged.cost_usd, charged.tokens);
                }
            });
        }
        for (slug, hold) in std::mem::take(&mut self.providers) {
            // Only the provider that answered used anything; the others are released.
            let answered = record.provider.as_deref() == Some(slug.as_str());
            let charge = if answered { charge } else { Some(Charge::ZERO) };
            self.settle(hold, charge, now);
        }
        // Never admitted (a refusal elsewhere): nothing held.
        self.pending.clear();
    }
}
