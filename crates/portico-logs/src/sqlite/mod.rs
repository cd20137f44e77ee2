//! [`SqliteLogStore`]: the [`LogStore`] on its own SQLite file, `logs.db` in the data dir.
//!
//! A separate file from the catalog's `portico.db`: log write batches never take the catalog's
//! write lock, and the log's retention and vacuuming stay independent of it. WAL journal, so
//! searches read while the writer writes; `auto_vacuum = INCREMENTAL`, so pruning can give
//! space back a little at a time.
//!
//! Queries are plain `sqlx::query` with binds, built with `QueryBuilder` where filters vary.
//! Writing lives here, reading in `search`, analytics in `stats`, pruning in `prune`.

mod prune;
mod search;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::{
    Analytics, AnalyticsQuery, LogDetail, LogEntry, LogError, LogPage, LogQuery, LogStore, Payload,
    Retention,
};

/// How long a writer waits for another one (the pruner) before "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// One writer, and a few readers beside it (WAL).
const MAX_CONNECTIONS: u32 = 4;

/// The request log on SQLite. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteLogStore {
    pool: SqlitePool,
}

impl SqliteLogStore {
    /// Opens (creating if missing) the log database at `path` and runs its migrations.
    pub async fn open(path: &Path) -> Result<SqliteLogStore, LogError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Takes effect only on a new, empty file, which is when it must be chosen.
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        SqliteLogStore::init(pool).await
    }

    /// A private in-memory log, for tests. Lost when dropped.
    pub async fn open_in_memory() -> Result<SqliteLogStore, LogError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // An in-memory database lives as long as its one connection: never let it be closed.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        SqliteLogStore::init(pool).await
    }

    async fn init(pool: SqlitePool) -> Result<SqliteLogStore, LogError> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteLogStore { pool })
    }
}

/// SQLite integers are signed; counts and milliseconds beyond i64 do not occur.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A metadata value as stored in the side table: a string as itself, anything else as JSON.
pub(crate) fn metadata_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Entries per multi-row `INSERT`: 28 binds each, far below SQLite's 32,766 limit, and few
/// enough statements that a batch costs a handful of round trips to the database thread.
const ROWS_PER_STATEMENT: usize = 100;

/// Inserts `chunk` with one statement per table; answers how many entries were new.
async fn insert_chunk<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    chunk: &'a [LogEntry],
) -> Result<u64, LogError> {
    let mut encoded = Vec::with_capacity(chunk.len());
    for e in chunk {
        encoded.push((
            e.metadata.as_ref().map(serde_json::to_string).transpose()?,
            serde_json::to_string(&e.attempts)?,
            e.guardrails
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
        ));
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO logs (id, created_at, trace_id, key_name, user, provider, model, endpoint, \
         status, stream, outcome, latency_ms, upstream_latency_ms, ttft_ms, prompt_tokens, \
         completion_tokens, cached_tokens, cache_write_tokens, cost_usd, cache_status, \
         retry_count, target, config_id, error_code, error, metadata, attempts, guardrails) ",
    );
    qb.push_values(
        chunk.iter().zip(encoded),
        |mut row, (e, (metadata, attempts, guardrails))| {
            row.push_bind(e.id.as_str())
                .push_bind(e.created_at_ms)
                .push_bind(e.trace_id.as_str())
                .push_bind(e.key_name.as_deref())
                .push_bind(e.user.as_deref())
                .push_bind(e.provider.as_deref())
                .push_bind(e.model.as_deref())
                .push_bind(e.endpoint.as_str())
                .push_bind(i64::from(e.status))
                .push_bind(e.stream)
                .push_bind(e.outcome.as_str())
                .push_bind(to_i64(e.latency_ms))
                .push_bind(e.upstream_latency_ms.map(to_i64))
                .push_bind(e.ttft_ms.map(to_i64))
                .push_bind(e.prompt_tokens.map(to_i64))
                .push_bind(e.completion_tokens.map(to_i64))
                .push_bind(e.cached_tokens.map(to_i64))
                .push_bind(e.cache_write_tokens.map(to_i64))
                .push_bind(e.cost_usd)
                .push_bind(e.cache_status.as_deref())
                .push_bind(i64::from(e.retry_count))
                .push_bind(e.target.as_deref())
                .push_bind(e.config_id.as_deref())
                .push_bind(e.error_code.as_deref())
                .push_bind(e.error.as_deref())
                .push_bind(metadata)
                .push_bind(attempts)
                .push_bind(guardrails);
        },
    );
    // Ids already stored (a spill replayed twice) are skipped; RETURNING names the new ones.
    qb.push(" ON CONFLICT (id) DO NOTHING RETURNING seq, id");
    let inserted: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut **tx).await?;
    let mut seqs: HashMap<String, i64> = inserted.into_iter().map(|(seq, id)| (id, seq)).collect();
    let new = seqs.len() as u64;
    // Each new row once (a repeated id within the chunk takes its first entry's side rows).
    let rows: Vec<(i64, &LogEntry)> = chunk
        .iter()
        .filter_map(|e| Some((seqs.remove(&e.id)?, e)))
        .collect();

    let metadata: Vec<(i64, &String, String)> = rows
        .iter()
        .flat_map(|(seq, e)| {
            e.metadata
                .iter()
                .flatten()
                .map(move |(k, v)| (*seq, k, metadata_text(v)))
        })
        .collect();
    for part in metadata.chunks(ROWS_PER_STATEMENT * 3) {
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO log_metadata (log_seq, key, value) ");
        qb.push_values(part, |mut row, (seq, key, value)| {
            row.push_bind(*seq)
                .push_bind(key.as_str())
                .push_bind(value.clone());
        });
        qb.build().execute(&mut **tx).await?;
    }

    let payloads: Vec<&(i64, &LogEntry)> = rows
        .iter()
        .filter(|(_, e)| e.request.is_some() || e.response.is_some())
        .collect();
    for part in payloads.chunks(ROWS_PER_STATEMENT) {
        let bytes = |p: &'a Option<Payload>| p.as_ref().map(|p| &p.bytes[..]);
        let size = |p: &Option<Payload>| p.as_ref().map(|p| to_i64(p.size));
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO log_payloads (log_seq, request, request_size, response, response_size) ",
        );
        qb.push_values(part, |mut row, (seq, e)| {
            row.push_bind(*seq)
                .push_bind(bytes(&e.request))
                .push_bind(size(&e.request))
                .push_bind(bytes(&e.response))
                .push_bind(size(&e.response));
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(new)
}

#[async_trait]
impl LogStore for SqliteLogStore {
    async fn insert(&self, entries: &[LogEntry]) -> Result<u64, LogError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut inserted = 0;
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            inserted += insert_chunk(&mut tx, chunk).await?;
        }
        tx.commit().await?;
        Ok(inserted)
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
        self.pool.close().await;
    }
}
