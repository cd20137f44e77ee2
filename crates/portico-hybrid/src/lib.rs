//! Hybrid mode (spec section 9): a `portico gateway` serves the data plane from a snapshot
//! of its control plane's catalog (a `portico serve`), and keeps serving when the control
//! plane is unreachable, even across its own restart.
//!
//! Where it sits: above the engine, the store, the request log and the limits, below the
//! server (whose `/gateway/v1` routes, the control plane's side, use the document, wire and
//! signing types here) and the binary (whose `portico gateway` wires the gateway's side).
//!
//! The exchange, all authenticated with the gateway's token (a key of type `gateway` on the
//! control plane):
//!
//! ```text
//!  gateway                                   control plane (portico serve)
//!  SnapshotSync   GET  /gateway/v1/snapshot   answers at once when its catalog version is
//!                      ?version=V&spend=F     not V; else waits up to 25 s for a change
//!                 <- 200 SnapshotDocument     (or for its spend to move), then 304
//!                    + x-portico-signature
//!  RemoteLogStore POST /gateway/v1/logs       LogStore::insert, gateway = the token's key
//!  (LogPipeline)       {batch, entries}       name; ids already stored are skipped
//!  SpendOutbox    POST /gateway/v1/spend      SpendStore::apply_delivery once per batch id,
//!                      {batch, deltas}        then the same charges on its ledger
//! ```
//!
//! - [`SnapshotDocument`] (`document`): providers with models and secrets, keys (hashes),
//!   configs, guardrails, named budgets, the control plane's spend, a `version` and
//!   `created_at`. Signed with HMAC-SHA256 over the exact body (`signing`), keyed by the
//!   token's hash, which both sides know and neither sends.
//! - [`SnapshotFile`] (`at_rest`): the last snapshot in the data dir, encrypted under a key
//!   derived from the token, written atomically, verified again when loaded; a file that
//!   fails is refused with a log line.
//! - [`SnapshotStore`] (`store`): the `portico_store::Store` the engine reloads from, read
//!   from the snapshot; writes are refused, the catalog being the control plane's.
//! - [`RemoteLogStore`] (`logs`): the request log's store on a gateway; the log pipeline's
//!   spill file and replay make delivery survive an outage, ids make it exactly once.
//! - [`SpendOutbox`], [`SpendObserver`] (`spend`): charges spooled to disk in batches with
//!   ids, delivered until acknowledged, applied once.
//! - [`SnapshotSync`], [`Readiness`] (`sync`): the long poll, and whether there is anything to serve.
//!
//! ## Budgets across gateways, and how far they can be overspent
//!
//! Each gateway enforces every budget locally, on a ledger started from the snapshot's spend
//! (every process's delivered spend) plus its own charges the snapshot does not include
//! yet. While the link is up a gateway learns the others' spend with a delay: charges are
//! delivered within about a second, and a gateway whose snapshot's spend is out of date gets
//! a fresh one within [`SPEND_REFRESH`] plus a poll interval. While the link is down it
//! learns nothing of them.
//!
//! So, for a budget of `B` per period of which `S` was spent as far as all gateways know when
//! the link went down, `N` processes serving traffic (gateways, and the control plane if it
//! serves requests too) each admit up to `B - S` more on their own: the period can end at
//! `S + N·(B - S)`, an overspend of at most `(N - 1)·(B - S) ≤ (N - 1)·B`, plus each
//! process's own in-flight margin (requests admitted on an estimate that their usage
//! exceeded, see `portico_limits`). Rate limits are per process: `N` gateways admit up to
//! `N` times a limit per minute, link or no link. Once the link returns, every delivered
//! charge counts and an exhausted budget refuses everywhere within seconds.
//!
//! What this crate is not: HTTP routing (the server's) or the command's wiring (the
//! binary's).

mod at_rest;
mod client;
mod document;
mod logs;
mod signing;
mod spend;
mod store;
mod sync;
mod wire;

pub use at_rest::{
    AtRestKey, SNAPSHOT_FILE, SnapshotFile, SnapshotFileError, Verified, VerifyError,
};
pub use client::{ControlPlane, Poll, SyncError};
pub use document::{
    BudgetDoc, ConfigDoc, DocumentError, FORMAT, GuardrailDoc, KeyDoc, ProviderDoc, Records,
    SnapshotDocument, SpendDoc, spend_fingerprint,
};
pub use logs::RemoteLogStore;
pub use signing::{SIGNATURE_HEADER, SignatureError, sign, verify};
pub use spend::{SPOOL_DIR, SpendObserver, SpendOutbox, restore_ledger};
pub use store::SnapshotStore;
pub use sync::{Readiness, SnapshotSync, SyncParts};
pub use wire::{
    LOGS_PATH, LONG_POLL, LogReceipt, SNAPSHOT_PATH, SPEND_PATH, SPEND_REFRESH, SpendBatch,
    SpendDelta, SpendReceipt, VERSION_HEADER,
};
