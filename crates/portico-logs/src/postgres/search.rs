//! Reading the log: the filtered, newest-first list and one entry with its payloads.

use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder, Row as _};

use crate::sql::{like_pattern, page, payload_from, summary_from_row};
use crate::store::payload_value;
use crate::{LogDetail, LogError, LogFilter, LogPage, LogQuery, Payload, StatusFilter};

/// The columns a [`LogSummary`] is read from (by name, in `sql::summary_from_row`, under
/// the names and types SQLite's have). The JSON columns come as text: the workspace's sqlx has no `json` feature, and `serde_json` reads
/// the text as fast as it would read the value.
const SUMMARY_COLUMNS: &str = "seq, id, created_at, trace_id, metadata::text AS metadata, \
    key_name, gateway, end_user AS \"user\", provider, model, endpoint, \
    status::bigint AS status, stream, outcome, latency_ms, upstream_latency_ms, ttft_ms, \
    prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_usd, \
    cache_status, cache_saved_usd, cache_similarity, retry_count::bigint AS retry_count, \
    target, config_id, attempts::text AS attempts, guardrails::text AS guardrails, error_code, \
    error";

/// Appends ` WHERE ...` for `filter` (always a WHERE, so callers can append `AND ...`).
pub(super) fn push_filter(qb: &mut QueryBuilder<'_, Postgres>, filter: &LogFilter) {
    qb.push(" WHERE TRUE");
    let columns = [
        ("trace_id", &filter.trace_id),
        ("key_name", &filter.key),
        ("gateway", &filter.gateway),
        ("end_user", &filter.user),
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
        // Containment, so the GIN index on `metadata` answers it. Metadata values are
        // strings (the engine refuses others); a value stored as a number or boolean still
        // matches its text, as SQLite's text column does.
        qb.push(" AND (metadata @> ")
            .push_bind(contained(key, serde_json::Value::String(value.clone())))
            .push("::jsonb");
        if let Some(scalar) = non_string_scalar(value) {
            qb.push(" OR metadata @> ")
                .push_bind(contained(key, scalar))
                .push("::jsonb");
        }
        qb.push(")");
    }
    if let Some(status) = filter.status {
        // `status / 100` matches the expression index `logs_status_class` exactly.
        let (low, _) = status.range();
        qb.push(" AND status / 100 = ")
            .push_bind(i32::from(low / 100));
        if let StatusFilter::Code(code) = status {
            qb.push(" AND status = ").push_bind(i32::from(code));
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
            qb.push(format_args!("{column} ILIKE "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        qb.push(" OR EXISTS (SELECT 1 FROM jsonb_each_text(metadata) m WHERE m.value ILIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'))");
    }
}

/// `{"<key>": <value>}` as JSON text.
fn contained(key: &str, value: serde_json::Value) -> String {
    let mut object = serde_json::Map::with_capacity(1);
    object.insert(key.to_owned(), value);
    serde_json::Value::Object(object).to_string()
}

/// `value` read as a JSON number, boolean or null, if it is one.
fn non_string_scalar(value: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .filter(|v| v.is_number() || v.is_boolean() || v.is_null())
}

pub(super) async fn search(pool: &PgPool, query: &LogQuery) -> Result<LogPage, LogError> {
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {SUMMARY_COLUMNS} FROM logs"));
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

pub(super) async fn get(pool: &PgPool, id: &str) -> Result<Option<LogDetail>, LogError> {
    // No stored id holds a NUL (the writer replaces it), and PostgreSQL would refuse the
    // parameter: not found, as SQLite answers.
    if id.contains('\0') {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS}, p.request, p.request_size, p.response, p.response_size \
         FROM logs LEFT JOIN log_payloads p ON p.log_seq = logs.seq WHERE logs.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let summary = summary_from_row(&row)?;
    let request = payload_from(row.try_get("request")?, row.try_get("request_size")?);
    let response = payload_from(row.try_get("response")?, row.try_get("response_size")?);
    Ok(Some(LogDetail {
        summary,
        request_truncated: request.as_ref().is_some_and(Payload::truncated),
        response_truncated: response.as_ref().is_some_and(Payload::truncated),
        request: request.as_ref().map(payload_value),
        response: response.as_ref().map(payload_value),
    }))
}
