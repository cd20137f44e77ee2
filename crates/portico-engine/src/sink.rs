//! Where request records go when a request ends.
//!
//! The request path hands each [`RequestRecord`] to a [`RequestSink`] and moves on; a sink
//! must never block it. The default sink, [`AccessLog`], writes one JSON line per request to
//! the log (whose writer is a background thread). The persistent request log (a later issue)
//! is another sink.

use portico_core::RequestRecord;

/// Receives the record of every finished request.
pub trait RequestSink: Send + Sync + 'static {
    /// Takes one record. Must return quickly and never block on I/O.
    fn record(&self, record: RequestRecord);
}

/// Writes each record as a JSON access-log line (`target: portico::access`, level info).
#[derive(Debug, Default, Clone, Copy)]
pub struct AccessLog;

impl RequestSink for AccessLog {
    fn record(&self, record: RequestRecord) {
        if !tracing::enabled!(target: "portico::access", tracing::Level::INFO) {
            return;
        }
        match serde_json::to_string(&record) {
            Ok(line) => tracing::info!(target: "portico::access", "{line}"),
            Err(err) => {
                tracing::warn!(target: "portico::access", id = %record.id, "could not encode a request record: {err}")
            }
        }
    }
}
