//! [`PgLogStore`]: the [`LogStore`] on PostgreSQL, for scale-out deployments where many
//! `portico serve` processes share one database (`PORTICO_DATABASE_URL=postgres://...`): an
//! entry written by one process is listed by all, and an entry delivered twice (a spill file
//! replayed, a hybrid gateway's batch retried to another process) is stored once.
//!
//! Layout. The tables live in a schema of their own, `portico_logs`, first on every
//! connection's search path, with their own `_sqlx_migrations` beside them: the catalog store
//! keeps its tables and its migration history in `public` of the same database, and two
//! histories numbered from 1 in one table would each refuse the other's checksums. The
//! migrations are in `migrations/postgres/`; `logs` holds one row per request, every
//! filterable field a plain column with an index ending in `(created_at, seq)` (so a filtered
//! page is one backward index scan and the cursor a row comparison on those columns),
//! `metadata` is JSONB with a GIN index that `metadata.<k>=<v>` uses through `@>`, and the
//! payloads are BYTEA in `log_payloads`, which list queries never read.
//!
//! Retention: pruned by age and by row count (the [`Retention`] settings, as on SQLite), not
//! partitioned by time. Partitions would make dropping a day of entries cheap, but the
//! request log needs things partitions make hard: a unique `id` across the whole table (a
//! unique index on a partitioned table must include the partition key, and `ON CONFLICT
//! (id)` is what makes a replay harmless), `get(id)` as one index lookup rather than one per
//! partition, and `max_rows` (which no partition boundary expresses). Nor would partitions
//! need no upkeep: each day's would have to be created ahead of time, by one process of
//! many. Pruning deletes at most a thousand entries per statement (each its own
//! transaction, with `SKIP LOCKED`, so processes pruning at once share the work instead of
//! waiting on each other) and autovacuum gives the space back to new rows.
//!
//! Writing: one multi-row `INSERT ... SELECT FROM UNNEST(<one array per column>) ON CONFLICT
//! (id) DO NOTHING RETURNING` per batch, and one more for the new rows' payloads, in one
//! transaction (`writer`), on a thread of its own at a lower priority with a connection of
//! its own (`thread`), as SQLite's writer. Reading in `search`, analytics in `stats` (percentiles computed by
//! the database), pruning in `prune`.
//!
//! What differs from SQLite, observably: PostgreSQL text cannot hold a NUL character, so one
//! in a stored string (an upstream's error message, a metadata value) is stored as U+FFFD
//! rather than failing the whole batch; `q` is matched with `ILIKE`, case-insensitive beyond
//! ASCII; and the ties of one millisecond are ordered by id (see `writer`).

mod prune;
mod search;
mod stats;
#[cfg(test)]
mod tests;
mod thread;
mod writer;

use std::str::FromStr as _;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::sql::to_u64;
use crate::writer_thread::WriterThread;
use crate::{
    Analytics, AnalyticsQuery, LogDetail, LogEntry, LogError, LogPage, LogQuery, LogStore,
    Retention,
};

/// The schema the log's tables (and their migration history) live in.
const SCHEMA: &str = "portico_logs";
/// Serialises creating [`SCHEMA`] among processes starting at once ("portlogs" in ASCII).
const SCHEMA_LOCK: i64 = 0x706f_7274_6c6f_6773;
/// Inserts, reads, analytics and the pruner of one process; many processes share the server,
/// whose `max_connections` (100 by default) is the budget.
const MAX_CONNECTIONS: u32 = 8;

/// The request log on PostgreSQL. Cheap to clone: clones share the pool and the writer.
#[derive(Debug, Clone)]
pub struct PgLogStore {
    pool: PgPool,
    /// Inserts: a thread of its own (`thread.rs`).
    writer: Arc<WriterThread>,
}

impl PgLogStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`), creates the
    /// `portico_logs` schema if it is missing and runs the log's migrations.
    ///
    /// Processes started together may all call this on one empty database: creating the
    /// schema and migrating are each serialised by an advisory lock, so each finds the
    /// other's work done. The database role needs `CREATE` on the database, unless the
    /// schema was created beforehand (then `CREATE` on the schema suffices).
    pub async fn connect(url: &str) -> Result<PgLogStore, LogError> {
        let options = PgConnectOptions::from_str(url)?.options([("search_path", SCHEMA)]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        create_schema(&pool).await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let writer = Arc::new(thread::start(options)?);
        Ok(PgLogStore { pool, writer })
    }
}

/// Creates [`SCHEMA`] unless it exists. Checked first, so that a role allowed to create
/// tables in a schema an administrator made, but not to create schemas, still starts;
/// `CREATE SCHEMA IF NOT EXISTS` alone is not safe when two processes run it at once (one
/// fails on the catalog's unique index), hence the lock.
async fn create_schema(pool: &PgPool) -> Result<(), LogError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(SCHEMA)
            .fetch_one(pool)
            .await?;
    if exists {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl LogStore for PgLogStore {
    async fn insert(&self, entries: Arc<[LogEntry]>) -> Result<u64, LogError> {
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
