//! The gateway's protective limits in the metrics: hits by limit, and the open connections.
//! [`Metrics`] is the listener's and the engine's [`ServerLimitObserver`].

use portico_core::{ServerLimit, ServerLimitObserver};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::Metrics;

/// The families and one handle per limit, made at start (the label set is closed).
pub(crate) struct ServerLimitFamilies {
    hits: [IntCounter; ServerLimit::ALL.len()],
    open_connections: IntGauge,
}

impl ServerLimitFamilies {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<ServerLimitFamilies, prometheus::Error> {
        let hits = IntCounterVec::new(
            Opts::new(
                "portico_server_limit_hits_total",
                "Connections and requests refused (or connections closed) by one of the gateway's protective limits, by limit (the flag's name).",
            ),
            &["limit"],
        )?;
        let open_connections = IntGauge::new(
            "portico_open_connections",
            "Client connections the listener holds open now.",
        )?;
        registry.register(Box::new(hits.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        Ok(ServerLimitFamilies {
            hits: ServerLimit::ALL.map(|limit| hits.with_label_values(&[limit.as_str()])),
            open_connections,
        })
    }
}

impl ServerLimitObserver for Metrics {
    fn hit(&self, limit: ServerLimit) {
        // `ALL` lists every variant, so the position is always found.
        if let Some(i) = ServerLimit::ALL.iter().position(|l| *l == limit) {
            self.server_limits.hits[i].inc();
        }
    }

    fn open_connections(&self, open: usize) {
        self.server_limits
            .open_connections
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }
}
