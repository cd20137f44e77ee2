//! Reading the log: the filtered, newest-first list and one entry with its payloads.

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row as _, Sqlite};

use crate::sql::{like_pattern, page, payload_from, summary_from_row};
use crate::store::payload_value;
use crate::{LogDetail, LogError, LogFilter, LogPage, LogQuery, Payload, StatusFilter};

/// The columns a [`LogSummary`] is read from, in `summary_from_row`'s order.
const SUMMARY_COLUMNS: &str = "seq, id, created_at, trace_id, metadata, key_name, user, \
    provider, model, endpoint, status, stream, outcome, latency_ms, upstream_latency_ms, \
    ttft_ms, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_usd, \
    cache_status, retry_count, target, config_id, attempts, guardrails, error_code, error, \
    cache_saved_usd, cache_similarity, gateway";

/// Appends ` WHERE ...` for `filter` (always a WHERE, so callers can append `AND ...`).
pub(super) fn push_filter(qb: &mut QueryBuilder<'_, Sqlite>, filter: &LogFilter) {
    qb.push(" WHERE 1 = 1");
    let columns = [
        ("trace_id", &filter.trace_id),
        ("key_name", &filter.key),
        ("gateway", &filter.gateway),
        ("user", &filter.user),
        ("provider", &filter.provider),
        ("model", &filter.model),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            qb.push(format_args!(" AND {column} = "))
                .push_bind(value.clone());
        }
    }
    for (key, value) in &filter.metadata {
        qb.push(" AND seq IN (SELECT log_seq FROM log_metadata WHERE key = ")
            .push_bind(key.clone())
            .push(" AND value = ")
            .push_bind(value.clone())
            .push(")");
    }
    if let Some(status) = filter.status {
        // `status / 100` matches the expression index `logs_status_class` exactly.
        let (low, _) = status.range();
        qb.push(" AND status / 100 = ")
            .push_bind(i64::from(low / 100));
        if let StatusFilter::Code(code) = status {
            qb.push(" AND status = ").push_bind(i64::from(code));
        }
    }
    if let Some(from) = filter.from_ms {
        qb.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to_ms {
        qb.push(" AND created_at < ").push_bind(to);
    }
    if let Some(q) = &filter.q {
        let pattern = like_pattern(q);
        qb.push(" AND (");
        for (i, column) in ["id", "trace_id", "model", "error"].iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push(format_args!("{column} LIKE "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        qb.push(
            " OR EXISTS (SELECT 1 FROM log_metadata m WHERE m.log_seq = logs.seq AND m.value LIKE ",
        )
        .push_bind(pattern)
        .push(" ESCAPE '\\'))");
    }
}

pub(super) async fn search(pool: &SqlitePool, query: &LogQuery) -> Result<LogPage, LogError> {
    let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {SUMMARY_COLUMNS} FROM logs"));
    push_filter(&mut qb, &query.filter);
    if let Some(cursor) = query.cursor {
        qb.push(" AND (created_at, seq) < (")
            .push_bind(cursor.created_at_ms)
            .push(", ")
            .push_bind(cursor.seq)
            .push(")");
    }
    // One more than asked, to know whether there is a next page.
    qb.push(" ORDER BY created_at DESC, seq DESC LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
    let rows = qb.build().fetch_all(pool).await?;
    let data = rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page(data, query.limit))
}

pub(super) async fn get(pool: &SqlitePool, id: &str) -> Result<Option<LogDetail>, LogError> {
    let row = sqlx::query(&format!("SELECT {SUMMARY_COLUMNS} FROM logs WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let summary = summary_from_row(&row)?;
    let payloads = sqlx::query(
        "SELECT request, request_size, response, response_size FROM log_payloads WHERE log_seq = ?",
    )
    .bind(summary.seq)
    .fetch_optional(pool)
    .await?;
    let (request, response) = match payloads {
        Some(row) => (
            payload_from(row.try_get(0)?, row.try_get(1)?),
            payload_from(row.try_get(2)?, row.try_get(3)?),
        ),
        None => (None, None),
    };
    Ok(Some(LogDetail {
        summary,
        request_truncated: request.as_ref().is_some_and(Payload::truncated),
        response_truncated: response.as_ref().is_some_and(Payload::truncated),
        request: request.as_ref().map(payload_value),
        response: response.as_ref().map(payload_value),
    }))
}
