//! The policies the gateway runs on data-plane requests, each one type implementing
//! [`Policy`](crate::pipeline::policy::Policy) (see `pipeline::policy` for the hooks and
//! when they run). The binary adds them to the gateway in the order they apply.
//!
//! - [`guardrails`]: input and output guardrails (spec section 7): first, so a redacted
//!   request is what the cache keys and the limits charge, and a denied one (446) reaches
//!   neither.
//! - [`cache`]: the response cache (Portkey's `cache` config): a hit answers in the
//!   upstream's place; it runs before the limits, so a hit is charged to no budget.
//! - [`limits`]: budgets and rate limits (spec section 6): 412 and 429 before any upstream
//!   call, spend charged from the reported usage.

pub mod cache;
pub mod guardrails;
pub mod limits;
