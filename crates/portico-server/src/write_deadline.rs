//! The write-stall deadline: a client that stops reading its answer (a whole one or a
//! stream) loses its connection once no byte could be written to it for the write timeout,
//! so it cannot hold the request, its upstream call and its buffers forever.
//!
//! [`WriteDeadline`] wraps a connection's socket. A write that the socket cannot take
//! (`poll_write` pending: the client's receive window and our send buffer are full) arms a
//! timer; any write that goes through disarms it; a timer that fires fails the write with
//! `TimedOut`, and hyper closes the connection. The request's answer is dropped with it, which
//! ends its record as a client disconnect (499) and drops its upstream call. A healthy
//! connection never arms the timer, so it costs a branch per write; the timer itself is made
//! once per connection, on its first stall.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use portico_core::{ServerLimit, ServerLimitObserver};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Default write timeout: a minute without a byte taken by the client. Long enough for a
/// client on a congested mobile link, short enough that a stuck one lets go of its upstream
/// call well before a provider's own timeouts.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection whose writes fail once one has been pending for `timeout`.
pub(crate) struct WriteDeadline<T> {
    io: T,
    timeout: Duration,
    /// The stall timer, made on the first stall and reset on later ones.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether a write is pending now (the timer runs).
    stalled: bool,
    peer: SocketAddr,
    observer: Option<Arc<dyn ServerLimitObserver>>,
}

impl<T> WriteDeadline<T> {
    /// `io`, whose writes may stall for at most `timeout`.
    pub(crate) fn new(
        io: T,
        timeout: Duration,
        peer: SocketAddr,
        observer: Option<Arc<dyn ServerLimitObserver>>,
    ) -> WriteDeadline<T> {
        WriteDeadline {
            io,
            timeout,
            timer: None,
            stalled: false,
            peer,
            observer,
        }
    }

    /// The wrapped connection.
    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    /// A write that could not go through: pending until the deadline, then `TimedOut`.
    fn stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if !self.stalled {
            self.stalled = true;
            let deadline = Instant::now() + self.timeout;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let Some(timer) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(observer) = &self.observer {
            observer.hit(ServerLimit::WriteTimeout);
        }
        tracing::info!(
            peer = %self.peer,
            seconds = self.timeout.as_secs(),
            "closing a connection whose client stopped reading its answer (--write-timeout-secs)"
        );
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for the write timeout",
        )))
    }

    /// A write's outcome: one that went through disarms the timer.
    fn progressed<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = false;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progressed(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.progressed(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_shutdown(cx);
        this.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_stays_pending_fails_at_the_deadline() {
        // A pipe whose reader never reads: 64 bytes of room, then writes wait.
        let (writer, _reader) = tokio::io::duplex(64);
        let mut io = WriteDeadline::new(writer, Duration::from_secs(60), peer(), None);
        let started = Instant::now();
        let err = io.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_never_cut() {
        use tokio::io::AsyncReadExt as _;
        let (writer, mut reader) = tokio::io::duplex(64);
        let mut io = WriteDeadline::new(writer, Duration::from_secs(60), peer(), None);
        let reading = async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 64 * 10 {
                // 50 s between reads: each under the deadline, together far over it.
                tokio::time::sleep(Duration::from_secs(50)).await;
                total += reader.read(&mut buf).await.unwrap();
            }
            total
        };
        let (written, read) = tokio::join!(io.write_all(&[0u8; 64 * 10]), reading);
        written.unwrap();
        assert_eq!(read, 640);
    }
}
