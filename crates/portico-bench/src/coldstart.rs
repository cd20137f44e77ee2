//! `portico-bench coldstart`: time from starting the gateway to its first answered request.
//!
//! Each run starts the command given after `--` (with `{port}` and `{dir}` replaced by a free
//! port and a fresh, empty data dir), then sends the request of `--path` (with `--header`s
//! and `--body`) over a new connection every `--poll-us` until one is answered with
//! `--expect-status`. The time from spawning the process to that answer is the cold start: it
//! includes the process's exec, the data dir's creation (master key, migrations), the catalog
//! and the listener. The process is then stopped (SIGTERM, SIGKILL after 10 s). Prints the
//! runs and their median, min and max as JSON.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::stats::nearest_rank;

/// Options of `portico-bench coldstart`.
#[derive(clap::Args, Debug)]
pub(crate) struct ColdstartArgs {
    /// How many cold starts to time.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// The request's path.
    #[arg(long, default_value = "/readyz")]
    path: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// The request's body; with one the request is a POST, without it a GET.
    #[arg(long)]
    body: Option<String>,
    /// The status that counts as answered.
    #[arg(long, default_value_t = 200)]
    expect_status: u16,
    /// Time between two attempts while the gateway is not answering yet, in microseconds.
    #[arg(long, default_value_t = 200)]
    poll_us: u64,
    /// Give up on a run after this long.
    #[arg(long, default_value_t = 10)]
    timeout_s: u64,
    /// Where the runs' data dirs are made (each run gets a new, empty one).
    #[arg(long, default_value = "/tmp")]
    work_dir: std::path::PathBuf,
    /// The command that starts the gateway; `{port}` and `{dir}` are replaced.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Times the cold starts and prints them.
pub(crate) fn run(args: ColdstartArgs) -> anyhow::Result<ExitCode> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut times_ms = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        times_ms.push(one(&args)?);
    }
    let mut sorted = times_ms.clone();
    sorted.sort_by(f64::total_cmp);
    crate::print_json(&json!({
        "runs_ms": times_ms,
        "median_ms": nearest_rank(&sorted, 50.0),
        "min_ms": sorted.first(),
        "max_ms": sorted.last(),
        "path": args.path,
        "expect_status": args.expect_status,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// One cold start, in milliseconds.
fn one(args: &ColdstartArgs) -> anyhow::Result<f64> {
    let port = free_port()?;
    // Removed when the run ends.
    let data_dir = tempfile::Builder::new()
        .prefix("portico-coldstart-")
        .tempdir_in(&args.work_dir)
        .context("creating a data dir")?;
    let dir = data_dir.path().to_path_buf();
    let fill = |s: &String| {
        s.replace("{port}", &port.to_string())
            .replace("{dir}", &dir.display().to_string())
    };
    let program = fill(&args.command[0]);
    let request = request_bytes(args, port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args.command[1..].iter().map(fill))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the gateway")?;
    let deadline = started + Duration::from_secs(args.timeout_s);
    let answered = loop {
        if ask(addr, &request) == Some(args.expect_status) {
            break Some(started.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        if let Ok(Some(exit)) = child.try_wait() {
            bail!("the gateway exited before answering: {exit}");
        }
        std::thread::sleep(Duration::from_micros(args.poll_us));
    };
    stop(&mut child);
    drop(data_dir);
    match answered {
        Some(elapsed) => Ok(elapsed.as_secs_f64() * 1000.0),
        None => bail!(
            "no {} answer to {} within {} s",
            args.expect_status,
            args.path,
            args.timeout_s
        ),
    }
}

/// The request as HTTP/1.1 bytes, closing the connection after the answer.
fn request_bytes(args: &ColdstartArgs, port: u16) -> Vec<u8> {
    let method = if args.body.is_some() { "POST" } else { "GET" };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n",
        args.path
    );
    for header in &args.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    let body = args.body.as_deref().unwrap_or("");
    if args.body.is_some() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Sends the request on a new connection; the answer's status, or `None` when the gateway
/// does not answer (not listening yet, or closed the connection).
fn ask(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(request).ok()?;
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match tcp.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// SIGTERM, then SIGKILL if the process is still there after 10 s.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
