//! [`LogPipeline`]: from the request path to the database without the request ever waiting.
//!
//! [`LogSink::record`] turns the record into a [`LogEntry`] and `try_send`s it on a bounded
//! queue. The queue is bounded twice: by entries and by the bytes they hold (an entry
//! carries up to two payloads of up to `max_payload_bytes` each, so a count alone would let
//! a few thousand large requests take gigabytes). When either bound is reached (or the queue
//! is closed, during shutdown) the entry is appended to the spill file instead: the record is
//! kept, memory stays bounded, and the request pays one small buffered file write. While the
//! spill file cannot be written (a full disk) its lines wait in memory, up to a bound. Nothing
//! is dropped silently: past that bound the entry is counted as lost and an error line says
//! how many so far.
//!
//! The pipeline also keeps the store's health ([`LogPipeline::health`]): whether the last
//! write or replay succeeded, the last error, and what was spilled, replayed and lost, for
//! `/readyz` and `/metrics`.
//!
//! One writer task drains the queue: it takes whatever is queued (up to `batch_max`) and
//! writes it in one transaction, so batches grow by themselves under load (group commit);
//! once an entry arrives it waits up to `LINGER` (10 ms) for more, so a steady moderate rate
//! is not written a few entries per transaction. When the queue is empty and something was
//! spilled, it replays the spill file. [`LogPipeline::shutdown`] closes the queue, writes
//! what is left and replays the spill file before returning.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use portico_core::{Clock, LogHealth, LogHealthSource, RequestRecord, RequestSink, SystemClock};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::entry::DEFAULT_MAX_PAYLOAD_BYTES;
use crate::spill::Spill;
use crate::{LogEntry, LogError, LogStore, Retention, retention};

/// How often buffered spill lines are written to the file.
const SPILL_FLUSH: Duration = Duration::from_secs(1);
/// How long the writer gathers entries for one transaction once the first has arrived.
const LINGER: Duration = Duration::from_millis(10);
/// How long a spill that could not be replayed waits before the next try.
const REPLAY_RETRY: Duration = Duration::from_secs(5);
/// Replay rounds per call (a leftover replay file, the spill file, one more).
const REPLAY_ROUNDS: usize = 3;

/// The default bound on the bytes the write queue holds (see [`LogEntry::memory_size`]).
pub const DEFAULT_QUEUE_BYTES: usize = 4 * 1024 * 1024;

/// The default bound on spill lines held in memory while the spill file cannot be written.
pub const DEFAULT_SPILL_MEMORY_BYTES: usize = 16 * 1024 * 1024;

