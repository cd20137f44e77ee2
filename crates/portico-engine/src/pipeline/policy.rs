//! Policies: what acts on every data-plane request before its upstream call and after its
//! answer, whatever API family it came in through (budgets, rate limits, the response
//! cache, guardrails).
//!
//! A [`Policy`] is shared and long-lived (built once, with the catalog it enforces). For each
//! request it applies to, [`Policy::begin`] starts a [`PolicyRun`]: the policy's work on that
//! one request, which keeps what it needs between its hooks (a reservation to settle, a
//! cache key to fill). The pipeline calls a run's hooks in order:
//!
//! 1. [`PolicyRun::before`], once the request is authenticated, read and resolved, before any
//!    upstream call: it may let the request go on, rewrite its body (redaction), or answer
//!    in the upstream's place ([`Before::Answer`]: a cache hit) or refuse it (an error: 412,
//!    429, 446). Runs go in the order of their policies; the first that answers or refuses
//!    ends the phase.
//! 2. [`PolicyRun::before_attempt`], before each upstream attempt, with the route it takes: an
//!    error skips that target (a provider's exhausted budget), and a fallback may try the next.
//! 3. [`PolicyRun::check_output`], on runs that say they check answers
//!    ([`PolicyRun::checks_output`]: output guardrails), once the upstream has answered and
//!    before the client has the whole answer: a whole answer (which it may change or
//!    refuse), or a stream's output with its last events held back until the check passes.
//!    [`PolicyRun::stream_status`] may change a stream's status before it is sent (246).
//! 4. [`PolicyRun::annotate`], on the record just before it is finished (guardrail
//!    verdicts), and then
//!    [`PolicyRun::after`], exactly once for every run that was begun, when the request has
//!    ended however it ended: the whole answer, the stream's output when it ends or when the
//!    client leaves, an error, or a refusal by a later policy. It sees the finished record
//!    (status, outcome, usage, cost) and the output, and may settle spend or fill a cache.
//! 5. [`PolicyRun::deferred`], right after `after`: work that must not delay the answer
//!    (async guardrails). The pipeline runs the futures it gets in the background, once the
//!    client has the answer, and hands the record to the sink only when they are done, with
//!    what they add to it: such a request's log line comes later, its answer does not.
//!
//! A request that no policy applies to pays nothing for the mechanism: no run is allocated,
//! no hook is called.

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::{ApiError, JsonBody, RequestRecord, Usage};
use portico_providers::SseEvent;

use crate::pipeline::Family;
use crate::route::Route;
use crate::snapshot::{KeyEntry, Snapshot};

/// One capability that acts on requests (a budget, a rate limit, the cache, a guardrail).
pub trait Policy: Send + Sync + 'static {
    /// A short name, for logs and errors.
    fn name(&self) -> &'static str;

    /// Starts this policy's work on one request, or `None` when it does not apply to it.
    fn begin(&self, request: &PolicyRequest<'_>) -> Option<Box<dyn PolicyRun>>;

    /// The catalog the gateway serves from now on: called when the policy is added to a
    /// gateway and after every reload, off the request path, so a policy built from the
    /// catalog (the limits' subjects) rebuilds what it derives from it once, not per request.
    fn catalog_changed(&self, snapshot: &std::sync::Arc<Snapshot>) {
        let _ = snapshot;
    }
}

/// A policy's work on one request; see the module docs for when each hook runs.
#[async_trait]
pub trait PolicyRun: Send {
    /// Before any upstream call: go on, rewrite `request.body`, answer, or refuse.
    async fn before(&mut self, request: &mut PolicyRequest<'_>) -> Result<Before, ApiError> {
        let _ = request;
        Ok(Before::Continue)
    }

    /// Before each upstream attempt, with the route it takes; an error skips that target.
    fn before_attempt(&mut self, route: &Route) -> Result<(), ApiError> {
        let _ = route;
        Ok(())
    }

    /// When the request has ended, however it ended; called exactly once.
    fn after(&mut self, finished: &Finished<'_>) {
        let _ = finished;
    }

