//! [`PorticoProcess`]: the real `portico` binary, started for an end-to-end test.
//!
//! The child gets a cleared environment, its stdout and stderr are read by background tasks
//! (so it never blocks on a full pipe), and [`PorticoProcess::start`] returns once the binary
//! printed `portico: listening on http://ADDR`.
//!
//! With [`OUTPUT_DIR_VAR`] set (scripts/test.sh sets it), every line the child prints is also
//! appended to `<dir>/<test>-<pid>.stdout` and `.stderr`, so that the whole suite's output can
//! be searched afterwards (scripts/grep-secrets.sh: no provider secret may appear in it).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long [`PorticoProcess::start`] waits for the listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// After the child exited, how long to wait for its pipes to reach EOF (a grandchild may
/// still hold them open).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The environment variable naming the directory the children's output is copied into.
pub const OUTPUT_DIR_VAR: &str = "PORTICO_TEST_OUTPUT_DIR";

const LISTENING: &str = "portico: listening on http://";
const ADMIN_KEY: &str = "portico: admin key (shown once, store it now): ";
const KEY: &str = "portico: key ";
const KEY_SUFFIX: &str = " (shown once, store it now): ";

/// Why [`PorticoProcess`] could not start or stop as expected. `Debug` prints the same
/// multi-line text as `Display`, so `.unwrap()` in a test shows the child's output readably.
#[derive(thiserror::Error)]
pub enum ProcessError {
    /// The binary could not be spawned (wrong path? not built?).
    #[error("could not spawn {}: {source}", bin.display())]
    Spawn {
        /// The binary path given.
        bin: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The process exited while we were waiting for it to start.
    #[error(
        "portico exited before listening ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Everything it printed on stdout.
        stdout: String,
        /// Everything it printed on stderr.
        stderr: String,
    },
    /// The process did not do what we waited for in time.
    #[error(
        "timed out after {waited:?} waiting for portico to {what}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    Timeout {
        /// What we waited for.
        what: &'static str,
        /// How long we waited.
        waited: Duration,
        /// Everything it printed on stdout so far.
        stdout: String,
        /// Everything it printed on stderr so far.
        stderr: String,
    },
    /// Waiting for or signalling the process failed.
    #[error("could not {what} portico: {source}")]
    Io {
        /// What we tried.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Debug for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A running `portico` binary. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct PorticoProcess {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    output: Arc<Output>,
    // Owning the reader tasks here means dropping the process aborts them.
    _readers: JoinSet<()>,
}

/// What the child printed, shared with the reader tasks.
#[derive(Debug)]
struct Output {
    stdout: Mutex<Vec<String>>,
    stderr: Mutex<String>,
    /// Number of stdout lines, bumped after each push (to wake waiters).
    lines: watch::Sender<usize>,
    /// Pipes not at EOF yet.
    open_pipes: watch::Sender<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Output {
    fn find<T>(&self, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        lock(&self.stdout).iter().find_map(|line| parse(line))
    }

    async fn wait_line<T>(&self, parse: impl Fn(&str) -> Option<T>) -> T {
        let mut rx = self.lines.subscribe();
        loop {
            if let Some(found) = self.find(&parse) {
                return found;
            }
            // The sender lives as long as `self`, so this only returns `Ok`.
            let _ = rx.changed().await;
        }
    }

    async fn drained(&self, timeout: Duration) {
        let mut rx = self.open_pipes.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|open| *open == 0)).await;
    }

    fn stdout_text(&self) -> String {
        lock(&self.stdout).join("\n")
    }

    fn stderr_text(&self) -> String {
        lock(&self.stderr).clone()
    }
}

/// The file a child's stream is copied into, under [`OUTPUT_DIR_VAR`] when it is set: named
/// after the test (its thread's name) and the child's pid. `None` when the variable is unset
/// or the file cannot be created (the copy is for a later check, never a reason to fail).
fn output_copy(pid: u32, stream: &str) -> Option<std::fs::File> {
    let dir = PathBuf::from(std::env::var_os(OUTPUT_DIR_VAR)?);
    std::fs::create_dir_all(&dir).ok()?;
    let thread = std::thread::current();
    let test: String = thread
        .name()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{test}-{pid}.{stream}")))
        .ok()
}

async fn read_lines(
    pipe: impl AsyncRead + Unpin,
    output: Arc<Output>,
    stdout: bool,
    mut copy: Option<std::fs::File>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(file) = copy.as_mut() {
            // A few hundred bytes per line, in tests only: a blocking write is fine here.
            let _ = std::io::Write::write_all(file, &buf);
        }
        let line = String::from_utf8_lossy(&buf);
        if stdout {
            let line = line.trim_end_matches(['\n', '\r']).to_owned();
            let count = {
                let mut lines = lock(&output.stdout);
                lines.push(line);
                lines.len()
            };
            output.lines.send_replace(count);
        } else {
            lock(&output.stderr).push_str(&line);
        }
    }
    output.open_pipes.send_modify(|open| *open -= 1);
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches('/')
        .parse()
        .ok()
}

fn parse_admin_key(line: &str) -> Option<String> {
    let rest = &line[line.find(ADMIN_KEY)? + ADMIN_KEY.len()..];
    Some(rest.trim().to_owned())
}

