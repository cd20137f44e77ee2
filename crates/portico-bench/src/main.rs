//! `portico-bench`: the tools behind `bench/run.sh` (see `docs/performance.md`).
//!
//! Where it sits: apart, dev-only: `bench/run.sh` runs it; nothing shipped depends on it.
//!
//! What this is: small, single-purpose measuring tools that the script starts as separate,
//! CPU-pinned processes:
//! - [`mock`]: the fastest reasonable OpenAI-shaped upstream (hyper directly, canned answers);
//! - [`ttfb`]: a streaming client that measures time to first body byte and total stream time;
//! - [`rss`]: a `/proc` sampler for peak memory and memory growth (the soak);
//! - [`soak`]: an hour of mixed traffic at a fixed rate, then the request log, the spend and
//!   the gateway's memory, descriptors and tasks audited against its own tally;
//! - [`report`]: turns the raw JSON of a run into the markdown table and a summary JSON.
//!
//! What it is not: a throughput load generator (that is `oha`; the soak sends a modest rate) or a test double for the test suite (that
//! is `portico-testkit`). Nothing here makes a timed assertion in `cargo test`.

use std::process::ExitCode;

use clap::Parser as _;

mod coldstart;
mod mock;
mod oha;
mod report;
mod rss;
mod soak;
mod stats;
mod ttfb;

/// Command line of `portico-bench`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "portico-bench",
    version,
    about = "Benchmark tools for Portico (see docs/performance.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve a fast OpenAI-shaped upstream: POST /v1/chat/completions and GET /healthz.
    Mock(mock::MockArgs),
    /// Send streaming requests and report time-to-first-byte and total-time percentiles as JSON.
    Ttfb(ttfb::TtfbArgs),
    /// Sample VmRSS/VmHWM of a process and report peak, first/last and growth as JSON.
    Rss(rss::RssArgs),
    /// Time from starting the gateway (a fresh data dir each run) to its first answer.
    Coldstart(coldstart::ColdstartArgs),
    /// Soak a gateway: a fixed rate of mixed traffic, then the log, spend and resources audited.
    Soak(soak::SoakArgs),
    /// Build the markdown table and summary JSON from the raw results of a run.
    Report(report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mock(args) => mock::run(args),
        Command::Ttfb(args) => ttfb::run(args),
        Command::Rss(args) => rss::run(args),
        Command::Report(args) => report::run(args),
        Command::Coldstart(args) => coldstart::run(args),
        Command::Soak(args) => soak::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("portico-bench: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes one JSON document (plus a newline) to stdout: the only thing these tools print there.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