    /// Called once, right after [`PolicyRun::after`]: background work on the finished
    /// request (async guardrails), or `None`. The pipeline spawns the future; the record goes
    /// to the sink once it is done, amended by the function it returns. A run bounds its own
    /// background work (it returns `None` when its bound is reached, having said so in
    /// [`PolicyRun::annotate`]).
    fn deferred(&mut self, finished: &Finished<'_>) -> Option<Deferred> {
        let _ = finished;
        None
    }

    /// Whether this run checks answers before the client has them all
    /// ([`PolicyRun::check_output`]). Asked once per answer; when no run does, an answer
    /// pays nothing for the hook (a stream is not held back).
    fn checks_output(&self) -> bool {
        false
    }

    /// After the upstream answered, before the client has the whole answer (output
    /// guardrails): a whole answer's status and body, which the run may change, or a
    /// stream's output with its last events held back. A [`Refusal`] replaces a whole answer,
    /// and ends a stream with an in-band error event in place of its held-back events.
    /// Called only on runs whose [`PolicyRun::checks_output`] is true. A run whose check is
    /// cut short (the client left during it) is dropped without its `after` hook.
    async fn check_output(&mut self, output: &mut OutputCheck<'_>) -> Result<(), Refusal> {
        let _ = output;
        Ok(())
    }

    /// The status a stream is answered with, just before it is sent (a flagged request's
    /// 246); the status the upstream gave unless a run changes it.
    fn stream_status(&mut self, status: u16) -> u16 {
        status
    }

    /// The request's record just before it is finished (priced, then handed to the sink):
    /// a run may add what it learnt (guardrail verdicts, the redacted request).
    fn annotate(&mut self, record: &mut RequestRecord) {
        let _ = record;
    }
}

/// What a [`Deferred`] adds to the record before it goes to the sink.
pub type Amend = Box<dyn FnOnce(&mut RequestRecord) + Send>;

/// Background work of a run on a finished request ([`PolicyRun::deferred`]).
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = Amend> + Send>>;

/// An answer on its way to the client, as [`PolicyRun::check_output`] sees it.
pub struct OutputCheck<'a> {
    /// The API family the client speaks.
    pub family: Family,
    /// The answer.
    pub body: OutputBody<'a>,
}

/// The answer [`PolicyRun::check_output`] checks.
#[derive(Debug)]
pub enum OutputBody<'a> {
    /// A whole answer; the run may change its status and body.
    Whole {
        /// The status the client will get.
        status: &'a mut u16,
        /// The body, in the client's family.
        body: &'a mut Bytes,
    },
    /// A stream's output, as encoded for the client, held-back events included.
    Stream(&'a [Bytes]),
}

/// An answer refused by [`PolicyRun::check_output`] (a denying output guardrail: 446).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status of a refused whole answer.
    pub status: u16,
    /// The body, in the client's family (a stream sends it as its error event).
    pub body: serde_json::Value,
    /// The error code the request log records.
    pub code: String,
    /// The message the request log records.
    pub message: String,
}

/// What a policy sees of a request before the upstream call.
pub struct PolicyRequest<'a> {
    /// The API family the client speaks.
    pub family: Family,
    /// The caller's key.
    pub key: &'a KeyEntry,
    /// The record so far: trace id, metadata, user, endpoint, stream. A policy's `before`
    /// may fill in what it decided (the cache's status, a cache hit's provider and model).
    pub record: &'a mut RequestRecord,
    /// The client's request headers (`x-portkey-cache-namespace`, ...).
    pub headers: &'a http::HeaderMap,
    /// The routing config that applies (the key's, a header's merged over it), if any.
    pub config: Option<&'a portico_routing::RoutingConfig>,
    /// The request body as it will be sent (before the route sets its model). A policy may
    /// rewrite it; later policies and the upstream see the rewrite.
    pub body: &'a mut JsonBody,
    /// The provider and model the request names (`@slug/model`, or the first target of its
    /// routing config), when known before dispatch.
    pub model: Option<&'a str>,
}

/// What [`PolicyRun::before`] decided.
#[derive(Debug)]
pub enum Before {
    /// Go on to the next policy, then upstream.
    Continue,
    /// Answer with this instead of calling upstream.
    Answer(Canned),
}

