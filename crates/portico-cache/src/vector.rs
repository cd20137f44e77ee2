//! [`VectorIndex`]: the semantic cache's index of question embeddings.
//!
//! Entries live in scopes: a scope is everything about a request but the text of its last
//! user message (provider and model, parameters, earlier messages, metadata, namespace;
//! the engine derives it as a [`CacheKey`]). A search only compares vectors of the asking
//! request's scope, so an answer is never reused for another model or other parameters, and
//! a search costs only what its scope holds.
//!
//! Vectors are normalized when stored ([`normalize`]), so cosine similarity is a dot product.
//! Each scope keeps its vectors twice, contiguously: as `f32`, and quantized to `i8` with a
//! scale per vector. The search is a brute-force scan of the `i8` codes (a quarter of the
//! memory traffic), and only a candidate whose quantized score comes within
//! `RESCORE_MARGIN` of the threshold is scored exactly on its `f32` vector: exact results
//! (the reported similarity is the `f32` one), no recall loss to tune, no build step,
//! entries added and expired at once. docs/performance.md has the criterion figures at
//! 100,000 vectors and why an ANN index was not worth its cost here.
//!
//! The index is bounded in entries: past [`VectorIndex::max_entries`], the oldest entry goes
//! first. Expired entries are never answered and are dropped when their scope next gets an
//! entry.

use std::collections::{HashMap, VecDeque};

use crate::key::CacheKey;

/// The default bound on entries: 20,000 questions of 1,536 dimensions hold about 150 MB
/// (5 bytes a dimension: the `f32` and the `i8` copy).
pub const DEFAULT_MAX_ENTRIES: usize = 20_000;

/// The nearest entry a search found above the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similar {
    /// The key of the cached answer it points to.
    pub key: CacheKey,
    /// Its cosine similarity to the question, in `[-1, 1]`.
    pub similarity: f32,
}

/// Question embeddings by scope; see the module docs.
#[derive(Debug)]
pub struct VectorIndex {
    scopes: HashMap<CacheKey, Scope>,
    /// Entries in insertion order (scope, sequence number), oldest first; an entry replaced or
    /// dropped since leaves a stale pair here, skipped when it comes up.
    order: VecDeque<(CacheKey, u64)>,
    len: usize,
    max_entries: usize,
    next_seq: u64,
}

#[derive(Debug, Default)]
struct Scope {
    dims: usize,
    /// `entries.len() * dims` values: entry `i`'s vector is `vectors[i * dims..][..dims]`.
    vectors: Vec<f32>,
    /// The same vectors quantized to `i8` (each with its scale in its item), which the scan
    /// reads: a quarter of the memory traffic of the `f32`s.
    codes: Vec<i8>,
    /// In insertion order, so sequence numbers ascend.
    entries: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    key: CacheKey,
    expires_at_ms: i64,
    seq: u64,
    /// The vector's quantization scale: component `j` is about `codes[j] * scale`.
    scale: f32,
}

/// How far below the threshold a quantized score may be and still be rescored exactly. The
/// rounding error of a quantized dot product of unit vectors has a standard deviation of
/// about 0.003 at 1,536 dimensions (less at fewer), so 0.02 is beyond six of them.
const RESCORE_MARGIN: f32 = 0.02;

impl VectorIndex {
    /// An index of at most `max_entries` vectors.
    pub fn new(max_entries: usize) -> VectorIndex {
        VectorIndex {
            scopes: HashMap::new(),
            order: VecDeque::new(),
            len: 0,
            max_entries,
            next_seq: 0,
        }
    }

