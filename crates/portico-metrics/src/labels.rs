//! Label values that come from outside (model names, error codes): capped, and their
//! metric handles cached so a finished request touches no lock on its usual path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

/// The label value that stands for every value past a cap.
pub(crate) const OTHER: &str = "other";

/// A map from label value to `V`, read without locking, holding at most `cap` values before
/// it folds every new one into [`OTHER`].
///
/// Reads load an immutable map (`ArcSwap`); the first sight of a value copies the map under
/// a mutex. Values are few (the cap) and first sights rare, so the copy is cheap; once the
/// cap is reached, unknown values go to [`OTHER`] on the read path, so a flood of new names
/// never queues on the mutex.
pub(crate) struct LabelCache<V> {
    map: ArcSwap<HashMap<Box<str>, V>>,
    write: Mutex<()>,
    cap: usize,
    full: AtomicBool,
}

impl<V: Clone> LabelCache<V> {
    /// An empty cache admitting `cap` distinct values.
    pub(crate) fn new(cap: usize) -> LabelCache<V> {
        LabelCache {
            map: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
            cap,
            full: AtomicBool::new(false),
        }
    }

    /// The value for `key`, made by `make(label)` on first sight; `label` is `key`, or
    /// [`OTHER`] once the cap is reached.
    pub(crate) fn get(&self, key: &str, make: impl FnOnce(&str) -> V) -> V {
        let map = self.map.load();
        if let Some(value) = map.get(key) {
            return value.clone();
        }
        if self.full.load(Ordering::Acquire)
            && let Some(value) = map.get(OTHER)
        {
            return value.clone();
        }
        drop(map);
        self.insert(key, make)
    }

    #[cold]
    fn insert(&self, key: &str, make: impl FnOnce(&str) -> V) -> V {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.map.load_full();
        if let Some(value) = current.get(key) {
            return value.clone();
        }
        let admitted = current.len() - usize::from(current.contains_key(OTHER));
        let label = if admitted >= self.cap { OTHER } else { key };
        if let Some(value) = current.get(label) {
            return value.clone();
        }
        let value = make(label);
        let mut next = HashMap::clone(&current);
        next.insert(label.into(), value.clone());
        self.map.store(Arc::new(next));
        if label == OTHER {
            self.full.store(true, Ordering::Release);
        }
        value
    }

    /// How many distinct values (including [`OTHER`]) the cache holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.load().len()
    }
}

/// A bounded map from a label combination to its metric handle, read without locking: a hot
/// combination's handle is found by one hash lookup instead of the metric family's own
/// lookup (which hashes every label value under a read lock). Past `cap` combinations it
/// declines, and the caller takes the family's own path.
pub(crate) struct HandleCache<V> {
    map: ArcSwap<HashMap<Box<str>, V>>,
    write: Mutex<()>,
    cap: usize,
}

impl<V: Clone> HandleCache<V> {
    /// An empty cache holding at most `cap` handles.
    pub(crate) fn new(cap: usize) -> HandleCache<V> {
        HandleCache {
            map: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
            cap,
        }
    }

    /// The handle for `key`, made by `make` on first sight; `None` once the cache is full.
    pub(crate) fn get(&self, key: &str, make: impl FnOnce() -> V) -> Option<V> {
        if let Some(value) = self.map.load().get(key) {
            return Some(value.clone());
        }
        self.insert(key, make)
    }

    #[cold]
    fn insert(&self, key: &str, make: impl FnOnce() -> V) -> Option<V> {
        if self.map.load().len() >= self.cap {
            return None;
        }
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.map.load_full();
        if let Some(value) = current.get(key) {
            return Some(value.clone());
        }
        if current.len() >= self.cap {
            return None;
        }
        let value = make();
        let mut next = HashMap::clone(&current);
        next.insert(key.into(), value.clone());
        self.map.store(Arc::new(next));
        Some(value)
    }
}

/// `parts` joined by spaces into `buf`, or `None` when they do not fit.
pub(crate) fn join_into<'b>(parts: &[&str], buf: &'b mut [u8]) -> Option<&'b str> {
    let mut len = 0;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(len)? = b' ';
            len += 1;
        }
        buf.get_mut(len..len + part.len())?
            .copy_from_slice(part.as_bytes());
        len += part.len();
    }
    std::str::from_utf8(&buf[..len]).ok()
}

/// The status code as a label value, without allocating.
pub(crate) fn status_label(status: u16, buf: &mut [u8; 3]) -> &str {
    if !(100..=999).contains(&status) {
        return "0";
    }
    buf[0] = b'0' + (status / 100) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("0")
}

/// `2xx`, `4xx`, ...: the status class label.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_values_past_the_cap_into_other() {
        let cache: LabelCache<String> = LabelCache::new(2);
        assert_eq!(cache.get("a", str::to_owned), "a");
        assert_eq!(cache.get("b", str::to_owned), "b");
        assert_eq!(cache.get("c", str::to_owned), OTHER);
        assert_eq!(cache.get("d", str::to_owned), OTHER);
        // Admitted values keep their own label.
        assert_eq!(cache.get("a", |_| unreachable!()), "a");
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn concurrent_first_sights_respect_the_cap_and_agree() {
        let cache: Arc<LabelCache<Arc<str>>> = Arc::new(LabelCache::new(50));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| {
                            let key = format!("model-{}", (i * 7 + t) % 120);
                            let label = cache.get(&key, |l: &str| Arc::from(l));
                            (key, label)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let seen: Vec<(String, Arc<str>)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(cache.len(), 51, "50 names and `other`");
        for (key, label) in &seen {
            assert!(&**label == key.as_str() || &**label == OTHER);
            // Every thread got the same answer for the same name.
            assert_eq!(cache.get(key, |_| unreachable!()), *label);
        }
    }

    #[test]
    fn handle_cache_declines_past_its_cap() {
        let cache: HandleCache<u32> = HandleCache::new(2);
        assert_eq!(cache.get("a", || 1), Some(1));
        assert_eq!(cache.get("b", || 2), Some(2));
        assert_eq!(cache.get("c", || 3), None);
        assert_eq!(cache.get("a", || unreachable!()), Some(1));
    }

    #[test]
    fn join_into_fits_or_declines() {
        let mut buf = [0u8; 16];
        assert_eq!(
            join_into(&["chat", "200", "ok"], &mut buf),
            Some("chat 200 ok")
        );
        assert_eq!(join_into(&["a-very-long-part", "x"], &mut buf), None);
    }

    #[test]
    fn status_labels() {
        let mut buf = [0; 3];
        assert_eq!(status_label(200, &mut buf), "200");
        assert_eq!(status_label(503, &mut buf), "503");
        assert_eq!(status_label(0, &mut buf), "0");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(0), "other");
    }
}
