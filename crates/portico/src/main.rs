//! The `portico` binary: parses the command line, starts the runtime, runs the command
//! (the `portico` library), and turns a failure into its exit code and one line on stderr.

use std::process::ExitCode;

use clap::Parser as _;

/// jemalloc rather than glibc's malloc: after a burst of concurrent requests (a stall
/// upstream, a traffic spike), glibc keeps the freed memory in fragmented arenas and the
/// resident size never comes back down, so it ratchets up with each new peak; jemalloc
/// returns pages unused for a few seconds to the OS (docs/performance.md, the second
/// session of 2026-12-06).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match portico::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match portico::build_runtime(&cli.command) {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("portico: error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(portico::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            eprintln!("portico: error: {}", fatal.message());
            ExitCode::from(fatal.code())
        }
    }
}
