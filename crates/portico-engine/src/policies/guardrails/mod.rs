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
//!   `guardrails`.
//!
//! A request whose config names no guardrails gets no run (`begin` returns `None`).

mod respond;
mod run;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portico_guardrails::{AddressGuard, Guardrail, builtin_guardrails};
use portico_providers::http::HttpClient;
use portico_routing::GuardrailRef;

use crate::pipeline::policy::{Policy, PolicyRequest, PolicyRun};
use run::GuardrailsRun;

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

/// What every run shares: the client webhooks are called with and the address guard.
pub(crate) struct Shared {
    pub(crate) client: HttpClient,
    pub(crate) guard: ArcSwap<AddressGuard>,
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
