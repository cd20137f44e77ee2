//! Inserting a batch: two statements in one transaction, whatever the batch's size.
//!
//! The entries go as one array per column into `INSERT INTO logs ... SELECT FROM UNNEST(...)
//! ON CONFLICT (id) DO NOTHING RETURNING seq, id`: one statement, parsed and planned once per
//! connection (its text never changes) and 31 parameters however many rows, where a
//! multi-row `VALUES` list would be a new statement for every batch size and would run out
//! of parameters (65,535) at about 2,100 rows. The rows it returns are the new ones; only
//! their payloads are sent, with a second `UNNEST` insert.
//!
//! Rows are inserted in id order (an id appearing twice in a batch is kept as first given,
//! as on SQLite). Two processes writing overlapping batches at once (a gateway's delivery
//! retried to another process) then wait on each other's ids in the same order, never in a
//! cycle, so neither is aborted as a deadlock. The same order numbers `seq`, which breaks
//! the ties of entries stored with the same millisecond: on PostgreSQL they list in id
//! order (time order, for UUID v7 ids).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use sqlx::PgPool;

use crate::sql::to_i64;
use crate::{LogEntry, LogError, Payload};

const INSERT_LOGS: &str = "INSERT INTO logs (id, created_at, trace_id, key_name, gateway, \
     end_user, provider, model, endpoint, status, stream, outcome, latency_ms, \
     upstream_latency_ms, ttft_ms, prompt_tokens, completion_tokens, cached_tokens, \
     cache_write_tokens, cost_usd, cache_status, cache_saved_usd, cache_similarity, \
     retry_count, target, config_id, error_code, error, metadata, attempts, guardrails) \
     SELECT id, created_at, trace_id, key_name, gateway, end_user, provider, model, endpoint, \
     status, stream, outcome, latency_ms, upstream_latency_ms, ttft_ms, prompt_tokens, \
     completion_tokens, cached_tokens, cache_write_tokens, cost_usd, cache_status, \
     cache_saved_usd, cache_similarity, retry_count, target, config_id, error_code, error, \
     metadata::jsonb, attempts::json, guardrails::json \
     FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::int4[], $11::bool[], $12::text[], $13::int8[], \
     $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[], \
     $20::float8[], $21::text[], $22::float8[], $23::float8[], $24::int4[], $25::text[], \
     $26::text[], $27::text[], $28::text[], $29::text[], $30::text[], $31::text[]) \
     WITH ORDINALITY AS t(id, created_at, trace_id, key_name, gateway, end_user, provider, \
     model, endpoint, status, stream, outcome, latency_ms, upstream_latency_ms, ttft_ms, \
     prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost_usd, \
     cache_status, cache_saved_usd, cache_similarity, retry_count, target, config_id, \
     error_code, error, metadata, attempts, guardrails, ord) \
     ORDER BY ord \
     ON CONFLICT (id) DO NOTHING \
     RETURNING seq, id";

const INSERT_PAYLOADS: &str = "INSERT INTO log_payloads (log_seq, request, request_size, \
     response, response_size) \
     SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::int8[], $4::bytea[], $5::int8[])";

