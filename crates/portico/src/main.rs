//! The `portico` binary: command line, start-up and shutdown.
//!
//! `portico serve` runs the gateway with its catalog in embedded SQLite; `portico logs` reads
//! the request log of a running one. Exit codes: 0 ok,
//! 2 usage or configuration error, 1 anything else, always with one clear line on stderr.

use std::process::ExitCode;

use clap::Parser as _;

mod admin_client;
mod catalog_cmd;
mod cli;
mod line_writer;
mod logs_cmd;
mod serve;

/// jemalloc rather than glibc's malloc: after a burst of concurrent requests (a stall
/// upstream, a traffic spike), glibc keeps the freed memory in fragmented arenas and the
/// resident size never comes back down, so it ratchets up with each new peak; jemalloc
/// returns pages unused for a few seconds to the OS (docs/performance.md, the second
/// session of 2026-12-06).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A failure that ends the process: its exit code and the one line that explains it.
#[derive(Debug)]
pub(crate) struct Fatal {
    code: u8,
    message: String,
}

impl Fatal {
    /// A usage or configuration error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Fatal {
        Fatal {
            code: 2,
            message: message.into(),
        }
    }

    /// Any other failure (exit code 1).
    pub(crate) fn other(message: impl Into<String>) -> Fatal {
        Fatal {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let worker_threads = match &cli.command {
        cli::Command::Serve(args) => args.worker_threads,
        _ => None,
    };
    let runtime = match build_runtime(worker_threads) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("portico: error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            cli::Command::Serve(args) => serve::run(args).await,
            cli::Command::Logs(args) => logs_cmd::run(args).await,
            cli::Command::Configs(args) => catalog_cmd::configs(args).await,
            cli::Command::Keys(args) => catalog_cmd::keys(args).await,
            cli::Command::Providers(args) => catalog_cmd::providers(args).await,
            cli::Command::Models(args) => catalog_cmd::models(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            eprintln!("portico: error: {}", fatal.message);
            ExitCode::from(fatal.code)
        }
    }
}

/// The async runtime: `worker_threads` threads, by default one per CPU the process may use
/// (its affinity and cgroup quota count). One thread gets tokio's current-thread scheduler:
/// on one core a work-stealing scheduler has no other worker to steal from, and its
/// bookkeeping and the hand-offs between the thread that accepts connections and the worker
/// cost about a fifth of the throughput (docs/performance.md).
fn build_runtime(worker_threads: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = worker_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
