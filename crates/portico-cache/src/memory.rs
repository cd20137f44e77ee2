//! [`MemoryStore`]: the default cache store, in the gateway's memory.
//!
//! Bounded in bytes (each entry counted by [`CachedAnswer::size`]): when a new entry would
//! pass the bound, the least recently used entries go first. Each entry also has a time to
//! live: an expired entry is never answered, and is dropped when a lookup finds it or when it
//! reaches the LRU end. An entry larger than a fraction of the bound
//! ([`MemoryStore::max_entry_bytes`]) is not stored at all, so one huge answer cannot flush
//! the whole cache.
//!
//! One mutex guards the map and the LRU order. It is held for a hash-map lookup and a few
//! pointer moves (an answer is shared as an `Arc`, never copied under the lock), well under a
//! microsecond, so it does not need sharding at the request rates one process serves
//! (docs/performance.md).

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use lru::LruCache;

use crate::answer::CachedAnswer;
use crate::key::CacheKey;
use crate::store::{CacheError, CacheStore};

/// The default bound: 256 MiB.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Cached answers in memory, LRU within a byte bound, with a time to live; see the module
/// docs.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_bytes: usize,
    max_entry_bytes: usize,
}

struct Inner {
    entries: LruCache<CacheKey, Slot>,
    bytes: usize,
    evicted: u64,
}

struct Slot {
    answer: Arc<CachedAnswer>,
    expires_at_ms: i64,
    size: usize,
}

/// What a [`MemoryStore`] holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStoreStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes they count for.
    pub bytes: usize,
    /// Entries evicted to stay within the bound, since the start.
    pub evicted: u64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_bytes", &self.max_bytes)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `max_bytes` (entries larger than an eighth of it are not
    /// stored).
    pub fn new(max_bytes: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
                evicted: 0,
            }),
            max_bytes,
            max_entry_bytes: max_bytes / 8,
        }
    }

    /// The bound, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The largest entry stored, in bytes.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// What the store holds now.
    pub fn stats(&self) -> MemoryStoreStats {
        let inner = self.lock();
        MemoryStoreStats {
            entries: inner.entries.len(),
            bytes: inner.bytes,
            evicted: inner.evicted,
        }
    }

    /// The answer under `key` that has not expired at `now_ms` (the synchronous form of
    /// [`CacheStore::get`]).
    pub fn lookup(&self, key: &CacheKey, now_ms: i64) -> Option<Arc<CachedAnswer>> {
        let mut inner = self.lock();
        let slot = inner.entries.get(key)?;
        if slot.expires_at_ms > now_ms {
            return Some(Arc::clone(&slot.answer));
        }
        if let Some(slot) = inner.entries.pop(key) {
            inner.bytes -= slot.size;
        }
        None
    }

    /// Stores `answer` under `key` until `expires_at_ms` (the synchronous form of
    /// [`CacheStore::put`]); returns whether it was stored.
    pub fn insert(&self, key: CacheKey, answer: CachedAnswer, expires_at_ms: i64) -> bool {
        let size = answer.size();
        if size > self.max_entry_bytes {
            return false;
        }
        let slot = Slot {
            answer: Arc::new(answer),
            expires_at_ms,
            size,
        };
        let mut inner = self.lock();
        if let Some((_, old)) = inner.entries.push(key, slot) {
            // `push` hands back the entry it replaced (the same key) or, never here since
            // the map is unbounded, one it evicted.
            inner.bytes -= old.size;
        }
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some((_, old)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= old.size;
            inner.evicted += 1;
        }
        true
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.bytes = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing under the lock can panic half-way through an update; a poisoned lock still
        // guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(DEFAULT_MAX_BYTES)
    }
}

#[async_trait]
impl CacheStore for MemoryStore {
    async fn get(
        &self,
        key: &CacheKey,
        now_ms: i64,
    ) -> Result<Option<Arc<CachedAnswer>>, CacheError> {
        Ok(self.lookup(key, now_ms))
    }

    fn put(&self, key: CacheKey, answer: CachedAnswer, expires_at_ms: i64) {
        self.insert(key, answer, expires_at_ms);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::answer::Payload;
    use crate::key::KeyBuilder;

    fn key(n: u32) -> CacheKey {
        let mut b = KeyBuilder::new("t");
        b.part("n", &n.to_le_bytes());
        b.finish()
    }

    fn answer(bytes: usize) -> CachedAnswer {
        CachedAnswer {
            status: 200,
            payload: Payload::Whole(Bytes::from(vec![b'x'; bytes])),
            provider: None,
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            stored_at_ms: 0,
        }
    }

    #[test]
    fn an_entry_is_answered_until_it_expires_then_dropped() {
        let store = MemoryStore::new(1 << 20);
        assert!(store.insert(key(1), answer(10), 1_000));
        assert!(store.lookup(&key(1), 999).is_some());
        assert!(store.lookup(&key(2), 999).is_none());
        assert!(store.lookup(&key(1), 1_000).is_none(), "expired at 1000");
        assert_eq!(store.stats().entries, 0, "the expired entry was dropped");
        assert_eq!(store.stats().bytes, 0);
    }

    #[test]
    fn the_byte_bound_evicts_the_least_recently_used_first() {
        let one = answer(1000).size();
        let store = MemoryStore::new(one * 8);
        for n in 0..8 {
            assert!(store.insert(key(n), answer(1000), i64::MAX));
        }
        assert_eq!(store.stats().entries, 8);
        // A use of key 0 makes key 1 the least recently used.
        assert!(store.lookup(&key(0), 0).is_some());
        assert!(store.insert(key(8), answer(1000), i64::MAX));
        let stats = store.stats();
        assert_eq!((stats.entries, stats.evicted), (8, 1));
        assert!(stats.bytes <= store.max_bytes());
        assert!(store.lookup(&key(1), 0).is_none(), "key 1 was evicted");
        assert!(
            store.lookup(&key(0), 0).is_some(),
            "key 0 was used, so kept"
        );
        assert!(store.lookup(&key(8), 0).is_some());
    }

    #[test]
    fn replacing_an_entry_counts_its_bytes_once_and_huge_entries_are_declined() {
        let store = MemoryStore::new(80_000);
        assert!(store.insert(key(1), answer(100), i64::MAX));
        assert!(store.insert(key(1), answer(200), i64::MAX));
        assert_eq!(store.stats().entries, 1);
        assert_eq!(store.stats().bytes, answer(200).size());
        assert!(!store.insert(key(2), answer(20_000), i64::MAX), "over 1/8");
        assert!(store.lookup(&key(2), 0).is_none());
        store.clear();
        assert_eq!(store.stats().bytes, 0);
    }

    #[tokio::test]
    async fn the_trait_is_the_same_store() {
        let store: Arc<dyn CacheStore> = Arc::new(MemoryStore::new(1 << 20));
        store.put(key(3), answer(5), 50);
        assert!(store.get(&key(3), 49).await.unwrap().is_some());
        assert!(store.get(&key(3), 50).await.unwrap().is_none());
    }
}