/// How the pipeline is sized.
#[derive(Clone)]
pub struct PipelineOptions {
    /// Records the queue holds before spilling to the file.
    pub queue_capacity: usize,
    /// Bytes the queued records (and the batch being written) may hold before later ones
    /// spill to the file. One record is always admitted into an empty queue, however large.
    pub queue_bytes: usize,
    /// Most records written per transaction.
    pub batch_max: usize,
    /// Largest stored payload (each of request and response), in bytes.
    pub max_payload_bytes: usize,
    /// The spill file (`<data dir>/logs-spill.jsonl`).
    pub spill_path: PathBuf,
    /// Spill lines held in memory while the spill file cannot be written (a full disk),
    /// in bytes; beyond it, records are lost (counted and logged).
    pub spill_memory_bytes: usize,
    /// Something to report as the log store's last error from the start (a corrupt
    /// `logs.db` moved aside, see [`crate::SqliteLogStore::open_or_repair`]).
    pub notice: Option<String>,
    /// What the pruner keeps.
    pub retention: Retention,
    /// The time the pruner counts ages from: the system's, or a test's `ManualClock`.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PipelineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineOptions")
            .field("queue_capacity", &self.queue_capacity)
            .field("queue_bytes", &self.queue_bytes)
            .field("batch_max", &self.batch_max)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("spill_path", &self.spill_path)
            .field("spill_memory_bytes", &self.spill_memory_bytes)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl PipelineOptions {
    /// Defaults with the spill file at `spill_path`: a queue of up to 10,000 records and
    /// 4 MiB, batches of up to 500, payloads cut at 1 MiB, 30 days of retention counted on
    /// the system clock.
    pub fn new(spill_path: PathBuf) -> PipelineOptions {
        PipelineOptions {
            queue_capacity: 10_000,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch_max: 500,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            spill_path,
            spill_memory_bytes: DEFAULT_SPILL_MEMORY_BYTES,
            notice: None,
            retention: Retention::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Counts of what went through the pipeline since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipelineStats {
    /// Records handed to the sink.
    pub received: u64,
    /// Records that went to the spill file (queue full or closed, or a failed write).
    pub spilled: u64,
    /// Entries newly stored (from the queue or replayed).
    pub stored: u64,
    /// Records that could be neither queued nor spilled.
    pub lost: u64,
    /// Batch writes and spill replays that failed.
    pub write_errors: u64,
    /// Entries read back from the spill file and newly stored.
    pub replayed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    spilled: AtomicU64,
    stored: AtomicU64,
    lost: AtomicU64,
    write_errors: AtomicU64,
    replayed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> PipelineStats {
        PipelineStats {
            received: self.received.load(Ordering::Relaxed),
            spilled: self.spilled.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
        }
    }
}

/// What the writer and the sink share.
struct Shared {
    spill: Spill,
    counters: Counters,
    /// Bytes held by entries admitted to the queue and not yet written (or spilled).
    queued_bytes: AtomicUsize,
    queue_bytes: usize,
    /// Whether the last write or replay succeeded (see [`LogHealth::up`]).
    up: AtomicBool,
    /// The last failure and when (Unix ms).
    last_error: Mutex<Option<(String, i64)>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("spill", &self.spill)
            .field("counters", &self.counters)
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// A write or replay failed: the store is down until one succeeds.
    fn failed(&self, what: &str, err: &LogError) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        self.up.store(false, Ordering::Release);
        self.note_error(format!("{what}: {err}"));
    }

    /// Keeps `message` as the last error, with the time.
    fn note_error(&self, message: String) {
        let now = self.clock.now_ms();
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((message, now));
    }

    /// A write or replay succeeded.
    fn succeeded(&self) {
        self.up.store(true, Ordering::Release);
    }

    /// Counts `size` more bytes queued, unless that would pass the bound; an empty queue
    /// admits any entry, so one oversized entry is written rather than always spilled.
    fn admit(&self, size: usize) -> bool {
        let before = self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before == 0 || before + size <= self.queue_bytes {
            return true;
        }
        self.release(size);
        false
    }

    /// Counts `size` bytes as no longer queued.
    fn release(&self, size: usize) {
        self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
    }

    /// Keeps `entry` in the spill file, or counts it lost.
    fn spill(&self, entry: &LogEntry) {
        match self.spill.append(entry) {
            Ok(()) => {
                self.counters.spilled.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                let lost = self.counters.lost.fetch_add(1, Ordering::Relaxed) + 1;
                // One line per thousand, so a full disk does not also flood the log.
                if lost == 1 || lost.is_multiple_of(1000) {
                    tracing::error!(
                        lost,
                        id = %entry.id,
                        "request log: queue full and the spill file failed ({err}); entries lost so far: {lost}"
                    );
                }
            }
        }
    }
}

/// The request sink feeding the pipeline. Cheap to call from any thread; never blocks on
/// the database.
#[derive(Debug)]
pub struct LogSink {
    tx: mpsc::Sender<LogEntry>,
    shared: Arc<Shared>,
    max_payload_bytes: usize,
}

impl RequestSink for LogSink {
    fn observe(&self, record: &RequestRecord) {
        self.record(record.clone());
    }

    fn record(&self, record: RequestRecord) {
        self.shared
            .counters
            .received
            .fetch_add(1, Ordering::Relaxed);
        let entry = LogEntry::from_record(record, self.max_payload_bytes);
        let size = entry.memory_size();
        if !self.shared.admit(size) {
            self.shared.spill(&entry);
            return;
        }
        if let Err(
            mpsc::error::TrySendError::Full(entry) | mpsc::error::TrySendError::Closed(entry),
        ) = self.tx.try_send(entry)
        {
            self.shared.release(size);
            self.shared.spill(&entry);
        }
    }
}

impl LogHealthSource for Shared {
    fn log_health(&self) -> LogHealth {
        let stats = self.counters.snapshot();
        LogHealth {
            up: self.up.load(Ordering::Acquire),
            write_errors: stats.write_errors,
            spilled: stats.spilled,
            replayed: stats.replayed,
            lost: stats.lost,
            spill_pending_bytes: self.spill.pending_bytes(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The running pipeline: the writer and the pruner.
#[derive(Debug)]
pub struct LogPipeline {
    sink: Arc<LogSink>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl LogPipeline {
    /// Starts the writer (which first replays a spill file left by an earlier run) and the
    /// pruner. Must be called inside a Tokio runtime.
    pub fn start(store: Arc<dyn LogStore>, options: PipelineOptions) -> LogPipeline {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            spill: Spill::new(options.spill_path, options.spill_memory_bytes),
            counters: Counters::default(),
            queued_bytes: AtomicUsize::new(0),
            queue_bytes: options.queue_bytes,
            up: AtomicBool::new(true),
            last_error: Mutex::new(None),
            clock: Arc::clone(&options.clock),
        });
        if let Some(notice) = options.notice {
            shared.note_error(notice);
        }
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(write_loop(
            Arc::clone(&store),
            rx,
            Arc::clone(&shared),
            options.batch_max.max(1),
            stop.clone(),
        ));
        tasks.spawn(retention::run(
            store,
            options.retention,
            options.clock,
            stop.clone(),
        ));
        tasks.close();
        LogPipeline {
            sink: Arc::new(LogSink {
                tx,
                shared: Arc::clone(&shared),
                max_payload_bytes: options.max_payload_bytes,
            }),
            shared,
            stop,
            tasks,
        }
    }

    /// The sink to give the gateway.
    pub fn sink(&self) -> Arc<LogSink> {
        Arc::clone(&self.sink)
    }

    /// What has gone through so far.
    pub fn stats(&self) -> PipelineStats {
        self.shared.counters.snapshot()
    }

    /// The log store's health, for `/readyz` and `/metrics`.
    pub fn health(&self) -> Arc<dyn LogHealthSource> {
        Arc::clone(&self.shared) as Arc<dyn LogHealthSource>
    }

    /// Stops taking records into the queue (later ones go to the spill file, replayed on the
    /// next start), writes everything queued and replays the spill file. Call it after the
    /// HTTP server has stopped.
    pub async fn shutdown(self) -> PipelineStats {
        self.stop.cancel();
        self.tasks.wait().await;
        flush_spill(&self.shared);
        let stats = self.stats();
        if stats.lost > 0 {
            tracing::error!(
                lost = stats.lost,
                "request log: entries lost (queue full and spill file unwritable)"
            );
        }
        stats
    }
}

async fn write_loop(
    store: Arc<dyn LogStore>,
    mut rx: mpsc::Receiver<LogEntry>,
    shared: Arc<Shared>,
    batch_max: usize,
    stop: CancellationToken,
) {
    replay(&*store, &shared, batch_max).await;
    let mut batch = Vec::with_capacity(batch_max);
    let mut tick = tokio::time::interval(SPILL_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_replay = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            n = rx.recv_many(&mut batch, batch_max) => {
                if n == 0 {
                    break;
                }
                linger(&mut rx, &mut batch, batch_max, &stop).await;
                let written = write(&*store, &mut batch, &shared).await;
                if written && rx.is_empty() && shared.spill.pending() {
                    replay(&*store, &shared, batch_max).await;
                }
            }
            // Spilled lines reach the file within a second; a spill left after a failed
            // write or replay is retried even when no traffic comes to trigger it.
            _ = tick.tick(), if shared.spill.pending() => {
                flush_spill(&shared);
                if last_replay.elapsed() >= REPLAY_RETRY {
                    last_replay = tokio::time::Instant::now();
                    replay(&*store, &shared, batch_max).await;
                }
            }
        }
    }
    // Shutdown: later records go to the spill file; write what is queued.
    rx.close();
    while rx.recv_many(&mut batch, batch_max).await > 0 {
        write(&*store, &mut batch, &shared).await;
    }
    if shared.spill.pending() {
        replay(&*store, &shared, batch_max).await;
    }
    flush_spill(&shared);
}

/// Gathers more entries for a short while before a batch is written: each transaction costs
/// a hand-off to the database's writer thread and a commit, so at a steady few thousand
/// requests per second, writing every few entries at once took a third of a core and
/// preempted request handling; a few milliseconds of gathering writes the same entries in
/// far fewer transactions. A log entry is visible to searches at most `LINGER` later.
async fn linger(
    rx: &mut mpsc::Receiver<LogEntry>,
    batch: &mut Vec<LogEntry>,
    batch_max: usize,
    stop: &CancellationToken,
) {
    let deadline = tokio::time::Instant::now() + LINGER;
    while batch.len() < batch_max {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            got = rx.recv_many(batch, batch_max - batch.len()) => {
                if got == 0 {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Writes the spill lines buffered in memory to the file; says so once when that starts
/// failing (it is retried every second) and once when it works again.
fn flush_spill(shared: &Shared) {
    let was_failing = shared.spill.is_failing();
    match shared.spill.flush() {
        Err(err) if !was_failing => {
            shared.failed("spill file", &err);
            tracing::error!(
                "request log: cannot write the spill file, holding its lines in memory (up to --log-spill-memory-bytes) and retrying every second: {err}"
            );
        }
        Err(_) => {}
        Ok(()) if was_failing => {
            tracing::info!("request log: the spill file is writable again");
        }
        Ok(()) => {}
    }
}

/// Writes `batch` in one transaction (and empties it); on failure the entries are spilled,
/// to be replayed later. Answers whether the write succeeded. The batch's bytes leave the
/// queue's count once the write is done, so entries being written still count.
async fn write(store: &dyn LogStore, batch: &mut Vec<LogEntry>, shared: &Shared) -> bool {
    let entries: Arc<[LogEntry]> = batch.drain(..).collect();
    let size = entries.iter().map(LogEntry::memory_size).sum();
    let written = match store.insert(Arc::clone(&entries)).await {
        Ok(stored) => {
            shared.counters.stored.fetch_add(stored, Ordering::Relaxed);
            shared.succeeded();
            true
        }
        Err(err) => {
            shared.failed("write", &err);
            tracing::error!(
                entries = entries.len(),
                "request log: write failed, keeping the entries in the spill file: {err}"
            );
            for entry in entries.iter() {
                shared.spill(entry);
            }
            false
        }
    };
    drop(entries);
    shared.release(size);
    written
}

/// Replays the spill files: a leftover replay file, then the current spill file. Stops
/// after a few rounds, so that a spill that keeps growing under overload does not keep the
/// writer from the queue.
async fn replay(store: &dyn LogStore, shared: &Shared, batch_max: usize) {
    for _ in 0..REPLAY_ROUNDS {
        if !shared.spill.pending() || !replay_once(store, shared, batch_max).await {
            return;
        }
    }
}

/// One replay round; answers whether it succeeded.
async fn replay_once(store: &dyn LogStore, shared: &Shared, batch_max: usize) -> bool {
    let path = match shared.spill.take() {
        Ok(Some(path)) => path,
        Ok(None) => return true,
        Err(err) => {
            shared.spill.set_pending();
            shared.failed("spill file", &err);
            tracing::error!("request log: cannot open the spill file for replay: {err}");
            return false;
        }
    };
    match replay_file(store, shared, &path, batch_max).await {
        Ok((stored, bad)) => {
            if bad > 0 {
                tracing::error!(
                    bad,
                    path = %path.display(),
                    "request log: spill lines that could not be read were skipped"
                );
            }
            shared.succeeded();
            if stored > 0 {
                tracing::info!(stored, "request log: replayed spilled entries");
            }
            if let Err(err) = shared.spill.done(&path) {
                tracing::error!("request log: cannot remove the replayed spill file: {err}");
                return false;
            }
            true
        }
        Err(err) => {
            shared.spill.set_pending();
            shared.failed("replay", &err);
            tracing::error!(
                path = %path.display(),
                "request log: replaying the spill file failed, will retry: {err}"
            );
            false
        }
    }
}

/// Inserts every line of `path`; answers (entries newly stored, unreadable lines).
async fn replay_file(
    store: &dyn LogStore,
    shared: &Shared,
    path: &std::path::Path,
    batch_max: usize,
) -> Result<(u64, u64), LogError> {
    let file = tokio::fs::File::open(path).await?;
    let mut lines = tokio::io::BufReader::new(file).lines();
    let mut batch = Vec::with_capacity(batch_max);
    let (mut stored, mut bad) = (0, 0);
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LogEntry>(&line) {
            Ok(entry) => batch.push(entry),
            // A line cut by a crash mid-write.
            Err(_) => bad += 1,
        }
        if batch.len() >= batch_max {
            stored += store.insert(batch.drain(..).collect()).await?;
        }
    }
    stored += store.insert(batch.into()).await?;
    shared.counters.stored.fetch_add(stored, Ordering::Relaxed);
    shared
        .counters
        .replayed
        .fetch_add(stored, Ordering::Relaxed);
    Ok((stored, bad))
}
