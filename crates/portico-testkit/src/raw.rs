//! [`RawUpstream`]: an upstream below HTTP, for the faults an HTTP server cannot be made to
//! commit: a TCP reset in the middle of a body, a socket that is accepted and never read or
//! answered, a response head and then silence, bytes that are not what the head promised.
//!
//! Each accepted connection takes the next [`RawScript`] from a FIFO and plays it on the bare
//! socket: optionally read the request (head and body), send bytes and wait, as scripted, then
//! end by closing (FIN), resetting (`SO_LINGER` 0, so the peer gets an RST) or hanging (the
//! socket stays open until the peer closes it). A connection that finds the FIFO empty is
//! reset at once, so a test that scripted too little fails loudly instead of waiting.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The most request bytes a [`RawUpstream`] reads (head and body).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// What a connection does once its script's steps are played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEnd {
    /// Close the socket normally (FIN): a body cut short looks truncated to the peer.
    Close,
    /// Reset the connection: `SO_LINGER` 0, then close, so the peer gets an RST
    /// (`connection reset by peer`).
    Reset,
    /// Keep the socket open, saying nothing more, until the peer closes it (counted in
    /// [`RawUpstream::peer_closes`] when the request was read) or the server is dropped.
    Hang,
}

/// One step of a [`RawScript`].
#[derive(Debug, Clone)]
enum RawStep {
    Send(Bytes),
    Wait(Duration),
}

/// What one connection to a [`RawUpstream`] gets, byte for byte.
///
/// ```
/// use std::time::Duration;
/// use portico_testkit::RawScript;
///
/// // A response head promising 1,000 bytes, 10 of them, then a reset.
/// let script = RawScript::new()
///     .head(200, "application/json", Some(1000))
///     .bytes("{\"id\":\"x\",")
///     .wait(Duration::from_millis(50))
///     .reset();
/// ```
#[derive(Debug, Clone)]
pub struct RawScript {
    read_request: bool,
    steps: VecDeque<RawStep>,
    end: RawEnd,
}

impl Default for RawScript {
    fn default() -> Self {
        Self::new()
    }
}

impl RawScript {
    /// Read the request (head and body), then close: add steps and an end.
    pub fn new() -> Self {
        RawScript {
            read_request: true,
            steps: VecDeque::new(),
            end: RawEnd::Close,
        }
    }

    /// Accept the connection and never read from it nor answer: a half-open peer (the
    /// request fits in the socket buffers, so the sender sees it sent, and waits).
    pub fn never_read() -> Self {
        RawScript {
            read_request: false,
            steps: VecDeque::new(),
            end: RawEnd::Hang,
        }
    }

    /// Send these exact bytes.
    pub fn bytes(mut self, bytes: impl Into<Bytes>) -> Self {
        self.steps.push_back(RawStep::Send(bytes.into()));
        self
    }

    /// An HTTP/1.1 response head: the status, `content-type`, `connection: close`, and
    /// `content-length` when given, else `transfer-encoding: chunked` (then send the body with
    /// [`RawScript::chunk`]).
    pub fn head(self, status: u16, content_type: &str, content_length: Option<usize>) -> Self {
        let framing = match content_length {
            Some(n) => format!("content-length: {n}"),
            None => "transfer-encoding: chunked".to_owned(),
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n{framing}\r\nconnection: close\r\n\r\n",
            reason(status)
        );
        self.bytes(head)
    }

    /// One chunk of a chunked body (`<hex length>\r\n<bytes>\r\n`).
    pub fn chunk(self, data: impl AsRef<[u8]>) -> Self {
        let data = data.as_ref();
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        self.bytes(framed)
    }

    /// The last chunk of a chunked body: the body ends properly.
    pub fn last_chunk(self) -> Self {
        self.bytes("0\r\n\r\n")
    }

    /// Pause before the next step.
    pub fn wait(mut self, duration: Duration) -> Self {
        self.steps.push_back(RawStep::Wait(duration));
        self
    }

    /// End with a close (FIN); the default.
    pub fn close(mut self) -> Self {
        self.end = RawEnd::Close;
        self
    }

    /// End with a reset (RST).
    pub fn reset(mut self) -> Self {
        self.end = RawEnd::Reset;
        self
    }

