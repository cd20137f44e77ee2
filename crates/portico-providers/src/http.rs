//! The one pooled HTTP client every HTTP adapter shares, and the bounded reads of its answers.
//!
//! One client means one connection pool: keep-alive connections to each upstream are reused
//! across requests, HTTP/2 is negotiated by ALPN where the upstream offers it, and TLS is
//! rustls (no OpenSSL on the build or at run time).
//!
//! [`HttpClient`] carries the client together with the limit on what an upstream may send, so
//! no adapter can read an answer without it: [`HttpClient::read_body`] reads a whole body
//! chunk by chunk and refuses one over the limit (at once when `Content-Length` says so), and
//! [`HttpClient::sse_events`] parses a stream whose single events are held to the same limit.
//! Without the bound, an upstream sending an endless body grew the gateway by a gigabyte a
//! second. [`transport_error`] maps reqwest's errors, keeping URLs and addresses out of what
//! a client is told.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use portico_core::JsonBody;

use crate::error::TransportFailure;
use crate::upstream_guard::{GuardedResolver, UpstreamAllowlist};
use crate::{ProviderError, SseEvent};

/// The default limit on one upstream body or stream event, 64 MiB: far above any real answer
/// (a long chat completion is tens of KiB, a large embeddings batch a few MiB).
pub const DEFAULT_MAX_UPSTREAM_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Timeouts, pool settings and answer limits of the upstream client.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// Time allowed to open a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of an answer. Applies per read, not to the whole answer,
    /// so a long stream that keeps sending is never cut, while a stalled upstream is.
    pub read_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// The most bytes one whole (non-streamed) answer, or one event of a stream, may hold.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            // Reasoning models can think for minutes before the first byte.
            read_timeout: Duration::from_secs(600),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
            max_body_bytes: DEFAULT_MAX_UPSTREAM_BODY_BYTES,
        }
    }
}

/// The shared upstream client with the limit every adapter reads answers under. Cloning is
/// cheap (the pool is shared).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body_bytes: usize,
    /// Whether requests carry the attempt's `traceparent` ([`with_traceparent`]): on only
    /// while OpenTelemetry tracing is, so that otherwise a request pays one branch.
    propagate_trace: bool,
    /// The hosts the client may connect to (its resolver enforces it), for the checks made
    /// when an outgoing URL is set.
    allowlist: Arc<UpstreamAllowlist>,
}

tokio::task_local! {
    /// The W3C `traceparent` of the upstream attempt being sent.
    static TRACEPARENT: http::HeaderValue;
}

/// Runs `attempt` (one upstream try) so that every request it sends through a client with
/// trace propagation on ([`HttpClient::with_trace_propagation`]) carries `traceparent`: the
/// attempt's span as the upstream's parent.
pub fn with_traceparent<F: std::future::Future>(
    traceparent: http::HeaderValue,
    attempt: F,
) -> tokio::task::futures::TaskLocalFuture<http::HeaderValue, F> {
    TRACEPARENT.scope(traceparent, attempt)
}

/// Builds the shared upstream client, with the default SSRF guard (every host but the cloud
/// metadata services; see [`crate::upstream_guard`]).
pub fn build_client(options: HttpOptions) -> Result<HttpClient, reqwest::Error> {
    build_guarded_client(options, Arc::new(UpstreamAllowlist::default()))
}

/// Builds the shared upstream client, resolving host names through a [`GuardedResolver`] so
/// that it connects only to addresses `allowlist` allows.
pub fn build_guarded_client(
    options: HttpOptions,
    allowlist: Arc<UpstreamAllowlist>,
) -> Result<HttpClient, reqwest::Error> {
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver::new(Arc::clone(&allowlist))))
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .pool_idle_timeout(options.pool_idle_timeout)
        .pool_max_idle_per_host(options.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(60))
        // Upstream redirects would re-send credentials to another host: refuse them.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut client = HttpClient::new(client, options.max_body_bytes);
    client.allowlist = allowlist;
    Ok(client)
}

