//! What every proxying handler shares, whatever API family it speaks: the request's record
//! from arrival to answer, who is calling, and answering a whole or streamed upstream
//! response. The handlers (`routes::openai`, `routes::messages`) differ only in how they read
//! the body, call the provider and render errors.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use portico_core::{ApiError, ErrorCode, Outcome, RequestRecord};
use portico_engine::{Answer, AttemptError, Dispatch, Dispatched, Gateway, KeyEntry, RouteRequest};
use portico_providers::{EventStream, ProviderError, SseEvent, UpstreamResponse};

use crate::AppState;
use crate::request::{self, LAST_USED_OPTION, REQUEST_ID, RETRY_COUNT, TRACE_ID};
use crate::stream::{ForwardStream, StreamDialect, StreamLog};

/// What a handler's forwarding produced.
pub(crate) enum Forwarded {
    /// A whole answer; the record is finished by [`conclude`].
    Complete(Response),
    /// A stream; its body owns the record and finishes it.
    Streaming(Response),
}

/// A request's record from arrival until it is handed to the sink, exactly once, whatever
/// ends the request: [`conclude`] hands it over with the answer; a stream's body takes a copy
/// and hands that over when it ends; and if the request is dropped before either (the client
/// went away while the gateway was still working on the answer, and hyper dropped the
/// handler), dropping this hands the record over as a client disconnect.
pub(crate) struct PendingRecord {
    record: Option<RequestRecord>,
    started: Instant,
    gateway: Arc<Gateway>,
}

/// The status logged for a request whose client left before its answer (nginx's
/// "client closed request").
pub(crate) const CLIENT_CLOSED_REQUEST: u16 = 499;

impl PendingRecord {
    /// A request that has just arrived.
    pub(crate) fn begin(state: &AppState, endpoint: &'static str) -> PendingRecord {
        let record = RequestRecord::new(uuid::Uuid::now_v7().to_string(), now_ms(), endpoint);
        PendingRecord {
            record: Some(record),
            started: Instant::now(),
            gateway: Arc::clone(&state.gateway),
        }
    }

    /// Arrival time.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The record, to fill in along the way.
    pub(crate) fn record(&mut self) -> &mut RequestRecord {
        // `record` is `Some` until `take`, which consumes `self`.
        self.record
            .get_or_insert_with(|| RequestRecord::new(String::new(), 0, ""))
    }

    fn take(mut self) -> RequestRecord {
        self.record
            .take()
            .unwrap_or_else(|| RequestRecord::new(String::new(), 0, ""))
    }
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.outcome = Outcome::ClientDisconnected;
        record.status = CLIENT_CLOSED_REQUEST;
        record.error_code = Some("client_disconnected".to_owned());
        record.error =
            Some("the client closed the connection before the answer was ready".to_owned());
        record.latency_ms = elapsed_ms(self.started);
        self.gateway.record(record);
    }
}

/// The error answered to requests still pending at the shutdown deadline.
pub(crate) fn shutting_down() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the gateway is shutting down and this request did not finish before the shutdown deadline (PORTICO_SHUTDOWN_TIMEOUT_SECS); send it again",
    )
}

/// Ends a request: finishes the record of a whole answer or an error (rendered by `render`),
/// hands it to the sink, and sets the id headers on the response.
pub(crate) fn conclude(
    state: &AppState,
    pending: PendingRecord,
    result: Result<Forwarded, ApiError>,
    route_headers: &RouteHeaders,
    render: impl FnOnce(ApiError) -> Response,
) -> Response {
    let started = pending.started;
    let mut record = pending.take();
    let (mut response, finished) = match result {
        Ok(Forwarded::Streaming(response)) => {
            // The stream's body finishes the record when it ends.
            (response, false)
        }
        Ok(Forwarded::Complete(response)) => {
            record.status = response.status().as_u16();
            record.latency_ms = elapsed_ms(started);
            (response, true)
        }
        Err(err) => {
            record.status = err.status;
            record.outcome = Outcome::Failed;
            record.error_code = Some(err.code_string().to_owned());
            record.error = Some(err.log_text().to_owned());
            record.latency_ms = elapsed_ms(started);
            tracing::debug!(id = %record.id, status = err.status, "request failed: {}", err.message);
            (render(err), true)
        }
    };
    set_ids(response.headers_mut(), &record, route_headers);
    if finished {
        // The ids are on the response, so the record itself goes to the sink, uncopied.
        state.gateway.record(record);
    }
    response
}

