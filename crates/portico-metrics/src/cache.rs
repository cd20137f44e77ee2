//! The response cache in the metrics: requests by cache status, and what hits saved.

use portico_core::RequestRecord;
use prometheus::{Counter, IntCounter, IntCounterVec, Opts, Registry};

/// The statuses a record's `cache_status` takes, as labels.
const STATUSES: [&str; 5] = ["hit", "semantic_hit", "miss", "semantic_miss", "refresh"];

/// The cache families, with one handle per status made up front.
pub(crate) struct CacheFamilies {
    by_status: [IntCounter; 5],
    saved_usd: Counter,
}

impl CacheFamilies {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<CacheFamilies, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "portico_cache_requests_total",
                "Requests whose routing config has a cache, by how the cache answered: hit, semantic_hit, miss, semantic_miss, refresh.",
            ),
            &["status"],
        )?;
        let saved_usd = Counter::new(
            "portico_cache_saved_usd_total",
            "What the answers replayed by cache hits had cost, in US dollars.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(saved_usd.clone()))?;
        Ok(CacheFamilies {
            by_status: STATUSES.map(|s| requests.with_label_values(&[s])),
            saved_usd,
        })
    }

    /// Counts one finished request; nothing for a request no cache applied to.
    pub(crate) fn observe(&self, record: &RequestRecord) {
        let Some(status) = record.cache_status else {
            return;
        };
        if let Some(i) = STATUSES.iter().position(|s| *s == status) {
            self.by_status[i].inc();
        }
        if let Some(saved) = record
            .cache_saved_usd
            .filter(|s| s.is_finite() && *s >= 0.0)
        {
            self.saved_usd.inc_by(saved);
        }
    }
}

/// Whether a record is a cache hit: an answer replayed, which used no upstream tokens.
pub(crate) fn is_hit(record: &RequestRecord) -> bool {
    matches!(record.cache_status, Some("hit" | "semantic_hit"))
}