/// An answer a policy gives in the upstream's place (a cache hit).
#[derive(Debug, Clone)]
pub enum Canned {
    /// A whole answer, in the client's family.
    Whole {
        /// The status to answer with.
        status: u16,
        /// The body.
        body: Bytes,
        /// The usage it represents (not charged: no upstream was called).
        usage: Option<Usage>,
    },
    /// A stream, replayed event by event, in the client's family.
    Stream {
        /// The status to answer with.
        status: u16,
        /// The events.
        events: Vec<SseEvent>,
    },
}

/// A request that has ended, as [`PolicyRun::after`] sees it.
pub struct Finished<'a> {
    /// The finished record: status, outcome, usage, cost, provider and model, error.
    pub record: &'a RequestRecord,
    /// What the client received.
    pub output: Output<'a>,
}

/// What the client received of the answer.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// No answer from an upstream or a policy: an error, or nothing before the client left.
    None,
    /// A whole answer's body.
    Whole(&'a Bytes),
    /// A stream's output as sent, in order (complete only if the record's outcome says so).
    Stream(&'a [Bytes]),
}

/// The runs begun for one request, in policy order; settles each exactly once.
#[derive(Default)]
pub(crate) struct Runs(Vec<Box<dyn PolicyRun>>);

impl Runs {
    /// Begins every policy that applies to `request`.
    pub(crate) fn begin(
        policies: &[std::sync::Arc<dyn Policy>],
        request: &PolicyRequest<'_>,
    ) -> Runs {
        Runs(policies.iter().filter_map(|p| p.begin(request)).collect())
    }

    /// Whether no policy applies.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the `before` hooks in order, until one answers or refuses.
    pub(crate) async fn before(
        &mut self,
        request: &mut PolicyRequest<'_>,
    ) -> Result<Before, ApiError> {
        for run in &mut self.0 {
            match run.before(request).await? {
                Before::Continue => {}
                answer @ Before::Answer(_) => return Ok(answer),
            }
        }
        Ok(Before::Continue)
    }

    /// Runs the `before_attempt` hooks; the first error skips the target.
    pub(crate) fn before_attempt(&mut self, route: &Route) -> Result<(), ApiError> {
        for run in &mut self.0 {
            run.before_attempt(route)?;
        }
        Ok(())
    }

    /// Whether some run checks answers ([`PolicyRun::check_output`]).
    pub(crate) fn checks_output(&self) -> bool {
        self.0.iter().any(|r| r.checks_output())
    }

    /// Runs the `check_output` hooks in order, until one refuses.
    pub(crate) async fn check_output(
        &mut self,
        output: &mut OutputCheck<'_>,
    ) -> Result<(), Refusal> {
        for run in &mut self.0 {
            if run.checks_output() {
                run.check_output(output).await?;
            }
        }
        Ok(())
    }

    /// Moves the runs that check answers out, in order, to check a stream's output away from
    /// the others ([`Runs::rejoin`] brings them back).
    pub(crate) fn split_output_checkers(&mut self) -> Runs {
        let (checkers, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|r| r.checks_output());
        self.0 = rest;
        Runs(checkers)
    }

    /// Takes back runs moved out by [`Runs::split_output_checkers`].
    pub(crate) fn rejoin(&mut self, runs: Runs) {
        self.0.extend(runs.0);
    }

    /// The status a stream is answered with, after every run's `stream_status`.
    pub(crate) fn stream_status(&mut self, status: u16) -> u16 {
        self.0
            .iter_mut()
            .fold(status, |s, run| run.stream_status(s))
    }

    /// Runs every `annotate` hook on the record about to be finished.
    pub(crate) fn annotate(&mut self, record: &mut RequestRecord) {
        for run in &mut self.0 {
            run.annotate(record);
        }
    }

    /// Runs every `after` hook, collects the runs' [`PolicyRun::deferred`] work, and
    /// forgets the runs, so a second call does nothing.
    pub(crate) fn after(&mut self, finished: &Finished<'_>) -> Vec<Deferred> {
        let mut deferred = Vec::new();
        for mut run in self.0.drain(..) {
            run.after(finished);
            deferred.extend(run.deferred(finished));
        }
        deferred
    }
}