/// Runs a request's work unless the shutdown deadline passes first, in which case the
/// request is answered 503 (and logged as such).
pub(crate) async fn unless_cut<F>(state: &AppState, work: F) -> Result<Forwarded, ApiError>
where
    F: std::future::Future<Output = Result<Forwarded, ApiError>>,
{
    let cut = state.lifecycle.cut_signal();
    if cut.is_cancelled() {
        return Err(shutting_down());
    }
    tokio::select! {
        biased;
        result = work => result,
        () = cut.cancelled() => Err(shutting_down()),
    }
}

/// Reads the trace id and metadata into `record` and authenticates the caller with `secret`
/// (the gateway key the handler found in its headers).
pub(crate) fn identify(
    state: &AppState,
    headers: &HeaderMap,
    secret: Option<&str>,
    record: &mut RequestRecord,
) -> Result<Arc<KeyEntry>, ApiError> {
    record.trace_id = request::trace_id(headers)?;
    record.metadata = request::metadata(headers)?;
    let key = state.gateway.authenticate(secret)?;
    record.key_name = Some(key.name.clone());
    record.user = record
        .metadata
        .as_ref()
        .and_then(|m| m.get("_user"))
        .and_then(|u| u.as_str())
        .map(str::to_owned)
        .or_else(|| key.user.clone());
    Ok(key)
}

/// An upstream's answer, ready to forward: a whole body, or a stream whose first event has
/// arrived (until then the dispatcher could still fail over).
pub(crate) enum Ready {
    /// A whole JSON body.
    Complete {
        /// The upstream's status.
        status: u16,
        /// The body.
        body: Bytes,
        /// Usage read from it.
        usage: Option<portico_core::Usage>,
    },
    /// A stream and its first event.
    Stream {
        /// The upstream's status.
        status: u16,
        /// The first event.
        first: SseEvent,
        /// The rest.
        events: EventStream,
    },
}

impl Answer for Ready {
    fn status(&self) -> u16 {
        match self {
            Ready::Complete { status, .. } | Ready::Stream { status, .. } => *status,
        }
    }
}

impl Ready {
    /// Waits for a stream's first event: an upstream that fails at once (an error event, or
    /// a stream closed before any event) is an attempt that failed, which may be retried or
    /// failed over, and still gets a proper error status.
    pub(crate) async fn from_upstream(answer: UpstreamResponse) -> Result<Ready, AttemptError> {
        match answer {
            UpstreamResponse::Complete {
                status,
                body,
                usage,
            } => Ok(Ready::Complete {
                status,
                body,
                usage,
            }),
            UpstreamResponse::Stream { status, events } => Ready::first_event(status, events).await,
        }
    }

    /// A stream once its first event has arrived.
    pub(crate) async fn first_event(
        status: u16,
        mut events: EventStream,
    ) -> Result<Ready, AttemptError> {
        match events.next().await {
            Some(Ok(first)) => Ok(Ready::Stream {
                status,
                first,
                events,
            }),
            Some(Err(err)) => Err(AttemptError::Upstream(err)),
            None => Err(AttemptError::Upstream(ProviderError::StreamBroken(
                "the upstream closed the stream before sending any event".into(),
            ))),
        }
    }
}

/// The routing header an answer carries beyond the record's ids: the retries of the config
/// option that answered (the option itself is the record's `target`).
#[derive(Debug, Default)]
pub(crate) struct RouteHeaders {
    /// `x-portkey-retry-attempt-count`; `None` when no upstream was tried.
    pub(crate) retry_count: Option<i32>,
}

