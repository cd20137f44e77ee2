//! The connection limit (`--max-connections`): how many client connections the listener
//! holds open at once, and what a client past it gets.
//!
//! What proxies do at their limit: nginx stops accepting (`worker_connections`), so new
//! clients wait in the kernel's backlog until they time out; Envoy accepts and closes at once
//! (`max_connections` overflow), so they see a reset. Either way the client cannot tell what
//! happened, and an SDK's retry starts blind. Portico accepts the connection, writes a
//! complete `503` answer in OpenAI's error shape (code `overloaded`, `Retry-After: 1`,
//! `Connection: close`) without reading the request, half-closes it, and reads and discards
//! what the client sends for at most [`LINGER`] (closing a socket with unread bytes resets it,
//! and a reset can destroy the answer before the client reads it; nginx's `lingering_close`
//! does the same). A refused connection is not counted among the open ones; at most
//! [`MAX_LINGERING`] refusals linger at once, past which a connection is closed at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use portico_core::{ApiError, ErrorCode, ServerLimitObserver};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Default `--max-connections`: room for 4,096 requests in flight (`--max-in-flight`) and
/// twice as many idle keep-alive connections. The process's file-descriptor limit must be
/// above it (`ulimit -n`, systemd's `LimitNOFILE`) for it to bind first.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Longest a refused connection is kept to write its answer and read what the client sent.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Most refused connections lingering at once; past it, a refused connection is closed
/// without an answer (a flood of connections must not hold a descriptor each for `LINGER`).
pub(crate) const MAX_LINGERING: usize = 1024;

/// Seconds a refused client is told to wait.
const RETRY_AFTER_SECS: u32 = 1;

/// The open client connections, counted against the limit.
#[derive(Clone)]
pub(crate) struct ConnectionCount {
    open: Arc<AtomicUsize>,
    lingering: Arc<AtomicUsize>,
    max: usize,
    observer: Option<Arc<dyn ServerLimitObserver>>,
    /// The whole answer to a refused connection, written once at start.
    refusal: Bytes,
}

/// One open connection's place under the limit, given back when dropped.
pub(crate) struct ConnectionSlot(ConnectionCount);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let open = self.0.open.fetch_sub(1, Ordering::AcqRel) - 1;
        if let Some(observer) = &self.0.observer {
            observer.open_connections(open);
        }
    }
}

impl ConnectionCount {
    /// A count of nothing open, refusing past `max`.
    pub(crate) fn new(max: usize, observer: Option<Arc<dyn ServerLimitObserver>>) -> Self {
        ConnectionCount {
            open: Arc::new(AtomicUsize::new(0)),
            lingering: Arc::new(AtomicUsize::new(0)),
            max,
            observer,
            refusal: refusal_answer(max),
        }
    }

    /// A place for a connection just accepted, or `None` past the limit.
    pub(crate) fn admit(&self) -> Option<ConnectionSlot> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            if let Some(observer) = &self.observer {
                observer.hit(portico_core::ServerLimit::MaxConnections);
            }
            return None;
        }
        if let Some(observer) = &self.observer {
            observer.open_connections(before + 1);
        }
        Some(ConnectionSlot(self.clone()))
    }

    /// Answers a refused connection with the 503 and lets it go (see the module's doc).
    pub(crate) async fn refuse(&self, mut tcp: TcpStream) {
        if self.lingering.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
            self.lingering.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let answer = async {
            let _ = tcp.set_nodelay(true);
            tcp.write_all(&self.refusal).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 4096];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(LINGER, answer).await;
        self.lingering.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The raw HTTP/1.1 answer to a refused connection.
fn refusal_answer(max: usize) -> Bytes {
    let error = ApiError::new(
        ErrorCode::Overloaded,
        format!(
            "the gateway is at its limit of {max} open connections; retry after {RETRY_AFTER_SECS} s, reuse a connection (keep-alive), or raise the limit with --max-connections (PORTICO_MAX_CONNECTIONS)"
        ),
    );
    let body = error.to_json().to_string();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_gives_places_back() {
        let count = ConnectionCount::new(2, None);
        let a = count.admit().unwrap();
        let _b = count.admit().unwrap();
        assert!(count.admit().is_none());
        drop(a);
        assert!(count.admit().is_some());
        let text = String::from_utf8(count.refusal.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "overloaded");
        assert!(body.contains("--max-connections"), "{body}");
    }
}
