//! The bodies of the gateway endpoints besides the snapshot, shared by the control plane
//! (`portico-server`'s `/gateway/v1` routes) and the gateway ([`crate::ControlPlane`]).
//!
//! - `GET /gateway/v1/snapshot?version=V&spend=F`: a [`crate::SnapshotDocument`], signed;
//!   304 when nothing changed within [`LONG_POLL`].
//! - `POST /gateway/v1/logs` `{"batch": id, "entries": [LogEntry, ...]}` → [`LogReceipt`].
//! - `POST /gateway/v1/spend` [`SpendBatch`] → [`SpendReceipt`].

use std::time::Duration;

/// One subject's charges in one budget period, as a gateway delivers them: the store's own
/// type, whose serde form (the subject as `key:name` text) is the wire's.
pub use portico_store::SpendDelta;
use serde::{Deserialize, Serialize};

/// The snapshot endpoint, under the control plane's address.
pub const SNAPSHOT_PATH: &str = "/gateway/v1/snapshot";
/// The request-log endpoint.
pub const LOGS_PATH: &str = "/gateway/v1/logs";
/// The spend endpoint.
pub const SPEND_PATH: &str = "/gateway/v1/spend";
/// The header carrying the catalog version of a snapshot answer (also in its body).
pub const VERSION_HEADER: &str = "x-portico-snapshot-version";

/// The longest a snapshot request waits for a change before the control plane answers 304
/// (or, when its spend moved, a fresh snapshot). Below common proxies' idle timeouts.
pub const LONG_POLL: Duration = Duration::from_secs(25);

/// How soon after a change of its spend the control plane answers a waiting snapshot
/// request whose spend fingerprint is out of date: how stale a gateway's view of the other
/// gateways' spend gets while the link is up (a shorter time costs a snapshot per gateway
/// that often under steady traffic).
pub const SPEND_REFRESH: Duration = Duration::from_secs(5);

/// How many log entries the control plane stored of a delivered batch (ids it already had
/// are skipped, so a batch delivered twice is stored once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogReceipt {
    /// Entries in the batch.
    pub received: u64,
    /// Entries newly stored.
    pub stored: u64,
}

/// A gateway's charges since its last batch, under an id the control plane applies once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendBatch {
    /// A UUID v7: unique, and ordered by creation.
    pub batch: String,
    /// The charges, one per subject and period.
    pub deltas: Vec<SpendDelta>,
}

/// The control plane's answer to a [`SpendBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendReceipt {
    /// `false` when the batch had been applied before (a resend after a lost answer).
    pub applied: bool,
    /// The control plane's clock once the batch is in its ledger, Unix ms: a snapshot whose
    /// `spend_at_ms` is later includes it.
    pub applied_at_ms: i64,
}
