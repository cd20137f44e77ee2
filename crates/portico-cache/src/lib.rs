//! The response cache (spec sections 4 and 5, Portkey's `cache` config): what a cached
//! answer is keyed by, where it is kept, and how a semantically close question finds it.
//!
//! Where it sits: below the engine, whose cache policy
//! (`portico_engine::policies::cache`) decides what to key, when to look up and what may be
//! stored; this crate knows nothing of HTTP, API families or providers. Time comes in as
//! Unix milliseconds from the caller's clock, so expiry is tested without waiting.
//!
//! What this crate is:
//!
//! - [`key`]: [`CacheKey`], a SHA-256 over named, length-prefixed parts ([`KeyBuilder`]), so
//!   that no two different requests share a key by concatenation, and a 30 KB body costs one
//!   pass of the hash.
//! - [`answer`]: [`CachedAnswer`], what a hit replays: a whole body or a stream's events,
//!   with the provider, model, usage and cost of the upstream answer it was.
//! - [`store`]: the [`CacheStore`] trait (async lookups, fire-and-forget writes), so a Redis
//!   store can take the in-memory one's place (issue 17).
//! - [`memory`]: [`MemoryStore`], the default store: LRU eviction within a byte bound, and a
//!   time to live per entry.
//! - [`vector`]: [`VectorIndex`], the semantic cache's index: normalized `f32` vectors in
//!   scopes (same model and parameters), searched by brute force (docs/performance.md has
//!   the figures at 100,000 entries).
//!
//! What it is not: the policy (what is cacheable, the response headers, the request log)
//! nor the embedding call; both are the engine's.

pub mod answer;
pub mod key;
pub mod memory;
pub mod store;
pub mod vector;

pub use answer::{CachedAnswer, CachedEvent, Payload};
pub use key::{CacheKey, KeyBuilder};
pub use memory::{MemoryStore, MemoryStoreStats};
pub use store::{CacheError, CacheStore};
pub use vector::{Similar, VectorIndex, normalize};
