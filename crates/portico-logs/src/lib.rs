//! The persistent request log: every finished request, kept in its own SQLite file
//! (`logs.db`) or, for scale-out deployments, in PostgreSQL shared by every process;
//! searchable and summarised by the admin API.
//!
//! Where it sits: above `portico-core` (it implements its `RequestSink`) and `portico-store`
//! (private files); the binary puts it among the gateway's sinks, the server's admin API reads
//! it. It does not depend on the engine.
//!
//! The parts, in the order a record travels:
//! - [`LogPipeline`] starts the writer and hands out a [`LogSink`], the
//!   [`portico_core::RequestSink`] the request path calls. `record()` never blocks: it puts
//!   the record on a bounded queue, or, when the queue is full, appends it to a spill file
//!   (`logs-spill.jsonl`) that the writer replays once it has caught up (and on the next
//!   start). The writer drains the queue in batches, one transaction per batch.
//!   [`LogPipeline::shutdown`] drains everything before the process exits.
//! - [`LogEntry`] is the stored form of a record: payloads kept only when the key allows it,
//!   capped in size; headers are never part of it.
//! - [`LogStore`] is the storage boundary (insert, search, one entry, analytics, retention);
//!   [`SqliteLogStore`] implements it on a file of its own, [`PgLogStore`] on a PostgreSQL
//!   database (in a schema of its own) that many processes share. Both answer the same,
//!   and the same tests run against both.
//! - [`LogQuery`] and [`AnalyticsQuery`] are the admin API's filters, parsed from query
//!   parameters with errors that name the parameter.
//!
//! What it is not: the catalog store (`portico-store`, a different database file, or
//! schema, so log writes never contend with catalog reads) or the HTTP routes
//! (`portico-server`).
//!
//! The design and its measured query times are in `docs/request-logs.md`.

mod analytics;
mod entry;
mod error;
mod pipeline;
mod postgres;
mod query;
mod retention;
mod spill;
mod sql;
mod sqlite;
mod store;
#[cfg(test)]
mod store_tests;
mod time;
mod writer_thread;

pub use analytics::{Analytics, AnalyticsRow, Percentiles, Stats};
pub use entry::{DEFAULT_MAX_PAYLOAD_BYTES, LogEntry, LoggedAttempt, Payload};
pub use error::LogError;
pub use pipeline::{
    DEFAULT_QUEUE_BYTES, DEFAULT_SPILL_MEMORY_BYTES, LogPipeline, LogSink, PipelineOptions,
    PipelineStats,
};
pub use postgres::PgLogStore;
pub use query::{
    AnalyticsQuery, Cursor, GroupBy, Interval, LogFilter, LogQuery, MAX_METADATA_FILTERS,
    MAX_Q_CHARS, ParamError, StatusFilter, max_metadata_filters, set_max_metadata_filters,
};
pub use retention::{DEFAULT_RETENTION_DAYS, Retention};
pub use sqlite::SqliteLogStore;
pub use store::{LogDetail, LogPage, LogStore, LogSummary};
pub use time::rfc3339_ms;
