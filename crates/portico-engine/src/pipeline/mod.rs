//! The request pipeline: every data-plane request, whichever endpoint and API family it came
//! in through, passes the same phases, in this order.
//!
//! ```text
//! authenticate  the gateway key or JWT, from the headers alone (trace id and metadata too)
//!      │
//! read          the body, only now, within the server's limits
//!      │
//! resolve       the routing config (the key's, x-portkey-config merged over it), the model,
//!      │        the plan of candidates
//! admit         each applicable policy's `before` hook: go on, rewrite, answer or refuse
//!      │
//! dispatch      attempts along the plan: retries, fallback, circuit breaker (each attempt
//!      │        passes the policies' `before_attempt` hooks), in the client's family
//! respond       a whole answer, or a stream whose first event has arrived
//!      │
//! settle        the policies' `after` hooks, with the whole answer or the stream's output
//!      │        when it ends or the client leaves
//! record        the request's one record, to the sink (request log, metrics, access log)
//! ```
//!
//! [`Gateway::handle`] runs the phases and returns a [`Reply`]; the server only reads the
//! HTTP request (choosing the [`Family`] by its route) and writes the reply. Whatever ends a
//! request, it leaves exactly one record (the `record` module): its answer, an error, the shutdown
//! deadline, or the client leaving, before the answer (the server drops the request) or
//! during a stream (the stream is dropped).
//!
//! Policies ([`policy`]) attach here once, for every endpoint and both families.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use portico_core::{ApiError, Endpoint};
use tokio_util::sync::CancellationToken;

use crate::dispatch::RouteRequest;
use crate::gateway::Gateway;
use crate::snapshot::KeyEntry;

mod attempt;
mod family;
mod passthrough;
pub mod policy;
mod record;
pub mod request;
mod stream;

use attempt::{AttemptSpec, Ready};
pub use family::Family;
use family::StreamObserver;
use policy::{Before, Canned, Output, OutputBody, OutputCheck, PolicyRequest, Runs};
use record::PendingRecord;
pub use record::{CLIENT_CLOSED_REQUEST, ReplyHeaders};
pub use stream::AnswerStream;
use stream::StreamEnd;

/// What the pipeline answers a request with; the server writes it in HTTP.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per request and moved straight into the response; boxing the stream would add an allocation that the response's own boxing already pays"
)]
pub enum Reply {
    /// A whole answer: JSON, or what `content_type` says.
    Whole {
        /// The status.
        status: u16,
        /// The body, in the client's family.
        body: Bytes,
        /// The body's type when it is not JSON (a pass-through operation's audio or text, as
        /// the upstream sent it); `None` for JSON.
        content_type: Option<http::HeaderValue>,
        /// The request's identifying and routing headers.
        headers: ReplyHeaders,
    },
    /// A server-sent-event stream.
    Stream {
        /// The status.
        status: u16,
        /// The bytes to write, in order; dropping it ends the request (a client that left).
        body: AnswerStream,
        /// The request's identifying and routing headers.
        headers: ReplyHeaders,
    },
    /// An error, to render in the client's family ([`Family::error_json`]).
    Error {
        /// What went wrong.
        error: ApiError,
        /// The request's identifying and routing headers.
        headers: ReplyHeaders,
    },
}

/// A whole answer passed through the policies' `check_output` hooks (output guardrails),
/// when some run checks answers: the status and body the client gets.
async fn check_whole(
    mut status: u16,
    mut body: Bytes,
    family: Family,
    pending: &mut PendingRecord,
) -> (u16, Bytes) {
    if !pending.runs.checks_output() {
        return (status, body);
    }
    let mut check = OutputCheck {
        family,
        body: OutputBody::Whole {
            status: &mut status,
            body: &mut body,
        },
    };
    match pending.runs.check_output(&mut check).await {
        Ok(()) => (status, body),
        Err(refusal) => (refusal.status, Bytes::from(refusal.body.to_string())),
    }
}

/// What the respond phase produced.
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per request, never stored"
)]
enum Answered {
    Whole {
        status: u16,
        body: Bytes,
    },
    Stream(Reply),
    /// A whole answer that is not JSON ([`Ready::Media`]).
    Media {
        status: u16,
        content_type: http::HeaderValue,
        body: Bytes,
    },
}