    /// The bound on entries.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The entries held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of `scope` most similar to `query` (normalized, see [`normalize`]) with a
    /// similarity of at least `threshold`, not expired at `now_ms`.
    pub fn search(
        &self,
        scope: &CacheKey,
        query: &[f32],
        threshold: f32,
        now_ms: i64,
    ) -> Option<Similar> {
        let scope = self.scopes.get(scope)?;
        let dims = scope.dims;
        if dims != query.len() || dims == 0 {
            return None;
        }
        let (codes, query_scale) = quantize(query);
        let mut best: Option<Similar> = None;
        for (index, (item, code)) in scope
            .entries
            .iter()
            .zip(scope.codes.chunks_exact(dims))
            .enumerate()
        {
            // The quantized score first; only a candidate near the threshold is rescored
            // on its `f32` vector.
            let approx = dot_i8(&codes, code) as f32 * query_scale * item.scale;
            if approx < threshold - RESCORE_MARGIN || item.expires_at_ms <= now_ms {
                continue;
            }
            let similarity = dot(query, &scope.vectors[index * dims..(index + 1) * dims]);
            if similarity >= threshold && best.is_none_or(|b| similarity > b.similarity) {
                best = Some(Similar {
                    key: item.key,
                    similarity,
                });
            }
        }
        best
    }

    /// Adds `vector` (normalized) for the answer under `key` in `scope`, until
    /// `expires_at_ms`; replaces the entry `key` had in that scope. Drops the scope's expired
    /// entries, and the oldest entries past the bound.
    pub fn insert(
        &mut self,
        scope_key: CacheKey,
        key: CacheKey,
        vector: &[f32],
        expires_at_ms: i64,
        now_ms: i64,
    ) {
        if vector.is_empty() || self.max_entries == 0 {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let scope = self.scopes.entry(scope_key).or_default();
        if scope.dims != vector.len() {
            // Another embedding model: the old vectors cannot be compared with new ones.
            self.len -= scope.entries.len();
            scope.entries.clear();
            scope.vectors.clear();
            scope.codes.clear();
            scope.dims = vector.len();
        }
        let before = scope.entries.len();
        scope.retain(|item| item.key != key && item.expires_at_ms > now_ms);
        self.len -= before - scope.entries.len();
        let (codes, scale) = quantize(vector);
        scope.entries.push(Item {
            key,
            expires_at_ms,
            seq,
            scale,
        });
        scope.vectors.extend_from_slice(vector);
        scope.codes.extend_from_slice(&codes);
        self.len += 1;
        self.order.push_back((scope_key, seq));
        while self.len > self.max_entries {
            let Some((scope_key, seq)) = self.order.pop_front() else {
                break;
            };
            let Some(scope) = self.scopes.get_mut(&scope_key) else {
                continue;
            };
            if let Ok(index) = scope.entries.binary_search_by_key(&seq, |i| i.seq) {
                scope.remove(index);
                self.len -= 1;
                if scope.entries.is_empty() {
                    self.scopes.remove(&scope_key);
                }
            }
        }
        if self.order.len() > self.len.saturating_mul(2).max(1024) {
            // Replaced and expired entries left stale pairs: drop them.
            let scopes = &self.scopes;
            self.order.retain(|(scope, seq)| {
                scopes
                    .get(scope)
                    .is_some_and(|s| s.entries.binary_search_by_key(seq, |i| i.seq).is_ok())
            });
        }
    }
}

impl Scope {
    fn retain(&mut self, keep: impl Fn(&Item) -> bool) {
        if self.entries.iter().all(&keep) {
            return;
        }
        let dims = self.dims;
        let mut vectors = Vec::with_capacity(self.vectors.len());
        let mut codes = Vec::with_capacity(self.codes.len());
        let mut entries = Vec::with_capacity(self.entries.len());
        for ((item, vector), code) in self
            .entries
            .iter()
            .zip(self.vectors.chunks_exact(dims))
            .zip(self.codes.chunks_exact(dims))
        {
            if keep(item) {
                entries.push(*item);
                vectors.extend_from_slice(vector);
                codes.extend_from_slice(code);
            }
        }
        self.entries = entries;
        self.vectors = vectors;
        self.codes = codes;
    }

    fn remove(&mut self, index: usize) {
        self.entries.remove(index);
        self.vectors
            .drain(index * self.dims..(index + 1) * self.dims);
        self.codes.drain(index * self.dims..(index + 1) * self.dims);
    }
}

/// Scales `vector` to length 1, in `f32`; `None` for a zero (or non-finite) vector, which no
/// similarity can be computed for.
pub fn normalize(vector: &[f64]) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return None;
    }
    Some(vector.iter().map(|x| (x / norm) as f32).collect())
}

