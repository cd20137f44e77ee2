//! [`MockUpstream`]: a real HTTP server on `127.0.0.1:0` that speaks OpenAI's API.
//!
//! Every request goes through one handler: read the whole body, record it, take the first
//! scripted reply that matches its path (or the built-in default from `defaults`), and play
//! it. Replies that the client abandons before the mock finished them are counted as
//! disconnects.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, request::Parts};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::defaults::default_reply;
use crate::record::RecordedRequest;
use crate::script::{MockReply, ReplyBody, SseEnd, SseScript, SseStep};

/// Request bodies larger than this are refused (a mock never needs more).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A scriptable OpenAI-compatible upstream for tests, served on `127.0.0.1:<free port>`.
///
/// Unscripted requests get deterministic defaults (all with `created: 1700000000`):
/// - `POST /v1/chat/completions`: `"echo: <last user message text>"` (text parts of an array
///   content joined by a space), or, when `tools` are offered and the last message is the
///   user's (and `tool_choice` is not `"none"`), a call to the first (or the forced) tool with
///   id `call_mock_<seq>` and arguments `"{}"`; after a `role: tool` message,
///   `"tool result: <its content>"`. `stream: true` gives the SSE form, with a usage chunk
///   (`choices: []`) when `stream_options.include_usage` is true. Ids are
///   `chatcmpl-mock-<seq>`, where `seq` is the request's 1-based arrival number.
/// - `POST /v1/completions`: one choice `"echo: <prompt>"` per prompt, streamed or not.
/// - `POST /v1/embeddings`: [`mock_embedding`](crate::mock_embedding) per input, 8
///   dimensions unless `dimensions` is given.
/// - `GET /v1/models`: [`MOCK_MODELS`](crate::MOCK_MODELS).
/// - anything else: 404 in OpenAI's error shape (`code: "unknown_url"`).
///
/// Token counts are whitespace-separated words. Scripted replies ([`MockUpstream::enqueue`])
/// take precedence over all of this, on any path. The server stops when this is dropped.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    // Owning the server task here means dropping the mock aborts it.
    _server: JoinSet<()>,
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    queue: Mutex<VecDeque<Scripted>>,
    hits: watch::Sender<usize>,
    disconnects: watch::Sender<usize>,
}

