//! [`WriterThread`]: a thread of its own, at a lower priority than the request path, that
//! writes the request log's batches; both stores' writers run on one (SQLite's with rusqlite,
//! PostgreSQL's with a runtime and a connection of its own).
//!
//! Writing is where the request log spends nearly all its CPU. On a thread of its own at nice
//! [`WRITER_NICE`], when it and request handling want the same core the kernel runs request
//! handling first and the writer in the gaps, so a batch being written does not delay the
//! requests that arrive meanwhile. Under sustained overload the writer still gets its share of
//! the core (the kernel never starves a runnable thread), and what it cannot take in time goes
//! to the spill file. The request runtime only hands a batch over and awaits the answer.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::{LogEntry, LogError};

/// The writer threads' nice value (0 is the default; higher runs later).
pub(crate) const WRITER_NICE: i32 = 10;

/// One batch to write, and where its answer (how many entries were new) goes.
pub(crate) type Job = (Arc<[LogEntry]>, oneshot::Sender<Result<u64, LogError>>);

/// The batches handed to a writer thread, in order; `None` once every handle is gone.
pub(crate) type Jobs = mpsc::UnboundedReceiver<Job>;

/// The handle to a writer thread. [`WriterThread::close`] (or dropping it) ends the thread
/// once the batches handed to it are written.
#[derive(Debug)]
pub(crate) struct WriterThread {
    // Unbounded: the pipeline hands over one batch at a time and waits for its answer.
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    exited: Mutex<Option<oneshot::Receiver<()>>>,
}

impl WriterThread {
    /// Starts a thread named `name` at [`WRITER_NICE`] that runs `write` on the batches.
    pub(crate) fn start(
        name: &str,
        write: impl FnOnce(Jobs) + Send + 'static,
    ) -> Result<WriterThread, LogError> {
        let (jobs, rx) = mpsc::unbounded_channel::<Job>();
        let (exited_tx, exited) = oneshot::channel();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                lower_priority();
                write(rx);
                let _ = exited_tx.send(());
            })?;
        Ok(WriterThread {
            jobs: Mutex::new(Some(jobs)),
            exited: Mutex::new(Some(exited)),
        })
    }

    /// Writes `entries` in one transaction on the thread; answers how many were new.
    pub(crate) async fn insert(&self, entries: Arc<[LogEntry]>) -> Result<u64, LogError> {
        let (reply, answer) = oneshot::channel();
        let sent = lock(&self.jobs)
            .as_ref()
            .is_some_and(|jobs| jobs.send((entries, reply)).is_ok());
        if !sent {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Lets the thread finish the batches already handed to it, then waits for it to end.
    pub(crate) async fn close(&self) {
        drop(lock(&self.jobs).take());
        let exited = lock(&self.exited).take();
        if let Some(exited) = exited {
            let _ = exited.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one still holds a valid Option.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn closed() -> LogError {
    LogError::Io(std::io::Error::other("the request log writer has stopped"))
}

/// Lowers the calling thread's scheduling priority to [`WRITER_NICE`] (on Linux, nice is per
/// thread and `setpriority(PRIO_PROCESS, 0)` changes the calling thread only). Best effort:
/// where it cannot be changed, the writer runs at the default priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::process::setpriority_process(None, WRITER_NICE) {
        tracing::debug!("request log writer: cannot lower its priority: {err}");
    }
}