/// `vector` as `i8` codes and the scale that maps them back (`x ≈ code * scale`).
fn quantize(vector: &[f32]) -> (Vec<i8>, f32) {
    let max = vector.iter().fold(0.0_f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; vector.len()], 0.0);
    }
    let scale = max / 127.0;
    let codes = vector
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (codes, scale)
}

/// The dot product of `i8` codes, in sixteen independent `i32` sums of `i16` products so the
/// compiler vectorizes it (127 × 127 fits an `i16`).
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut sums = [0_i32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..16 {
            sums[i] += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
    }
    sums.iter().sum::<i32>() + tail
}

/// The dot product, in eight independent sums so the compiler vectorizes it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0_f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyBuilder;

    fn key(name: &str) -> CacheKey {
        let mut b = KeyBuilder::new("t");
        b.part("n", name.as_bytes());
        b.finish()
    }

    fn unit(values: &[f64]) -> Vec<f32> {
        normalize(values).unwrap()
    }

    #[test]
    fn the_nearest_entry_above_the_threshold_in_the_same_scope_is_found() {
        let mut index = VectorIndex::new(100);
        let (scope, other) = (key("scope"), key("other"));
        index.insert(scope, key("a"), &unit(&[1.0, 0.0, 0.0]), 100, 0);
        index.insert(scope, key("b"), &unit(&[1.0, 1.0, 0.0]), 100, 0);
        index.insert(other, key("c"), &unit(&[1.0, 0.1, 0.0]), 100, 0);
        let query = unit(&[1.0, 0.1, 0.0]);
        let found = index.search(&scope, &query, 0.9, 0).unwrap();
        assert_eq!(found.key, key("a"));
        assert!(found.similarity > 0.99 && found.similarity < 1.0);
        // Near, but not near enough.
        assert!(index.search(&scope, &query, 0.999, 0).is_none());
        // Another scope's entry is exact, but not searched.
        assert_eq!(
            index.search(&other, &query, 0.999, 0).unwrap().key,
            key("c")
        );
        assert!(index.search(&key("none"), &query, 0.0, 0).is_none());
        // Another dimension never matches.
        assert!(index.search(&scope, &unit(&[1.0, 0.0]), 0.0, 0).is_none());
    }

    #[test]
    fn expired_entries_are_not_answered_and_are_dropped_on_the_next_insert() {
        let mut index = VectorIndex::new(100);
        let scope = key("s");
        index.insert(scope, key("a"), &unit(&[1.0, 0.0]), 10, 0);
        assert!(index.search(&scope, &unit(&[1.0, 0.0]), 0.9, 9).is_some());
        assert!(index.search(&scope, &unit(&[1.0, 0.0]), 0.9, 10).is_none());
        index.insert(scope, key("b"), &unit(&[0.0, 1.0]), 100, 10);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn the_bound_drops_the_oldest_and_a_replaced_key_counts_once() {
        let mut index = VectorIndex::new(3);
        let scope = key("s");
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            index.insert(scope, key(name), &unit(&[1.0, i as f64]), 100, 0);
        }
        index.insert(scope, key("b"), &unit(&[1.0, 1.0]), 100, 0);
        assert_eq!(index.len(), 3);
        index.insert(key("t"), key("d"), &unit(&[1.0, 0.0]), 100, 0);
        assert_eq!(index.len(), 3);
        // "a" was the oldest.
        assert!(
            index
                .search(&scope, &unit(&[1.0, 0.0]), 0.9999, 0)
                .is_none()
        );
        assert!(
            index
                .search(&scope, &unit(&[1.0, 1.0]), 0.9999, 0)
                .is_some()
        );
    }

    #[test]
    fn dot_matches_the_plain_sum_and_zero_vectors_do_not_normalize() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        assert!(normalize(&[0.0, 0.0]).is_none());
        let (codes, scale) = quantize(&a);
        let (codes_b, scale_b) = quantize(&b);
        let approx = dot_i8(&codes, &codes_b) as f32 * scale * scale_b;
        assert!(
            (approx - plain).abs() / plain.abs() < 0.02,
            "{approx} vs {plain}"
        );
        assert!(normalize(&[f64::NAN]).is_none());
    }
}
