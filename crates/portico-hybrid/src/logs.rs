//! [`RemoteLogStore`]: the [`LogStore`] of a gateway, which writes to its control plane.
//!
//! The gateway runs the same [`portico_logs::LogPipeline`] as `portico serve`, with this
//! store underneath: each batch the pipeline writes is POSTed to `/gateway/v1/logs`, and the
//! control plane answers once the entries are stored. When the control plane cannot be
//! reached the insert fails, and the pipeline does what it does for any failed write: it
//! keeps the entries in its spill file (`logs-spill.jsonl` in the data dir) and replays it
//! later, also after a restart. Delivery is exactly once because the control plane skips ids
//! it already stored: an entry delivered but whose answer was lost is replayed harmlessly.
//!
//! A failed delivery is retried for [`RETRY_FOR`] before the insert fails: the pipeline logs
//! an error for every failed batch, and an unreachable control plane would otherwise fill
//! the gateway's log with one per batch; meanwhile new entries wait in the pipeline's bounded
//! queue, or go straight to the spill file once it is full. [`RemoteLogStore::stop`] ends
//! the retries, for the pipeline's last writes at shutdown.
//!
//! Reads are the control plane's (its admin API lists every gateway's requests); asked here,
//! they answer an error that says so.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portico_logs::{
    Analytics, AnalyticsQuery, LogDetail, LogEntry, LogError, LogPage, LogQuery, LogStore,
    Retention,
};

use tokio_util::sync::CancellationToken;

use crate::client::{ControlPlane, SyncError};
use crate::wire::LogReceipt;

/// How long a failed delivery is retried before the batch goes to the spill file.
const RETRY_FOR: Duration = Duration::from_secs(2);
/// The first wait between tries; doubled up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Roughly how many bytes of entries one POST carries (payloads are base64 in JSON, a third
/// more); a larger batch is sent in several, an entry larger than this alone.
const MAX_POST_BYTES: usize = 8 * 1024 * 1024;

/// The request log of a gateway: its control plane's.
#[derive(Debug, Clone)]
pub struct RemoteLogStore {
    control_plane: Arc<ControlPlane>,
    /// Cancelled at shutdown: failed deliveries are not retried from then on.
    stopping: CancellationToken,
}

impl RemoteLogStore {
    /// Entries go to `control_plane`.
    pub fn new(control_plane: Arc<ControlPlane>) -> RemoteLogStore {
        RemoteLogStore {
            control_plane,
            stopping: CancellationToken::new(),
        }
    }

    /// From now on a failed delivery fails at once (its entries go to the spill file): call
    /// it before the pipeline's shutdown, so that an unreachable control plane does not hold
    /// the process up. Shared by every clone.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Delivers one chunk, retrying a control plane that is unreachable or unavailable for
    /// [`RETRY_FOR`].
    async fn deliver(&self, batch: &str, chunk: &[LogEntry]) -> Result<LogReceipt, SyncError> {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut wait = FIRST_WAIT;
        loop {
            let err = match self.control_plane.deliver_logs(batch, chunk).await {
                Ok(receipt) => return Ok(receipt),
                Err(err) => err,
            };
            let retryable = matches!(
                err,
                SyncError::Unreachable(_) | SyncError::Status { status: 500.., .. }
            );
            if !retryable
                || self.stopping.is_cancelled()
                || tokio::time::Instant::now() + wait > deadline
            {
                return Err(err);
            }
            tokio::select! {
                () = self.stopping.cancelled() => return Err(err),
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(MAX_WAIT);
        }
    }

    fn elsewhere(&self) -> LogError {
        LogError::Write(format!(
            "a gateway's request log is kept by its control plane: read it at {}/admin/v1/logs",
            self.control_plane.url()
        ))
    }
}

/// `entries` cut into runs of at most [`MAX_POST_BYTES`] (by their in-memory size).
fn chunks(entries: &[LogEntry]) -> Vec<&[LogEntry]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let entry_size = entry.memory_size();
        if i > start && size + entry_size > MAX_POST_BYTES {
            out.push(&entries[start..i]);
            (start, size) = (i, 0);
        }
        size += entry_size;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

#[async_trait]
impl LogStore for RemoteLogStore {
    async fn insert(&self, entries: Arc<[LogEntry]>) -> Result<u64, LogError> {
        let mut stored = 0;
        for chunk in chunks(&entries) {
            let batch = uuid::Uuid::now_v7().to_string();
            let receipt = self.deliver(&batch, chunk).await.map_err(|e| {
                LogError::Write(format!(
                    "the control plane at {} {e}",
                    self.control_plane.url()
                ))
            })?;
            stored += receipt.stored;
        }
        Ok(stored)
    }

    async fn search(&self, _query: &LogQuery) -> Result<LogPage, LogError> {
        Err(self.elsewhere())
    }

    async fn get(&self, _id: &str) -> Result<Option<LogDetail>, LogError> {
        Err(self.elsewhere())
    }

    async fn analytics(&self, _query: &AnalyticsQuery) -> Result<Analytics, LogError> {
        Err(self.elsewhere())
    }

    /// Nothing is kept here; the control plane's retention applies.
    async fn prune(&self, _retention: &Retention, _now_ms: i64) -> Result<u64, LogError> {
        Ok(0)
    }

    async fn count(&self) -> Result<u64, LogError> {
        Err(self.elsewhere())
    }

    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use portico_core::RequestRecord;
    use portico_logs::Payload;

    use super::*;

    fn entry(id: &str, payload: usize) -> LogEntry {
        let mut e = LogEntry::from_record(RequestRecord::new(id.into(), 1, "chat.completions"), 0);
        if payload > 0 {
            e.request = Some(Payload::capped(Bytes::from(vec![b'x'; payload]), payload));
        }
        e
    }

    #[test]
    fn large_batches_are_cut_and_a_large_entry_goes_alone() {
        let small: Vec<LogEntry> = (0..5).map(|i| entry(&i.to_string(), 0)).collect();
        assert_eq!(chunks(&small).len(), 1);
        assert!(chunks(&[]).is_empty());
        let big = MAX_POST_BYTES / 2 + 1;
        let mixed = vec![
            entry("a", big),
            entry("b", big),
            entry("c", 0),
            entry("d", 3 * big),
        ];
        let cut = chunks(&mixed);
        let ids: Vec<Vec<&str>> = cut
            .iter()
            .map(|c| c.iter().map(|e| e.id.as_str()).collect())
            .collect();
        assert_eq!(ids, [vec!["a"], vec!["b", "c"], vec!["d"]]);
    }
}
