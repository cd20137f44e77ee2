//! [`SqliteStore`]: the [`Store`] on a SQLite file (the all-in-one deployment).
//!
//! Opening runs the migrations and then checks the master key against a canary in `meta`, so a
//! wrong key fails at startup with [`StoreError::WrongMasterKey`] rather than on the first
//! request that needs a provider secret.
//!
//! Queries are plain `sqlx::query` with binds (no compile-time checked macros, so building needs
//! no database). Row decoding lives in `rows`, the catalog apply in `apply`.

mod admin;
mod apply;
mod diff;
mod guardrails;
mod limits;
mod rows;
mod spend;

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portico_core::{Clock, KeyHash, SystemClock};
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{
    ApplyOptions, ApplyReport, BudgetRecord, CatalogApply, ConfigRecord, KeyPatch, KeyRecord,
    KeyType, MasterKey, NewKey, ProviderRecord, RecordSource, Store, StoreError,
};

/// The `meta` row holding a value encrypted under the master key, to detect a wrong key.
const CANARY_KEY: &str = "master_key_canary";
const CANARY_TEXT: &[u8] = b"portico master key canary v1";
/// The name of the admin key's row.
const ADMIN_KEY_NAME: &str = "admin";
/// How long a writer waits for another one before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite has one writer at a time; a few connections let reads proceed beside it.
const MAX_CONNECTIONS: u32 = 4;
/// Takes the write lock at the start, so a read-then-write transaction never fails half-way
/// because another connection wrote in between.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The [`Store`] on SQLite, with provider secrets encrypted under a [`MasterKey`].
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    master: MasterKey,
    /// Stamps `created_at`, `updated_at` and `revoked_at`.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool", &self.pool)
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) the database file at `path`: WAL
    /// journal, `synchronous=NORMAL`, a 5 s busy timeout, foreign keys on. Runs the migrations,
    /// then verifies `master` against the canary written on first open: a database created under
    /// another master key gives [`StoreError::WrongMasterKey`].
    ///
    /// The file is created `0600` before SQLite opens it, so its `-wal` and `-shm` are too
    /// (SQLite gives them the database's mode); an older, looser file is tightened.
    pub async fn open(path: &Path, master: MasterKey) -> Result<SqliteStore, StoreError> {
        crate::private_files::prepare_sqlite_file(path).map_err(sqlx::Error::Io)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        SqliteStore::init(pool, master).await
    }

    /// Opens a private in-memory database, for tests and throwaway runs. Everything is lost when
    /// the store is dropped.
    pub async fn open_in_memory(master: MasterKey) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // An in-memory database lives as long as its one connection: never let it be closed.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        SqliteStore::init(pool, master).await
    }

    /// Stamps rows with `clock`'s time instead of the system's: a test sets the times it
    /// then reads back (creation, update, revocation).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.clock = clock;
        self
    }

    /// Closes every connection, waiting for them to be returned. With WAL this also checkpoints
    /// the log into the main file. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn init(pool: SqlitePool, master: MasterKey) -> Result<SqliteStore, StoreError> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        let mut conn = pool.acquire().await?;
        verify_master_key(&mut conn, &master).await?;
        drop(conn);
        Ok(SqliteStore {
            pool,
            master,
            clock: Arc::new(SystemClock),
        })
    }
}

