//! [`Ledger`]: every subject's [`Account`], for the life of the process.
//!
//! Accounts outlive catalog reloads (a key's spend does not reset when an admin edits its
//! budget), are found by subject, and are created on first use. The map's lock is held only
//! to find or insert an account; the engine resolves the catalog's subjects to their accounts
//! once per reload, so a request takes it only for subjects the catalog does not list (a JWT
//! user). Persistence reads the accounts that changed ([`Ledger::take_changed`]) and writes
//! them off the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use portico_core::{SpendState, Subject};

use crate::account::Account;

/// Every subject's account.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: Mutex<HashMap<Subject, Arc<Account>>>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// The account of `subject`, created empty on first use.
    pub fn account(&self, subject: &Subject) -> Arc<Account> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(account) = accounts.get(subject) {
            return Arc::clone(account);
        }
        let account = Arc::new(Account::new(subject.clone()));
        accounts.insert(subject.clone(), Arc::clone(&account));
        account
    }

    /// The account of `subject`, if it has one.
    pub fn get(&self, subject: &Subject) -> Option<Arc<Account>> {
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(subject)
            .cloned()
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> Vec<Arc<Account>> {
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Puts persisted states back (at start).
    pub fn restore(&self, states: &[SpendState], now_ms: i64) {
        for state in states {
            self.account(&state.subject).restore(state, now_ms);
        }
    }

    /// The states of the accounts that changed since the last call, taken at `now_ms`.
    pub fn take_changed(&self, now_ms: i64) -> Vec<SpendState> {
        self.accounts()
            .into_iter()
            .filter(|a| a.take_dirty())
            .map(|a| a.spend_state(now_ms))
            .collect()
    }

    /// Marks these subjects changed again: writing them failed, the next write retries.
    pub fn mark_changed(&self, subjects: impl IntoIterator<Item = Subject>) {
        for subject in subjects {
            if let Some(account) = self.get(&subject) {
                account.mark_dirty();
            }
        }
    }
}
