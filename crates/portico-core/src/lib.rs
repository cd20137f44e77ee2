//! Domain types shared by every Portico crate.
//!
//! Where it sits: at the bottom; every other crate depends on it and it depends on no other
//! Portico crate.
//!
//! This crate has no I/O and no async runtime: it holds the vocabulary the other crates speak.
//!
//! - [`ErrorCode`] / [`ApiError`]: the one table of public error codes, each with its HTTP
//!   status and OpenAI error `type`, and the error value every layer returns to a client.
//! - [`ProviderKind`]: the closed set of upstream dialects Portico speaks.
//! - [`ModelRef`]: the `@slug/model` address of a model in the catalog.
//! - [`JsonBody`]: a request body kept as its bytes, top-level fields indexed for cheap rewrites.
//! - [`json_shape`]: a JSON text's nesting depth and an array's length, measured without
//!   parsing (the request-shape limits).
//! - [`Endpoint`]: the OpenAI-compatible operations a request can ask for.
//! - [`RequestRecord`]: what the request log keeps of one request.
//! - [`Usage`]: token counts in OpenAI's meaning.
//! - [`KeyHash`], [`Secret`]: gateway key hashing and secrets that never print themselves.
//! - [`RequestSink`], [`Fanout`]: where finished records go (log, metrics, access log).
//! - [`LogHealth`], [`LogHealthSource`]: the request log's storage state, for `/readyz` and
//!   `/metrics`.
//! - [`Clock`]: wall-clock time, which tests can drive ([`ManualClock`]).
//! - [`limits`]: budgets and rate limits as declared ([`Limits`], [`Period`], [`Subject`],
//!   [`NamedBudget`]), what the ledger persists ([`SpendState`]) and reports
//!   ([`LimitObserver`]).
//! - [`ServerLimit`], [`ServerLimitObserver`]: the gateway's protective limits (connections,
//!   streams, request heads and shapes, slow readers) and where their hits are counted.
//! - [`settings`]: the forms and defaults of the kind-specific provider settings, shared by
//!   the catalog file's validation and the adapters.

mod body;
mod clock;
mod endpoint;
mod error;
pub mod json_shape;
mod kind;
pub mod limits;
mod log_health;
mod model_ref;
mod record;
mod secret;
mod server_limit;
pub mod settings;
mod sink;
mod trace;
mod usage;

pub use body::{BodyError, JsonBody};
pub use clock::{Clock, ManualClock, SystemClock, now_ms};
pub use endpoint::Endpoint;
pub use error::{ApiError, ErrorCode};
pub use kind::{ProviderKind, UnknownProviderKind};
pub use limits::{
    BudgetSpec, LimitKind, LimitObserver, Limits, NamedBudget, Period, RateLimitSpec, SpendState,
    Subject, WindowBucket, rfc3339_utc,
};
pub use log_health::{LogHealth, LogHealthSource};
pub use model_ref::{ModelRef, ModelRefError, is_valid_slug};
pub use record::{Attempt, Outcome, RequestRecord};
pub use secret::{KEY_PREFIX, KeyHash, Secret, generate_key, key_hint, secrets_equal};
pub use server_limit::{ServerLimit, ServerLimitObserver};
pub use sink::{Fanout, RequestSink};
pub use trace::TraceContext;
pub use usage::Usage;
