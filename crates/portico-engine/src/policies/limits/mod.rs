//! Budgets and rate limits (spec section 6) as a pipeline policy: [`LimitsPolicy`].
//!
//! The subjects a request falls under, and their limits, come from the catalog snapshot:
//! the calling key (`key:<name>`; on a user key, its user's), the caller's user
//! (`user:<user>`: a user key's `user`, or a JWT subject with `auth.jwt.budget`), the
//! `budgets:` entries whose `match` its metadata satisfies (`budget:<name>`), and, per
//! attempt, the provider it goes to (`provider:<slug>`). The enforcement is
//! `portico_limits`': this module resolves subjects to ledger accounts (once per catalog
//! reload, in [`Table`]), estimates a request, and maps the ledger's answers onto the
//! pipeline's hooks:
//!
//! - `before`: admits the request on its key, user and metadata subjects at once (412 / 429
//!   before any upstream call);
//! - `before_attempt`: admits the attempt on its provider (an exhausted provider is skipped;
//!   a fallback tries the next target), and raises the request's cost estimate when the
//!   target is pricier than the model it named;
//! - `after`: charges the reported usage, priced (streams, cancelled streams, errors and
//!   refusals all pass here), and releases the estimates.
//!
//! A request that no subject with limits applies to, while no provider has limits, gets no
//! run at all (one pointer load and a few empty-map checks).
//!
//! Scale-out ([`LimitsPolicy::with_shared`]): the key, user and metadata subjects are then
//! admitted and settled on a ledger shared by every process (`portico_limits::SharedLimits`,
//! Redis in `portico-redis`): one round trip in `before`, settlement queued in `after`.
//! Provider subjects stay on this process's ledger (`before_attempt` is synchronous). The
//! local accounts of the shared subjects are kept at the shared figures by the backend, so
//! `status` and `persist` work unchanged. Without a shared ledger nothing of this runs.
//!
//! `persist` writes the ledger to the store off the request path; `status` is what
//! `GET /admin/v1/budgets` lists.

mod estimate;
mod persist;
mod run;
mod status;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portico_core::{Clock, LimitObserver, Limits, NamedBudget, Subject};
use portico_limits::{Account, Ledger, SharedLimits};
use portico_store::KeyType;

pub use persist::{LedgerWriter, load_ledger};
pub use status::{LimitStatus, StatusKind};

use crate::pipeline::policy::{Policy, PolicyRequest, PolicyRun};
use crate::snapshot::Snapshot;
use run::LimitsRun;

/// Budgets and rate limits on every data-plane request; see the module docs.
pub struct LimitsPolicy {
    ledger: Arc<Ledger>,
    table: ArcSwap<Table>,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn LimitObserver>>,
    /// The ledger shared by every process for the key, user and metadata subjects.
    shared: Option<Arc<dyn SharedLimits>>,
}

impl std::fmt::Debug for LimitsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitsPolicy").finish_non_exhaustive()
    }
}

/// A subject's limits and account.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) limits: Limits,
    pub(crate) account: Arc<Account>,
}

/// The catalog's subjects with limits, resolved to their accounts: rebuilt on every reload
/// ([`Policy::catalog_changed`]), read by every request without a lock.
pub(crate) struct Table {
    /// The catalog it was built from (provider prices, for estimates).
    pub(crate) snapshot: Arc<Snapshot>,
    /// Service (and other non-user) keys with limits, by name.
    pub(crate) keys: HashMap<String, Arc<Account>>,
    /// Users with limits from their user keys, by user.
    pub(crate) users: HashMap<String, Bound>,
    /// The `budgets:` entries with their accounts.
    pub(crate) budgets: Vec<(NamedBudget, Arc<Account>)>,
    /// Providers with limits, by slug.
    pub(crate) providers: HashMap<String, Bound>,
}

