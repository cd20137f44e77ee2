//! `portico-bench mock`: the fastest reasonable OpenAI-shaped upstream.
//!
//! hyper 1 directly (no framework), HTTP/1.1 with keep-alive, on a current-thread runtime
//! because `bench/run.sh` pins it to one core. Every answer is built once at start-up and
//! cloned per request (a reference-count bump), and nothing about a request is kept after it
//! is answered, so memory stays flat under any load.
//!
//! - `POST /v1/chat/completions`: a canned `chat.completion` with usage, or, when the body
//!   contains `"stream":true` (a byte search, not a JSON parse), an SSE stream of `--chunks`
//!   `chat.completion.chunk` events, a usage event and `data: [DONE]`.
//! - `POST /status/<code>/v1/chat/completions` (any 4xx or 5xx `<code>`): that status with an
//!   OpenAI-style error body, at once: a failing upstream for the soak's failures and fallbacks.
//! - `GET /healthz`: `ok`.
//!
//! `--latency-ms` is slept before the response head; `--chunk-delay-ms` between SSE events.
//! Not the test suite's mock: `portico-testkit` has the scriptable, hit-counting one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tokio_util::task::TaskTracker;

/// Requests larger than this are refused: the mock never holds more than one body per request.
/// Large enough for the 60 MB bodies of the gateway's memory measurement (docs/performance.md).
const MAX_BODY_BYTES: usize = 128 << 20;

/// Model name echoed in every answer.
const MODEL: &str = "gpt-4o-mini";

/// Options of `portico-bench mock`.
#[derive(clap::Args, Debug)]
pub(crate) struct MockArgs {
    /// Address to listen on, e.g. 127.0.0.1:9100.
    #[arg(long)]
    listen: SocketAddr,
    /// Delay before the response head of every chat completion.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Content chunks per streamed answer (a usage chunk and `[DONE]` follow).
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// Delay between two SSE events of a streamed answer.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

/// Everything a request needs, built once.
struct Canned {
    latency: Duration,
    chunk_delay: Duration,
    completion: Bytes,
    events: Arc<[Bytes]>,
}

/// Runs the mock until the process is killed.
pub(crate) fn run(args: MockArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: MockArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!(
        "portico-bench mock: listening on http://{}",
        listener.local_addr()?
    );
    serve_on(listener, canned(&args)).await;
    Ok(())
}

fn canned(args: &MockArgs) -> Arc<Canned> {
    Arc::new(Canned {
        latency: Duration::from_millis(args.latency_ms),
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        completion: completion_json(),
        events: sse_events(args.chunks).into(),
    })
}

/// Starts the mock on a thread of its own (a current-thread runtime, as the process would
/// have) on a free loopback port, and answers its address. The thread lives as long as the
/// process: the soak's upstream.
pub(crate) fn spawn_in_thread(
    latency_ms: u64,
    chunks: usize,
    chunk_delay_ms: u64,
) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let args = MockArgs {
        listen: addr,
        latency_ms,
        chunks,
        chunk_delay_ms,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("soak-mock".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve_on(listener, canned(&args)).await,
                    Err(err) => eprintln!("portico-bench mock: cannot listen: {err}"),
                }
            });
        })?;
    Ok(addr)
}

async fn serve_on(listener: TcpListener, canned: Arc<Canned>) {
    let tracker = TaskTracker::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and similar: back off instead of spinning.
                eprintln!("portico-bench mock: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let canned = Arc::clone(&canned);
        tracker.spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&canned)));
            // A client that goes away mid-request is normal under load; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    canned: Arc<Canned>,
) -> Result<Response<MockBody>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => {
            let stream = match Limited::new(req.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
            {
                Ok(body) => wants_stream(&body.to_bytes()),
                Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "unreadable body\n")),
            };
            if !canned.latency.is_zero() {
                tokio::time::sleep(canned.latency).await;
            }
            if stream {
                sse_response(&canned)
            } else {
                json_response(&canned)
            }
        }
        (&Method::POST, path) if let Some(status) = fault_status(path) => {
            // Read the body first, as an upstream would, so the gateway's write completes.
            let _ = Limited::new(req.into_body(), MAX_BODY_BYTES)
                .collect()
                .await;
            fault(status)
        }
        (&Method::GET, "/healthz") => plain(StatusCode::OK, "ok\n"),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

