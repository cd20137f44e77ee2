//! The spill file: where records go when the write queue is full (or closed for shutdown).
//!
//! `logs-spill.jsonl` in the data dir, one [`LogEntry`] JSON line each. The line is encoded
//! before the mutex is taken, and appended to a 64 KiB buffer under it, so a request that
//! spills holds the lock for a copy, not a system call. The writer flushes the buffer within a
//! second (and at shutdown); a crash can lose at most that buffer, as it loses the queue.
//! To replay it, the writer first
//! renames it to `logs-spill.replay.jsonl` (so new spills start a fresh file), inserts its
//! lines, and deletes it. A replay file left by a crash is replayed first on the next start;
//! inserts skip ids already stored, so a replay cut short is simply repeated.
//!
//! The file holds whole payloads, so it is created `0600` (and an older one tightened); the
//! replay file is the same file renamed, so it keeps that mode.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{LogEntry, LogError};

/// The spill file and its replay twin.
#[derive(Debug)]
pub(crate) struct Spill {
    path: PathBuf,
    replay_path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
    /// Set when something is waiting to be replayed.
    pending: AtomicBool,
}

impl Spill {
    /// The spill file at `path`; notes whether an earlier run left lines to replay, and
    /// makes files an older version left readable by others private.
    pub(crate) fn new(path: PathBuf) -> Spill {
        let replay_path = path.with_extension("replay.jsonl");
        portico_store::private_files::tighten(&path);
        portico_store::private_files::tighten(&replay_path);
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
            None => file.insert(BufWriter::with_capacity(
                64 * 1024,
                portico_store::private_files::open_append(&self.path)?,
            )),
        };
        open.write_all(&line)?;
        self.pending.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes buffered lines to the file.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = &mut *file {
            open.flush()?;
        }
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
        if let Some(open) = &mut *file {
            open.flush()?;
        }
        self.pending.store(false, Ordering::Release);
        if self.replay_path.exists() {
            // The spill file (if any) waits for the next round.
            if non_empty(&self.path) {
                self.pending.store(true, Ordering::Release);
            }
            return Ok(Some(self.replay_path.clone()));
        }
        // New lines go to a new file from here on.
        *file = None;
        if !self.path.exists() {
            return Ok(None);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::RequestRecord;

    fn entry(id: &str) -> LogEntry {
        LogEntry::from_record(RequestRecord::new(id.into(), 1, "chat.completions"), 10)
    }

    fn ids(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<LogEntry>(l).unwrap().id)
            .collect()
    }

    #[test]
    fn a_replay_takes_what_was_spilled_and_later_lines_start_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().join("logs-spill.jsonl"));
        assert!(!spill.pending());
        assert_eq!(spill.take().unwrap(), None);
        spill.append(&entry("a")).unwrap();
        spill.append(&entry("b")).unwrap();
        assert!(spill.pending());
        let taken = spill.take().unwrap().unwrap();
        assert_eq!(ids(&taken), ["a", "b"], "take flushes the buffer first");
        assert!(!spill.pending());
        spill.append(&entry("c")).unwrap();
        // The leftover replay file comes first; the new line waits for the next round.
        assert_eq!(spill.take().unwrap().unwrap(), taken);
        assert!(spill.pending());
        spill.done(&taken).unwrap();
        let next = spill.take().unwrap().unwrap();
        assert_eq!(ids(&next), ["c"]);
        spill.done(&next).unwrap();
        // A new Spill on the same path sees nothing left.
        assert!(!Spill::new(dir.path().join("logs-spill.jsonl")).pending());
    }

    #[cfg(unix)]
    #[test]
    fn the_spill_file_and_its_replay_twin_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs-spill.jsonl");
        let spill = Spill::new(path.clone());
        spill.append(&entry("a")).unwrap();
        spill.flush().unwrap();
        assert_eq!(mode(&path), 0o600);
        let taken = spill.take().unwrap().unwrap();
        assert_eq!(mode(&taken), 0o600);
        // Files an older version left world-readable are made private at start.
        let old = dir.path().join("old-spill.jsonl");
        let old_replay = dir.path().join("old-spill.replay.jsonl");
        for file in [&old, &old_replay] {
            std::fs::write(file, b"").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        drop(Spill::new(old.clone()));
        assert_eq!((mode(&old), mode(&old_replay)), (0o600, 0o600));
    }

    #[test]
    fn a_spill_left_by_an_earlier_run_is_pending_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs-spill.jsonl");
        let first = Spill::new(path.clone());
        first.append(&entry("a")).unwrap();
        first.flush().unwrap();
        assert!(Spill::new(path).pending());
    }
}
