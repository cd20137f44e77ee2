//! [`SqlStore`]: the [`Store`] on SQL, one code path for SQLite (the all-in-one deployment)
//! and PostgreSQL (scale-out: many `portico serve` processes on one database, spec section 9).
//!
//! Both engines go through sqlx's `Any` driver: one query text per statement (`$1, $2...`
//! placeholders, which SQLite accepts as well), and values limited to what `Any` carries
//! (`i64`, `f64`, `String`, `Vec<u8>`, their `Option`s). The schemas are kept in step so that
//! every column decodes the same way on both (see `migrations/postgres/0001_catalog.sql`);
//! what differs per engine is here: how a write transaction starts, how a read transaction
//! gets one snapshot, and which migrations run (`connect`).
//!
//! Writes are serialised across processes the way SQLite's single writer serialises them: on
//! SQLite a write transaction takes the write lock at `BEGIN IMMEDIATE`; on PostgreSQL it
//! first takes a transaction-scoped advisory lock, so a read-then-write transaction never
//! acts on rows another process changes in between (reads take no lock). Every write that
//! changes the catalog also increments `catalog_version` in its transaction, which other
//! processes poll ([`Store::catalog_version`]).
//!
//! Opening runs the migrations and then checks the master key against a canary in `meta`, so a
//! wrong key fails at startup with [`StoreError::WrongMasterKey`] rather than on the first
//! request that needs a provider secret.
//!
//! Queries are plain `sqlx::query` with binds (no compile-time checked macros, so building needs
//! no database). Row decoding lives in `rows`, the catalog apply in `apply`.

mod admin;
mod apply;
mod connect;
mod diff;
mod guardrails;
mod limits;
mod responses;
mod rotate;
mod rows;
mod spend;

use std::sync::Arc;

pub use rotate::RotationReport;

use async_trait::async_trait;
use portico_core::{Clock, KeyHash};
use sqlx::{Any, Transaction};
use sqlx::{AnyConnection, AnyPool};

use crate::{
    ApplyOptions, ApplyReport, BudgetRecord, CatalogApply, ConfigRecord, KeyPatch, KeyRecord,
    KeyType, MasterKey, NewKey, ProviderRecord, RecordSource, Store, StoreError,
};

/// The `meta` row holding a value encrypted under the master key, to detect a wrong key.
const CANARY_KEY: &str = "master_key_canary";
const CANARY_TEXT: &[u8] = b"portico master key canary v1";
/// The name of the admin key's row.
const ADMIN_KEY_NAME: &str = "admin";
/// SQLite: takes the write lock at the start, so a read-then-write transaction never fails
/// half-way because another connection wrote in between.
const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// PostgreSQL: a read transaction sees one snapshot for all its statements (the default,
/// READ COMMITTED, takes one per statement), so providers and their models always match.
/// Read-only, so it can never fail on a conflicting write.
const POSTGRES_BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/// PostgreSQL: the advisory lock every write transaction takes first, held until it ends.
/// Any constant works as long as nothing else in the database uses it; this one spells
/// "portico" and a 1 in ASCII. sqlx's migrator locks a key derived from the database name,
/// which is a different number.
const POSTGRES_WRITE_LOCK: i64 = 0x706f_7274_6963_6f31;

/// The database engine behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The [`Store`] (and [`SpendStore`](crate::SpendStore)) on SQLite or PostgreSQL, with
/// provider secrets encrypted under a [`MasterKey`].
///
/// Open a SQLite file with [`SqlStore::open`], a private in-memory database with
/// [`SqlStore::open_in_memory`], or either engine by URL with [`SqlStore::connect`].
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    master: MasterKey,
    /// Stamps `created_at`, `updated_at` and `revoked_at`.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend.name())
            .field("pool", &self.pool)
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Stamps rows with `clock`'s time instead of the system's: a test sets the times it
    /// then reads back (creation, update, revocation).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqlStore {
        self.clock = clock;
        self
    }

    /// Closes every connection, waiting for them to be returned. On SQLite with WAL this also
    /// checkpoints the log into the main file. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The engine: `sqlite` or `postgres`, for the start-up line.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Starts a write transaction, serialised with every other writer of the database, in
    /// this process or another.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with(SQLITE_BEGIN_WRITE).await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(POSTGRES_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Starts a read transaction: one snapshot for all its statements, no lock.
    async fn begin_read(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => self.pool.begin_with(POSTGRES_BEGIN_READ).await?,
        })
    }
}

