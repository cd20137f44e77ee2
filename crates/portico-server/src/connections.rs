//! The listener: accepting connections, the deadline a client has to send its request head,
//! and the connection side of a graceful shutdown ([`crate::Lifecycle`]).
//!
//! Connections are served as HTTP/1.1 by hyper directly, with a timer, so that a client whose
//! request head is not complete within [`ServeOptions::header_timeout`] (a slowloris client,
//! or one that connects and sends nothing) is disconnected; axum's own `serve` runs hyper
//! without a timer, which leaves such connections open forever. HTTP/2 is not offered on the
//! plain-text listener: hyper's protocol sniffing has no deadline of its own, and LLM clients
//! speak HTTP/1.1 to a gateway (TLS, where used, ends in front of it).
//!
//! Every answer passes two checks of the listener's: a client address that has failed to
//! authenticate too often is refused before routing ([`crate::AuthThrottle`]), and the
//! security headers are added to each answer ([`crate::security_headers`]).
//!
//! During a drain the listener keeps accepting (so `/readyz` answers 503 rather than
//! refusing connections); connections it accepts then serve one request each, and the
//! connections open before the drain close once their current answer is sent. The accept
//! loop ends when the drain is over (nothing in flight) or cut; then every connection is
//! asked to close, and is waited for until the cut and a short grace after it.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use portico_core::{ApiError, Endpoint, ErrorCode, ServerLimitObserver};
use portico_engine::Family;

use crate::auth_throttle::{
    AUTH_FAILURE_WINDOW, AuthFailed, AuthThrottle, DEFAULT_AUTH_FAILURE_LIMIT,
};
use crate::connection_limit::{ConnectionCount, ConnectionSlot, DEFAULT_MAX_CONNECTIONS};
use crate::head_limits::{self, HeadLimits};
use crate::lifecycle::{InFlightGuard, Lifecycle};
use crate::write_deadline::{DEFAULT_WRITE_TIMEOUT, WriteDeadline};

/// Deadlines and limits a client's connection is held to.
#[derive(Clone)]
pub struct ServeOptions {
    /// Time a client has, from connecting or from the end of its previous answer, to send a
    /// complete request head; past it the connection is closed.
    pub header_timeout: Duration,
    /// After the shutdown deadline, how long connections get to write the answers the cut
    /// produced (503s, error events) before the process stops waiting for them.
    pub cut_grace: Duration,
    /// Refused credentials (401 `invalid_api_key`) one client address may present within a
    /// minute; past it, its requests are answered 429 until that minute ends
    /// ([`AuthThrottle`]). 0 turns this off.
    pub auth_failure_limit: u32,
    /// How many headers, and header bytes, a request may carry (431 past them).
    pub head_limits: HeadLimits,
    /// Longest a write to a client may wait (the client not reading); then the connection
    /// is closed ([`crate::write_deadline`]).
    pub write_timeout: Duration,
    /// Most client connections open at once; past it a new one gets a 503 and is closed
    /// ([`crate::connection_limit`]).
    pub max_connections: usize,
    /// Where the listener's limit hits and open connections are counted (the metrics).
    pub observer: Option<Arc<dyn ServerLimitObserver>>,
}

/// Default [`ServeOptions::header_timeout`] (spec section 13).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(15);

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            cut_grace: Duration::from_secs(2),
            auth_failure_limit: DEFAULT_AUTH_FAILURE_LIMIT,
            head_limits: HeadLimits::default(),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            observer: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("header_timeout", &self.header_timeout)
            .field("cut_grace", &self.cut_grace)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("head_limits", &self.head_limits)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Serves `app` on `listener` until the drain that `lifecycle` starts is over or cut.