impl Table {
    fn build(snapshot: &Arc<Snapshot>, ledger: &Ledger) -> Table {
        let mut keys = HashMap::new();
        let mut users: HashMap<String, Bound> = HashMap::new();
        // By name, so that when two user keys of one user declare limits (possible through
        // the admin API; the catalog file refuses it) the same one always wins.
        let mut entries: Vec<_> = snapshot.keys().filter(|k| !k.limits.is_empty()).collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for key in entries {
            match (&key.user, key.key_type) {
                (Some(user), KeyType::User) => {
                    users.entry(user.clone()).or_insert_with(|| Bound {
                        limits: key.limits,
                        account: ledger.account(&Subject::User(user.clone())),
                    });
                }
                _ => {
                    keys.insert(
                        key.name.clone(),
                        ledger.account(&Subject::Key(key.name.clone())),
                    );
                }
            }
        }
        let budgets = snapshot
            .budgets()
            .iter()
            .filter(|b| !b.limits.is_empty())
            .map(|b| (b.clone(), ledger.account(&Subject::Budget(b.name.clone()))))
            .collect();
        let providers = snapshot
            .providers()
            .filter(|p| !p.limits.is_empty())
            .map(|p| {
                (
                    p.slug.clone(),
                    Bound {
                        limits: p.limits,
                        account: ledger.account(&Subject::Provider(p.slug.clone())),
                    },
                )
            })
            .collect();
        Table {
            snapshot: Arc::clone(snapshot),
            keys,
            users,
            budgets,
            providers,
        }
    }
}

impl LimitsPolicy {
    /// A policy enforcing the catalog's limits on `ledger`, reading the time from `clock`.
    /// It learns the catalog when it is added to a gateway, and again on every reload.
    pub fn new(ledger: Arc<Ledger>, clock: Arc<dyn Clock>) -> LimitsPolicy {
        let table = Table::build(&Arc::new(Snapshot::default()), &ledger);
        LimitsPolicy {
            ledger,
            table: ArcSwap::from_pointee(table),
            clock,
            observer: None,
            shared: None,
        }
    }

    /// The same policy admitting and settling the key, user and metadata subjects on
    /// `shared`, a ledger every gateway process shares (scale-out); provider subjects stay
    /// on this process's ledger. See the module docs.
    pub fn with_shared(mut self, shared: Arc<dyn SharedLimits>) -> LimitsPolicy {
        self.shared = Some(shared);
        self
    }

    /// The same policy reporting refusals and charges to `observer` (metrics).
    pub fn with_observer(mut self, observer: Arc<dyn LimitObserver>) -> LimitsPolicy {
        self.observer = Some(observer);
        self
    }

    /// The ledger shared with other processes (Redis), when there is one: what a charge made
    /// outside a request (a hybrid gateway's delivered spend) must go to, since the local
    /// ledger only mirrors it.
    pub fn shared(&self) -> Option<&Arc<dyn SharedLimits>> {
        self.shared.as_ref()
    }

    /// The ledger it enforces on.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }
}

impl Policy for LimitsPolicy {
    fn name(&self) -> &'static str {
        "limits"
    }

    fn catalog_changed(&self, snapshot: &Arc<Snapshot>) {
        self.table
            .store(Arc::new(Table::build(snapshot, &self.ledger)));
    }

    fn begin(&self, request: &PolicyRequest<'_>) -> Option<Box<dyn PolicyRun>> {
        let table = self.table.load();
        let key = request.key;
        let mut subjects: Vec<(Arc<Account>, Limits)> = Vec::new();
        let user_key = key.key_type == KeyType::User;
        if !user_key && !key.limits.is_empty() {
            // A key added since the table was built (a reload in progress) still counts.
            let account = match table.keys.get(&key.name) {
                Some(account) => Arc::clone(account),
                None => self.ledger.account(&Subject::Key(key.name.clone())),
            };
            subjects.push((account, key.limits));
        }
        if let Some(user) = &key.user {
            match table.users.get(user) {
                Some(bound) => subjects.push((Arc::clone(&bound.account), bound.limits)),
                None => {
                    let own = (user_key && !key.limits.is_empty()).then_some(key.limits);
                    if let Some(limits) = own.or(key.default_user_limits).filter(|l| !l.is_empty())
                    {
                        let account = self.ledger.account(&Subject::User(user.clone()));
                        subjects.push((account, limits));
                    }
                }
            }
        }
        let metadata = request.record.metadata.as_ref();
        for (budget, account) in &table.budgets {
            if budget.applies_to(metadata) {
                subjects.push((Arc::clone(account), budget.limits));
            }
        }
        if subjects.is_empty() && table.providers.is_empty() {
            return None;
        }
        Some(Box::new(LimitsRun::new(
            Arc::clone(&table),
            Arc::clone(&self.clock),
            self.observer.clone(),
            subjects,
            self.shared.clone(),
        )))
    }
}

#[cfg(test)]
mod tests;
