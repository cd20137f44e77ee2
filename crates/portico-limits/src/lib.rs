//! Enforcement of budgets and rate limits (spec section 6): the ledger of what every subject
//! spent, holds and sent, and the atomic admission of a request against it.
//!
//! Where it sits: above `portico-core` only (the declared [`portico_core::Limits`], periods
//! and subjects are there); the engine's limits policy drives it from the request pipeline,
//! the engine also persists it through the store.
//!
//! What this crate is: pure, synchronous and fast (the shared ledger's trait aside). Time comes in as Unix milliseconds from
//! the caller's clock (the gateway's [`portico_core::Clock`]; tests use a manual one), so
//! period rollover and window sliding are tested without waiting. No I/O, no async, no lock
//! held beyond one account's few comparisons and additions.
//!
//! How a request is counted (docs/budgets.md has the full contract):
//!
//! 1. **Admission** ([`reserve_all`]): for each subject the request falls under, the budget
//!    must have room for what is spent, plus what requests in flight hold, plus this
//!    request's [`Estimate`]; the rate window must have room for one more request and the
//!    estimated tokens. Check and reservation happen under the account's lock in one step;
//!    a refusal by any subject takes back the others' reservations ([`Refusal`]: 412 or 429).
//! 2. **Settlement** ([`Hold::settle`]): when the request ends, however it ends, the estimate
//!    is released and the reported usage (priced) is charged to the period it ends in.
//!
//! Because every admission leaves `spent + reserved ≤ budget`, a budget `B` ends up at most
//! `B + Σ max(0, charge − estimate)` over the requests in flight when the last one was
//! admitted: never overspent when estimates cover the real usage.
//!
//! Many processes can share one ledger (scale-out, `PORTICO_REDIS_URL`): [`shared`] defines
//! the [`SharedLimits`] trait a backend implements (`portico-redis` does, over Redis) and
//! [`SharedHold`], a request's reservation on it, with the same contract and refusals.
//!
//! Main types: [`Ledger`], [`Account`], [`Hold`], [`Estimate`], [`Charge`], [`Refusal`],
//! [`SharedLimits`], [`SharedHold`].

mod account;
mod estimate;
mod hold;
mod ledger;
mod refusal;
pub mod shared;
mod window;

pub use account::{Account, BudgetStatus, Reserved, WindowStatus};
pub use estimate::{BYTES_PER_TOKEN, Charge, DEFAULT_COMPLETION_TOKENS, Estimate, prompt_tokens};
pub use hold::{Hold, reserve_all};
pub use ledger::Ledger;
pub use refusal::{BudgetDimension, Refusal};
pub use shared::{
    SharedAdmission, SharedEnd, SharedHold, SharedLimits, SharedRefusal, budget_refusal,
    rate_refusal,
};

#[cfg(test)]
mod tests;
