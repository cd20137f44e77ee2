//! The access log: a [`RequestSink`] that writes one JSON line per request.
//!
//! The request path hands each [`RequestRecord`] to a [`RequestSink`] (the trait is
//! `portico_core`'s) and moves on; a sink must never block it. [`AccessLog`] writes one JSON
//! line per request to the log's background writer thread; the request log and metrics are
//! the other sinks.

use portico_core::{RequestRecord, RequestSink};

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
