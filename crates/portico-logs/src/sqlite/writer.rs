//! The one thread that inserts into `logs.db` ([`start`]).
//!
//! Writing is where the request log spends nearly all its CPU, so it is done the cheapest way
//! SQLite offers: one connection on a thread of its own, one prepared statement per table,
//! reused for every row, bound straight from the entry's fields, one transaction per batch.
//! Through sqlx's async pool the same batch cost a statement build and parse per chunk, a boxed
//! argument per bound value and a hand-off to the connection's thread per statement; here a
//! batch costs one hand-off in and one reply out (docs/performance.md has the numbers).
//!
//! The thread is a [`WriterThread`]: a lower priority than the request path, batches handed
//! over and answered through a channel.
//!
//! Reads, pruning and migrations stay on the sqlx pool: they are rare and async suits them.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};

use super::metadata_text;
use crate::sql::to_i64;
use crate::writer_thread::WriterThread;
use crate::{LogEntry, LogError};

const INSERT_LOG: &str = "INSERT INTO logs (id, created_at, trace_id, key_name, user, provider, \
     model, endpoint, status, stream, outcome, latency_ms, upstream_latency_ms, ttft_ms, \
     prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_usd, \
     cache_status, retry_count, target, config_id, error_code, error, metadata, attempts, \
     guardrails, cache_saved_usd, cache_similarity, gateway) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
     ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, \
     ?25, ?26, ?27, ?28, ?29, ?30, ?31) \
     ON CONFLICT (id) DO NOTHING";
const INSERT_METADATA: &str = "INSERT INTO log_metadata (log_seq, key, value) VALUES (?1, ?2, ?3)";
const INSERT_PAYLOAD: &str = "INSERT INTO log_payloads (log_seq, request, request_size, \
     response, response_size) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Opens a connection to the (already migrated) database at `path` and starts the writer
/// thread on it.
pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<WriterThread, LogError> {
    let mut conn = open(path, busy_timeout)?;
    WriterThread::start("portico-logdb", move |mut jobs| {
        // One transaction per batch, until every handle is gone.
        while let Some((entries, reply)) = jobs.blocking_recv() {
            let _ = reply.send(insert(&mut conn, &entries).map_err(sqlite_error));
        }
    })
}

fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, LogError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
    // WAL is a property of the file (set by the pool when it created it); synchronous is per
    // connection: NORMAL, as on the pool, commits without an fsync (WAL stays consistent).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite_error)?;
    Ok(conn)
}

fn insert(conn: &mut Connection, entries: &[LogEntry]) -> rusqlite::Result<u64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut new = 0;
    {
        let mut logs = tx.prepare_cached(INSERT_LOG)?;
        let mut metadata = tx.prepare_cached(INSERT_METADATA)?;
        let mut payloads = tx.prepare_cached(INSERT_PAYLOAD)?;
        for e in entries {
            let (meta, attempts, guardrails) = encode_json(e)?;
            let inserted = logs.execute(params![
                e.id,
                e.created_at_ms,
                e.trace_id,
                e.key_name,
                e.user,
                e.provider,
                e.model,
                e.endpoint,
                i64::from(e.status),
                e.stream,
                e.outcome,
                to_i64(e.latency_ms),
                e.upstream_latency_ms.map(to_i64),
                e.ttft_ms.map(to_i64),
                e.prompt_tokens.map(to_i64),
                e.completion_tokens.map(to_i64),
                e.cached_tokens.map(to_i64),
                e.cache_write_tokens.map(to_i64),
                e.cost_usd,
                e.cache_status,
                i64::from(e.retry_count),
                e.target,
                e.config_id,
                e.error_code,
                e.error,
                meta,
                attempts,
                guardrails,
                e.cache_saved_usd,
                e.cache_similarity,
                e.gateway,
            ])?;
            // An id already stored (a spill replayed twice) is skipped with its side rows.
            if inserted == 0 {
                continue;
            }
            new += 1;
            let seq = tx.last_insert_rowid();
            for (key, value) in e.metadata.iter().flatten() {
                metadata.execute(params![seq, key, metadata_text(value)])?;
            }
            if e.request.is_some() || e.response.is_some() {
                let size = |p: &Option<crate::Payload>| p.as_ref().map(|p| to_i64(p.size));
                payloads.execute(params![
                    seq,
                    e.request.as_ref().map(|p| &p.bytes[..]),
                    size(&e.request),
                    e.response.as_ref().map(|p| &p.bytes[..]),
                    size(&e.response),
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(new)
}

/// The JSON-text columns of `e`: metadata, attempts, guardrails.
fn encode_json(e: &LogEntry) -> rusqlite::Result<(Option<String>, String, Option<String>)> {
    let json = |err: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(err));
    Ok((
        e.metadata
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json)?,
        serde_json::to_string(&e.attempts).map_err(json)?,
        e.guardrails
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(json)?,
    ))
}

fn sqlite_error(err: rusqlite::Error) -> LogError {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            LogError::Corrupt(err.to_string())
        }
        _ => LogError::Write(err.to_string()),
    }
}
