//! Credentials minted at run time (cloud access tokens, temporary AWS keys), cached and
//! refreshed before they expire.
//!
//! What this is: [`TokenCache`], which holds the current credential of one provider and gets
//! a new one through the provider's [`Mint`] function: once for all the requests that need it
//! at the same moment (single flight), and before the current one expires. A request reads the
//! cached credential without a lock; it waits for a fetch only when there is no usable
//! credential (the first request, or one past its hard deadline). In between, when a credential
//! is in its refresh window, the request that notices starts one refresh in the background
//! (on the cache's own [`TaskTracker`]) and goes on with the credential it has.
//!
//! Timing, for a credential that lives `L` from when it was fetched:
//! - refreshed in the background from `L - min(5 min, L / 2)` on (Google's and Azure's client
//!   libraries refresh about five minutes ahead; the half keeps short-lived test tokens sane);
//! - no longer used from `L - min(30 s, L / 10)` on: a request then waits for a new one, so
//!   a credential is never sent seconds before it lapses.
//!
//! A failed fetch is not cached: the next request tries again, and each waiting request gets
//! the failure as a [`MintError`], whose text is safe to show (it must never quote a secret).
//! Every minted secret is handed to the provider's [`LiveSecrets`], so the redactor of the
//! provider's answers knows it.
//!
//! What it is not: the chain that decides where credentials come from (each cloud's adapter).

mod answer;
#[cfg(test)]
mod tests;

pub use answer::{TOKEN_TIMEOUT, TokenAnswer, request_token};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures::FutureExt as _;
use futures::future::Shared;
use portico_core::Secret;
use tokio_util::task::TaskTracker;

use crate::redact::LiveSecrets;

/// The most a credential is refreshed ahead of its expiry.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);

/// The most a credential is retired ahead of its expiry.
pub const RETIRE_AHEAD: Duration = Duration::from_secs(30);

/// A credential as its source handed it out.
#[derive(Clone)]
pub struct Minted<T> {
    /// The credential.
    pub value: T,
    /// How long it is valid from now; `None` when it does not expire.
    pub expires_in: Option<Duration>,
    /// Its secret parts, for the redactor.
    pub secrets: Vec<Secret>,
}

/// Why no credential could be had: a text that says what was tried and what to fix, and
/// that holds no secret (a client may be shown it), with more for the log (addresses, the
/// transport error). Cloned to every request that waited for the same fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct MintError {
    /// What a client may be told.
    pub reason: String,
    /// The whole story for the log, when there is more.
    pub detail: Option<String>,
}

impl MintError {
    /// A failure with a client-safe `reason` and the `detail` for the log.
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> MintError {
        MintError {
            reason: reason.into(),
            detail: Some(detail.into()),
        }
    }

    /// The same failure with `context` (which provider, what was tried, how to fix it) put
    /// before its reason and detail.
    pub fn context(self, context: &str) -> MintError {
        MintError {
            reason: format!("{context}: {}", self.reason),
            detail: self.detail.map(|d| format!("{context}: {d}")),
        }
    }

    /// The provider error a request that needed the credential fails with: the upstream
    /// could not be called, so a 502 the router may fall back from.
    pub fn into_provider_error(self) -> crate::ProviderError {
        crate::ProviderError::Unreachable(crate::TransportFailure {
            reason: self.reason,
            detail: self.detail,
        })
    }
}

impl From<String> for MintError {
    fn from(reason: String) -> MintError {
        MintError {
            reason,
            detail: None,
        }
    }
}

/// The future a [`Mint`] function returns.
pub type MintFuture<T> = Pin<Box<dyn Future<Output = Result<Minted<T>, MintError>> + Send>>;

/// Gets a fresh credential from its source (a token endpoint, a metadata server, a chain).
pub type Mint<T> = Arc<dyn Fn() -> MintFuture<T> + Send + Sync>;

type Fetch<T> = Shared<Pin<Box<dyn Future<Output = Result<Arc<Held<T>>, MintError>> + Send>>>;

/// The cached credential and when it is refreshed and retired.
struct Held<T> {
    value: T,
    refresh_at: Option<Instant>,
    retire_at: Option<Instant>,
}

struct Inner<T> {
    current: ArcSwapOption<Held<T>>,
    /// The fetch under way, if any: every request that needs a credential meanwhile awaits
    /// this one. The lock is never held across an await.
    inflight: Mutex<Option<Fetch<T>>>,
    mint: Mint<T>,
    live: Arc<LiveSecrets>,
    tasks: TaskTracker,
}

/// One provider's run-time credential, cached; cheap to clone (shared).
pub struct TokenCache<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for TokenCache<T> {
    fn clone(&self) -> Self {
        TokenCache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for TokenCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("cached", &self.inner.current.load().is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> TokenCache<T> {
    /// A cache over `mint`, reporting what it mints to `live`. Nothing is fetched until the
    /// first [`TokenCache::get`].
    pub fn new(mint: Mint<T>, live: Arc<LiveSecrets>) -> TokenCache<T> {
        TokenCache {
            inner: Arc::new(Inner {
                current: ArcSwapOption::empty(),
                inflight: Mutex::new(None),
                mint,
                live,
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// The current credential: the cached one while it is usable (starting a background
    /// refresh when it is due), else a fresh one, fetched once for all who wait.
    ///
    /// # Errors
    ///
    /// [`MintError`] when there is no usable credential and the fetch failed.
    pub async fn get(&self) -> Result<T, MintError> {
        let now = Instant::now();
        {
            // A guard, not a clone of the Arc: no reference count touched on the fast path;
            // dropped before any await.
            let current = self.inner.current.load();
            if let Some(held) = current.as_ref()
                && held.retire_at.is_none_or(|at| now < at)
            {
                if held.refresh_at.is_some_and(|at| now >= at) {
                    self.refresh_in_background();
                }
                return Ok(held.value.clone());
            }
        }
        let held = self.fetch().await?;
        Ok(held.value.clone())
    }

    /// Starts a refresh unless one is under way, without waiting for it.
    fn refresh_in_background(&self) {
        let fetch = self.fetch();
        // A failed refresh leaves the current credential in use; the next request after
        // the refresh time tries again.
        self.inner.tasks.spawn(async move {
            let _ = fetch.await;
        });
    }

    /// The fetch under way, or a new one.
    fn fetch(&self) -> Fetch<T> {
        let mut inflight = self
            .inner
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(fetch) = inflight.as_ref() {
            return fetch.clone();
        }
        let weak: Weak<Inner<T>> = Arc::downgrade(&self.inner);
        let mint = (self.inner.mint)();
        let fetch: Fetch<T> = async move {
            let result = mint.await;
            let Some(inner) = weak.upgrade() else {
                return Err(MintError::from("the provider was removed".to_owned()));
            };
            let outcome = result.map(|minted| {
                inner.live.add(&minted.secrets);
                let held = Arc::new(Held::new(minted.value, minted.expires_in));
                inner.current.store(Some(Arc::clone(&held)));
                held
            });
            *inner
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            outcome
        }
        .boxed()
        .shared();
        *inflight = Some(fetch.clone());
        fetch
    }
}

impl<T> Held<T> {
    fn new(value: T, expires_in: Option<Duration>) -> Held<T> {
        let now = Instant::now();
        let ahead = |most: Duration, part: u32| move |life: Duration| life - most.min(life / part);
        Held {
            value,
            refresh_at: expires_in.map(|life| now + ahead(REFRESH_AHEAD, 2)(life)),
            retire_at: expires_in.map(|life| now + ahead(RETIRE_AHEAD, 10)(life)),
        }
    }
}
