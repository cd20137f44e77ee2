//! The response cache (Portkey's `cache` config: spec sections 4 and 5) as a pipeline
//! policy: [`CachePolicy`].
//!
//! A request whose routing config has a `cache` is keyed ([`key`]) on what Portkey keys it
//! on: the endpoint, the provider (the body's `@slug/model`, `x-portkey-provider`, the
//! config), the whole body (model, messages, every parameter, `stream` included), the
//! `x-portkey-metadata` and the `x-portkey-cache-namespace` when sent; never the gateway key
//! or the trace id. Then:
//!
//! - `before`: an answer stored under the key less than `max_age` seconds ago is replayed
//!   in the upstream's place (a stream as a stream, event for event and byte for byte;
//!   [`replay`]): `HIT`. In `semantic` mode, a simple miss then asks the configured
//!   embedding model for a vector of the last user message and looks for a close enough
//!   question in the same scope ([`semantic`]): `SEMANTIC HIT` or `SEMANTIC MISS`.
//!   `x-portkey-cache-force-refresh: true` skips the lookup: `REFRESH`. Otherwise `MISS`.
//! - `after`: a miss or refresh that ended in a whole 200 answer, or a stream that ended
//!   normally, is stored; an error, a stream cut short (the client left, the upstream
//!   broke) or an in-band error is not.
//!
//! A hit costs nothing and is charged to no budget: this policy runs before the limits
//! policy (the binary adds it first), and a hit ends the admit phase before the limits
//! reserve anything. Its record says what the answer it replayed had cost
//! (`cache_saved_usd`) and, for a semantic hit, the similarity.
//!
//! A request whose config has no `cache` gets no run at all: one pointer test.

mod key;
mod replay;
mod run;
mod semantic;

use std::sync::Arc;

use portico_cache::CacheStore;
use portico_core::Clock;
use portico_routing::CacheMode;

pub use semantic::{DEFAULT_THRESHOLD, MAX_MESSAGES, MAX_QUESTION_BYTES, SemanticSettings};

use crate::pipeline::Family;
use crate::pipeline::policy::{Policy, PolicyRequest, PolicyRun};
use crate::snapshot::Snapshot;
use run::CacheRun;
use semantic::Semantic;

/// `max_age` when a config sets none: 7 days, Portkey's default.
pub const DEFAULT_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The response cache on every data-plane request whose config asks for it; see the module
/// docs.
pub struct CachePolicy {
    store: Arc<dyn CacheStore>,
    clock: Arc<dyn Clock>,
    semantic: Option<Arc<Semantic>>,
}

impl std::fmt::Debug for CachePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachePolicy")
            .field("semantic", &self.semantic.is_some())
            .finish_non_exhaustive()
    }
}

impl CachePolicy {
    /// A cache keeping answers in `store`, reading the time from `clock`. Without
    /// [`CachePolicy::with_semantic`], a `semantic` config caches as `simple` does.
    pub fn new(store: Arc<dyn CacheStore>, clock: Arc<dyn Clock>) -> CachePolicy {
        CachePolicy {
            store,
            clock,
            semantic: None,
        }
    }

    /// The same cache answering `semantic` configs with `settings`' embedding model.
    pub fn with_semantic(mut self, settings: SemanticSettings) -> CachePolicy {
        self.semantic = Some(Arc::new(Semantic::new(settings)));
        self
    }
}

impl Policy for CachePolicy {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn catalog_changed(&self, snapshot: &Arc<Snapshot>) {
        if let Some(semantic) = &self.semantic {
            semantic.catalog_changed(snapshot);
        }
    }

    fn begin(&self, request: &PolicyRequest<'_>) -> Option<Box<dyn PolicyRun>> {
        let cache = request.config?.cache.as_ref()?;
        // Images and speech are made anew on every call, and a transcription's key would be
        // its form fields without the audio: none of OpenAI's pass-through answers is cached.
        if let Family::OpenAi(endpoint) = request.family
            && endpoint.is_passthrough()
        {
            return None;
        }
        let max_age_ms = cache
            .max_age
            .unwrap_or(DEFAULT_MAX_AGE_SECS)
            .saturating_mul(1000)
            .min(i64::MAX as u64) as i64;
        let semantic = match cache.mode {
            CacheMode::Simple => None,
            CacheMode::Semantic => self.semantic.clone(),
        };
        Some(Box::new(CacheRun::new(
            Arc::clone(&self.store),
            Arc::clone(&self.clock),
            semantic,
            max_age_ms,
        )))
    }
}

#[cfg(test)]
mod tests;
