//! The `portico` command: its command line, `portico serve`'s wiring, and the commands that
//! manage a running instance, as a library so that tests can run the server in-process
//! ([`serve::serve`] takes a bound listener and a shutdown signal) as well as the binary.
//!
//! Where it sits: at the top, above the server, engine, store, request log and metrics it
//! wires together.
//!
//! `portico serve` runs the gateway with its catalog in embedded SQLite; `portico apply`
//! applies a catalog file to a running one, `portico logs` reads its request log. Exit codes: 0 ok, 2 usage or configuration error, 1
//! anything else, always with one clear line on stderr.

mod admin_client;
mod apply_cmd;
mod catalog_cmd;
mod catalog_sync;
pub mod cli;
mod data_plane;
pub mod gateway_cmd;
mod line_writer;
mod logs_cmd;
mod master_key_cmd;
mod otel;
pub mod serve;
mod shared_spend;

/// A failure that ends the process: its exit code and the one line that explains it.
#[derive(Debug)]
pub struct Fatal {
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

    /// The process's exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The one line that explains the failure.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Runs one command to its end.
pub async fn run(command: cli::Command) -> Result<(), Fatal> {
    match command {
        cli::Command::Serve(args) => serve::run(args).await,
        cli::Command::Gateway(args) => gateway_cmd::run(args).await,
        cli::Command::Apply(args) => apply_cmd::run(args).await,
        cli::Command::Logs(args) => logs_cmd::run(args).await,
        cli::Command::Configs(args) => catalog_cmd::configs(args).await,
        cli::Command::Guardrails(args) => catalog_cmd::guardrails(args).await,
        cli::Command::Keys(args) => catalog_cmd::keys(args).await,
        cli::Command::Providers(args) => catalog_cmd::providers(args).await,
        cli::Command::Models(args) => catalog_cmd::models(args).await,
        cli::Command::MasterKey(cli::MasterKeyCommand::Rotate(args)) => {
            master_key_cmd::rotate(args).await
        }
    }
}

/// The async runtime for `command`: for `serve`, `--worker-threads` threads, by default one
/// per CPU the process may use (its affinity and cgroup quota count). One thread gets tokio's
/// current-thread scheduler: on one core a work-stealing scheduler has no other worker to
/// steal from, and its bookkeeping and the hand-offs between the thread that accepts
/// connections and the worker cost about a fifth of the throughput (docs/performance.md).
pub fn build_runtime(command: &cli::Command) -> std::io::Result<tokio::runtime::Runtime> {
    let worker_threads = match command {
        cli::Command::Serve(args) => args.common.worker_threads,
        cli::Command::Gateway(args) => args.common.worker_threads,
        _ => None,
    };
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