/// Commits a write transaction; when it `changed` the catalog, the catalog version is
/// incremented in it first, so a process that sees the new version also sees the change.
async fn commit_write(mut tx: Transaction<'static, Any>, changed: bool) -> Result<(), StoreError> {
    if changed {
        sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes the canary if this is the first open, then checks that `master` decrypts it.
async fn verify_master_key(conn: &mut AnyConnection, master: &MasterKey) -> Result<(), StoreError> {
    // Two processes may open a new database at once: the first canary wins, and both read it.
    sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(CANARY_KEY)
        .bind(master.encrypt(CANARY_TEXT))
        .execute(&mut *conn)
        .await?;
    let blob: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
        .bind(CANARY_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if master.decrypt_for("meta", &blob)? != CANARY_TEXT {
        return Err(master.wrong_key());
    }
    Ok(())
}

/// Maps a uniqueness violation to [`StoreError::Conflict`] with `message`; other errors pass.
/// The same on both engines: sqlx classifies SQLite's and PostgreSQL's codes alike.
fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn apply_catalog_with(
        &self,
        catalog: &CatalogApply,
        options: ApplyOptions,
    ) -> Result<ApplyReport, StoreError> {
        apply::validate(catalog, options)?;
        let mut tx = self.begin_write().await?;
        let report =
            apply::apply(&mut tx, &self.master, catalog, options, self.clock.now_ms()).await?;
        if options.dry_run {
            // The real apply's diff and writes, undone: the plan is what the apply would do.
            tx.rollback().await?;
            return Ok(report);
        }
        // An apply that changed nothing (every start with an unchanged file) leaves the
        // version alone, so other processes do not reload for nothing.
        commit_write(tx, !report.changes.is_empty()).await?;
        if !report.changes.is_empty() {
            tracing::info!(
                created_keys = report.created_keys.len(),
                rotated_keys = report.rotated_keys.len(),
                revoked_keys = report.revoked_keys.len(),
                changed_providers = report.changed_providers.len(),
                removed_providers = report.removed_providers.len(),
                changed_configs = report.changed_configs.len(),
                removed_configs = report.removed_configs.len(),
                changed_budgets = report.changed_budgets.len(),
                removed_budgets = report.removed_budgets.len(),
                changed_guardrails = report.changed_guardrails.len(),
                removed_guardrails = report.removed_guardrails.len(),
                changes = report.changes.len(),
                "applied the catalog"
            );
        }
        Ok(report)
    }

    async fn list_providers(&self) -> Result<Vec<ProviderRecord>, StoreError> {
        // One read transaction, so providers and models come from the same snapshot.
        let mut tx = self.begin_read().await?;
        let providers = rows::load_providers(&mut tx).await?;
        let mut models = rows::load_models(&mut tx).await?;
        tx.commit().await?;
        providers
            .into_iter()
            .map(|row| {
                let listed = models.remove(&row.slug);
                row.into_record(&self.master, listed)
            })
            .collect()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        // One read transaction, so keys and their limits come from the same snapshot.
        let mut tx = self.begin_read().await?;
        let limits = limits::load_key_limits(&mut tx).await?;
        let keys = rows::load_keys(&mut tx).await?;
        tx.commit().await?;
        keys.into_iter()
            .map(|row| {
                let mut record = row.into_record()?;
                record.limits = limits.get(&record.id).copied().unwrap_or_default();
                Ok(record)
            })
            .collect()
    }

    async fn ensure_admin_key(
        &self,
        hash: KeyHash,
        hint: &str,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = self.clock.now_ms();
        let existing: Option<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT key_type, key_hash, revoked_at FROM keys WHERE name = $1")
                .bind(ADMIN_KEY_NAME)
                .fetch_optional(&mut *tx)
                .await?;
        let taken = || {
            "the admin key's secret is already the secret of another key; \
             choose a different admin key"
                .to_owned()
        };
        let (created, changed) = match existing {
            None => {
                sqlx::query(
                    "INSERT INTO keys (id, name, key_type, user_id, key_hash, hint, allowed_models, \
                     log_payloads, source, created_at, updated_at, revoked_at) \
                     VALUES ($1, $2, $3, NULL, $4, $5, NULL, 1, $6, $7, $8, NULL)",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(ADMIN_KEY_NAME)
                .bind(KeyType::Admin.as_str())
                .bind(hash.to_hex())
                .bind(hint)
                .bind(RecordSource::Default.as_str())
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, taken))?;
                (true, true)
            }
            Some((key_type, _, _)) if key_type != KeyType::Admin.as_str() => {
                return Err(StoreError::Conflict(format!(
                    "a {key_type} key is named `{ADMIN_KEY_NAME}`, a name reserved for the admin \
                     key; rename or delete that key"
                )));
            }
            Some((_, stored_hash, revoked_at)) => {
                // A revoked admin key locks everyone out, so it counts as missing.
                let revoked = revoked_at.is_some();
                let rewrite = revoked || (replace && stored_hash != hash.to_hex());
                if rewrite {
                    sqlx::query(
                        "UPDATE keys SET key_hash = $1, hint = $2, revoked_at = NULL, updated_at = $3 \
                         WHERE name = $4",
                    )
                    .bind(hash.to_hex())
                    .bind(hint)
                    .bind(now)
                    .bind(ADMIN_KEY_NAME)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict_on_unique(e, taken))?;
                }
                (revoked, rewrite)
            }
        };
        commit_write(tx, changed).await?;
        Ok(created)
    }

    async fn catalog_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT version FROM catalog_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM keys WHERE key_type = $1 AND revoked_at IS NULL",
        )
        .bind(KeyType::Admin.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(count > 0)
    }

    async fn provider_times(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::RecordTimes>, StoreError> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT slug, created_at, updated_at FROM providers")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(slug, created_at_ms, updated_at_ms)| {
                (
                    slug,
                    crate::RecordTimes {
                        created_at_ms,
                        updated_at_ms,
                    },
                )
            })
            .collect())
    }

    async fn list_configs(&self) -> Result<Vec<ConfigRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        rows::load_configs(&mut conn)
            .await?
            .into_iter()
            .map(rows::ConfigRow::into_record)
            .collect()
    }

    async fn get_provider(&self, slug: &str) -> Result<Option<ProviderRecord>, StoreError> {
        let mut tx = self.begin_read().await?;
        let provider = admin::get_provider(&mut tx, &self.master, slug).await?;
        tx.commit().await?;
        Ok(provider)
    }

    async fn create_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        admin::create_provider(&mut tx, &self.master, provider, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(())
    }

    async fn replace_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        admin::replace_provider(&mut tx, &self.master, provider, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(())
    }

    async fn delete_provider(&self, slug: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        admin::delete_provider(&mut tx, slug).await?;
        commit_write(tx, true).await?;
        Ok(())
    }

    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = admin::create_key(&mut tx, key, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn get_key(&self, id_or_name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        admin::get_key(&mut conn, id_or_name).await
    }

    async fn update_key(
        &self,
        id_or_name: &str,
        patch: &KeyPatch,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = admin::update_key(&mut tx, id_or_name, patch, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn revoke_key(&self, id_or_name: &str) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let (record, changed) = admin::revoke_key(&mut tx, id_or_name, self.clock.now_ms()).await?;
        commit_write(tx, changed).await?;
        Ok(record)
    }

    async fn rotate_key(
        &self,
        id_or_name: &str,
        hash: KeyHash,
        hint: &str,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record =
            admin::rotate_key(&mut tx, id_or_name, &hash, hint, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn get_config(&self, id: &str) -> Result<Option<ConfigRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        admin::get_config(&mut conn, id).await
    }

    async fn create_config(
        &self,
        id: &str,
        config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = admin::create_config(&mut tx, id, config, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn replace_config(
        &self,
        id: &str,
        config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = admin::replace_config(&mut tx, id, config, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn delete_config(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        admin::delete_config(&mut tx, id).await?;
        commit_write(tx, true).await?;
        Ok(())
    }

    async fn list_guardrails(&self) -> Result<Vec<crate::GuardrailRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        guardrails::list(&mut conn).await
    }

    async fn get_guardrail(&self, id: &str) -> Result<Option<crate::GuardrailRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        guardrails::get(&mut conn, id).await
    }

    async fn create_guardrail(
        &self,
        id: &str,
        guardrail: &serde_json::Value,
    ) -> Result<crate::GuardrailRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = guardrails::create(&mut tx, id, guardrail, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn replace_guardrail(
        &self,
        id: &str,
        guardrail: &serde_json::Value,
    ) -> Result<crate::GuardrailRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = guardrails::replace(&mut tx, id, guardrail, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn delete_guardrail(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        guardrails::delete(&mut tx, id).await?;
        commit_write(tx, true).await?;
        Ok(())
    }

    async fn list_budgets(&self) -> Result<Vec<BudgetRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        limits::list_budgets(&mut conn).await
    }

    async fn get_budget(&self, name: &str) -> Result<Option<BudgetRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        limits::get_budget(&mut conn, name).await
    }

    async fn create_budget(
        &self,
        budget: &portico_core::NamedBudget,
    ) -> Result<BudgetRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = limits::create_budget(&mut tx, budget, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn replace_budget(
        &self,
        budget: &portico_core::NamedBudget,
    ) -> Result<BudgetRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let record = limits::replace_budget(&mut tx, budget, self.clock.now_ms()).await?;
        commit_write(tx, true).await?;
        Ok(record)
    }

    async fn delete_budget(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        limits::delete_budget(&mut tx, name).await?;
        commit_write(tx, true).await?;
        Ok(())
    }
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod key_lifecycle_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
