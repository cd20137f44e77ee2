//! What both stores' SQL shares: integer conversions, the `q` pattern, stored payloads.

use crate::Payload;

/// Database integers are signed; counts and milliseconds beyond i64 do not occur.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored count or duration; negative only if the row was written by something else.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `q` as a `LIKE` pattern that matches it anywhere: its `%`, `_` and `\` match themselves
/// (with `ESCAPE '\'`).
pub(crate) fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A payload as read back: the kept bytes and the size before truncation (the kept length
/// when the size was not recorded).
pub(crate) fn payload_from(bytes: Option<Vec<u8>>, size: Option<i64>) -> Option<Payload> {
    let bytes = bytes?;
    let size = size.map_or(bytes.len() as u64, to_u64);
    Some(Payload {
        bytes: bytes.into(),
        size,
    })
}

/// A [`crate::LogSummary`] from a row of either store, read by column name. Each store's
/// `SUMMARY_COLUMNS` names the columns alike and gives them the same Rust types (integers as
/// 64-bit, JSON as text), so one reader serves both.
pub(crate) fn summary_from_row<R>(row: &R) -> Result<crate::LogSummary, crate::LogError>
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let json = |column: &str| -> Result<Option<serde_json::Value>, crate::LogError> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    };
    let opt_u64 = |column: &str| -> Result<Option<u64>, crate::LogError> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(to_u64))
    };
    let created_at_ms: i64 = row.try_get("created_at")?;
    let status: i64 = row.try_get("status")?;
    let retry_count: i64 = row.try_get("retry_count")?;
    Ok(crate::LogSummary {
        id: row.try_get("id")?,
        created_at: crate::rfc3339_ms(created_at_ms),
        trace_id: row.try_get("trace_id")?,
        metadata: json("metadata")?,
        key_name: row.try_get("key_name")?,
        gateway: row.try_get("gateway")?,
        user: row.try_get("user")?,
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        endpoint: row.try_get("endpoint")?,
        status: u16::try_from(status).unwrap_or(0),
        stream: row.try_get("stream")?,
        outcome: row.try_get("outcome")?,
        latency_ms: to_u64(row.try_get("latency_ms")?),
        upstream_latency_ms: opt_u64("upstream_latency_ms")?,
        ttft_ms: opt_u64("ttft_ms")?,
        prompt_tokens: opt_u64("prompt_tokens")?,
        completion_tokens: opt_u64("completion_tokens")?,
        cached_tokens: opt_u64("cached_tokens")?,
        cache_write_tokens: opt_u64("cache_write_tokens")?,
        cost_usd: row.try_get("cost_usd")?,
        cache_status: row.try_get("cache_status")?,
        cache_saved_usd: row.try_get("cache_saved_usd")?,
        cache_similarity: row.try_get("cache_similarity")?,
        retry_count: u32::try_from(retry_count).unwrap_or(0),
        target: row.try_get("target")?,
        config_id: row.try_get("config_id")?,
        attempts: json("attempts")?.unwrap_or_else(|| serde_json::json!([])),
        guardrails: json("guardrails")?,
        error_code: row.try_get("error_code")?,
        error: row.try_get("error")?,
        created_at_ms,
        seq: row.try_get("seq")?,
    })
}

/// A page of the list from the rows of a query that asked for one more than `limit`: the
/// extra row, when it came, says there is a next page, which starts after the last kept one.
pub(crate) fn page(mut data: Vec<crate::LogSummary>, limit: u32) -> crate::LogPage {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if data.len() > limit {
        data.truncate(limit);
        data.last().map(|last| {
            crate::Cursor {
                created_at_ms: last.created_at_ms,
                seq: last.seq,
            }
            .encode()
        })
    } else {
        None
    };
    crate::LogPage { data, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_match_themselves() {
        assert_eq!(like_pattern(r"100%_\x"), r"%100\%\_\\x%");
    }
}