fn json_response(canned: &Canned) -> Response<MockBody> {
    let mut response = Response::new(MockBody::Full(Some(canned.completion.clone())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn sse_response(canned: &Canned) -> Response<MockBody> {
    let mut response = Response::new(MockBody::Sse(SseBody {
        events: Arc::clone(&canned.events),
        next: 0,
        delay: canned.chunk_delay,
        sleep: None,
    }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The status of a fault path, `/status/<code>/v1/chat/completions` with a 4xx or 5xx code.
fn fault_status(path: &str) -> Option<StatusCode> {
    let rest = path.strip_prefix("/status/")?;
    let (code, rest) = rest.split_once('/')?;
    if rest != "v1/chat/completions" {
        return None;
    }
    let status = StatusCode::from_bytes(code.as_bytes()).ok()?;
    (status.is_client_error() || status.is_server_error()).then_some(status)
}

/// An OpenAI-style error answer with `status`.
fn fault(status: StatusCode) -> Response<MockBody> {
    let body = format!(
        r#"{{"error":{{"message":"portico-bench mock: scripted failure {}","type":"server_error","param":null,"code":null}}}}"#,
        status.as_u16()
    );
    let mut response = Response::new(MockBody::Full(Some(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<MockBody> {
    let mut response = Response::new(MockBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response
}

/// True when the body asks for a stream: `"stream"`, optional spaces, `:`, optional spaces,
/// `true`. A byte search, because parsing JSON here would make the mock slower than the hop
/// it is measuring.
pub(crate) fn wants_stream(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"stream\"";
    let mut rest = body;
    while let Some(at) = find(rest, KEY) {
        rest = &rest[at + KEY.len()..];
        let value = skip_spaces(rest);
        if let Some(value) = value.strip_prefix(b":")
            && skip_spaces(value).starts_with(b"true")
        {
            return true;
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// The canned non-streaming answer (about 300 bytes).
fn completion_json() -> Bytes {
    Bytes::from(format!(
        concat!(
            r#"{{"id":"chatcmpl-portico-bench","object":"chat.completion","created":1700000000,"#,
            r#""model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","#,
            r#""content":"Hello from the Portico bench mock upstream."}},"logprobs":null,"#,
            r#""finish_reason":"stop"}}],"usage":{{"prompt_tokens":12,"completion_tokens":9,"#,
            r#""total_tokens":21}}}}"#
        ),
        model = MODEL
    ))
}

/// The SSE events of a streamed answer: `chunks` content chunks (the first carries the role,
/// the last the finish reason), one usage chunk, then `[DONE]`.
fn sse_events(chunks: usize) -> Vec<Bytes> {
    let chunks = chunks.max(1);
    let mut events = Vec::with_capacity(chunks + 2);
    for i in 0..chunks {
        let role = if i == 0 { r#""role":"assistant","# } else { "" };
        let finish = if i + 1 == chunks { r#""stop""# } else { "null" };
        events.push(Bytes::from(format!(
            concat!(
                r#"data: {{"id":"chatcmpl-portico-bench","object":"chat.completion.chunk","#,
                r#""created":1700000000,"model":"{model}","choices":[{{"index":0,"#,
                r#""delta":{{{role}"content":"tok{i} "}},"finish_reason":{finish}}}]}}"#,
                "\n\n"
            ),
            model = MODEL,
            role = role,
            i = i,
            finish = finish
        )));
    }
    events.push(Bytes::from(format!(
        concat!(
            r#"data: {{"id":"chatcmpl-portico-bench","object":"chat.completion.chunk","#,
            r#""created":1700000000,"model":"{model}","choices":[],"#,
            r#""usage":{{"prompt_tokens":12,"completion_tokens":{n},"total_tokens":{t}}}}}"#,
            "\n\n"
        ),
        model = MODEL,
        n = chunks,
        t = chunks + 12
    )));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// A response body: one canned buffer, or SSE events sent one frame each.
enum MockBody {
    Full(Option<Bytes>),
    Sse(SseBody),
}

/// Streams `events[next..]`, sleeping `delay` before every event but the first.
struct SseBody {
    events: Arc<[Bytes]>,
    next: usize,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            MockBody::Sse(sse) => sse.poll_event(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(data) => data.is_none(),
            MockBody::Sse(sse) => sse.next >= sse.events.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Sse(_) => SizeHint::default(),
        }
    }
}

impl SseBody {
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(event) = self.events.get(self.next).cloned() else {
            return Poll::Ready(None);
        };
        if self.next > 0 && !self.delay.is_zero() {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(self.delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        self.next += 1;
        Poll::Ready(Some(Ok(Frame::data(event))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flag_is_found_with_or_without_spaces() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"model":"m","stream": true}"#));
        assert!(wants_stream(br#"{"stream" :  true,"model":"m"}"#));
        assert!(!wants_stream(br#"{"model":"m","stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
        assert!(!wants_stream(
            br#"{"stream_options":{"include_usage":true}}"#
        ));
        // A later, real flag after a decoy key is still found.
        assert!(wants_stream(
            br#"{"x":"\"stream\"","stream_options":{},"stream":true}"#
        ));
    }

    #[test]
    fn fault_paths_name_an_error_status() {
        assert_eq!(
            fault_status("/status/500/v1/chat/completions"),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert_eq!(
            fault_status("/status/429/v1/chat/completions"),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(fault_status("/status/200/v1/chat/completions"), None);
        assert_eq!(fault_status("/status/abc/v1/chat/completions"), None);
        assert_eq!(fault_status("/status/500/v1/embeddings"), None);
        assert_eq!(fault_status("/v1/chat/completions"), None);
        let body = fault(StatusCode::BAD_GATEWAY);
        assert_eq!(body.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn canned_answers_are_valid_openai_json() {
        let completion: serde_json::Value = serde_json::from_slice(&completion_json()).unwrap();
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["usage"]["total_tokens"], 21);
        let len = completion_json().len();
        assert!((250..=400).contains(&len), "{len} bytes");

        let events = sse_events(3);
        assert_eq!(events.len(), 5);
        assert_eq!(&events[4][..], b"data: [DONE]\n\n");
        for event in &events[..4] {
            let text = std::str::from_utf8(event).unwrap();
            let json = text.strip_prefix("data: ").unwrap().trim_end();
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(value["object"], "chat.completion.chunk");
        }
        assert!(
            std::str::from_utf8(&events[0])
                .unwrap()
                .contains("\"role\":\"assistant\"")
        );
        assert!(
            std::str::from_utf8(&events[2])
                .unwrap()
                .contains("\"finish_reason\":\"stop\"")
        );
        assert!(
            std::str::from_utf8(&events[3])
                .unwrap()
                .contains("\"completion_tokens\":3")
        );
    }

    #[tokio::test]
    async fn sse_body_yields_every_event_then_ends() {
        let mut body = MockBody::Sse(SseBody {
            events: sse_events(2).into(),
            next: 0,
            delay: Duration::from_millis(1),
            sleep: None,
        });
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            assert!(frame.unwrap().is_data());
            frames += 1;
        }
        assert_eq!(frames, 4);
        assert!(body.is_end_stream());
    }
}
