//! Retention: deleting old entries a small batch per transaction, so the writer and readers
//! never wait long for the lock.

use sqlx::sqlite::SqlitePool;

use crate::sql::to_i64;
use crate::{LogError, Retention};

/// Entries deleted per transaction.
const BATCH: i64 = 1000;
/// Free pages handed back to the file system after each batch.
const VACUUM_PAGES: i64 = 512;
const DAY_MS: i64 = 86_400_000;

pub(super) async fn prune(
    pool: &SqlitePool,
    retention: &Retention,
    now_ms: i64,
) -> Result<u64, LogError> {
    let mut deleted = 0;
    if let Some(days) = retention.max_age_days {
        let cutoff = now_ms - i64::from(days) * DAY_MS;
        loop {
            let seqs: Vec<i64> = sqlx::query_scalar(
                "SELECT seq FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ?",
            )
            .bind(cutoff)
            .bind(BATCH)
            .fetch_all(pool)
            .await?;
            if seqs.is_empty() {
                break;
            }
            deleted += delete(pool, &seqs).await?;
        }
    }
    if let Some(max_rows) = retention.max_rows {
        loop {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
                .fetch_one(pool)
                .await?;
            let excess = count - to_i64(max_rows);
            if excess <= 0 {
                break;
            }
            let seqs: Vec<i64> =
                sqlx::query_scalar("SELECT seq FROM logs ORDER BY created_at, seq LIMIT ?")
                    .bind(excess.min(BATCH))
                    .fetch_all(pool)
                    .await?;
            if seqs.is_empty() {
                break;
            }
            deleted += delete(pool, &seqs).await?;
        }
    }
    if deleted > 0 {
        // Keeps the query planner's statistics current as the table's shape changes.
        sqlx::query("PRAGMA optimize").execute(pool).await?;
    }
    Ok(deleted)
}

/// Deletes the entries `seqs` and their side rows in one transaction.
async fn delete(pool: &SqlitePool, seqs: &[i64]) -> Result<u64, LogError> {
    let list = serde_json::to_string(seqs)?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query("DELETE FROM logs WHERE seq IN (SELECT value FROM json_each(?))")
        .bind(&list)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    for table in ["log_metadata", "log_payloads"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE log_seq IN (SELECT value FROM json_each(?))"
        ))
        .bind(&list)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    sqlx::query(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))
        .execute(pool)
        .await?;
    tokio::task::yield_now().await;
    Ok(done)
}
