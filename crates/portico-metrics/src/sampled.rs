//! Gauges read when scraped: figures that live elsewhere (the runtime's task count, the
//! listener's requests in flight) and are cheaper to read on a scrape than to keep updated.

use std::sync::Mutex;

use prometheus::{IntGauge, Opts, Registry};

/// A function answering a gauge's current value.
pub type GaugeFn = Box<dyn Fn() -> i64 + Send + Sync>;

/// The gauges set from their functions before every scrape.
#[derive(Default)]
pub(crate) struct SampledGauges {
    // A scrape is rare and never on the request path: a plain mutex is enough.
    gauges: Mutex<Vec<(IntGauge, GaugeFn)>>,
}

impl SampledGauges {
    /// Registers gauge `name` in `registry`, set from `read` at every scrape.
    pub(crate) fn add(
        &self,
        registry: &Registry,
        name: &str,
        help: &str,
        read: GaugeFn,
    ) -> Result<(), prometheus::Error> {
        let gauge = IntGauge::with_opts(Opts::new(name, help))?;
        registry.register(Box::new(gauge.clone()))?;
        self.gauges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((gauge, read));
        Ok(())
    }

    /// Sets every gauge from its function.
    pub(crate) fn refresh(&self) {
        let gauges = self
            .gauges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (gauge, read) in gauges.iter() {
            gauge.set(read());
        }
    }
}
