//! [`Analytics`]: the answer of `GET /admin/v1/analytics`, built from per-bucket aggregates.
//!
//! The store sums counts, tokens and costs per (bucket, group) in SQL. Latency percentiles
//! are exact (nearest rank), per row and over all rows for the totals: SQLite hands over each
//! group's latencies and they are computed here; PostgreSQL computes the same ranks itself
//! (`percentile_disc`) and hands over only the three values.

use serde::Serialize;

use crate::AnalyticsQuery;
use crate::time::rfc3339_s;

/// The analytics answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analytics {
    /// `hour` or `day`.
    pub interval: &'static str,
    /// The grouping asked for, or null.
    pub group_by: Option<String>,
    /// The range's start (inclusive).
    pub from: String,
    /// The range's end (exclusive).
    pub to: String,
    /// Over every request in the range.
    pub totals: Stats,
    /// One row per bucket and group that has requests, by bucket then group.
    pub series: Vec<AnalyticsRow>,
}

/// One bucket of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalyticsRow {
    /// The bucket's start, RFC 3339.
    pub bucket: String,
    /// The group's value (null for requests without one, and when not grouping).
    pub group: Option<String>,
    /// The bucket's numbers.
    #[serde(flatten)]
    pub stats: Stats,
}

/// Requests, errors, tokens, cost and latency of a set of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Stats {
    /// How many requests.
    pub requests: u64,
    /// How many were answered with a status of 400 or above.
    pub errors: u64,
    /// Input tokens, summed.
    pub prompt_tokens: u64,
    /// Output tokens, summed.
    pub completion_tokens: u64,
    /// The known costs, summed, in USD.
    pub cost_usd: f64,
    /// Answered requests (status below 400) whose cost is unknown, so not in `cost_usd`.
    pub unpriced_requests: u64,
    /// Latency percentiles; null when there are no requests.
    pub latency_ms: Option<Percentiles>,
}

/// Exact latency percentiles (nearest rank), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `sorted` (ascending); `None` when it is empty.
    pub fn of_sorted(sorted: &[u64]) -> Option<Percentiles> {
        let rank = |p: u64| -> Option<u64> {
            // The smallest value with at least p% of the values at or below it.
            let n = sorted.len() as u64;
            let r = (p * n).div_ceil(100).max(1);
            sorted.get(usize::try_from(r - 1).ok()?).copied()
        };
        Some(Percentiles {
            p50: rank(50)?,
            p95: rank(95)?,
            p99: rank(99)?,
        })
    }
}

/// The aggregates of one (bucket, group), as the store computes them.
#[derive(Debug, Clone, Default)]
pub(crate) struct BucketGroup {
    pub(crate) bucket_ms: i64,
    pub(crate) group: Option<String>,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) cost_usd: f64,
    pub(crate) unpriced_requests: u64,
    /// Every latency of the bucket's requests, in any order (when the store does not compute
    /// the percentiles itself).
    pub(crate) latencies: Vec<u64>,
    /// The percentiles, when the store computed them; `latencies` is then empty.
    pub(crate) percentiles: Option<Percentiles>,
}

/// Sums of floats drift (0.1 + 0.2); a cost is shown to a billionth of a cent at most.
fn round_cost(usd: f64) -> f64 {
    (usd * 1e11).round() / 1e11
}

impl Analytics {
    /// The answer for `query` from its (bucket, group) aggregates, ordered by bucket, group,
    /// each with its latencies.
    pub(crate) fn build(query: &AnalyticsQuery, mut groups: Vec<BucketGroup>) -> Analytics {
        let mut all_latencies = Vec::new();
        for g in &mut groups {
            g.latencies.sort_unstable();
            g.percentiles = Percentiles::of_sorted(&g.latencies);
            all_latencies.extend_from_slice(&g.latencies);
        }
        all_latencies.sort_unstable();
        Analytics::from_percentiles(query, groups, Percentiles::of_sorted(&all_latencies))
    }

    /// The answer for `query` from its (bucket, group) aggregates, ordered by bucket, group,
    /// each with its percentiles, and the percentiles over all of them.
    pub(crate) fn from_percentiles(
        query: &AnalyticsQuery,
        groups: Vec<BucketGroup>,
        total_latency: Option<Percentiles>,
    ) -> Analytics {
        let mut totals = Stats::default();
        let mut series = Vec::with_capacity(groups.len());
        for g in groups {
            totals.requests += g.requests;
            totals.errors += g.errors;
            totals.prompt_tokens += g.prompt_tokens;
            totals.completion_tokens += g.completion_tokens;
            totals.cost_usd += g.cost_usd;
            totals.unpriced_requests += g.unpriced_requests;
            series.push(AnalyticsRow {
                bucket: rfc3339_s(g.bucket_ms),
                group: g.group,
                stats: Stats {
                    requests: g.requests,
                    errors: g.errors,
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.completion_tokens,
                    cost_usd: round_cost(g.cost_usd),
                    unpriced_requests: g.unpriced_requests,
                    latency_ms: g.percentiles,
                },
            });
        }
        totals.cost_usd = round_cost(totals.cost_usd);
        totals.latency_ms = total_latency;
        Analytics {
            interval: query.interval.as_str(),
            group_by: query.group_by.as_ref().map(crate::GroupBy::label),
            from: rfc3339_s(query.filter.from_ms.unwrap_or_default()),
            to: rfc3339_s(query.filter.to_ms.unwrap_or_default()),
            totals,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(
            Percentiles::of_sorted(&v),
            Some(Percentiles {
                p50: 50,
                p95: 95,
                p99: 99
            })
        );
        assert_eq!(
            Percentiles::of_sorted(&[7]),
            Some(Percentiles {
                p50: 7,
                p95: 7,
                p99: 7
            })
        );
        // n = 5: ranks ceil(2.5)=3, ceil(4.75)=5, ceil(4.95)=5.
        assert_eq!(
            Percentiles::of_sorted(&[10, 20, 30, 40, 50]),
            Some(Percentiles {
                p50: 30,
                p95: 50,
                p99: 50
            })
        );
        assert_eq!(Percentiles::of_sorted(&[]), None);
    }

    #[test]
    fn costs_are_rounded_not_drifting() {
        assert_eq!(round_cost(0.1 + 0.2), 0.3);
    }
}