impl HttpClient {
    /// Wraps `client` with a limit of `max_body_bytes` per answer or event.
    pub fn new(client: reqwest::Client, max_body_bytes: usize) -> HttpClient {
        HttpClient {
            client,
            max_body_bytes,
            propagate_trace: false,
            allowlist: Arc::new(UpstreamAllowlist::default()),
        }
    }

    /// The hosts this client may connect to: check an outgoing URL against it when it is set
    /// (its resolver checks every resolved address again at connect time).
    pub fn allowlist(&self) -> &UpstreamAllowlist {
        &self.allowlist
    }

    /// The same client, sending the current attempt's `traceparent` upstream when
    /// `propagate` (see [`with_traceparent`]).
    pub fn with_trace_propagation(mut self, propagate: bool) -> HttpClient {
        self.propagate_trace = propagate;
        self
    }

    /// The reqwest client, for building requests.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// A POST to `url` (see [`reqwest::Client::post`]).
    pub fn post<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        let request = self.client.post(url);
        if !self.propagate_trace {
            return request;
        }
        match TRACEPARENT.try_with(http::HeaderValue::clone) {
            Ok(traceparent) => request.header("traceparent", traceparent),
            Err(_) => request,
        }
    }

    /// The most bytes one answer or event may hold.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Reads a whole answer's body under the limit.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Malformed`] naming the limit when the body is larger (at once when
    /// its `Content-Length` says so, else as soon as the bytes read pass it; the connection
    /// is dropped, so the rest is never read); a transport error as [`transport_error`] maps
    /// it, a read timeout included.
    pub async fn read_body(&self, response: reqwest::Response) -> Result<Bytes, ProviderError> {
        read_body(response, self.max_body_bytes).await
    }

    /// The server-sent events of a `text/event-stream` answer, each held to the limit; a
    /// transport error (a read timeout included) ends the stream as [`transport_error`] maps
    /// it.
    pub fn sse_events(
        &self,
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static {
        crate::sse::sse_events_with(
            response.bytes_stream(),
            self.max_body_bytes,
            transport_error,
        )
    }
}

/// Whether an answer is a stream of server-sent events (`Content-Type: text/event-stream`).
pub fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Bodies from this size on are sent upstream as slices of the client's body rather than one
/// new buffer (see [`request_body`]).
const SHARED_BODY_MIN: usize = 256 * 1024;

/// The body of a request sent upstream.
///
/// A rewritten body (its `model` set to the upstream name) is normally one new buffer: for a
/// small body that is the cheapest thing to write. A large one (long histories, images) is
/// sent as its pieces instead, the unchanged values shared with the client's body, so the
/// gateway holds it once rather than twice while it is sent; its length is still known, so
/// it goes with a `Content-Length`.
pub fn request_body(body: &JsonBody) -> reqwest::Body {
    if body.original_len() < SHARED_BODY_MIN {
        return reqwest::Body::from(body.to_bytes());
    }
    let mut chunks = body.to_chunks();
    if chunks.len() == 1 {
        return reqwest::Body::from(chunks.swap_remove(0));
    }
    reqwest::Body::wrap(Chunks::new(chunks))
}

/// A body sent as `chunks`, shared slices of other buffers, with its `Content-Length`.
pub(crate) fn shared_body(mut chunks: Vec<Bytes>) -> reqwest::Body {
    if chunks.len() == 1 {
        return reqwest::Body::from(chunks.swap_remove(0));
    }
    reqwest::Body::wrap(Chunks::new(chunks))
}

