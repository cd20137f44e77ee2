//! The request pipeline, independent of HTTP serving: where a data-plane request is
//! authenticated, resolved, admitted by the policies, dispatched to providers and answered.
//!
//! ```text
//! portico-server ──► Gateway::handle (pipeline) ──► dispatch ──► Provider (adapters)
//!  (HTTP in/out)      authenticate → read → resolve      retries, fallback,
//!                     → admit → dispatch → respond       circuit breaker
//!                     → settle → record
//!                              │
//!                              ▼
//!                 Snapshot (ArcSwap: lock-free reads, replaced whole on reload)
//! ```
//!
//! Where it sits: above the providers, routing, pricing and the store (whose records it
//! builds snapshots from), below the server, which only reads HTTP requests and writes
//! [`Reply`]s.
//!
//! What this crate is: the decisions of a request (who is calling, which provider and model
//! answer, what the policies allow) over an immutable [`Snapshot`] of the catalog and keys,
//! who is calling ([`auth`]: gateway keys and their states, JWTs of `auth.jwt`), the phases
//! of [`pipeline`], and the apply of a catalog file to the store at start ([`bootstrap`]).
//!
//! What it is not: HTTP parsing or rendering (the server's), a provider's wire format (the
//! providers'), or SQL (the store's).
//!
//! Main types: [`Gateway`], [`Family`], [`Reply`], [`pipeline::policy::Policy`],
//! [`Snapshot`], [`KeyEntry`], [`ProviderEntry`], [`Route`].

pub mod auth;
pub mod bootstrap;
mod dispatch;
mod gateway;
pub mod pipeline;
pub mod policies;
mod registry;
pub mod request_limits;
pub mod responses;
mod route;
mod sink;
mod snapshot;
mod telemetry;

pub use dispatch::{Answer, AttemptError, Dispatch, Dispatched, RouteRequest};
pub use gateway::Gateway;
pub use pipeline::{AnswerStream, Family, Reply, ReplyHeaders};
/// The built-in mock provider's models (what `GET /v1/models` and the admin API list for a
/// mock provider without an allow-list).
pub use portico_providers::mock::MOCK_MODELS;
pub use registry::build_provider;
pub use request_limits::RequestLimits;
pub use route::Route;
pub use sink::AccessLog;
pub use snapshot::{ConfigEntry, Credential, KeyEntry, ModelPattern, ProviderEntry, Snapshot};
pub use telemetry::Tracing;
