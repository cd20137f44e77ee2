//! [`LogHealth`]: the state of the request log's storage as `/readyz` and `/metrics` show it,
//! and [`LogHealthSource`], what reports it.
//!
//! The request log (portico-logs) keeps these figures; the server's `/readyz` and the
//! metrics (portico-metrics) read them through the trait, so neither depends on the other.

/// The request log's storage, as of now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHealth {
    /// Whether the last write to the log store (a batch, or a replay of the spill file)
    /// succeeded. `true` until a write has failed.
    pub up: bool,
    /// Batch writes and replays that failed since start.
    pub write_errors: u64,
    /// Records that went to the spill file (queue full, or a failed write) since start.
    pub spilled: u64,
    /// Records read back from the spill file and stored since start.
    pub replayed: u64,
    /// Records that could be neither written nor spilled since start.
    pub lost: u64,
    /// Bytes waiting to be replayed: the spill files and the spill lines held in memory.
    pub spill_pending_bytes: u64,
    /// The last failure (write, replay, or a repair at start), with its time in Unix
    /// milliseconds; kept after the store recovers.
    pub last_error: Option<(String, i64)>,
}

/// Reports the request log's [`LogHealth`]; cheap enough to call per scrape.
pub trait LogHealthSource: Send + Sync + 'static {
    /// The state now.
    fn log_health(&self) -> LogHealth;
}