#[derive(Debug)]
struct Scripted {
    path: Option<String>,
    reply: MockReply,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MockUpstream {
    /// Bind `127.0.0.1:0` and start serving. Panics if binding fails.
    #[expect(clippy::expect_used, reason = "test support: no port means no test")]
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the mock upstream");
        let addr = listener.local_addr().expect("local address of the mock");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            hits: watch::Sender::new(0),
            disconnects: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let mut server = JoinSet::new();
        server.spawn(async move {
            // Only fails if accepting fails for good; tests will then see connection errors.
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            _server: server,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI SDK expects.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `base_url()` + `path`, e.g. `url("/chat/completions")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Script the reply for the next request, whatever its path. Replies are consumed in
    /// FIFO order; when none is left, defaults apply again.
    pub fn enqueue(&self, reply: MockReply) {
        lock(&self.shared.queue).push_back(Scripted { path: None, reply });
    }

    /// Script the reply for the next request to exactly `path` (e.g.
    /// `/v1/chat/completions`, without query). It waits in the same FIFO as
    /// [`enqueue`](Self::enqueue): a request takes the first entry that matches it.
    pub fn enqueue_for(&self, path: &str, reply: MockReply) {
        lock(&self.shared.queue).push_back(Scripted {
            path: Some(path.to_owned()),
            reply,
        });
    }

    /// Scripted replies not consumed yet.
    pub fn pending_replies(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// All requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        lock(&self.shared.requests).last().cloned()
    }

    /// Number of requests received so far.
    pub fn hits(&self) -> usize {
        *self.shared.hits.borrow()
    }

    /// Number of requests received so far for exactly `path`.
    pub fn hits_for(&self, path: &str) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Replies abandoned by the client before the mock finished them: it went away during a
    /// delay, a hang, or in the middle of a streamed body.
    pub fn disconnects(&self) -> usize {
        *self.shared.disconnects.borrow()
    }

    /// Wait until at least `n` requests arrived; `false` if `timeout` passed first.
    pub async fn wait_for_hits(&self, n: usize, timeout: Duration) -> bool {
        wait_for(&self.shared.hits, n, timeout).await
    }

    /// Wait until at least `n` disconnects happened; `false` if `timeout` passed first.
    pub async fn wait_for_disconnects(&self, n: usize, timeout: Duration) -> bool {
        wait_for(&self.shared.disconnects, n, timeout).await
    }
}

async fn wait_for(counter: &watch::Sender<usize>, n: usize, timeout: Duration) -> bool {
    let mut rx = counter.subscribe();
    matches!(
        tokio::time::timeout(timeout, rx.wait_for(|v| *v >= n)).await,
        Ok(Ok(_))
    )
}

impl Shared {
    fn record(&self, parts: Parts, body: Bytes) -> RecordedRequest {
        let mut requests = lock(&self.requests);
        let recorded = RecordedRequest {
            seq: requests.len() + 1,
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            json: serde_json::from_slice(&body).ok(),
            body,
        };
        requests.push(recorded.clone());
        self.hits.send_replace(requests.len());
        recorded
    }

    fn take_scripted(&self, path: &str) -> Option<MockReply> {
        let mut queue = lock(&self.queue);
        let index = queue
            .iter()
            .position(|s| s.path.as_deref().is_none_or(|p| p == path))?;
        queue.remove(index).map(|s| s.reply)
    }
}

/// Counts a disconnect when dropped before [`ReplyGuard::finish`].
struct ReplyGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl ReplyGuard {
    fn finish(mut self) {
        self.finished = true;
    }
}

fn finish(guard: Option<ReplyGuard>) {
    if let Some(guard) = guard {
        guard.finish();
    }
}

impl Drop for ReplyGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.disconnects.send_modify(|n| *n += 1);
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(err) => return to_response(MockReply::error(400, &err.to_string()), None),
    };
    let recorded = shared.record(parts, body);
    let mut reply = shared
        .take_scripted(&recorded.path)
        .unwrap_or_else(MockReply::echo);
    if let ReplyBody::FromRequest(responder) = &reply.body {
        let computed = (responder.0)(&recorded);
        reply.status = computed.status;
        reply.body = computed.body;
        reply.delay = reply.delay.or(computed.delay);
        reply.headers.splice(0..0, computed.headers);
    }
    if matches!(reply.body, ReplyBody::Echo) {
        let default = default_reply(&recorded);
        reply.status = default.status;
        reply.body = default.body;
        reply.headers.splice(0..0, default.headers);
    }
    let guard = ReplyGuard {
        shared,
        finished: false,
    };
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    if matches!(reply.body, ReplyBody::Hang) {
        let _guard = guard;
        match std::future::pending::<Infallible>().await {}
    }
    to_response(reply, Some(guard))
}

fn to_response(reply: MockReply, guard: Option<ReplyGuard>) -> Response {
    let (content_type, body) = match reply.body {
        ReplyBody::Sse(script) => (
            script.content_type.unwrap_or("text/event-stream"),
            Body::from_stream(play(script, guard)),
        ),
        ReplyBody::Bytes { content_type, body } => {
            finish(guard);
            (content_type, Body::from(body))
        }
        ReplyBody::Endless {
            content_type,
            first,
            chunk,
        } => {
            // The guard lives as long as the body: only the client's leaving ends it.
            let opening = futures::stream::iter((!first.is_empty()).then_some(first));
            let body = opening
                .chain(futures::stream::repeat(chunk))
                .map(move |chunk| {
                    let _alive = &guard;
                    Ok::<_, io::Error>(chunk)
                });
            (content_type, Body::from_stream(body))
        }
        // Resolved or handled in `handle`; an empty body if it ever got here.
        ReplyBody::Echo | ReplyBody::Hang | ReplyBody::FromRequest(_) => {
            finish(guard);
            ("text/plain", Body::empty())
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == "text/event-stream" {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    for (name, _) in &reply.headers {
        headers.remove(name);
    }
    for (name, value) in reply.headers {
        headers.append(name, value);
    }
    response
}

/// Plays an SSE script: each `Send` is one body chunk. The guard finishes when the script
/// ends on purpose; if the body is dropped earlier (client gone), it counts a disconnect.
fn play(
    script: SseScript,
    guard: Option<ReplyGuard>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    struct Playback {
        steps: VecDeque<SseStep>,
        end: SseEnd,
        guard: Option<ReplyGuard>,
        ended: bool,
    }
    let state = Playback {
        steps: script.steps,
        end: script.end,
        guard,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        while let Some(step) = state.steps.pop_front() {
            match step {
                SseStep::Wait(duration) => tokio::time::sleep(duration).await,
                SseStep::Send(bytes) => return Some((Ok(bytes), state)),
            }
        }
        if state.ended {
            return None;
        }
        state.ended = true;
        match state.end {
            SseEnd::Finish => {
                finish(state.guard.take());
                None
            }
            SseEnd::Abort => {
                finish(state.guard.take());
                // Return `Pending` once so hyper flushes what was sent; an error right away
                // would discard its write buffer, response head included.
                tokio::task::yield_now().await;
                let err = io::Error::new(io::ErrorKind::ConnectionAborted, "scripted abort");
                Some((Err(err), state))
            }
            SseEnd::Hang => {
                let _state = state;
                match std::future::pending::<Infallible>().await {}
            }
        }
    })
}
