//! The request log's storage in the metrics: whether it is writable, its write errors, and
//! what was spilled, replayed and lost. Read from a [`LogHealthSource`] at each scrape, not
//! fed by records.

use std::sync::Arc;

use portico_core::LogHealthSource;
use prometheus::{IntCounter, IntGauge, Registry};

/// The log store's families and where their figures come from.
pub(crate) struct LogStoreFamilies {
    source: Arc<dyn LogHealthSource>,
    up: IntGauge,
    write_errors: IntCounter,
    spilled: IntCounter,
    replayed: IntCounter,
    lost: IntCounter,
    spill_pending: IntGauge,
}

impl LogStoreFamilies {
    /// Registers the families in `registry`, read from `source`.
    pub(crate) fn register(
        registry: &Registry,
        source: Arc<dyn LogHealthSource>,
    ) -> Result<LogStoreFamilies, prometheus::Error> {
        let gauge = |name: &str, help: &str| {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok::<_, prometheus::Error>(gauge)
        };
        let counter = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok::<_, prometheus::Error>(counter)
        };
        let families = LogStoreFamilies {
            up: gauge(
                "portico_log_store_up",
                "1 when the request log's last write (or spill replay) succeeded, 0 while it fails.",
            )?,
            write_errors: counter(
                "portico_log_write_errors_total",
                "Request log batch writes, spill replays and spill-file writes that failed.",
            )?,
            spilled: counter(
                "portico_log_records_spilled_total",
                "Request records kept in the spill file (queue full, or a failed write) to be replayed.",
            )?,
            replayed: counter(
                "portico_log_records_replayed_total",
                "Spilled request records read back and stored.",
            )?,
            lost: counter(
                "portico_log_records_lost_total",
                "Request records that could be neither written nor spilled.",
            )?,
            spill_pending: gauge(
                "portico_log_spill_pending_bytes",
                "Bytes of spilled records waiting to be replayed (spill files and lines held in memory).",
            )?,
            source,
        };
        families.refresh();
        Ok(families)
    }

    /// Brings the figures up to the source's.
    pub(crate) fn refresh(&self) {
        let health = self.source.log_health();
        self.up.set(i64::from(health.up));
        let up_to = |counter: &IntCounter, value: u64| {
            counter.inc_by(value.saturating_sub(counter.get()));
        };
        up_to(&self.write_errors, health.write_errors);
        up_to(&self.spilled, health.spilled);
        up_to(&self.replayed, health.replayed);
        up_to(&self.lost, health.lost);
        self.spill_pending
            .set(i64::try_from(health.spill_pending_bytes).unwrap_or(i64::MAX));
    }
}
