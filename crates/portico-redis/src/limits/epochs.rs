//! Epochs: how a process takes back holds it can no longer account for.
//!
//! A process holds its requests' estimates under `u:<pid>:<epoch>` / `t:<pid>:<epoch>` of
//! each budget, the epoch being the minute the request was admitted in. Settlement takes a
//! request's estimate back from its epoch's fields. But an admission whose reply never came
//! (the call timed out after Redis ran it), or whose request was dropped mid-call, leaves an
//! estimate that no settlement will take back: left alone it would shrink the budget for as
//! long as the process lives.
//!
//! So the process counts, per epoch, the admissions that may hold something (sent, and not
//! ended or known refused) and the budgets they touched. Once the epoch is over (a later
//! minute has begun) and its count is back to zero, whatever is still held under it can
//! only be such a leftover, and a `d` operation drops those fields. The operation goes
//! through the same ordered queue after the epoch's last settlement, and on the same
//! connection after its last admission, so Redis applies it after both.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// The length of an epoch: a minute.
const EPOCH_MS: i64 = 60_000;

#[derive(Debug, Default)]
struct Epoch {
    in_flight: usize,
    /// Labels of the budgets admissions of this epoch may hold on.
    budgets: HashSet<Arc<str>>,
}

/// The epochs still open in this process.
#[derive(Debug, Default)]
pub(crate) struct Epochs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The newest epoch begun; admissions never go into an older one, so a closed epoch
    /// stays closed even if a clock goes back.
    current: i64,
    open: BTreeMap<i64, Epoch>,
}

impl Epochs {
    /// Counts an admission starting at `now_ms` on `budgets`; returns its epoch.
    pub(crate) fn begin<'a>(
        &self,
        now_ms: i64,
        budgets: impl Iterator<Item = &'a Arc<str>>,
    ) -> i64 {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.current = inner.current.max(now_ms.div_euclid(EPOCH_MS));
        let current = inner.current;
        let epoch = inner.open.entry(current).or_default();
        epoch.in_flight += 1;
        for label in budgets {
            if !epoch.budgets.contains(label) {
                epoch.budgets.insert(Arc::clone(label));
            }
        }
        current
    }

    /// One admission of `epoch` ended (settled, refused, failed or dropped); returns the
    /// epochs that closed, with the budgets to drop their leftovers on.
    pub(crate) fn end(&self, epoch: i64, now_ms: i64) -> Vec<(i64, Vec<Arc<str>>)> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = inner.open.get_mut(&epoch) {
            open.in_flight = open.in_flight.saturating_sub(1);
        }
        close(&mut inner, now_ms)
    }

    /// The epochs that closed by `now_ms` (time moved on with no admission ending).
    pub(crate) fn tick(&self, now_ms: i64) -> Vec<(i64, Vec<Arc<str>>)> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        close(&mut inner, now_ms)
    }

    /// Admissions that may still hold something, over all epochs.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.open.values().map(|e| e.in_flight).sum()
    }
}

fn close(inner: &mut Inner, now_ms: i64) -> Vec<(i64, Vec<Arc<str>>)> {
    inner.current = inner.current.max(now_ms.div_euclid(EPOCH_MS));
    let current = inner.current;
    let done: Vec<i64> = inner
        .open
        .iter()
        .filter(|(e, open)| **e < current && open.in_flight == 0)
        .map(|(e, _)| *e)
        .collect();
    done.into_iter()
        .filter_map(|e| inner.open.remove(&e).map(|open| (e, open)))
        .filter(|(_, open)| !open.budgets.is_empty())
        .map(|(e, open)| (e, open.budgets.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_closes_once_over_and_empty() {
        let epochs = Epochs::default();
        let budget: Arc<str> = Arc::from("key:a");
        let e = epochs.begin(60_000, [&budget].into_iter());
        let f = epochs.begin(61_000, std::iter::empty());
        assert_eq!((e, f), (1, 1));
        assert!(epochs.end(e, 61_000).is_empty(), "the minute is not over");
        assert!(epochs.tick(125_000).is_empty(), "one admission still holds");
        assert_eq!(epochs.end(f, 125_000), vec![(1, vec![Arc::clone(&budget)])]);
        assert_eq!(epochs.in_flight(), 0);
        // A clock that went back counts in the newest epoch, never a closed one.
        assert_eq!(epochs.begin(0, [&budget].into_iter()), 2);
        // An epoch that held on no budget closes without a drop.
        let g = epochs.begin(200_000, std::iter::empty());
        assert_eq!(epochs.end(g, 300_000), vec![]);
    }
}
