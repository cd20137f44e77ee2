//! Where request records go when a request ends: the [`RequestSink`] the request path hands
//! each finished [`RequestRecord`] to, and [`Fanout`], which feeds several.
//!
//! The trait lives here, below every crate that implements it (the request log, metrics, the
//! access log) or calls it (the engine), so none of them depends on another for it.

use crate::RequestRecord;

/// Receives the record of every finished request.
///
/// Two entry points, so that a record is copied only for a sink that keeps it: [`observe`]
/// looks at a borrowed record (metrics, the access log), [`record`] takes it whole (the
/// request log, which moves its strings and payloads into its queue). [`Fanout`] lets every
/// sink but the last observe and hands the record itself to the last one.
///
/// [`observe`]: RequestSink::observe
/// [`record`]: RequestSink::record
pub trait RequestSink: Send + Sync + 'static {
    /// Looks at one record. Must return quickly and never block on I/O.
    fn observe(&self, record: &RequestRecord);

    /// Takes one record; by default, observes it. A sink that keeps records overrides this
    /// to keep the record itself rather than a copy.
    fn record(&self, record: RequestRecord) {
        self.observe(&record);
    }
}

/// Hands every record to several sinks in order (the access log, the request log, metrics).
pub struct Fanout {
    sinks: Vec<std::sync::Arc<dyn RequestSink>>,
}

impl Fanout {
    /// A sink feeding each of `sinks` in order; the last one gets the record itself, the
    /// others observe it (put the one sink that keeps records last).
    pub fn new(sinks: Vec<std::sync::Arc<dyn RequestSink>>) -> Fanout {
        Fanout { sinks }
    }
}

impl RequestSink for Fanout {
    fn observe(&self, record: &RequestRecord) {
        for sink in &self.sinks {
            sink.observe(record);
        }
    }

    fn record(&self, record: RequestRecord) {
        if let Some((last, rest)) = self.sinks.split_last() {
            for sink in rest {
                sink.observe(&record);
            }
            last.record(record);
        }
    }
}
