//! Retention: deleting what the settings no longer keep, at most [`BATCH`] entries (and their
//! payloads) per statement, each statement its own short transaction.
//!
//! Both limits become one boundary in the newest-first order, and everything at or before
//! it goes: for an age, the last millisecond before the cutoff; for a row count, the newest
//! entry beyond the `max_rows` newest. A boundary never moves older as time passes or rows
//! arrive, so several processes pruning at once delete only what each of them would have:
//! none deletes an entry that another's newer view still keeps. `SKIP LOCKED` lets them
//! share the batches instead of queueing on each other's row locks.

use sqlx::postgres::PgPool;

use crate::sql::{to_i64, to_u64};
use crate::{LogError, Retention};

/// Entries deleted per statement.
const BATCH: i64 = 1000;
const DAY_MS: i64 = 86_400_000;

const DELETE_BATCH: &str = "WITH doomed AS (\
         SELECT seq FROM logs WHERE (created_at, seq) <= ($1, $2) \
         ORDER BY created_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED), \
     gone AS (DELETE FROM logs WHERE seq IN (SELECT seq FROM doomed) RETURNING seq), \
     payloads AS (DELETE FROM log_payloads WHERE log_seq IN (SELECT seq FROM gone)) \
     SELECT count(*) FROM gone";

pub(super) async fn prune(
    pool: &PgPool,
    retention: &Retention,
    now_ms: i64,
) -> Result<u64, LogError> {
    let mut deleted = 0;
    if let Some(days) = retention.max_age_days {
        let cutoff = now_ms.saturating_sub(i64::from(days) * DAY_MS);
        deleted += delete_through(pool, cutoff.saturating_sub(1), i64::MAX).await?;
    }
    if let Some(max_rows) = retention.max_rows {
        // One walk of the newest `max_rows` index entries, once per round.
        let edge: Option<(i64, i64)> = sqlx::query_as(
            "SELECT created_at, seq FROM logs ORDER BY created_at DESC, seq DESC \
             OFFSET $1 LIMIT 1",
        )
        .bind(to_i64(max_rows))
        .fetch_optional(pool)
        .await?;
        if let Some((created_at, seq)) = edge {
            deleted += delete_through(pool, created_at, seq).await?;
        }
    }
    Ok(deleted)
}

/// Deletes every entry at or before (`created_at`, `seq`), a batch at a time.
async fn delete_through(pool: &PgPool, created_at: i64, seq: i64) -> Result<u64, LogError> {
    let mut deleted = 0;
    loop {
        let done: i64 = sqlx::query_scalar(DELETE_BATCH)
            .bind(created_at)
            .bind(seq)
            .bind(BATCH)
            .fetch_one(pool)
            .await?;
        if done == 0 {
            return Ok(deleted);
        }
        deleted += to_u64(done);
        tokio::task::yield_now().await;
    }
}
