//! The request pipeline, independent of HTTP serving.
//!
//! ```text
//! server (axum) ──► Gateway::authenticate ──► Gateway::route ──► Provider::send ──► server
//!                       │ key hash lookup          │ @slug/model → provider,
//!                       │ in the snapshot          │ allow-lists, key permissions
//!                       ▼                          ▼
//!                   Snapshot (ArcSwap: lock-free reads, replaced whole on reload)
//! ```
//!
//! What this crate is: the decisions of a request (who is calling, which provider and model
//! answer) over an immutable [`Snapshot`] of the catalog and keys, and the apply of a catalog
//! file to the store at start ([`bootstrap`]).
//!
//! What it is not: HTTP parsing or rendering (the server's), a provider's wire format (the
//! providers'), or SQL (the store's).
//!
//! Main types: [`Gateway`], [`Snapshot`], [`KeyEntry`], [`ProviderEntry`], [`Route`],
//! [`RequestSink`].

pub mod bootstrap;
mod dispatch;
mod gateway;
mod registry;
mod sink;
mod snapshot;

pub use dispatch::{Answer, AttemptError, Dispatch, Dispatched, RouteRequest};
pub use gateway::{Gateway, Route};
pub use registry::build_provider;
pub use sink::{AccessLog, Fanout, RequestSink};
pub use snapshot::{ConfigEntry, KeyEntry, ModelPattern, ProviderEntry, Snapshot};