    /// End by keeping the connection open and silent.
    pub fn hang(mut self) -> Self {
        self.end = RawEnd::Hang;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A scriptable TCP server on `127.0.0.1:<free port>` that answers below HTTP (see the
/// module docs). Stops, closing every connection, when dropped.
#[derive(Debug)]
pub struct RawUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: JoinSet<()>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<RawScript>>,
    /// The request line of every request read (`POST /v1/chat/completions HTTP/1.1`).
    requests: Mutex<Vec<String>>,
    connections: watch::Sender<usize>,
    peer_closes: watch::Sender<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RawUpstream {
    /// Bind `127.0.0.1:0` and start accepting. Panics if binding fails.
    #[expect(clippy::expect_used, reason = "test support: no port means no test")]
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the raw upstream");
        let addr = listener
            .local_addr()
            .expect("local address of the raw mock");
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            connections: watch::Sender::new(0),
            peer_closes: watch::Sender::new(0),
        });
        let mut server = JoinSet::new();
        let accepting = Arc::clone(&shared);
        server.spawn(async move {
            // Dropping this set (with the server task) ends every connection.
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepting.connections.send_modify(|n| *n += 1);
                let script = lock(&accepting.queue).pop_front();
                connections.spawn(play(socket, script, Arc::clone(&accepting)));
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        RawUpstream {
            addr,
            shared,
            _server: server,
        }
    }

    /// An address on which nothing listens: connecting to it is refused. (The port was free a
    /// moment ago; nothing on loopback takes a port it did not ask for.)
    #[expect(clippy::expect_used, reason = "test support: no port means no test")]
    pub fn refused_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local address")
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Script the next connection.
    pub fn enqueue(&self, script: RawScript) {
        lock(&self.shared.queue).push_back(script);
    }

    /// Scripts not taken by a connection yet.
    pub fn pending_scripts(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.shared.connections.borrow()
    }

    /// The request lines read so far, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }

    /// Hanging connections (with their request read) that the peer closed.
    pub fn peer_closes(&self) -> usize {
        *self.shared.peer_closes.borrow()
    }

    /// Wait until the peer closed at least `n` hanging connections; `false` if `timeout`
    /// passed first.
    pub async fn wait_for_peer_closes(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.peer_closes.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|v| *v >= n)).await,
            Ok(Ok(_))
        )
    }
}

/// Plays `script` on `socket`; no script resets the connection at once.
async fn play(mut socket: TcpStream, script: Option<RawScript>, shared: Arc<Shared>) {
    let Some(script) = script else {
        let _ = socket.set_zero_linger();
        return;
    };
    if script.read_request {
        match read_request(&mut socket).await {
            Ok(line) => lock(&shared.requests).push(line),
            Err(_) => return,
        }
    }
    for step in script.steps {
        match step {
            RawStep::Send(bytes) => {
                if socket.write_all(&bytes).await.is_err() {
                    return;
                }
                let _ = socket.flush().await;
            }
            RawStep::Wait(duration) => tokio::time::sleep(duration).await,
        }
    }
    match script.end {
        RawEnd::Close => {
            let _ = socket.shutdown().await;
        }
        RawEnd::Reset => {
            // Dropping a socket with a zero linger sends RST instead of FIN.
            let _ = socket.set_zero_linger();
        }
        RawEnd::Hang if script.read_request => {
            // Read (and ignore) until the peer goes away.
            let mut buf = [0u8; 4096];
            while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            shared.peer_closes.send_modify(|n| *n += 1);
        }
        RawEnd::Hang => std::future::pending::<()>().await,
    }
}

/// Reads one HTTP/1.1 request (head, then a `content-length` or chunked body); answers its
/// request line.
async fn read_request(socket: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        read_more(socket, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let line = head.lines().next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < head_end + length {
            read_more(socket, &mut buf).await?;
        }
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while find(&buf[head_end..], b"0\r\n\r\n").is_none() {
            read_more(socket, &mut buf).await?;
        }
    }
    Ok(line)
}

async fn read_more(socket: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.len() > MAX_REQUEST {
        return Err(io::Error::other("request too large for the raw mock"));
    }
    let mut chunk = [0u8; 16 * 1024];
    let n = socket.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
