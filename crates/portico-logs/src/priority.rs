//! The request log's writer threads run below the request path's priority.

/// The writer threads' nice value (0 is the default; higher runs later).
pub(crate) const WRITER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`WRITER_NICE`] (on Linux, nice is per
/// thread and `setpriority(PRIO_PROCESS, 0)` changes the calling thread only). Best effort:
/// where it cannot be changed, the writer runs at the default priority.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::process::setpriority_process(None, WRITER_NICE) {
        tracing::debug!("request log writer: cannot lower its priority: {err}");
    }
}
