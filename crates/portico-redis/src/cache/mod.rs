//! [`RedisCache`]: the response cache in Redis (`portico_cache::CacheStore`), shared by every
//! process.
//!
//! An answer is one Redis string, `<prefix>cache:<sha-256 hex>`, in our own binary form
//! (`codec`), with Redis' own TTL set to the entry's time to live (Redis drops it; the
//! expiry is also stored, and checked against the caller's clock on a hit). A lookup is
//! one `GET` within the per-call timeout, on the request path; a write is spawned (at most
//! [`MAX_WRITES`] at once, beyond which an answer is simply not stored). An answer larger than
//! the entry cap is not stored: one huge answer must not cost every process a large
//! transfer on each hit.
//!
//! Redis away, slow, or full: a lookup is a miss and a write is skipped, never an error to
//! the client. The connection logs the outage once; the store never logs per request.
//!
//! The semantic cache's vector index stays in each process's memory (`portico_cache::
//! VectorIndex`): a semantic hit needs the question's vector, which only the process that
//! stored the answer has. Simple hits are shared.

mod codec;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use portico_cache::{CacheError, CacheKey, CacheStore, CachedAnswer};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::conn::Conn;

/// The default largest answer stored: 4 MiB (a stream longer than that is not cached in
/// memory either).
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;
/// Writes in flight at most.
pub const MAX_WRITES: usize = 256;

/// The response cache in Redis; see the module docs.
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    conn: Arc<Conn>,
    prefix: String,
    max_entry_bytes: usize,
    tasks: TaskTracker,
    writes: Arc<Semaphore>,
    skipped: AtomicU64,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.inner.prefix)
            .field("max_entry_bytes", &self.inner.max_entry_bytes)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    pub(crate) fn new(
        conn: Arc<Conn>,
        prefix: &str,
        max_entry_bytes: usize,
        tasks: TaskTracker,
    ) -> RedisCache {
        RedisCache {
            inner: Arc::new(CacheInner {
                conn,
                prefix: format!("{prefix}cache:"),
                max_entry_bytes,
                tasks,
                writes: Arc::new(Semaphore::new(MAX_WRITES)),
                skipped: AtomicU64::new(0),
            }),
        }
    }

    /// The largest answer stored, in bytes (encoded).
    pub fn max_entry_bytes(&self) -> usize {
        self.inner.max_entry_bytes
    }

    /// Answers not stored since the start: too large, already expired, too many writes at
    /// once, or Redis away.
    pub fn skipped(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    fn key(&self, key: &CacheKey) -> String {
        format!("{}{}", self.inner.prefix, key.to_hex())
    }

    fn skip(&self, why: &str) {
        self.inner.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("response cache (Redis): answer not stored: {why}");
    }
}

#[async_trait]
impl CacheStore for RedisCache {
    async fn get(
        &self,
        key: &CacheKey,
        now_ms: i64,
    ) -> Result<Option<Arc<CachedAnswer>>, CacheError> {
        let redis_key = self.key(key);
        let found = self
            .inner
            .conn
            .run(async |c| {
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async::<Option<Vec<u8>>>(c)
                    .await
            })
            .await;
        let bytes = match found {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(error) => {
                // A miss: the request goes upstream. An outage was logged once by the
                // connection; an error Redis answered with is worth a line at debug.
                tracing::debug!(%error, "response cache (Redis): lookup failed; a miss");
                return Ok(None);
            }
        };
        match codec::decode(Bytes::from(bytes)) {
            Some((answer, expires_at_ms)) if expires_at_ms > now_ms => Ok(Some(Arc::new(answer))),
            Some(_) => Ok(None),
            None => {
                tracing::debug!("response cache (Redis): an entry of another format; a miss");
                Ok(None)
            }
        }
    }

    fn put(&self, key: CacheKey, answer: CachedAnswer, expires_at_ms: i64) {
        // Relative to when it was stored, so Redis' clock and ours need not agree.
        let ttl_ms = expires_at_ms.saturating_sub(answer.stored_at_ms);
        if ttl_ms <= 0 {
            return self.skip("it expires at once");
        }
        if self.inner.conn.is_down() {
            return self.skip("Redis is away");
        }
        let bytes = codec::encode(&answer, expires_at_ms);
        if bytes.len() > self.inner.max_entry_bytes {
            return self.skip("larger than the entry cap");
        }
        let Ok(permit) = Arc::clone(&self.inner.writes).try_acquire_owned() else {
            return self.skip("too many writes in flight");
        };
        let redis_key = self.key(&key);
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let stored = this
                .inner
                .conn
                .run(async |c| {
                    redis::cmd("SET")
                        .arg(&redis_key)
                        .arg(&bytes[..])
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<()>(c)
                        .await
                })
                .await;
            drop(permit);
            if let Err(error) = stored {
                this.skip(&error.to_string());
            }
        });
    }
}