/// Inserts `entries` in one transaction; answers how many were new.
pub(super) async fn insert(pool: &PgPool, entries: &[LogEntry]) -> Result<u64, LogError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let mut seen = HashSet::with_capacity(entries.len());
    let mut rows: Vec<(Cow<'_, str>, &LogEntry)> = entries
        .iter()
        .map(|e| (text(&e.id), e))
        .filter(|(id, _)| seen.insert(id.clone()))
        .collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_ref()).collect();
    let entries: Vec<&LogEntry> = rows.iter().map(|(_, e)| *e).collect();
    let metadata = entries
        .iter()
        .map(|e| e.metadata.as_ref().map(metadata_json).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let attempts = entries
        .iter()
        .map(|e| serde_json::to_string(&e.attempts))
        .collect::<Result<Vec<_>, _>>()?;
    let guardrails = entries
        .iter()
        .map(|e| e.guardrails.as_ref().map(serde_json::to_string).transpose())
        .collect::<Result<Vec<_>, _>>()?;

    let mut tx = pool.begin().await?;
    let inserted: Vec<(i64, String)> = sqlx::query_as(INSERT_LOGS)
        .bind(&ids)
        .bind(column(&entries, |e| e.created_at_ms))
        .bind(column(&entries, |e| text(&e.trace_id)))
        .bind(column(&entries, |e| e.key_name.as_deref().map(text)))
        .bind(column(&entries, |e| e.gateway.as_deref().map(text)))
        .bind(column(&entries, |e| e.user.as_deref().map(text)))
        .bind(column(&entries, |e| e.provider.as_deref().map(text)))
        .bind(column(&entries, |e| e.model.as_deref().map(text)))
        .bind(column(&entries, |e| text(&e.endpoint)))
        .bind(column(&entries, |e| i32::from(e.status)))
        .bind(column(&entries, |e| e.stream))
        .bind(column(&entries, |e| text(&e.outcome)))
        .bind(column(&entries, |e| to_i64(e.latency_ms)))
        .bind(column(&entries, |e| e.upstream_latency_ms.map(to_i64)))
        .bind(column(&entries, |e| e.ttft_ms.map(to_i64)))
        .bind(column(&entries, |e| e.prompt_tokens.map(to_i64)))
        .bind(column(&entries, |e| e.completion_tokens.map(to_i64)))
        .bind(column(&entries, |e| e.cached_tokens.map(to_i64)))
        .bind(column(&entries, |e| e.cache_write_tokens.map(to_i64)))
        .bind(column(&entries, |e| e.cost_usd))
        .bind(column(&entries, |e| e.cache_status.as_deref().map(text)))
        .bind(column(&entries, |e| e.cache_saved_usd))
        .bind(column(&entries, |e| e.cache_similarity))
        .bind(column(&entries, |e| {
            i32::try_from(e.retry_count).unwrap_or(i32::MAX)
        }))
        .bind(column(&entries, |e| e.target.as_deref().map(text)))
        .bind(column(&entries, |e| e.config_id.as_deref().map(text)))
        .bind(column(&entries, |e| e.error_code.as_deref().map(text)))
        .bind(column(&entries, |e| e.error.as_deref().map(text)))
        .bind(metadata)
        .bind(attempts)
        .bind(guardrails)
        .fetch_all(&mut *tx)
        .await?;

    let by_id: HashMap<&str, &LogEntry> =
        ids.iter().copied().zip(entries.iter().copied()).collect();
    let mut payloads = Payloads::default();
    for (seq, id) in &inserted {
        if let Some(e) = by_id.get(id.as_str()) {
            payloads.push(*seq, e);
        }
    }
    if !payloads.seqs.is_empty() {
        sqlx::query(INSERT_PAYLOADS)
            .bind(payloads.seqs)
            .bind(payloads.requests)
            .bind(payloads.request_sizes)
            .bind(payloads.responses)
            .bind(payloads.response_sizes)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(inserted.len() as u64)
}

/// The new rows' payloads, one array per column.
#[derive(Default)]
struct Payloads<'a> {
    seqs: Vec<i64>,
    requests: Vec<Option<&'a [u8]>>,
    request_sizes: Vec<Option<i64>>,
    responses: Vec<Option<&'a [u8]>>,
    response_sizes: Vec<Option<i64>>,
}

impl<'a> Payloads<'a> {
    /// Adds the row `seq` if `e` has a payload (an entry without one has no row, as on
    /// SQLite).
    fn push(&mut self, seq: i64, e: &'a LogEntry) {
        if e.request.is_none() && e.response.is_none() {
            return;
        }
        let bytes = |p: &'a Option<Payload>| p.as_ref().map(|p| &p.bytes[..]);
        let size = |p: &Option<Payload>| p.as_ref().map(|p| to_i64(p.size));
        self.seqs.push(seq);
        self.requests.push(bytes(&e.request));
        self.request_sizes.push(size(&e.request));
        self.responses.push(bytes(&e.response));
        self.response_sizes.push(size(&e.response));
    }
}

/// One column of the batch, as the array bound for it.
fn column<'a, T>(entries: &[&'a LogEntry], f: impl Fn(&'a LogEntry) -> T) -> Vec<T> {
    entries.iter().map(|e| f(e)).collect()
}

/// `s` as PostgreSQL text can hold it: a NUL character (which no text column accepts, and
/// which would fail the whole batch, again at every retry) becomes U+FFFD.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The metadata as JSON text that `jsonb` accepts: it refuses `\u0000` in strings and keys
/// (the `json` columns keep the text as is and take it). Rebuilt only when the fast check
/// sees the escape; a literal backslash before `u0000` costs a rebuild that changes nothing.
fn metadata_json(
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(metadata)?;
    if !json.contains("\\u0000") {
        return Ok(json);
    }
    serde_json::to_string(&without_nul(serde_json::Value::Object(metadata.clone())))
}

fn without_nul(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(text(&s).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (text(&k).into_owned(), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn nul_characters_become_replacement_characters_in_text_and_metadata() {
        assert!(matches!(text("plain"), Cow::Borrowed("plain")));
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        let metadata = serde_json::json!({"te\u{0}am": ["x\u{0}", {"k": "\u{0}"}], "n": 1});
        let json = metadata_json(metadata.as_object().unwrap()).unwrap();
        assert!(!json.contains("\\u0000"), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"te\u{FFFD}am": ["x\u{FFFD}", {"k": "\u{FFFD}"}], "n": 1})
        );
        // A backslash followed by `u0000` is text, not a NUL: kept as it was.
        let literal = serde_json::json!({"path": "C:\\u0000"});
        let json = metadata_json(literal.as_object().unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap(),
            literal
        );
    }
}