///
/// Returns once every connection has closed, or the cut's grace has passed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    lifecycle: Arc<Lifecycle>,
) {
    let connections = TaskTracker::new();
    let throttle = Arc::new(AuthThrottle::new(options.auth_failure_limit));
    // Fired when the accept loop ends: connections accepted during the drain close too.
    let closing = CancellationToken::new();
    let mut serving = http1::Builder::new();
    serving
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        // Backstops above our own head limits, which answer in JSON (head_limits.rs).
        .max_buf_size(options.head_limits.hyper_max_buf_size());
    if options.head_limits.hyper_max_headers() > HYPER_STACK_HEADERS {
        serving.max_headers(options.head_limits.hyper_max_headers());
    }
    let count = ConnectionCount::new(options.max_connections, options.observer.clone());
    let limits = ConnectionLimits {
        head: options.head_limits,
        write_timeout: options.write_timeout,
        observer: options.observer.clone(),
    };
    let mut draining = serving.clone();
    draining.keep_alive(false);
    let (serving, draining) = (Arc::new(serving), Arc::new(draining));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: the listener itself is fine; pause a moment so a full
                        // descriptor table is not spun on.
                        tracing::warn!("accepting a connection failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = count.admit() else {
                    let count = count.clone();
                    connections.spawn(async move { count.refuse(tcp).await });
                    continue;
                };
                let service = Counted {
                    app: app.clone(),
                    lifecycle: Arc::clone(&lifecycle),
                    throttle: Arc::clone(&throttle),
                    client: peer.ip(),
                    head: limits.head,
                    observer: limits.observer.clone(),
                };
                let (builder, close) = if lifecycle.is_draining() {
                    (Arc::clone(&draining), Closer::Closing(closing.clone()))
                } else {
                    let close = Closer::Drain(Arc::clone(&lifecycle), closing.clone());
                    (Arc::clone(&serving), close)
                };
                let io = WriteDeadline::new(tcp, limits.write_timeout, peer, limits.observer.clone());
                connections.spawn(serve_connection(builder, io, peer, service, close, slot));
            }
            () = lifecycle.drained() => break,
            () = lifecycle.cut_signal().cancelled() => break,
        }
    }
    drop(listener);
    closing.cancel();
    connections.close();
    let waited = async {
        tokio::select! {
            () = connections.wait() => {}
            () = async {
                lifecycle.cut_signal().cancelled().await;
                tokio::time::sleep(options.cut_grace).await;
            } => {
                tracing::warn!(
                    open = connections.len(),
                    "connections still open after the shutdown deadline; closing them"
                );
            }
        }
    };
    waited.await;
}

/// What tells a connection to finish its current answer and close.
enum Closer {
    /// A connection accepted while serving: closes when the drain starts (or the accept
    /// loop ends).
    Drain(Arc<Lifecycle>, CancellationToken),
    /// A connection accepted during the drain (it already serves one request only): closes
    /// when the accept loop ends.
    Closing(CancellationToken),
}

impl Closer {
    async fn fired(self) {
        match self {
            Closer::Drain(lifecycle, closing) => {
                tokio::select! {
                    () = lifecycle.drain_started() => {}
                    () = closing.cancelled() => {}
                }
            }
            Closer::Closing(closing) => closing.cancelled().await,
        }
    }
}

/// The per-connection settings of the listener's limits.
struct ConnectionLimits {
    head: HeadLimits,
    write_timeout: Duration,
    observer: Option<Arc<dyn ServerLimitObserver>>,
}

/// hyper's default header count, which it keeps on the stack.
const HYPER_STACK_HEADERS: usize = 100;

async fn serve_connection(
    builder: Arc<http1::Builder>,
    io: WriteDeadline<TcpStream>,
    peer: SocketAddr,
    service: Counted,
    close: Closer,
    _slot: ConnectionSlot,
) {
    // Streamed events are small writes: without TCP_NODELAY, Nagle's algorithm would hold
    // each one back until the previous was acknowledged.
    if let Err(err) = io.get_ref().set_nodelay(true) {
        tracing::debug!("could not set TCP_NODELAY: {err}");
    }
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let closed = close.fired();
    tokio::pin!(closed);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = &mut closed => {
            // Idle: closes now. Busy: finishes the answer it is writing, without keep-alive.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        // A client that went away, sent garbage or never finished its request head: its
        // connection ends here, and nothing else is affected.
        tracing::debug!(%peer, "connection ended: {err}");
    }
}

