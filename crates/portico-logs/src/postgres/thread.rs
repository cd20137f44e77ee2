//! [`PgWriter`]: the thread that inserts the request log's batches into PostgreSQL.
//!
//! Encoding a batch (one array per column, the JSON of each entry's attempts and metadata,
//! the wire protocol) is the PostgreSQL log's CPU. Done by sqlx on the request runtime, it
//! took turns with request handling on the same thread, and a gateway on PostgreSQL served
//! 16% fewer requests a second at saturation than one on SQLite, whose writer has a thread of
//! its own (docs/performance.md). This writer is the same arrangement for PostgreSQL: a thread
//! at a lower priority ([`crate::priority`]), with a runtime of its own and a connection of its
//! own, fed batches over a channel; the request runtime only hands a batch over and awaits the
//! answer.

use std::sync::{Arc, Mutex};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};

use crate::priority::lower_priority;
use crate::{LogEntry, LogError};

type Job = (Arc<[LogEntry]>, oneshot::Sender<Result<u64, LogError>>);

/// The handle to the writer thread. [`PgWriter::close`] (or dropping it) ends the thread once
/// the batches handed to it are written.
#[derive(Debug)]
pub(super) struct PgWriter {
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    exited: Mutex<Option<oneshot::Receiver<()>>>,
}

impl PgWriter {
    /// Starts the thread; its connection is opened (and reopened after a failure) by its own
    /// pool when the first batch comes.
    pub(super) fn start(options: PgConnectOptions) -> Result<PgWriter, LogError> {
        // Unbounded: the pipeline hands over one batch at a time and waits for its answer.
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        let (exited_tx, exited) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("portico-logpg".into())
            .spawn(move || {
                lower_priority();
                runtime.block_on(async move {
                    let pool = PgPoolOptions::new()
                        .max_connections(1)
                        .connect_lazy_with(options);
                    while let Some((entries, reply)) = rx.recv().await {
                        let _ = reply.send(super::writer::insert(&pool, &entries).await);
                    }
                    pool.close().await;
                });
                let _ = exited_tx.send(());
            })?;
        Ok(PgWriter {
            jobs: Mutex::new(Some(jobs)),
            exited: Mutex::new(Some(exited)),
        })
    }

    /// Inserts `entries` in one transaction on the writer thread; answers how many were new.
    pub(super) async fn insert(&self, entries: Arc<[LogEntry]>) -> Result<u64, LogError> {
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
    pub(super) async fn close(&self) {
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