/// A body of known length sent as a list of shared byte slices.
struct Chunks {
    chunks: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    fn new(chunks: Vec<Bytes>) -> Chunks {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            remaining,
        }
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.pop_front();
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
        }
        std::task::Poll::Ready(next.map(|chunk| Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The error for an answer or event over `limit` bytes: it names the limit and how to raise it.
pub fn too_large(what: &str, limit: usize) -> ProviderError {
    ProviderError::Malformed(format!(
        "{what} is larger than the {limit}-byte limit on upstream answers (raise it with --max-upstream-body-bytes or PORTICO_MAX_UPSTREAM_BODY_BYTES)"
    ))
}

/// Reads `response`'s body chunk by chunk, refusing it once it passes `limit` bytes.
///
/// A body that arrives in one chunk (the common case for a chat answer) is handed on without
/// a copy. A longer one with a `Content-Length` (within the limit) is copied into a buffer of
/// that size. Without one, the chunks are kept as they arrived and joined once at the end: a
/// buffer grown by doubling held about twice the limit before it was refused (the last
/// growth copies, and the allocator keeps the smaller buffers it freed for a while), the
/// chunks hold the limit once.
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ProviderError> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large("the answer", limit));
    }
    let Some(first) = response.chunk().await.map_err(transport_error)? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large("the answer", limit));
    }
    let Some(second) = response.chunk().await.map_err(transport_error)? else {
        return Ok(first);
    };
    if let Some(declared) = declared.and_then(|len| usize::try_from(len).ok()) {
        // Copied as it comes into a buffer of the declared size (within the limit, checked
        // above): once the body's size. An upstream that sends more than it declared grows
        // the buffer, still only up to the limit.
        let mut body = Vec::with_capacity(declared);
        let mut next = Some(second);
        body.extend_from_slice(&first);
        while let Some(chunk) = next {
            if chunk.len() > limit - body.len() {
                return Err(too_large("the answer", limit));
            }
            body.extend_from_slice(&chunk);
            next = response.chunk().await.map_err(transport_error)?;
        }
        return Ok(Bytes::from(body));
    }
    let mut total = first.len();
    let mut chunks = vec![first];
    let mut next = Some(second);
    while let Some(chunk) = next {
        total += chunk.len();
        if total > limit {
            return Err(too_large("the answer", limit));
        }
        chunks.push(chunk);
        next = response.chunk().await.map_err(transport_error)?;
    }
    let mut body = Vec::with_capacity(total);
    for chunk in chunks {
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Maps a transport failure.
///
/// A read timeout (while waiting for the head, the body or a stream's next bytes) is
/// [`ProviderError::Timeout`]; a body that broke is [`ProviderError::StreamBroken`]; anything
/// else is [`ProviderError::Unreachable`], whose client-facing reason is a fixed phrase (the
/// full error, with the URL reqwest prints, is kept for the log only). Credentials never
/// appear: they travel in headers, which reqwest does not print.
pub fn transport_error(err: reqwest::Error) -> ProviderError {
    if err.is_timeout() && !err.is_connect() {
        // Only the read timeout is left: the shared client sets no total timeout, because a
        // long stream that keeps sending must never be cut.
        return ProviderError::Timeout(None);
    }
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    let mut kind = None;
    while let Some(inner) = source {
        if kind.is_none() {
            kind = inner.downcast_ref::<std::io::Error>().map(|io| io.kind());
        }
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    if err.is_body() || err.is_decode() {
        // Body errors carry no URL (reqwest attaches it to request errors only).
        return ProviderError::StreamBroken(detail);
    }
    let reason = reason_of(kind, &detail, err.is_connect());
    ProviderError::Unreachable(TransportFailure::new(reason, detail))
}

/// A fixed, client-safe phrase for a transport failure: from the I/O error kind when there
/// is one, else from well-known words of the error's text; never the text itself.
fn reason_of(kind: Option<std::io::ErrorKind>, detail: &str, connecting: bool) -> &'static str {
    use std::io::ErrorKind;
    match kind {
        Some(ErrorKind::ConnectionRefused) => return "connection refused",
        Some(ErrorKind::ConnectionReset) => return "the connection was reset",
        Some(ErrorKind::ConnectionAborted) => return "the connection was aborted",
        Some(ErrorKind::TimedOut) => return "the connection timed out",
        Some(ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable) => {
            return "the host is unreachable";
        }
        _ => {}
    }
    let text = detail.to_ascii_lowercase();
    if text.contains("--upstream-allowlist") {
        // The SSRF guard refused every address the host resolved to (upstream_guard).
        "its address is not allowed by --upstream-allowlist"
    } else if text.contains("dns error") || text.contains("failed to lookup address") {
        "the host name could not be resolved"
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "the TLS handshake failed"
    } else if text.contains("timed out") {
        "the connection timed out"
    } else if connecting {
        "the connection could not be opened"
    } else if text.contains("connection closed") {
        "the connection closed before an answer"
    } else {
        "the request could not be sent"
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use portico_testkit::{MockReply, MockUpstream, SseScript};

    use super::*;

    fn client(max_body_bytes: usize, read_timeout: Duration) -> HttpClient {
        build_client(HttpOptions {
            read_timeout,
            max_body_bytes,
            ..HttpOptions::default()
        })
        .unwrap()
    }

    /// The mock's `reply`, as `http` receives it (with `http`'s read timeout).
    async fn answer(
        http: &HttpClient,
        upstream: &MockUpstream,
        reply: MockReply,
    ) -> reqwest::Response {
        upstream.enqueue(reply);
        http.post(upstream.url("/x")).send().await.unwrap()
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole_in_one_chunk_or_many() {
        let upstream = MockUpstream::start().await;
        let http = client(1024, Duration::from_secs(10));
        let one = answer(
            &http,
            &upstream,
            MockReply::raw(200, "application/json", "{\"a\":1}"),
        )
        .await;
        assert_eq!(http.read_body(one).await.unwrap(), "{\"a\":1}");
        let pieces = SseScript::new().bytes("[1,").bytes("2,").bytes("3]");
        let many = answer(
            &http,
            &upstream,
            MockReply::stream("application/json", pieces),
        )
        .await;
        assert_eq!(many.content_length(), None);
        assert_eq!(http.read_body(many).await.unwrap(), "[1,2,3]");
        let exact = answer(
            &http,
            &upstream,
            MockReply::raw(200, "text/plain", vec![b'x'; 1024]),
        )
        .await;
        assert_eq!(http.read_body(exact).await.unwrap().len(), 1024);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_by_its_length_or_as_it_arrives() {
        let upstream = MockUpstream::start().await;
        let http = client(1024, Duration::from_secs(10));
        let declared = answer(
            &http,
            &upstream,
            MockReply::raw(200, "text/plain", vec![b'x'; 1025]),
        )
        .await;
        assert_eq!(declared.content_length(), Some(1025));
        let err = http.read_body(declared).await.unwrap_err();
        assert!(err.to_string().contains("1024-byte limit"), "{err}");

        let chunked = SseScript::new()
            .bytes(vec![b'x'; 600])
            .bytes(vec![b'x'; 600]);
        let chunked = answer(
            &http,
            &upstream,
            MockReply::stream("application/json", chunked),
        )
        .await;
        let err = http.read_body(chunked).await.unwrap_err();
        assert!(err.to_string().contains("1024-byte limit"), "{err}");

        let endless = answer(
            &http,
            &upstream,
            MockReply::endless(200, "application/json", "x"),
        )
        .await;
        let err = http.read_body(endless).await.unwrap_err();
        assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
        // The refused body's connection is dropped rather than drained.
        assert!(
            upstream
                .wait_for_disconnects(1, Duration::from_secs(10))
                .await
        );
    }

    #[tokio::test]
    async fn a_body_or_stream_that_stalls_is_a_timeout() {
        let upstream = MockUpstream::start().await;
        let http = client(1024, Duration::from_millis(200));
        let stalled = SseScript::new().bytes("{\"partial\":").hang();
        let body = answer(
            &http,
            &upstream,
            MockReply::stream("application/json", stalled),
        )
        .await;
        assert_eq!(
            http.read_body(body).await.unwrap_err(),
            ProviderError::Timeout(None)
        );

        let stalled = SseScript::new().bytes("data: {}\n\n").hang();
        let stream = answer(&http, &upstream, MockReply::sse(stalled)).await;
        let events: Vec<_> = http.sse_events(stream).collect().await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1], Err(ProviderError::Timeout(None)));
        assert_eq!(
            events[1].clone().unwrap_err().to_api_error("p").code,
            portico_core::ErrorCode::UpstreamTimeout
        );
    }

    #[tokio::test]
    async fn a_stream_event_over_the_limit_ends_the_stream() {
        let upstream = MockUpstream::start().await;
        let http = client(1024, Duration::from_secs(10));
        let script = SseScript::new()
            .bytes("data: {}\n\n")
            .bytes("data: ")
            .bytes(vec![b'x'; 2048])
            .bytes("\n\n");
        let stream = answer(&http, &upstream, MockReply::sse(script)).await;
        let events: Vec<_> = http.sse_events(stream).collect().await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].is_ok());
        let err = events[1].clone().unwrap_err().to_string();
        assert!(err.contains("1024-byte limit"), "{err}");
    }

    #[tokio::test]
    async fn a_large_rewritten_body_goes_upstream_whole_with_its_length() {
        let upstream = MockUpstream::start().await;
        let http = client(DEFAULT_MAX_UPSTREAM_BODY_BYTES, Duration::from_secs(10));
        for size in [10, SHARED_BODY_MIN * 2] {
            let text = format!(
                r#"{{"model":"@p/m","messages":[{{"role":"user","content":"{}"}}],"n":1}}"#,
                "x".repeat(size)
            );
            let mut body = JsonBody::parse(Bytes::from(text)).unwrap();
            body.set("model", &"m").unwrap();
            upstream.enqueue(MockReply::json(200, serde_json::json!({})));
            let resp = http
                .post(upstream.url("/x"))
                .body(request_body(&body))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let seen = upstream.last_request().unwrap();
            assert_eq!(seen.body, body.to_bytes(), "{size}");
            assert_eq!(
                seen.header("content-length"),
                Some(body.to_bytes().len().to_string().as_str()),
                "sent with its length, not chunked"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_connection_tells_the_client_no_address() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let http = client(1024, Duration::from_secs(10));
        let err = http
            .post(format!("http://{dead}/v1/chat/completions"))
            .send()
            .await
            .map_err(transport_error)
            .unwrap_err();
        let ProviderError::Unreachable(failure) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(failure.reason, "connection refused");
        let api = err.to_api_error("p");
        let port = dead.port().to_string();
        assert!(!api.message.contains(&port), "{}", api.message);
        assert!(api.log_text().contains(&port), "{}", api.log_text());
    }

    #[test]
    fn reasons_never_repeat_the_error_text() {
        let detail = "error sending request for url (http://10.0.0.9:7/v1/x): client error (Connect): dns error: failed to lookup address information";
        assert_eq!(
            reason_of(None, detail, true),
            "the host name could not be resolved"
        );
        assert_eq!(
            reason_of(
                Some(std::io::ErrorKind::ConnectionRefused),
                "http://10.0.0.9:7",
                true
            ),
            "connection refused"
        );
        assert_eq!(
            reason_of(None, "invalid peer certificate: UnknownIssuer", true),
            "the TLS handshake failed"
        );
        assert_eq!(
            reason_of(None, "http://10.0.0.9:7 something new", true),
            "the connection could not be opened"
        );
        assert_eq!(
            reason_of(None, "connection closed before message completed", false),
            "the connection closed before an answer"
        );
    }

    #[test]
    fn the_limit_error_names_the_limit_and_the_flag() {
        let ProviderError::Malformed(message) = too_large("the answer", 1024) else {
            panic!("not Malformed");
        };
        assert!(message.contains("1024-byte limit"), "{message}");
        assert!(message.contains("--max-upstream-body-bytes"), "{message}");
        assert!(
            message.contains("PORTICO_MAX_UPSTREAM_BODY_BYTES"),
            "{message}"
        );
    }
}
