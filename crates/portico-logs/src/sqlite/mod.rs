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

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

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

async fn insert_one(tx: &mut Transaction<'_, Sqlite>, e: &LogEntry) -> Result<bool, LogError> {
    let metadata = e.metadata.as_ref().map(serde_json::to_string).transpose()?;
    let attempts = serde_json::to_string(&e.attempts)?;
    let guardrails = e
        .guardrails
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let seq: Option<i64> = sqlx::query_scalar(
        "INSERT INTO logs (id, created_at, trace_id, key_name, user, provider, model, endpoint, \
         status, stream, outcome, latency_ms, upstream_latency_ms, ttft_ms, prompt_tokens, \
         completion_tokens, cached_tokens, cache_write_tokens, cost_usd, cache_status, \
         retry_count, target, config_id, error_code, error, metadata, attempts, guardrails) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING RETURNING seq",
    )
    .bind(&e.id)
    .bind(e.created_at_ms)
    .bind(&e.trace_id)
    .bind(&e.key_name)
    .bind(&e.user)
    .bind(&e.provider)
    .bind(&e.model)
    .bind(&e.endpoint)
    .bind(i64::from(e.status))
    .bind(e.stream)
    .bind(&e.outcome)
    .bind(to_i64(e.latency_ms))
    .bind(e.upstream_latency_ms.map(to_i64))
    .bind(e.ttft_ms.map(to_i64))
    .bind(e.prompt_tokens.map(to_i64))
    .bind(e.completion_tokens.map(to_i64))
    .bind(e.cached_tokens.map(to_i64))
    .bind(e.cache_write_tokens.map(to_i64))
    .bind(e.cost_usd)
    .bind(&e.cache_status)
    .bind(i64::from(e.retry_count))
    .bind(&e.target)
    .bind(&e.config_id)
    .bind(&e.error_code)
    .bind(&e.error)
    .bind(metadata)
    .bind(attempts)
    .bind(guardrails)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(seq) = seq else {
        return Ok(false);
    };
    for (key, value) in e.metadata.iter().flatten() {
        sqlx::query("INSERT INTO log_metadata (log_seq, key, value) VALUES (?, ?, ?)")
            .bind(seq)
            .bind(key)
            .bind(metadata_text(value))
            .execute(&mut **tx)
            .await?;
    }
    if e.request.is_some() || e.response.is_some() {
        let bytes = |p: &Option<Payload>| p.as_ref().map(|p| p.bytes.to_vec());
        let size = |p: &Option<Payload>| p.as_ref().map(|p| to_i64(p.size));
        sqlx::query(
            "INSERT INTO log_payloads (log_seq, request, request_size, response, response_size) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(bytes(&e.request))
        .bind(size(&e.request))
        .bind(bytes(&e.response))
        .bind(size(&e.response))
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

#[async_trait]
impl LogStore for SqliteLogStore {
    async fn insert(&self, entries: &[LogEntry]) -> Result<u64, LogError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut inserted = 0;
        for entry in entries {
            if insert_one(&mut tx, entry).await? {
                inserted += 1;
            }
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
