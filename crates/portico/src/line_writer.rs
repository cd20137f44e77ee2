//! [`LineWriter`]: where the access log and the process's own log lines go (stderr), written
//! by a thread of its own in batches.
//!
//! Every request adds one access-log line. A channel to a writer thread (tracing-appender's
//! non-blocking writer, used before) wakes that thread for nearly every line, and its receiver
//! spins and calls `sched_yield` before it sleeps: with the gateway pinned to one core, a
//! benchmark at saturation showed about 2,500 `sched_yield` calls per second from that thread
//! alone, each a trip through the scheduler that request handling waited behind. Here lines
//! are appended to a shared buffer under a lock held only for the copy, and the thread wakes
//! on a timer ([`FLUSH_INTERVAL`]) or when the buffer passes [`WAKE_AT`], and writes
//! everything gathered with one `write`.
//!
//! Nothing is dropped: when the buffer holds [`FULL_AT`] bytes (the sink, a pipe perhaps,
//! is not being read), writers wait for the thread to make room. [`LineWriterGuard`] writes
//! what is left when it is dropped.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line waits at most before it is written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Buffered bytes at which the thread is woken before its timer.
pub(crate) const WAKE_AT: usize = 256 * 1024;
/// Buffered bytes at which writers wait for the thread.
pub(crate) const FULL_AT: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct State {
    buf: Vec<u8>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// The thread waits on it for lines (or for its timer).
    wake: Condvar,
    /// Writers wait on it while the buffer is full.
    room: Condvar,
    full_at: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned buffer is still a valid buffer.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cheap handle that appends whole lines to the shared buffer. Implements [`Write`], so
/// tracing's formatter can write to it; each `write` call is kept whole.
#[derive(Debug, Clone)]
pub(crate) struct LineWriter {
    shared: Arc<Shared>,
}

/// Owns the writer thread: dropping it writes what is buffered and stops the thread.
#[derive(Debug)]
pub(crate) struct LineWriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `sink`.
pub(crate) fn start(sink: impl Write + Send + 'static) -> (LineWriter, LineWriterGuard) {
    start_with(sink, FULL_AT)
}

fn start_with(
    mut sink: impl Write + Send + 'static,
    full_at: usize,
) -> (LineWriter, LineWriterGuard) {
    let shared = Arc::new(Shared {
        full_at,
        ..Shared::default()
    });
    let for_thread = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("portico-stderr".into())
        .spawn(move || run(&for_thread, &mut sink))
        .ok();
    if thread.is_none() {
        // Without a thread nobody would drain the buffer: write through instead.
        shared.lock().closed = true;
    }
    (
        LineWriter {
            shared: Arc::clone(&shared),
        },
        LineWriterGuard { shared, thread },
    )
}

impl LineWriter {
    /// Appends `line` (which should end with a newline); waits only while the buffer is full.
    pub(crate) fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.closed {
            // Stopped (or never started): write directly, nothing is buffered any more.
            drop(state);
            let _ = std::io::stderr().write_all(line);
            return;
        }
        while state.buf.len() >= self.shared.full_at && !state.closed {
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let wake_at = WAKE_AT.min(self.shared.full_at);
        let before = state.buf.len();
        state.buf.extend_from_slice(line);
        // Once per fill, as the buffer crosses the mark; the timer covers everything else.
        if before < wake_at && state.buf.len() >= wake_at {
            self.shared.wake.notify_one();
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: wait for the timer, a full-enough buffer or the end; write what was gathered.
fn run(shared: &Shared, sink: &mut impl Write) {
    let wake_at = WAKE_AT.min(shared.full_at);
    let mut out = Vec::new();
    loop {
        let mut state = shared.lock();
        if state.buf.len() < wake_at && !state.closed {
            state = shared
                .wake
                .wait_timeout(state, FLUSH_INTERVAL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut state.buf, &mut out);
        let closed = state.closed;
        drop(state);
        shared.room.notify_all();
        if !out.is_empty() {
            // A failed write (stderr closed) has nowhere to be reported; the lines go.
            let _ = sink.write_all(&out).and_then(|()| sink.flush());
            out.clear();
        }
        if closed {
            // Lines appended after the last swap went straight to stderr (see `append`).
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A sink that keeps what it is given, and can be held shut.
    #[derive(Clone, Default)]
    struct Sink {
        got: Arc<Mutex<Vec<u8>>>,
        shut: Arc<AtomicBool>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            while self.shut.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_each_threads_order() {
        let sink = Sink::default();
        let (writer, guard) = start(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        writer.append(format!("t{t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.got.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_line_is_written_within_the_flush_interval_without_more_traffic() {
        let sink = Sink::default();
        let (writer, _guard) = start(sink.clone());
        writer.append(b"lonely line\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.got.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(&sink.got.lock().unwrap()[..], b"lonely line\n");
    }

    #[test]
    fn writers_wait_while_the_buffer_is_full_and_nothing_is_lost() {
        let sink = Sink::default();
        sink.shut.store(true, Ordering::SeqCst);
        let (writer, guard) = start_with(sink.clone(), 64);
        let line = [b'x'; 31];
        let done = Arc::new(AtomicBool::new(false));
        let producer = {
            let (writer, done) = (writer.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                for _ in 0..100 {
                    writer.append(&line);
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !done.load(Ordering::SeqCst),
            "3,100 bytes cannot fit a 64-byte buffer while the sink is shut"
        );
        sink.shut.store(false, Ordering::SeqCst);
        producer.join().unwrap();
        drop(guard);
        assert_eq!(sink.got.lock().unwrap().len(), 3_100);
    }

    #[test]
    fn after_the_guard_is_dropped_lines_still_get_out() {
        let sink = Sink::default();
        let (writer, guard) = start(sink.clone());
        writer.append(b"before\n");
        drop(guard);
        assert_eq!(&sink.got.lock().unwrap()[..], b"before\n");
        // Goes straight to the process's stderr; the point is that it neither blocks nor panics.
        writer.append(b"after\n");
    }
}