impl Gateway {
    /// Runs one data-plane request through the pipeline.
    ///
    /// `family` is the API the client called; `headers` its request headers; `body` reads its
    /// body, and is awaited only once the caller is authenticated. `cut` fires at the
    /// shutdown deadline: a request still pending then is answered 503, a stream ends with an
    /// error event; both are recorded.
    pub async fn handle<B>(
        self: &Arc<Self>,
        family: Family,
        headers: &HeaderMap,
        body: B,
        cut: &CancellationToken,
    ) -> Reply
    where
        B: Future<Output = Result<Bytes, ApiError>>,
    {
        let mut pending = PendingRecord::begin(self, family);
        let result = if cut.is_cancelled() {
            Err(record::shutting_down())
        } else {
            tokio::select! {
                biased;
                result = self.run(family, headers, body, &mut pending, cut) => result,
                () = cut.cancelled() => Err(record::shutting_down()),
            }
        };
        match result {
            Ok(Answered::Stream(reply)) => reply,
            Ok(Answered::Whole { status, body }) => {
                let headers = pending.reply_headers();
                pending.finish(Ok((status, Output::Whole(&body))));
                Reply::Whole {
                    status,
                    body,
                    content_type: None,
                    headers,
                }
            }
            Ok(Answered::Media {
                status,
                content_type,
                body,
            }) => {
                let headers = pending.reply_headers();
                pending.finish(Ok((status, Output::Whole(&body))));
                Reply::Whole {
                    status,
                    body,
                    content_type: Some(content_type),
                    headers,
                }
            }
            Err(error) => {
                let headers = pending.reply_headers();
                pending.finish(Err(&error));
                Reply::Error { error, headers }
            }
        }
    }

    /// Answers a data-plane request with `error` without running it: the server's admission
    /// limit refusing a request when the gateway is at capacity. The caller is still
    /// authenticated (from the headers, in memory), so a bad key gets its 401 and the refusal
    /// is logged under the key that was refused; the body is never read.
    pub async fn refuse(
        self: &Arc<Self>,
        family: Family,
        headers: &HeaderMap,
        error: ApiError,
    ) -> Reply {
        let mut pending = PendingRecord::begin(self, family);
        let error = match self.identify(family, headers, &mut pending.record).await {
            Ok(_) => error,
            Err(auth) => auth,
        };
        let headers = pending.reply_headers();
        pending.finish(Err(&error));
        Reply::Error { error, headers }
    }

    /// The phases from authentication to the answer; the caller records the outcome.
    async fn run<B>(
        self: &Arc<Self>,
        family: Family,
        headers: &HeaderMap,
        body: B,
        pending: &mut PendingRecord,
        cut: &CancellationToken,
    ) -> Result<Answered, ApiError>
    where
        B: Future<Output = Result<Bytes, ApiError>>,
    {
        // authenticate
        let key = self.identify(family, headers, &mut pending.record).await?;
        // read
        let raw = body.await?;
        pending.record.log_payloads = key.log_payloads;
        let limits = self.request_limits();
        if !family.takes_form() {
            limits.check_depth(&raw)?;
        }
        let (parsed, form) = passthrough::read_body(family, headers, raw, &mut pending.record)?;
        limits.check_counts(family, &parsed.body)?;
        if let Some(trace) = pending.record.trace.as_deref_mut() {
            trace.request_model.clone_from(&parsed.model);
        }
        let stream = parsed.stream && family.can_stream();
        pending.record.stream = stream;
        if stream {
            // Held by the stream until it ends; a request that fails first gives it back.
            pending.stream_slot = Some(limits.open_stream()?);
        }
        // resolve
        request::refuse_unsupported(headers)?;
        let responses = if family == Family::OpenAi(Endpoint::Responses) {
            Some(self.responses_turn(&key, &parsed.body).await?)
        } else {
            None
        };
        let dispatch = self.plan_request(&RouteRequest {
            key: &key,
            model: parsed.model.as_deref(),
            provider_header: request::provider_header(headers),
            config_header: request::config_header(headers)?,
            timeout: request::request_timeout(headers)?,
            metadata: pending.record.metadata.as_ref(),
            body: &parsed.body,
            path: family.path(),
        })?;
        // admit
        let mut body = parsed.body;
        let policies = self.policies();
        if !policies.is_empty() {
            // Known now, so an answer or refusal by a policy is logged with it too.
            pending.record.config_id.clone_from(&dispatch.config_id);
            let mut request = PolicyRequest {
                family,
                key: &key,
                record: &mut pending.record,
                headers,
                config: dispatch.config.as_deref(),
                body: &mut body,
                model: parsed.model.as_deref(),
            };
            pending.runs = Runs::begin(policies, &request);
            if let Before::Answer(canned) = pending.runs.before(&mut request).await? {
                return Ok(self.canned(canned, family, pending, cut));
            }
        }
        // dispatch
        let spec = AttemptSpec {
            family,
            stream,
            anthropic_beta: headers.get("anthropic-beta").and_then(|v| v.to_str().ok()),
            responses: responses.as_ref(),
            form: form.as_ref(),
        };
        let runs = &mut pending.runs;
        let mut upstream_trace = crate::telemetry::UpstreamTrace::of(&pending.record);
        let outcome = self
            .dispatch(
                &dispatch,
                &key,
                &body,
                &mut pending.record,
                |route| runs.before_attempt(route),
                |route, body| upstream_trace.propagate(attempt::attempt(self, spec, route, body)),
            )
            .await;
        pending.retry_count = Some(outcome.retry_count);
        let (ready, route) = outcome.result?;
        // respond
        match ready {
            Ready::Complete {
                status,
                body,
                usage,
                translated,
            } => {
                pending.record.set_usage(usage);
                let body = Ready::whole_body(body, translated, &route, responses.as_ref())?;
                let (status, body) = check_whole(status, body, family, pending).await;
                if let Some(turn) = &responses
                    && (200..300).contains(&status)
                    && let Some(kept) =
                        turn.whole_to_keep(&body, (!translated).then_some(route.slug.as_str()))
                {
                    self.responses().keep(kept);
                }
                if pending.record.log_payloads {
                    pending.record.response = Some(body.clone());
                }
                Ok(Answered::Whole { status, body })
            }
            Ready::Stream {
                status,
                first,
                events,
            } => {
                let observer = match responses {
                    Some(turn) => {
                        let upstream = route
                            .provider
                            .speaks_responses()
                            .then(|| route.slug.clone());
                        StreamObserver::keeping(turn, upstream)
                    }
                    None => StreamObserver::new(family, parsed.include_usage),
                };
                Ok(Answered::Stream(self.stream_reply(
                    status, first, events, family, observer, pending, cut,
                )))
            }
            Ready::Media {
                status,
                content_type,
                body,
            } => {
                // Output checks read JSON; audio and subtitles pass unchecked (docs/api.md).
                if pending.record.log_payloads {
                    pending.record.response =
                        Some(passthrough::loggable_media(&content_type, &body));
                }
                Ok(Answered::Media {
                    status,
                    content_type,
                    body,
                })
            }
        }
    }

