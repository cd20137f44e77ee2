//! Analytics in SQL: one grouped query sums each (bucket, group) and computes its latency
//! percentiles with `percentile_disc`, plus one more row (a grouping set of its own) with
//! the percentiles over every matching request. So the answer is a few hundred rows
//! whatever the number of requests, and no latency leaves the database.
//!
//! `percentile_disc(p)` is the smallest value with at least a fraction `p` of the values at
//! or below it: exactly the nearest rank that SQLite's answer computes in Rust
//! ([`crate::Percentiles::of_sorted`]), so both stores answer the same numbers.

use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder, Row as _};

use super::search::push_filter;
use crate::analytics::BucketGroup;
use crate::sql::to_u64;
use crate::{Analytics, AnalyticsQuery, GroupBy, LogError, Percentiles};

pub(super) async fn analytics(
    pool: &PgPool,
    query: &AnalyticsQuery,
) -> Result<Analytics, LogError> {
    let width = query.interval.ms();
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT bucket, grp, GROUPING(bucket, grp) <> 0 AS total, count(*) AS requests, \
         count(*) FILTER (WHERE status >= 400) AS errors, \
         coalesce(sum(prompt_tokens), 0)::int8 AS prompt_tokens, \
         coalesce(sum(completion_tokens), 0)::int8 AS completion_tokens, \
         coalesce(sum(cost_usd), 0)::float8 AS cost_usd, \
         count(*) FILTER (WHERE cost_usd IS NULL AND status < 400) AS unpriced, \
         percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS latency \
         FROM (SELECT (created_at / ",
    );
    qb.push_bind(width)
        .push(") * ")
        .push_bind(width)
        .push(" AS bucket, ");
    match &query.group_by {
        None => qb.push("NULL::text"),
        Some(GroupBy::Model) => qb.push("model"),
        Some(GroupBy::Provider) => qb.push("provider"),
        Some(GroupBy::Key) => qb.push("key_name"),
        Some(GroupBy::User) => qb.push("end_user"),
        Some(GroupBy::Metadata(key)) => qb.push("metadata ->> ").push_bind(key.clone()),
    };
    qb.push(" AS grp, status, prompt_tokens, completion_tokens, cost_usd, latency_ms FROM logs");
    push_filter(&mut qb, &query.filter);
    // Groups in SQLite's order: bytewise, requests without a value first.
    qb.push(
        ") AS matching GROUP BY GROUPING SETS ((bucket, grp), ()) \
         ORDER BY total, bucket, grp COLLATE \"C\" NULLS FIRST",
    );
    let rows = qb.build().fetch_all(pool).await?;
    let mut groups = Vec::with_capacity(rows.len());
    let mut total_latency = None;
    for row in rows {
        let latency: Option<Vec<i64>> = row.try_get("latency")?;
        let percentiles = latency.and_then(|p| match p[..] {
            [p50, p95, p99] => Some(Percentiles {
                p50: to_u64(p50),
                p95: to_u64(p95),
                p99: to_u64(p99),
            }),
            _ => None,
        });
        if row.try_get("total")? {
            total_latency = percentiles;
            continue;
        }
        groups.push(BucketGroup {
            bucket_ms: row.try_get("bucket")?,
            group: row.try_get("grp")?,
            requests: to_u64(row.try_get("requests")?),
            errors: to_u64(row.try_get("errors")?),
            prompt_tokens: to_u64(row.try_get("prompt_tokens")?),
            completion_tokens: to_u64(row.try_get("completion_tokens")?),
            cost_usd: row.try_get("cost_usd")?,
            unpriced_requests: to_u64(row.try_get("unpriced")?),
            latencies: Vec::new(),
            percentiles,
        });
    }
    Ok(Analytics::from_percentiles(query, groups, total_latency))
}