fn parse_key(line: &str, name: &str) -> Option<String> {
    let rest = &line[line.find(KEY)? + KEY.len()..];
    let (found, secret) = rest.split_once(KEY_SUFFIX)?;
    (found == name).then(|| secret.trim().to_owned())
}

impl PorticoProcess {
    /// Spawn `bin args...` and wait (up to [`START_TIMEOUT`]) until it prints
    /// `portico: listening on http://ADDR`. Pass `--listen 127.0.0.1:0` so it picks a free
    /// port.
    ///
    /// The environment is cleared: only `PATH` and `HOME` are kept, `RUST_LOG=info` and
    /// `NO_COLOR=1` are set, then `env` is applied (and may override those two). So host
    /// variables such as `OPENAI_API_KEY` never leak into the test.
    pub async fn start(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, ProcessError> {
        let mut command = Command::new(bin);
        command.args(args).env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_error = |source| ProcessError::Spawn {
            bin: bin.to_owned(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let pid = child
            .id()
            .ok_or_else(|| spawn_error(io::Error::other("exited immediately")))?;

        let output = Arc::new(Output {
            stdout: Mutex::new(Vec::new()),
            stderr: Mutex::new(String::new()),
            lines: watch::Sender::new(0),
            open_pipes: watch::Sender::new(2),
        });
        let mut readers = JoinSet::new();
        if let Some(stdout) = child.stdout.take() {
            let copy = output_copy(pid, "stdout");
            readers.spawn(read_lines(stdout, Arc::clone(&output), true, copy));
        }
        if let Some(stderr) = child.stderr.take() {
            let copy = output_copy(pid, "stderr");
            readers.spawn(read_lines(stderr, Arc::clone(&output), false, copy));
        }

        let started = tokio::select! {
            addr = output.wait_line(parse_listening) => Ok(addr),
            status = child.wait() => Err(status),
            () = tokio::time::sleep(START_TIMEOUT) => {
                return Err(ProcessError::Timeout {
                    what: "print its listening line",
                    waited: START_TIMEOUT,
                    stdout: output.stdout_text(),
                    stderr: output.stderr_text(),
                });
            }
        };
        match started {
            Ok(addr) => Ok(Self {
                child,
                pid,
                addr,
                output,
                _readers: readers,
            }),
            Err(Err(source)) => Err(ProcessError::Io {
                what: "wait for",
                source,
            }),
            Err(Ok(status)) => {
                output.drained(DRAIN_TIMEOUT).await;
                Err(ProcessError::Exited {
                    status,
                    stdout: output.stdout_text(),
                    stderr: output.stderr_text(),
                })
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The address from the listening line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, from the listening line (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` + `path`, e.g. `url("/v1/chat/completions")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The secret from `portico: admin key (shown once, store it now): SECRET`, if printed
    /// so far.
    pub fn admin_key(&self) -> Option<String> {
        self.output.find(parse_admin_key)
    }

    /// The secret from `portico: key NAME (shown once, store it now): SECRET`, if printed so
    /// far.
    pub fn printed_key(&self, name: &str) -> Option<String> {
        self.output.find(|line| parse_key(line, name))
    }

    /// Every stdout line so far, without line endings.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.output.stdout).clone()
    }

    /// Everything printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.output.stderr_text()
    }

    /// Wait until a stdout line containing `needle` appears and return it; `None` after
    /// `timeout`.
    pub async fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> Option<String> {
        let wanted = |line: &str| line.contains(needle).then(|| line.to_owned());
        tokio::time::timeout(timeout, self.output.wait_line(wanted))
            .await
            .ok()
    }

    /// Send SIGTERM (graceful shutdown), via `kill -TERM <pid>`.
    pub fn sigterm(&self) -> Result<(), ProcessError> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|source| ProcessError::Io {
                what: "run `kill -TERM` on",
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(ProcessError::Io {
                what: "send SIGTERM to",
                source: io::Error::other(format!("`kill -TERM {}` {status}", self.pid)),
            })
        }
    }

    /// Wait up to `timeout` for the process to exit, then (briefly) for its output to be
    /// fully read, so [`stdout_lines`](Self::stdout_lines) and
    /// [`stderr_text`](Self::stderr_text) are complete.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.output.drained(DRAIN_TIMEOUT).await;
                Ok(status)
            }
            Ok(Err(source)) => Err(ProcessError::Io {
                what: "wait for",
                source,
            }),
            Err(_) => Err(ProcessError::Timeout {
                what: "exit",
                waited: timeout,
                stdout: self.output.stdout_text(),
                stderr: self.output.stderr_text(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_printed_lines() {
        let line = "portico: listening on http://127.0.0.1:4000";
        assert_eq!(
            parse_listening(line),
            Some("127.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(
            parse_listening("2025 INFO portico: listening on http://[::1]:80/ extra"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse_listening("portico: listening on http://localhost"),
            None
        );
        assert_eq!(
            parse_admin_key("portico: admin key (shown once, store it now): pk_admin \r"),
            Some("pk_admin".to_owned())
        );
        let key = "portico: key ci bot (shown once, store it now): pk_123";
        assert_eq!(parse_key(key, "ci bot"), Some("pk_123".to_owned()));
        assert_eq!(parse_key(key, "ci"), None);
    }
}