impl RouteHeaders {
    /// The headers of a dispatch's outcome.
    pub(crate) fn of<T>(outcome: &Dispatched<T>) -> RouteHeaders {
        RouteHeaders {
            retry_count: Some(outcome.retry_count),
        }
    }
}

/// Plans where a parsed request may go: its routing config (the key's, `x-portkey-config`),
/// its time budget (`x-portkey-request-timeout`), or its `@slug/model`.
pub(crate) fn plan(
    state: &AppState,
    headers: &HeaderMap,
    key: &KeyEntry,
    parsed: &request::ParsedBody,
    record: &RequestRecord,
    path: &str,
) -> Result<Dispatch, ApiError> {
    state.gateway.plan_request(&RouteRequest {
        key,
        model: parsed.model.as_deref(),
        provider_header: request::provider_header(headers),
        config_header: request::config_header(headers)?,
        timeout: request::request_timeout(headers)?,
        metadata: record.metadata.as_ref(),
        body: &parsed.body,
        path,
    })
}

/// Keeps the request body for the request log, unless the key turned payload logging off.
/// `Bytes` are shared, so this copies nothing.
pub(crate) fn keep_request(record: &mut RequestRecord, key: &KeyEntry, body: &Bytes) {
    record.log_payloads = key.log_payloads;
    if key.log_payloads {
        record.request = Some(body.clone());
    }
}

/// Keeps a whole answer's body for the request log (shared, not copied).
pub(crate) fn keep_response(record: &mut RequestRecord, body: &Bytes) {
    if record.log_payloads {
        record.response = Some(body.clone());
    }
}

/// A whole JSON answer with the upstream's status.
pub(crate) fn complete(status: u16, body: Bytes) -> Forwarded {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Forwarded::Complete(
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
    )
}

/// A streamed answer whose first event has arrived; the stream's body then owns a copy of
/// `record` and finishes it.
pub(crate) fn streaming(
    state: &AppState,
    status: u16,
    first: SseEvent,
    events: EventStream,
    record: &RequestRecord,
    started: Instant,
    dialect: StreamDialect,
) -> Forwarded {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut stream_record = record.clone();
    stream_record.status = status.as_u16();
    stream_record.ttft_ms = Some(elapsed_ms(started));
    let forward = ForwardStream::new(
        first,
        events,
        StreamLog {
            record: stream_record,
            started,
            gateway: Arc::clone(&state.gateway),
        },
        dialect,
        state.lifecycle.cut_signal().clone(),
    );
    Forwarded::Streaming(
        (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            Body::from_stream(forward),
        )
            .into_response(),
    )
}

fn set_ids(headers: &mut HeaderMap, record: &RequestRecord, route_headers: &RouteHeaders) {
    // Inserting under a `&str` name copies the name into a new allocation every time; these
    // names are built once, at compile time.
    const LAST_USED_OPTION_NAME: HeaderName = HeaderName::from_static(LAST_USED_OPTION);
    const RETRY_COUNT_NAME: HeaderName = HeaderName::from_static(RETRY_COUNT);
    const TRACE_ID_NAME: HeaderName = HeaderName::from_static(TRACE_ID);
    const REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID);
    const PROVIDER_NAME: HeaderName = HeaderName::from_static(request::PROVIDER);
    if let Some(option) = &record.target
        && let Ok(v) = HeaderValue::from_str(option)
    {
        headers.insert(LAST_USED_OPTION_NAME, v);
    }
    if let Some(count) = route_headers.retry_count {
        headers.insert(RETRY_COUNT_NAME, HeaderValue::from(count));
    }
    if !record.trace_id.is_empty()
        && let Ok(v) = HeaderValue::from_str(&record.trace_id)
    {
        headers.insert(TRACE_ID_NAME, v);
    }
    if let Ok(v) = HeaderValue::from_str(&record.id) {
        headers.insert(REQUEST_ID_NAME, v);
    }
    if let Some(slug) = &record.provider
        && let Ok(v) = HeaderValue::from_str(&format!("@{slug}"))
    {
        headers.insert(PROVIDER_NAME, v);
    }
}

/// Milliseconds since `started`.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
