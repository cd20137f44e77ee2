//! Where request records go when a request ends.
//!
//! The request path hands each [`RequestRecord`] to a [`RequestSink`] and moves on; a sink
//! must never block it. The default sink, [`AccessLog`], writes one JSON line per request to
//! the log's background writer thread. The persistent request log (a later issue)
//! is another sink.

use portico_core::RequestRecord;

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

/// Where an access-log line goes: a function taking one complete line (newline included).
type LineWriter = Box<dyn Fn(Vec<u8>) + Send + Sync>;

/// Writes each record as one JSON line (the access log).
///
/// The line is the record's JSON and nothing else, handed to a writer that must not block
/// (the binary gives it the log's background writer thread); no log formatting is done per
/// request beyond the JSON encoding itself.
pub struct AccessLog {
    write: LineWriter,
}

impl AccessLog {
    /// An access log handing each line to `write`.
    pub fn new(write: impl Fn(Vec<u8>) + Send + Sync + 'static) -> AccessLog {
        AccessLog {
            write: Box::new(write),
        }
    }

    /// An access log that writes nothing (benchmarks, embedded use).
    pub fn discard() -> AccessLog {
        AccessLog::new(|_| {})
    }
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessLog")
    }
}

impl RequestSink for AccessLog {
    fn observe(&self, record: &RequestRecord) {
        match serde_json::to_vec(record) {
            Ok(mut line) => {
                line.push(b'\n');
                (self.write)(line);
            }
            Err(err) => {
                tracing::warn!(id = %record.id, "could not encode a request record: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn each_record_is_one_json_line() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let lines = Arc::clone(&lines);
            AccessLog::new(move |line| lines.lock().unwrap().push(line))
        };
        let mut record = RequestRecord::new("r-1".into(), 5, "chat.completions");
        record.trace_id = "t".into();
        sink.record(record);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(value["id"], "r-1");
        assert_eq!(value["endpoint"], "chat.completions");
    }
}
