//! The policies the gateway runs on data-plane requests, each one type implementing
//! [`Policy`](crate::pipeline::policy::Policy) (see `pipeline::policy` for the hooks and
//! when they run). The binary adds them to the gateway in the order they apply.
//!
//! - [`limits`]: budgets and rate limits (spec section 6): 412 and 429 before any upstream
//!   call, spend charged from the reported usage.

pub mod limits;