/// The app as hyper's service for one connection, counting each request in flight until
/// its answer's body has been sent or dropped, throttling a client that keeps failing to
/// authenticate, and adding the security headers.
#[derive(Clone)]
struct Counted {
    app: Router,
    lifecycle: Arc<Lifecycle>,
    throttle: Arc<AuthThrottle>,
    client: IpAddr,
    /// Checked on every request before it is routed.
    head: HeadLimits,
    observer: Option<Arc<dyn ServerLimitObserver>>,
}

impl hyper::service::Service<Request<Incoming>> for Counted {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = CountedFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = self.lifecycle.enter();
        let throttle = self
            .throttle
            .is_enabled()
            .then(|| Arc::clone(&self.throttle));
        if let Some(secs) = self
            .throttle
            .refused(self.client, std::time::Instant::now())
        {
            tracing::debug!(client = %self.client, path = request.uri().path(), "refused: too many failed authentications");
            return CountedFuture {
                answer: Answer::Refused(Some(too_many_failures(
                    request.uri().path(),
                    self.throttle.limit(),
                    secs,
                ))),
                guard: Some(guard),
                throttle: None,
                client: self.client,
            };
        }
        if let Some((limit, error)) = self.head.check(request.headers()) {
            if let Some(observer) = &self.observer {
                observer.hit(limit);
            }
            tracing::info!(
                path = request.uri().path(),
                "request refused before routing: {}",
                error.message
            );
            return CountedFuture {
                answer: Answer::Refused(Some(head_limits::refusal(request.uri().path(), &error))),
                guard: Some(guard),
                throttle: None,
                client: self.client,
            };
        }
        // A Router is always ready (`poll_ready` is `Ready(Ok)`), and `call` on a clone is
        // how axum's own `serve` drives it.
        let mut app = self.app.clone();
        CountedFuture {
            answer: Answer::Routed(app.call(request.map(Body::new))),
            guard: Some(guard),
            throttle,
            client: self.client,
        }
    }
}

/// The 429 for a client address that has used up its failed authentications.
fn too_many_failures(path: &str, limit: u32, retry_after: u32) -> Response<Body> {
    let family = if path == "/v1/messages" {
        Family::Messages
    } else {
        Family::OpenAi(Endpoint::ChatCompletions)
    };
    let mut error = ApiError::new(
        ErrorCode::RateLimited,
        format!(
            "too many failed authentications from this address ({limit} refused keys within {} s); wait {retry_after} s, and check the key this client sends",
            AUTH_FAILURE_WINDOW.as_secs()
        ),
    );
    error.retry_after = Some(retry_after);
    crate::error::render(family, &error)
}

/// The router's answer to one request, with its in-flight count.
struct CountedFuture {
    answer: Answer,
    guard: Option<InFlightGuard>,
    /// Where a refused credential is counted, when throttling is on.
    throttle: Option<Arc<AuthThrottle>>,
    client: IpAddr,
}

/// The router's answer, or the throttle's refusal made without routing.
enum Answer {
    Routed(<Router as Service<Request<Body>>>::Future),
    Refused(Option<Response<Body>>),
}

impl Future for CountedFuture {
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let answered = match &mut this.answer {
            Answer::Routed(inner) => Pin::new(inner).poll(cx),
            Answer::Refused(refusal) => Poll::Ready(Ok(refusal.take().unwrap_or_default())),
        };
        match answered {
            Poll::Pending => Poll::Pending,
            Poll::Ready(mut result) => {
                if let Ok(response) = &mut result {
                    if response.extensions().get::<AuthFailed>().is_some()
                        && let Some(throttle) = &this.throttle
                    {
                        let now = std::time::Instant::now();
                        if throttle.record_failure(this.client, now) {
                            tracing::warn!(
                                client = %this.client,
                                limit = throttle.limit(),
                                "client address throttled: too many failed authentications within a minute; its requests get 429 until the minute ends"
                            );
                        }
                    }
                    crate::security_headers::add(response.headers_mut());
                }
                let guard = this.guard.take();
                Poll::Ready(result.map(|response| {
                    response.map(|inner| CountedBody {
                        inner,
                        _guard: guard,
                    })
                }))
            }
        }
    }
}

/// An answer's body that keeps its request counted until it is sent or dropped.
pub(crate) struct CountedBody {
    inner: Body,
    _guard: Option<InFlightGuard>,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
