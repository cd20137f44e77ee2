//! The spill file: where records go when the write queue is full (or closed for shutdown).
//!
//! `logs-spill.jsonl` in the data dir, one [`LogEntry`] JSON line each, appended under a
//! mutex with one `write` call per line (no buffer to lose). To replay it, the writer first
//! renames it to `logs-spill.replay.jsonl` (so new spills start a fresh file), inserts its
//! lines, and deletes it. A replay file left by a crash is replayed first on the next start;
//! inserts skip ids already stored, so a replay cut short is simply repeated.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{LogEntry, LogError};

/// The spill file and its replay twin.
#[derive(Debug)]
pub(crate) struct Spill {
    path: PathBuf,
    replay_path: PathBuf,
    file: Mutex<Option<File>>,
    /// Set when something is waiting to be replayed.
    pending: AtomicBool,
}

impl Spill {
    /// The spill file at `path`; notes whether an earlier run left lines to replay.
    pub(crate) fn new(path: PathBuf) -> Spill {
        let replay_path = path.with_extension("replay.jsonl");
        let pending = non_empty(&path) || non_empty(&replay_path);
        Spill {
            path,
            replay_path,
            file: Mutex::new(None),
            pending: AtomicBool::new(pending),
        }
    }

    /// Appends `entry` as one line.
    pub(crate) fn append(&self, entry: &LogEntry) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let open = match &mut *file {
            Some(open) => open,
            None => file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        open.write_all(&line)?;
        self.pending.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether lines are waiting to be replayed.
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Marks the spill as still waiting (after a failed replay).
    pub(crate) fn set_pending(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// The file to replay now, if any: a replay file left over, or else the spill file,
    /// renamed so that new lines go to a fresh one.
    pub(crate) fn take(&self) -> Result<Option<PathBuf>, LogError> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        self.pending.store(false, Ordering::Release);
        if self.replay_path.exists() {
            // The spill file (if any) waits for the next round.
            if non_empty(&self.path) {
                self.pending.store(true, Ordering::Release);
            }
            return Ok(Some(self.replay_path.clone()));
        }
        if !self.path.exists() {
            return Ok(None);
        }
        *file = None;
        std::fs::rename(&self.path, &self.replay_path)?;
        Ok(Some(self.replay_path.clone()))
    }

    /// The replay file is in the database: remove it.
    pub(crate) fn done(&self, replayed: &Path) -> Result<(), LogError> {
        std::fs::remove_file(replayed)?;
        Ok(())
    }
}

fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}
