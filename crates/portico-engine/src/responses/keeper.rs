//! The responses the gateway keeps for the Responses API: the most recent in memory (so a
//! continuation right after an answer never waits on the database, and a gateway without a
//! database still continues conversations), every one written to the store in batches, off
//! the request path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico_core::{ApiError, ErrorCode};
use portico_responses::StoredResponse;
use portico_store::{RESPONSE_RETENTION_MS, ResponseRow, ResponseStore};
use tokio::sync::mpsc;

/// How many responses stay in memory.
const RECENT: usize = 8_192;
/// How many responses wait for the store at most; beyond, a response stays in memory only
/// (and the loss is logged).
const QUEUE: usize = 16_384;
/// How many rows one write carries.
const BATCH: usize = 256;
/// How many times a batch is tried before it is given up (and logged with its ids).
const TRIES: u32 = 5;
/// How often kept responses past their retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// The recent responses, oldest first in `order` (an id deleted meanwhile is skipped when it
/// comes up for eviction).
#[derive(Default)]
struct Recent {
    by_id: HashMap<String, Arc<StoredResponse>>,
    order: VecDeque<String>,
}

/// The gateway's kept responses (see the module docs).
#[derive(Default)]
pub struct ResponseKeeper {
    recent: Mutex<Recent>,
    store: Option<Arc<dyn ResponseStore>>,
    writes: Mutex<Option<mpsc::Sender<ResponseRow>>>,
    /// Responses deleted while still queued for the store: the writer skips them.
    deleted: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for ResponseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseKeeper")
            .field("durable", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the store of kept responses could not be read; try again",
    )
    .with_detail(format!("the response store failed: {e}"))
}

impl ResponseKeeper {
    /// A keeper in memory only (a gateway without a database): the most recent responses
    /// are kept, older ones are forgotten.
    pub fn in_memory() -> ResponseKeeper {
        ResponseKeeper::default()
    }

    /// A keeper writing every response to `store`, in batches, on `tracker` (on the current
    /// runtime); [`ResponseKeeper::close`] lets the writer finish.
    pub fn durable(
        store: Arc<dyn ResponseStore>,
        tracker: &tokio_util::task::TaskTracker,
    ) -> ResponseKeeper {
        let (tx, rx) = mpsc::channel(QUEUE);
        let deleted = Arc::default();
        tracker.spawn(write_loop(Arc::clone(&store), rx, Arc::clone(&deleted)));
        ResponseKeeper {
            recent: Mutex::default(),
            store: Some(store),
            writes: Mutex::new(Some(tx)),
            deleted,
        }
    }

    /// Keeps `stored`: in memory at once, and queued for the store.
    pub fn keep(&self, stored: StoredResponse) {
        let row = self.store.as_ref().and_then(|_| {
            serde_json::to_string(&stored)
                .ok()
                .map(|payload| ResponseRow {
                    id: stored.id.clone(),
                    owner: stored.owner.clone(),
                    created_at_ms: stored.created_at_ms,
                    payload,
                })
        });
        {
            let mut recent = lock(&self.recent);
            recent.order.push_back(stored.id.clone());
            recent.by_id.insert(stored.id.clone(), Arc::new(stored));
            while recent.order.len() > RECENT {
                if let Some(old) = recent.order.pop_front() {
                    recent.by_id.remove(&old);
                }
            }
        }
        if let Some(row) = row {
            let writes = lock(&self.writes);
            let sent = writes.as_ref().map(|tx| tx.try_send(row));
            match sent {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    let id = match &e {
                        mpsc::error::TrySendError::Full(r)
                        | mpsc::error::TrySendError::Closed(r) => &r.id,
                    };
                    tracing::error!(response = %id, "the response store's queue is full or closed: this response is kept in memory only");
                }
                None => tracing::error!(
                    "the response store is closed: a response is kept in memory only"
                ),
            }
        }
    }

    /// The response `id` if `owner` owns it: from memory, else from the store.
    ///
    /// # Errors
    ///
    /// A 503 when the store cannot be read.
    pub async fn find(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<Option<Arc<StoredResponse>>, ApiError> {
        let cached = {
            let recent = lock(&self.recent);
            recent.by_id.get(id).cloned()
        };
        let found = match cached {
            Some(found) => Some(found),
            None => match &self.store {
                None => None,
                Some(store) => store
                    .load_response(id)
                    .await
                    .map_err(|e| unavailable(&e))?
                    .and_then(|row| serde_json::from_str::<StoredResponse>(&row.payload).ok())
                    .map(Arc::new),
            },
        };
        // Another caller's response is answered as not found: its existence is not shown.
        Ok(found.filter(|r| r.owner == owner))
    }

    /// Deletes the response `id` if `owner` owns it; whether it was there.
    ///
    /// # Errors
    ///
    /// A 503 when the store cannot be written.
    pub async fn delete(&self, id: &str, owner: &str) -> Result<bool, ApiError> {
        let in_memory = {
            let mut recent = lock(&self.recent);
            match recent.by_id.get(id) {
                Some(r) if r.owner == owner => recent.by_id.remove(id).is_some(),
                _ => false,
            }
        };
        let Some(store) = &self.store else {
            return Ok(in_memory);
        };
        // A response still queued for the store must not be written after this delete.
        if in_memory {
            lock(&self.deleted).insert(id.to_owned());
        }
        let stored = store
            .delete_response(id, owner)
            .await
            .map_err(|e| unavailable(&e))?;
        if stored {
            // It had been written already: nothing is left for the writer to skip.
            lock(&self.deleted).remove(id);
        }
        Ok(in_memory || stored)
    }

    /// Stops taking writes; the writer finishes the queue and ends (the gateway's shutdown
    /// waits for it).
    pub fn close(&self) {
        lock(&self.writes).take();
    }
}

/// Writes queued responses in batches until the keeper closes, pruning old ones hourly.
async fn write_loop(
    store: Arc<dyn ResponseStore>,
    mut rx: mpsc::Receiver<ResponseRow>,
    deleted: Arc<Mutex<HashSet<String>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                {
                    let mut deleted = lock(&deleted);
                    if !deleted.is_empty() {
                        batch.retain(|row| !deleted.remove(&row.id));
                    }
                }
                write(&*store, &batch).await;
                batch.clear();
            }
            _ = prune.tick() => {
                let before = portico_core::now_ms() - RESPONSE_RETENTION_MS;
                if let Err(e) = store.prune_responses(before).await {
                    tracing::warn!(error = %e, "could not prune kept responses");
                }
            }
        }
    }
}

async fn write(store: &dyn ResponseStore, batch: &[ResponseRow]) {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=TRIES {
        match store.save_responses(batch).await {
            Ok(()) => return,
            Err(e) if attempt == TRIES => {
                let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
                tracing::error!(error = %e, ?ids, "could not write kept responses; they stay in memory only");
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "could not write kept responses; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// Locks `m`; a panic elsewhere while holding it leaves data that is still consistent here
/// (each critical section is one map operation), so the lock is taken over.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
