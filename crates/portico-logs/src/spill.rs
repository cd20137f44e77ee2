//! The spill file: where records go when the write queue is full (or closed for shutdown).
//!
//! `logs-spill.jsonl` in the data dir, one [`LogEntry`] JSON line each. The line is encoded
//! before the mutex is taken and appended to a buffer under it, written out at 64 KiB, so a
//! request that spills mostly holds the lock for a copy, not a system call. The writer
//! flushes the buffer within a second (and at shutdown); a crash can lose at most that
//! buffer, as it loses the queue. To replay it, the writer first renames it to `logs-spill.replay.jsonl` (so new spills start a fresh file), inserts its
//! lines, and deletes it. A replay file left by a crash is replayed first on the next start;
//! inserts skip ids already stored, so a replay cut short is simply repeated.
//!
//! When the file cannot be written (a full disk), lines stay in memory, up to a bound
//! (`--log-spill-memory-bytes`), and are written once it can: a disk that fills and is
//! freed again loses nothing below that bound. Beyond it, records are lost, counted and
//! logged.
//!
//! The file holds whole payloads, so it is created `0600` (and an older one tightened); the
//! replay file is the same file renamed, so it keeps that mode.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{LogEntry, LogError};

/// Buffered lines are written to the file once they reach this many bytes (and by the
/// writer's flush every second).
const FLUSH_AT: usize = 64 * 1024;

/// The spill file and its replay twin.
#[derive(Debug)]
pub(crate) struct Spill {
    path: PathBuf,
    replay_path: PathBuf,
    inner: Mutex<Inner>,
    /// Most bytes of lines held in memory while the file cannot be written.
    max_held: usize,
    /// Set when something is waiting to be replayed.
    pending: AtomicBool,
    /// Bytes held in memory, for the health figures (read without the lock).
    held_bytes: AtomicU64,
}

/// The open file and the lines not yet written to it.
#[derive(Debug, Default)]
struct Inner {
    file: Option<File>,
    buf: Vec<u8>,
    /// The last write failed (a full disk): appends stop trying the file until a flush
    /// succeeds, so a request does not pay a failing system call.
    failing: bool,
}

impl Inner {
    /// Writes the buffered lines to the file (opening it if needed). What a failed write
    /// did not take stays buffered, whole lines or not, so the file gets every byte in order
    /// once the disk has room again.
    fn write_out(&mut self, path: &Path) -> Result<(), LogError> {
        let result = self.try_write_out(path);
        self.failing = result.is_err();
        result
    }

    fn try_write_out(&mut self, path: &Path) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self
                .file
                .insert(portico_store::private_files::open_append(path)?),
        };
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match file.write(&self.buf[written..]) {
                Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            }
        };
        self.buf.drain(..written);
        Ok(result?)
    }
}

impl Spill {
    /// The spill file at `path`, holding at most `max_held` bytes of lines in memory while
    /// the file cannot be written; notes whether an earlier run left lines to replay, and
    /// makes files an older version left readable by others private.
    pub(crate) fn new(path: PathBuf, max_held: usize) -> Spill {
        let replay_path = path.with_extension("replay.jsonl");
        portico_store::private_files::tighten(&path);
        portico_store::private_files::tighten(&replay_path);
        let pending = non_empty(&path) || non_empty(&replay_path);
        Spill {
            path,
            replay_path,
            inner: Mutex::new(Inner::default()),
            max_held: max_held.max(FLUSH_AT),
            pending: AtomicBool::new(pending),
            held_bytes: AtomicU64::new(0),
        }
    }

    /// Appends `entry` as one line: into the buffer, written to the file once the buffer
    /// holds [`FLUSH_AT`] bytes. While the file cannot be written, lines are held in memory
    /// up to the bound; beyond it the entry is refused (the caller counts it lost).
    pub(crate) fn append(&self, entry: &LogEntry) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.buf.len() + line.len() > self.max_held {
            return Err(LogError::Io(std::io::Error::other(format!(
                "the spill file cannot be written and {} bytes of spilled records are already held in memory (--log-spill-memory-bytes)",
                inner.buf.len()
            ))));
        }
        inner.buf.extend_from_slice(&line);
        self.pending.store(true, Ordering::Release);
        if inner.buf.len() >= FLUSH_AT && !inner.failing {
            // A failure keeps the lines held; the writer's next flush tries again.
            let _ = inner.write_out(&self.path);
        }
        self.held_bytes
            .store(inner.buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes buffered lines to the file.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let result = inner.write_out(&self.path);
        self.held_bytes
            .store(inner.buf.len() as u64, Ordering::Relaxed);
        result
    }

    /// Whether the last write to the file failed.
    pub(crate) fn is_failing(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failing
    }

    /// Bytes waiting to be replayed: both files and the lines held in memory.
    pub(crate) fn pending_bytes(&self) -> u64 {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(&self.path) + size(&self.replay_path) + self.held_bytes.load(Ordering::Relaxed)
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
    /// renamed so that new lines go to a fresh one. Fails while buffered lines cannot be
    /// written (they would be missing from the file replayed).
    pub(crate) fn take(&self) -> Result<Option<PathBuf>, LogError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let flushed = inner.write_out(&self.path);
        self.held_bytes
            .store(inner.buf.len() as u64, Ordering::Relaxed);
        flushed?;
        self.pending.store(false, Ordering::Release);
        if self.replay_path.exists() {
            // The spill file (if any) waits for the next round.
            if non_empty(&self.path) {
                self.pending.store(true, Ordering::Release);
            }
            return Ok(Some(self.replay_path.clone()));
        }
        // New lines go to a new file from here on.
        inner.file = None;
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
        let spill = Spill::new(dir.path().join("logs-spill.jsonl"), 1 << 20);
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
        assert!(!Spill::new(dir.path().join("logs-spill.jsonl"), 1 << 20).pending());
    }

    #[cfg(unix)]
    #[test]
    fn the_spill_file_and_its_replay_twin_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs-spill.jsonl");
        let spill = Spill::new(path.clone(), 1 << 20);
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
        drop(Spill::new(old.clone(), 1 << 20));
        assert_eq!((mode(&old), mode(&old_replay)), (0o600, 0o600));
    }

    #[test]
    fn a_spill_left_by_an_earlier_run_is_pending_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs-spill.jsonl");
        let first = Spill::new(path.clone(), 1 << 20);
        first.append(&entry("a")).unwrap();
        first.flush().unwrap();
        assert!(Spill::new(path, 1 << 20).pending());
    }
}
