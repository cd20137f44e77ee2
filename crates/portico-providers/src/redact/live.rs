//! [`LiveSecrets`]: the secrets an adapter mints while it runs (cloud access tokens,
//! temporary AWS keys), which no catalog record holds and which change every hour or so.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use portico_core::Secret;

use super::Redactor;

/// How many minted secrets are remembered: the current credential's parts and those of the
/// one before, which an answer still under way may echo.
const KEPT: usize = 8;

/// The minted secrets of one provider, with a [`Redactor`] over them rebuilt each time one is
/// added (once per token, not per request); reading it is lock-free.
#[derive(Default)]
pub struct LiveSecrets {
    redactor: ArcSwapOption<Redactor>,
    kept: Mutex<Vec<Secret>>,
}

impl std::fmt::Debug for LiveSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSecrets").finish_non_exhaustive()
    }
}

impl LiveSecrets {
    /// No secrets yet.
    pub fn new() -> Arc<LiveSecrets> {
        Arc::new(LiveSecrets::default())
    }

    /// Remembers `secrets` (forgetting the oldest beyond a few) and rebuilds the redactor.
    pub fn add(&self, secrets: &[Secret]) {
        if secrets.is_empty() {
            return;
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for secret in secrets {
            if !kept.contains(secret) {
                kept.push(secret.clone());
            }
        }
        let excess = kept.len().saturating_sub(KEPT);
        kept.drain(..excess);
        // Building can only fail past resource limits a handful of tokens cannot reach;
        // the previous redactor then stays, still covering the older tokens.
        if let Ok(redactor) = Redactor::new(kept.iter().map(Secret::expose)) {
            self.redactor.store(redactor.map(Arc::new));
        }
    }

    /// The redactor of the secrets minted so far; `None` before the first.
    pub fn redactor(&self) -> Option<Arc<Redactor>> {
        self.redactor.load_full()
    }
}