/// Writes the canary if this is the first open, then checks that `master` decrypts it.
async fn verify_master_key(
    conn: &mut SqliteConnection,
    master: &MasterKey,
) -> Result<(), StoreError> {
    // Two processes may open a new database at once: the first canary wins, and both read it.
    sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
        .bind(CANARY_KEY)
        .bind(master.encrypt(CANARY_TEXT))
        .execute(&mut *conn)
        .await?;
    let blob: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
        .bind(CANARY_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if master.decrypt_for("meta", &blob)? != CANARY_TEXT {
        return Err(master.wrong_key());
    }
    Ok(())
}

/// Maps a uniqueness violation to [`StoreError::Conflict`] with `message`; other errors pass.
fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match err.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply_catalog_with(
        &self,
        catalog: &CatalogApply,
        options: ApplyOptions,
    ) -> Result<ApplyReport, StoreError> {
        apply::validate(catalog, options)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let report =
            apply::apply(&mut tx, &self.master, catalog, options, self.clock.now_ms()).await?;
        if options.dry_run {
            // The real apply's diff and writes, undone: the plan is what the apply would do.
            tx.rollback().await?;
            return Ok(report);
        }
        tx.commit().await?;
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
        let mut tx = self.pool.begin().await?;
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
        let mut conn = self.pool.acquire().await?;
        let limits = limits::load_key_limits(&mut conn).await?;
        rows::load_keys(&mut conn)
            .await?
            .into_iter()
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let now = self.clock.now_ms();
        let existing: Option<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT key_type, key_hash, revoked_at FROM keys WHERE name = ?")
                .bind(ADMIN_KEY_NAME)
                .fetch_optional(&mut *tx)
                .await?;
        let taken = || {
            "the admin key's secret is already the secret of another key; \
             choose a different admin key"
                .to_owned()
        };
        let created = match existing {
            None => {
                sqlx::query(
                    "INSERT INTO keys (id, name, key_type, user_id, key_hash, hint, allowed_models, \
                     log_payloads, source, created_at, updated_at, revoked_at) \
                     VALUES (?, ?, ?, NULL, ?, ?, NULL, 1, ?, ?, ?, NULL)",
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
                true
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
                if revoked || (replace && stored_hash != hash.to_hex()) {
                    sqlx::query(
                        "UPDATE keys SET key_hash = ?, hint = ?, revoked_at = NULL, updated_at = ? \
                         WHERE name = ?",
                    )
                    .bind(hash.to_hex())
                    .bind(hint)
                    .bind(now)
                    .bind(ADMIN_KEY_NAME)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict_on_unique(e, taken))?;
                }
                revoked
            }
        };
        tx.commit().await?;
        Ok(created)
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM keys WHERE key_type = ? AND revoked_at IS NULL",
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
        let mut tx = self.pool.begin().await?;
        let provider = admin::get_provider(&mut tx, &self.master, slug).await?;
        tx.commit().await?;
        Ok(provider)
    }

    async fn create_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        admin::create_provider(&mut tx, &self.master, provider, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        admin::replace_provider(&mut tx, &self.master, provider, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_provider(&self, slug: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        admin::delete_provider(&mut tx, slug).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = admin::create_key(&mut tx, key, self.clock.now_ms()).await?;
        tx.commit().await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = admin::update_key(&mut tx, id_or_name, patch, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn revoke_key(&self, id_or_name: &str) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = admin::revoke_key(&mut tx, id_or_name, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn rotate_key(
        &self,
        id_or_name: &str,
        hash: KeyHash,
        hint: &str,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record =
            admin::rotate_key(&mut tx, id_or_name, &hash, hint, self.clock.now_ms()).await?;
        tx.commit().await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = admin::create_config(&mut tx, id, config, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn replace_config(
        &self,
        id: &str,
        config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = admin::replace_config(&mut tx, id, config, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn delete_config(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        admin::delete_config(&mut tx, id).await?;
        tx.commit().await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = guardrails::create(&mut tx, id, guardrail, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn replace_guardrail(
        &self,
        id: &str,
        guardrail: &serde_json::Value,
    ) -> Result<crate::GuardrailRecord, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = guardrails::replace(&mut tx, id, guardrail, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn delete_guardrail(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        guardrails::delete(&mut tx, id).await?;
        tx.commit().await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = limits::create_budget(&mut tx, budget, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn replace_budget(
        &self,
        budget: &portico_core::NamedBudget,
    ) -> Result<BudgetRecord, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let record = limits::replace_budget(&mut tx, budget, self.clock.now_ms()).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn delete_budget(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        limits::delete_budget(&mut tx, name).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod key_lifecycle_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