    /// A policy's answer in the upstream's place.
    fn canned(
        self: &Arc<Self>,
        canned: Canned,
        family: Family,
        pending: &mut PendingRecord,
        cut: &CancellationToken,
    ) -> Answered {
        match canned {
            Canned::Whole { status, body, .. } => {
                if pending.record.log_payloads {
                    pending.record.response = Some(body.clone());
                }
                Answered::Whole { status, body }
            }
            Canned::Stream { status, events } => {
                let mut events = events.into_iter();
                let Some(first) = events.next() else {
                    return Answered::Whole {
                        status,
                        body: Bytes::new(),
                    };
                };
                let rest: portico_providers::EventStream =
                    Box::pin(futures::stream::iter(events.map(Ok)));
                // A replayed stream passes every event, usage included, as it was stored.
                let observer = StreamObserver::new(family, true);
                Answered::Stream(
                    self.stream_reply(status, first, rest, family, observer, pending, cut),
                )
            }
        }
    }

    /// A streamed answer: the stream takes the record and the policy runs, and finishes them.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per answer kind; a struct would only rename the arguments"
    )]
    fn stream_reply(
        self: &Arc<Self>,
        status: u16,
        first: portico_providers::SseEvent,
        events: portico_providers::EventStream,
        family: Family,
        observer: StreamObserver,
        pending: &mut PendingRecord,
        cut: &CancellationToken,
    ) -> Reply {
        let status = if pending.runs.is_empty() {
            status
        } else {
            pending.runs.stream_status(status)
        };
        let headers = pending.reply_headers();
        let (mut record, runs) = pending.hand_on();
        record.status = status;
        record.ttft_ms = Some(record::elapsed_ms(pending.started));
        let end = StreamEnd {
            record,
            runs,
            started: pending.started,
            gateway: Arc::clone(self),
            _slot: pending.stream_slot.take(),
        };
        Reply::Stream {
            status,
            body: AnswerStream::new(first, events, end, family, observer, cut.clone()),
            headers,
        }
    }

    /// Reads the trace id and metadata into `record` and authenticates the caller on the
    /// headers of its family. Only a JWT caller can make this wait (on a fetch of the
    /// identity provider's keys); a gateway key is a hash lookup.
    ///
    /// The record's user is the authenticated person (a user key's user, a JWT's user
    /// claim), else the client's `_user` metadata: a caller cannot log (or be charged) as
    /// someone else by sending `_user`.
    async fn identify(
        &self,
        family: Family,
        headers: &HeaderMap,
        record: &mut portico_core::RequestRecord,
    ) -> Result<Arc<KeyEntry>, ApiError> {
        record.trace_id = request::trace_id(headers)?;
        if let Some(tracing) = self.tracing() {
            tracing.start(family.path(), headers, record);
        }
        record.metadata = request::metadata(headers)?;
        let key = self
            .authenticate(family.secret(headers))
            .await
            .map_err(|e| family.missing_key(e))?;
        record.key_name = Some(key.name.clone());
        record.user = key.user.clone().or_else(|| {
            record
                .metadata
                .as_ref()
                .and_then(|m| m.get("_user"))
                .and_then(|u| u.as_str())
                .map(str::to_owned)
        });
        Ok(key)
    }
}

#[cfg(test)]
mod tests;
