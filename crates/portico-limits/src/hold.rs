//! [`Hold`]: one request's reservation on one account, and [`reserve_all`], which admits a
//! request on several accounts at once or on none.
//!
//! A hold is settled exactly once: with the request's charge ([`Hold::settle`]), or taken back
//! ([`Hold::cancel`]) when another subject refused the request. A hold dropped without either
//! (a bug, or a panic unwinding) releases what it holds and charges nothing, so a lost
//! request can never shrink a budget for good.

use std::sync::Arc;

use portico_core::Limits;

use crate::account::{Account, Reserved};
use crate::estimate::{Charge, Estimate};
use crate::refusal::Refusal;

/// A reservation on one account.
#[derive(Debug)]
pub struct Hold {
    account: Arc<Account>,
    /// The limits the request was admitted under (a reload may change the account's).
    limits: Limits,
    reserved: Reserved,
    done: bool,
}

impl Hold {
    /// Admits a request estimated at `estimate` on `account` under `limits`.
    pub fn reserve(
        account: Arc<Account>,
        limits: Limits,
        now_ms: i64,
        estimate: &Estimate,
    ) -> Result<Hold, Refusal> {
        let reserved = account.try_reserve(&limits, now_ms, estimate)?;
        Ok(Hold {
            account,
            limits,
            reserved,
            done: false,
        })
    }

    /// The account held.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// The limits the request was admitted under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What is held: USD and tokens against the budget.
    pub fn reserved_cost_usd(&self) -> f64 {
        self.reserved.cost_usd
    }

    /// Raises the USD held to `cost_usd` (an attempt at a pricier model), if it still fits.
    pub fn raise_cost_to(&mut self, cost_usd: f64, now_ms: i64) -> Result<(), Refusal> {
        let extra = cost_usd - self.reserved.cost_usd;
        self.account
            .raise_cost(&self.limits, now_ms, &mut self.reserved, extra)
    }

    /// Counts one more request (a retry of the same target) against the rate limit.
    pub fn count_request(&self, now_ms: i64) -> Result<(), Refusal> {
        self.account.count_request(&self.limits, now_ms)
    }

    /// Ends the reservation with the request's real charge.
    pub fn settle(mut self, charge: Charge, now_ms: i64) {
        self.done = true;
        self.account
            .settle(&self.limits, self.reserved, charge, now_ms);
    }

    /// Ends the reservation charging what was held: for a request cut short before the
    /// provider reported its usage (see the engine's policy). Returns the charge.
    pub fn settle_as_estimated(self, now_ms: i64) -> Charge {
        let charge = Charge {
            cost_usd: self.reserved.cost_usd,
            tokens: self.reserved.estimated_tokens(),
        };
        self.settle(charge, now_ms);
        charge
    }

    /// Takes the reservation back as if the request had never been admitted.
    pub fn cancel(mut self) {
        self.done = true;
        self.account.cancel(self.reserved);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            // Release only: the request is not charged, its rate-window count stays.
            self.account.release(self.reserved);
        }
    }
}

/// Admits a request on every `(account, limits)` pair or on none: each account's check and
/// reservation is atomic on its own, and a refusal by one takes back what the others
/// reserved (so a refused request is never counted).
pub fn reserve_all(
    pairs: impl IntoIterator<Item = (Arc<Account>, Limits)>,
    now_ms: i64,
    estimate: &Estimate,
) -> Result<Vec<Hold>, Refusal> {
    let pairs = pairs.into_iter();
    let mut holds: Vec<Hold> = Vec::with_capacity(pairs.size_hint().0);
    for (account, limits) in pairs {
        match Hold::reserve(account, limits, now_ms, estimate) {
            Ok(hold) => holds.push(hold),
            Err(refusal) => {
                for hold in holds {
                    hold.cancel();
                }
                return Err(refusal);
            }
        }
    }
    Ok(holds)
}
