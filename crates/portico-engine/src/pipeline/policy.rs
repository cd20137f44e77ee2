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
//! 3. [`PolicyRun::after`], exactly once for every run that was begun, when the request has
//!    ended however it ended: the whole answer, the stream's output when it ends or when the
//!    client leaves, an error, or a refusal by a later policy. It sees the finished record
//!    (status, outcome, usage, cost) and the output, and may settle spend or fill a cache.
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
}

/// What a policy sees of a request before the upstream call.
pub struct PolicyRequest<'a> {
    /// The API family the client speaks.
    pub family: Family,
    /// The caller's key.
    pub key: &'a KeyEntry,
    /// The record so far: trace id, metadata, user, endpoint, stream.
    pub record: &'a RequestRecord,
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

    /// Runs every `after` hook and forgets the runs, so a second call does nothing.
    pub(crate) fn after(&mut self, finished: &Finished<'_>) {
        for mut run in self.0.drain(..) {
            run.after(finished);
        }
    }
}
