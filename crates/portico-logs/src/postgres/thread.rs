//! The thread that inserts the request log's batches into PostgreSQL ([`start`]).
//!
//! Encoding a batch (one array per column, the JSON of each entry's attempts and metadata,
//! the wire protocol) is the PostgreSQL log's CPU. Done by sqlx on the request runtime, it
//! took turns with request handling on the same thread, and a gateway on PostgreSQL served
//! 16% fewer requests a second at saturation than one on SQLite, whose writer has a thread of
//! its own (docs/performance.md). This is the same arrangement for PostgreSQL: a
//! [`WriterThread`] with a runtime of its own and a connection of its own.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::LogError;
use crate::writer_thread::WriterThread;

/// Starts the writer thread; its connection is opened (and opened again after a failure) by
/// its own pool when the first batch comes.
pub(super) fn start(options: PgConnectOptions) -> Result<WriterThread, LogError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    WriterThread::start("portico-logpg", move |mut jobs| {
        runtime.block_on(async move {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            while let Some((entries, reply)) = jobs.recv().await {
                let _ = reply.send(super::writer::insert(&pool, &entries).await);
            }
            pool.close().await;
        });
    })
}
