//! Guardrails (spec section 7) as a pipeline policy: [`GuardrailsPolicy`].
//!
//! A request's guardrails come from its routing config: `input_guardrails` and
//! `output_guardrails`, each entry a named guardrail (the catalog's `guardrails:`, the admin
//! API's, or the built-in `pii-check` and `content-moderation`) or an inline one in
//! Portkey's shorthand, compiled when the config was parsed. Named guardrails come with the
//! catalog snapshot (the store's `guardrails` table: the file's and the admin API's). The checks themselves are
//! `portico_guardrails`'; this module runs them on the pipeline's hooks:
//!
//! - `before`: the input guardrails, in order, on the request: mutators rewrite the body
//!   (what the upstream, the cache, the limits and the log see), a failed `deny: true`
//!   guardrail answers 446 with `hook_results`, a failed `deny: false` one flags the request;
//! - `check_output`: the output guardrails on the whole answer (mutators rewrite it; 446 on
//!   a denying failure; a flagged request's answer gets status 246 and `hook_results`), or
//!   on a stream's assembled output before its last events are released (a denying failure
//!   ends the stream with a 446 error event instead);
//! - `stream_status`: a flagged request's stream is answered 246;
//! - `annotate`: every check's verdict, explanation and duration into the record's
//!   `guardrails`;
//! - `deferred`: the `async: true` guardrails, off the request path: the pipeline runs them
//!   in the background once the client has its answer, and writes the request's record when
//!   they are done, with their verdicts. At most [`MAX_ASYNC_IN_FLIGHT`] requests' async
//!   guardrails run at once; a request finishing while that many are running gets its async
//!   guardrails recorded as skipped (verdict true, with an error saying why) instead, so a
//!   slow webhook cannot pile up work or memory.
//!
//! `portico.moderation` with `provider` calls that catalog provider's moderation endpoint
//! (the `moderate` module).
//!
//! A request whose config names no guardrails gets no run (`begin` returns `None`).

mod moderate;
mod respond;
mod run;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use portico_guardrails::{AddressGuard, Guardrail, builtin_guardrails};
use portico_providers::http::HttpClient;
use portico_routing::GuardrailRef;

use crate::pipeline::policy::{Policy, PolicyRequest, PolicyRun};
use crate::snapshot::Snapshot;
use run::GuardrailsRun;

/// The most requests whose `async: true` guardrails run in the background at once; see the
/// module docs for what happens beyond it.
pub const MAX_ASYNC_IN_FLIGHT: usize = 256;

/// Runs input and output guardrails; see the module docs.
pub struct GuardrailsPolicy {
    named: ArcSwap<HashMap<String, Arc<Guardrail>>>,
    /// Guardrails set by the embedder ([`GuardrailsPolicy::set_named`]; tests).
    extra: ArcSwap<Vec<Guardrail>>,
    /// The stored guardrails (the catalog file's and the admin API's), from the last
    /// snapshot.
    stored: ArcSwap<Vec<Guardrail>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GuardrailsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardrailsPolicy").finish_non_exhaustive()
    }
}

/// What every run shares: the client webhooks are called with, the address guard, the
/// catalog (for moderation providers) and the room for async guardrails.
pub(crate) struct Shared {
    pub(crate) client: HttpClient,
    pub(crate) guard: ArcSwap<AddressGuard>,
    /// The catalog the gateway serves from: `portico.moderation`'s providers.
    pub(crate) snapshot: ArcSwapOption<Snapshot>,
    /// One permit per request whose async guardrails are running in the background.
    pub(crate) async_slots: Arc<tokio::sync::Semaphore>,
}

impl GuardrailsPolicy {
    /// A policy with the built-in guardrails, calling webhooks with `client` (redirects
    /// refused) behind `guard`.
    pub fn new(client: HttpClient, guard: AddressGuard) -> GuardrailsPolicy {
        let policy = GuardrailsPolicy {
            named: ArcSwap::from_pointee(HashMap::new()),
            extra: ArcSwap::from_pointee(Vec::new()),
            stored: ArcSwap::from_pointee(Vec::new()),
            shared: Arc::new(Shared {
                client,
                guard: ArcSwap::from_pointee(guard),
                snapshot: ArcSwapOption::empty(),
                async_slots: Arc::new(tokio::sync::Semaphore::new(MAX_ASYNC_IN_FLIGHT)),
            }),
        };
        policy.set_named(Vec::new());
        policy
    }

    /// Named guardrails besides the stored ones (an embedder's): they replace built-ins of the
    /// same id, and stored ones replace them.
    pub fn set_named(&self, guardrails: Vec<Guardrail>) {
        self.extra.store(Arc::new(guardrails));
        self.rebuild();
    }

    fn rebuild(&self) {
        let mut map: HashMap<String, Arc<Guardrail>> = builtin_guardrails()
            .into_iter()
            .map(|g| (g.id.clone(), Arc::new(g)))
            .collect();
        for g in self.extra.load().iter().chain(self.stored.load().iter()) {
            map.insert(g.id.clone(), Arc::new(g.clone()));
        }
        self.named.store(Arc::new(map));
    }

    /// The webhook address guard from now on (the binary sets it once the listener is
    /// bound, so the gateway's own address is known).
    pub fn set_guard(&self, guard: AddressGuard) {
        self.shared.guard.store(Arc::new(guard));
    }

    /// The named guardrails, by id.
    pub fn named(&self) -> Arc<HashMap<String, Arc<Guardrail>>> {
        self.named.load_full()
    }
}

impl Policy for GuardrailsPolicy {
    fn name(&self) -> &'static str {
        "guardrails"
    }

    fn catalog_changed(&self, snapshot: &Arc<crate::snapshot::Snapshot>) {
        self.shared.snapshot.store(Some(Arc::clone(snapshot)));
        let stored = snapshot
            .guardrails()
            .iter()
            .filter_map(|(id, json)| match Guardrail::parse(json, id) {
                Ok(g) => Some(g),
                Err(e) => {
                    // Every write is validated first: only a database written by another
                    // version can hold one that does not parse.
                    tracing::warn!(guardrail = %id, error = %e, "a stored guardrail does not parse; it is left out");
                    None
                }
            })
            .collect();
        self.stored.store(Arc::new(stored));
        self.rebuild();
    }

    fn begin(&self, request: &PolicyRequest<'_>) -> Option<Box<dyn PolicyRun>> {
        let config = request.config?;
        if config.input_guardrails.is_empty() && config.output_guardrails.is_empty() {
            return None;
        }
        let named = self.named.load();
        let mut unknown = None;
        let mut resolve = |refs: &[GuardrailRef]| -> Vec<Arc<Guardrail>> {
            refs.iter()
                .filter_map(|r| match r {
                    GuardrailRef::Inline(g) => Some(Arc::clone(g)),
                    GuardrailRef::Id(id) => {
                        let found = named.get(id).cloned();
                        if found.is_none() && unknown.is_none() {
                            let mut known: Vec<&str> = named.keys().map(String::as_str).collect();
                            known.sort_unstable();
                            unknown = Some(format!(
                                "the config names no guardrail `{id}`; the known guardrails are {} (add one under `guardrails:` in the catalog or with the admin API, or write it inline)",
                                known.join(", ")
                            ));
                        }
                        found
                    }
                })
                .collect()
        };
        let input = resolve(&config.input_guardrails);
        let output = resolve(&config.output_guardrails);
        Some(Box::new(GuardrailsRun::new(
            Arc::clone(&self.shared),
            request,
            input,
            output,
            unknown,
        )))
    }
}

#[cfg(test)]
mod tests;
