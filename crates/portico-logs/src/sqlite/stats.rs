//! Analytics in SQL: one grouped query sums each (bucket, group) and hands over its latencies
//! as one `group_concat` string, so 100,000 requests cost a few hundred rows to decode, not
//! 100,000.

use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Row as _, Sqlite};

use super::search::push_filter;
use crate::analytics::BucketGroup;
use crate::sql::to_u64;
use crate::{Analytics, AnalyticsQuery, GroupBy, LogError};

pub(super) async fn analytics(
    pool: &SqlitePool,
    query: &AnalyticsQuery,
) -> Result<Analytics, LogError> {
    let width = query.interval.ms();
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT (created_at / ");
    qb.push_bind(width)
        .push(") * ")
        .push_bind(width)
        .push(" AS bucket, ");
    match &query.group_by {
        None => qb.push("NULL"),
        Some(GroupBy::Model) => qb.push("model"),
        Some(GroupBy::Provider) => qb.push("provider"),
        Some(GroupBy::Key) => qb.push("key_name"),
        Some(GroupBy::User) => qb.push("user"),
        Some(GroupBy::Metadata(_)) => qb.push("g.value"),
    };
    qb.push(
        " AS grp, count(*) AS requests, \
         coalesce(sum(status >= 400), 0) AS errors, \
         coalesce(sum(prompt_tokens), 0) AS prompt_tokens, \
         coalesce(sum(completion_tokens), 0) AS completion_tokens, \
         total(cost_usd) AS cost_usd, \
         coalesce(sum(cost_usd IS NULL AND status < 400), 0) AS unpriced, \
         group_concat(latency_ms) AS latencies FROM logs",
    );
    if let Some(GroupBy::Metadata(key)) = &query.group_by {
        // One primary-key lookup per row for the group's value.
        qb.push(" LEFT JOIN log_metadata g ON g.log_seq = logs.seq AND g.key = ")
            .push_bind(key.clone());
    }
    push_filter(&mut qb, &query.filter);
    qb.push(" GROUP BY bucket, grp ORDER BY bucket, grp");
    let rows = qb.build().fetch_all(pool).await?;
    let mut groups = Vec::with_capacity(rows.len());
    for row in rows {
        let latencies: Option<String> = row.try_get("latencies")?;
        groups.push(BucketGroup {
            bucket_ms: row.try_get("bucket")?,
            group: row.try_get("grp")?,
            requests: to_u64(row.try_get("requests")?),
            errors: to_u64(row.try_get("errors")?),
            prompt_tokens: to_u64(row.try_get("prompt_tokens")?),
            completion_tokens: to_u64(row.try_get("completion_tokens")?),
            cost_usd: row.try_get("cost_usd")?,
            unpriced_requests: to_u64(row.try_get("unpriced")?),
            latencies: latencies
                .unwrap_or_default()
                .split(',')
                .filter_map(|n| n.parse().ok())
                .collect(),
            percentiles: None,
        });
    }
    Ok(Analytics::build(query, groups))
}
