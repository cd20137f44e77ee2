//! [`SqliteLogStore`]: the [`LogStore`] on its own SQLite file, `logs.db` in the data dir.
//!
//! A separate file from the catalog's `portico.db`: log write batches never take the catalog's
//! write lock, and the log's retention and vacuuming stay independent of it. WAL journal, so
//! searches read while the writer writes; `auto_vacuum = INCREMENTAL`, so pruning can give
//! space back a little at a time.
//!
//! Queries are plain `sqlx::query` with binds, built with `QueryBuilder` where filters vary.
//! Inserting lives in `writer` (its own thread and connection, through rusqlite), reading in
//! `search`, analytics in `stats`, pruning in `prune`.

mod prune;
mod search;
mod stats;
#[cfg(test)]
mod tests;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::sql::to_u64;
use crate::writer_thread::WriterThread;
use crate::{
    Analytics, AnalyticsQuery, LogDetail, LogEntry, LogError, LogPage, LogQuery, LogStore,
    Retention,
};

/// How long a writer waits for another one (the pruner) before "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// One writer, and a few readers beside it (WAL).
const MAX_CONNECTIONS: u32 = 4;

/// The request log on SQLite. Cheap to clone: clones share the pool and the writer.
#[derive(Debug, Clone)]
pub struct SqliteLogStore {
    /// Reads, analytics, pruning and migrations.
    pool: SqlitePool,
    /// Inserts: a thread of its own (`writer.rs`).
    writer: Arc<WriterThread>,
}

impl SqliteLogStore {
    /// Opens (creating if missing) the log database at `path` and runs its migrations, with
    /// the default busy timeout (10 s).
    pub async fn open(path: &Path) -> Result<SqliteLogStore, LogError> {
        SqliteLogStore::open_with(path, BUSY_TIMEOUT).await
    }

    /// Opens (creating if missing) the log database at `path` and runs its migrations.
    /// `busy_timeout` is how long a write waits for another writer (another process holding
    /// the file, the pruner) before it fails with "database is locked" and its batch goes to
    /// the spill file.
    ///
    /// The file is created `0600` before SQLite (sqlx's pool, then the writer's rusqlite
    /// connection) opens it, so its `-wal` and `-shm` are too: SQLite gives them the
    /// database's mode. An older, looser file is tightened.
    pub async fn open_with(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<SqliteLogStore, LogError> {
        portico_store::private_files::prepare_sqlite_file(path).map_err(sqlx::Error::Io)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Takes effect only on a new, empty file, which is when it must be chosen.
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .busy_timeout(busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        // The files directly in `migrations/`: sqlx does not descend into `postgres/`.
        if let Err(err) = sqlx::migrate!("./migrations").run(&pool).await {
            pool.close().await;
            return Err(err.into());
        }
        let writer = match writer::start(path, busy_timeout) {
            Ok(writer) => writer,
            Err(err) => {
                pool.close().await;
                return Err(err);
            }
        };
        Ok(SqliteLogStore {
            pool,
            writer: Arc::new(writer),
        })
    }

    /// Opens the log database as [`SqliteLogStore::open_with`] does; a file SQLite finds
    /// corrupt or not a database at all is moved aside, to `<file>.corrupt-<unix seconds>`
    /// (its `-wal` beside it), and a fresh one is created. Answers the store and, when it
    /// repaired, the message saying so (to report loudly: the old records are in the moved
    /// file, no longer searchable). Any other failure (a file locked by another process
    /// past the busy timeout, a directory that cannot be written) is returned as it is.
    pub async fn open_or_repair(
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<(SqliteLogStore, Option<String>), LogError> {
        let err = match SqliteLogStore::open_with(path, busy_timeout).await {
            Ok(store) => return Ok((store, None)),
            Err(err) if err.is_corrupt() => err,
            Err(err) => return Err(err),
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = path.with_file_name(format!(
            "{}.corrupt-{stamp}",
            path.file_name()
                .map_or_else(|| "logs.db".into(), |n| n.to_string_lossy())
        ));
        std::fs::rename(path, &aside)?;
        let sibling = |p: &Path, suffix: &str| {
            let mut name = p.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        // The WAL belongs to the old file; the shared-memory index is rebuilt from it.
        if sibling(path, "-wal").exists() {
            std::fs::rename(sibling(path, "-wal"), sibling(&aside, "-wal"))?;
        }
        let _ = std::fs::remove_file(sibling(path, "-shm"));
        let store = SqliteLogStore::open_with(path, busy_timeout).await?;
        Ok((
            store,
            Some(format!(
                "{} was corrupt at start ({err}); it was moved aside to {} and a fresh request log created: the records before it are in the moved file, not in search",
                path.display(),
                aside.display()
            )),
        ))
    }
}

/// A metadata value as stored in the side table: a string as itself, anything else as JSON.
pub(crate) fn metadata_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl LogStore for SqliteLogStore {
    async fn insert(&self, entries: Arc<[LogEntry]>) -> Result<u64, LogError> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.writer.insert(entries).await
    }

    async fn search(&self, query: &LogQuery) -> Result<LogPage, LogError> {
        search::search(&self.pool, query).await
    }

    async fn get(&self, id: &str) -> Result<Option<LogDetail>, LogError> {
        search::get(&self.pool, id).await
    }

    async fn analytics(&self, query: &AnalyticsQuery) -> Result<Analytics, LogError> {
        stats::analytics(&self.pool, query).await
    }

    async fn prune(&self, retention: &Retention, now_ms: i64) -> Result<u64, LogError> {
        prune::prune(&self.pool, retention, now_ms).await
    }

    async fn count(&self) -> Result<u64, LogError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
            .fetch_one(&self.pool)
            .await?;
        Ok(to_u64(n))
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}
