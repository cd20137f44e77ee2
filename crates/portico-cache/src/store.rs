//! [`CacheStore`]: where cached answers live, behind a trait so that a shared store (Redis,
//! when `PORTICO_REDIS_URL` is set: issue 17) can take the in-memory one's place.
//!
//! Lookups are async (a networked store waits on its server). Writes are fire-and-forget:
//! the request that fills the cache has already answered its client, so [`CacheStore::put`]
//! returns at once and a networked store queues the write for its own task. A store that
//! fails answers a miss (the request goes upstream) and says why in the error, which the
//! caller logs; it never fails a request.

use std::sync::Arc;

use async_trait::async_trait;

use crate::answer::CachedAnswer;
use crate::key::CacheKey;

/// Why a store could not answer a lookup.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The store's backend failed or could not be reached.
    #[error("the cache store is unavailable: {0}")]
    Unavailable(String),
}

/// Where cached answers live; see the module docs.
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// The answer stored under `key` that has not expired at `now_ms`, if any. A store with
    /// an eviction order counts this as a use.
    async fn get(
        &self,
        key: &CacheKey,
        now_ms: i64,
    ) -> Result<Option<Arc<CachedAnswer>>, CacheError>;

    /// Stores `answer` under `key` until `expires_at_ms` (replacing what was there); returns
    /// at once. A store may decline an answer too large for it.
    fn put(&self, key: CacheKey, answer: CachedAnswer, expires_at_ms: i64);
}
