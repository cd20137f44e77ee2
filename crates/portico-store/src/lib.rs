//! Persistence for the catalog and gateway keys, behind the [`Store`] trait.
//!
//! Where it sits: above `portico-core`, `portico-routing` and `portico-pricing`; the engine
//! builds snapshots from its records, the server's admin API and the binary's bootstrap write
//! through it.
//!
//! What this crate is: the one place that talks to the database. The engine and the server see
//! only [`Store`] and the record types below. One implementation, [`SqlStore`], serves both
//! engines through one code path: SQLite (the all-in-one default, a file in the data dir) and
//! PostgreSQL (scale-out: many processes on one database, spec section 9), each with its own
//! migrations of the same schema.
//!
//! What it is not: it does not read the catalog file or decide what a request may do; it stores
//! records and applies a whole catalog in one transaction.
//!
//! Guarantees:
//! - Provider secrets (the API key, and kind-specific credentials such as AWS access keys)
//!   are encrypted at rest with XChaCha20-Poly1305 under a master key ([`MasterKey`]); records
//!   carry them decrypted, in a [`Secret`] that never prints itself.
//! - Gateway keys are stored as [`KeyHash`]es only; the plain secret never reaches this crate.
//! - The SQLite files (and their `-wal`/`-shm`) are `0600` and the directories created for
//!   them `0700` ([`private_files`], which the request log and the binary use too).
//! - Writes are serialised across processes on both engines, so processes applying the same
//!   catalog at once leave one copy of each record; every write that changes the catalog
//!   increments [`Store::catalog_version`] in its transaction, which other processes poll.
//! - [`Store::apply_catalog`] reports every object it writes as a [`Change`] (the plan of
//!   `portico apply`), and a dry run ([`ApplyOptions`]) reports the same without writing.
//! - [`Store::apply_catalog`] is idempotent: applying the same catalog twice changes nothing,
//!   and a key keeps its id (and so its spend) across applies.
//!
//! - Routing configs are validated with `portico_routing` before they are written, and every
//!   provider a stored config names exists: a write that would break that is refused.
//! - Budgets and rate limits ([`Limits`]) are part of the records they limit (providers,
//!   keys) or records of their own (the `budgets:` list, [`BudgetRecord`]); the ledger of what
//!   each subject spent persists through [`SpendStore`], written in batches by the engine.
//! - Records from the catalog file (and environment detection) are changed only by an apply;
//!   the admin API methods change `api` records and refuse the others with
//!   [`StoreError::Conflict`], since the next apply would undo the change.
//!
//! Main types: [`Store`], [`SpendStore`], [`SqlStore`] (alias [`SqliteStore`]), [`MasterKey`],
//! [`ProviderRecord`], [`KeyRecord`], [`ConfigRecord`], [`BudgetRecord`], [`CatalogApply`],
//! [`ApplyReport`] with its [`Change`]s (the plan of `portico apply`), [`ApplyOptions`],
//! [`SpendDelta`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use portico_core::{
    BudgetSpec, KeyHash, Limits, NamedBudget, Period, ProviderKind, RateLimitSpec, Secret,
    SpendState, Subject,
};
use serde::{Deserialize, Serialize};

/// A provider integration as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRecord {
    /// Addressed as `@slug`. Unique.
    pub slug: String,
    /// The upstream dialect.
    pub kind: ProviderKind,
    /// Base URL override; `None` means the kind's default.
    pub base_url: Option<String>,
    /// The provider's API key, decrypted. Encrypted in the database.
    pub api_key: Option<Secret>,
    /// Kind-specific settings as a JSON object, under the catalog file's field names (for
    /// `mock`: latency, failure rate; for `bedrock`: `aws_region`; ...).
    pub settings: serde_json::Value,
    /// Kind-specific secrets under the catalog file's field names (`aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_session_token`), decrypted. Encrypted in the database,
    /// all of them together as one JSON object.
    pub credentials: BTreeMap<String, Secret>,
    /// The model allow-list; `None` means any model name is passed through.
    pub models: Option<Vec<ModelRecord>>,
    /// Where the record came from: `file`, `env`, `default` or `api`.
    pub source: RecordSource,
    /// Its budget and rate limit, applied to every attempt sent to it.
    pub limits: Limits,
}

/// A model of a provider's allow-list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model name sent upstream.
    pub id: String,
    /// A display name.
    pub name: Option<String>,
    /// Price override, in USD per million tokens.
    pub pricing: Option<Pricing>,
}

/// A model's price override in USD per million tokens, as the catalog gives it: the pricing
/// crate's own type, so the request path and the admin API resolve it against the built-in
/// table without a conversion. Absent fields mean "unknown", never zero.
pub use portico_pricing::PriceOverride as Pricing;

/// Who created a record, which decides what a later apply may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    /// Declared in the catalog file: removed from the store when removed from the file.
    File,
    /// Detected from a provider API key in the environment.
    Env,
    /// Built in (the `@mock` provider).
    Default,
    /// Created through the admin API or CLI: never touched by a catalog apply.
    Api,
}

impl RecordSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordSource::File => "file",
            RecordSource::Env => "env",
            RecordSource::Default => "default",
            RecordSource::Api => "api",
        }
    }
}

/// What a gateway key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// The admin key: the admin API, and every provider and model on the data plane.
    Admin,
    /// A key for a service or application.
    Service,
    /// A key for one person; its requests are attributed to `user`.
    User,
    /// A data-plane gateway's token to its control plane (spec section 9, hybrid mode): stored
    /// and listed like the others, but refused (403) on the data plane and the admin API.
    Gateway,
}

impl KeyType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Admin => "admin",
            KeyType::Service => "service",
            KeyType::User => "user",
            KeyType::Gateway => "gateway",
        }
    }

    /// The key type stored as `name`.
    pub fn parse(name: &str) -> Option<KeyType> {
        [
            KeyType::Admin,
            KeyType::Service,
            KeyType::User,
            KeyType::Gateway,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

/// A gateway key as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// Stable id (UUID v7 string); kept across applies and secret rotations.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// What the key is.
    pub key_type: KeyType,
    /// The end user of a user key.
    pub user: Option<String>,
    /// SHA-256 of the secret.
    pub hash: KeyHash,
    /// The first characters of the secret, for listings.
    pub hint: String,
    /// `@slug` or `@slug/model` patterns this key may use; `None` means all.
    pub allowed_models: Option<Vec<String>>,
    /// Whether request and response payloads of this key are logged.
    pub log_payloads: bool,
    /// The id of the routing config attached to the key; `None` for none.
    pub config: Option<String>,
    /// Where the key came from.
    pub source: RecordSource,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of revocation; a revoked key authenticates nothing.
    pub revoked_at_ms: Option<i64>,
    /// Unix milliseconds from which the key is refused; `None`: it does not expire.
    pub expires_at_ms: Option<i64>,
    /// Its budget and rate limit; on a user key, its user's.
    pub limits: Limits,
}

/// A key as declared by a catalog: matched to a stored key by `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// Unique name; the match key for idempotent applies.
    pub name: String,
    /// What the key is.
    pub key_type: KeyType,
    /// The end user of a user key.
    pub user: Option<String>,
    /// Hash and hint of the secret. With `fixed: true` the stored hash is replaced by this one
    /// when it differs (the file's secret wins); with `fixed: false` it is used only when the
    /// key is created (a generated secret, printed once by the caller).
    pub hash: KeyHash,
    /// Hint of the secret.
    pub hint: String,
    /// Whether the secret is fixed by the file (see `hash`).
    pub fixed: bool,
    /// `@slug` or `@slug/model` patterns this key may use; `None` means all.
    pub allowed_models: Option<Vec<String>>,
    /// Whether payloads are logged.
    pub log_payloads: bool,
    /// The id of the attached config, one of [`CatalogApply::configs`].
    pub config: Option<String>,
    /// Its budget and rate limit.
    pub limits: Limits,
    /// Unix milliseconds from which the key is refused; `None`: it does not expire.
    pub expires_at_ms: Option<i64>,
}

/// When a record was created and last changed, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTimes {
    /// Creation.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
}

/// A routing config as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRecord {
    /// Unique id (keys and `x-portkey-config` name the config by it).
    pub id: String,
    /// The config JSON as given; it passed `portico_routing::RoutingConfig::parse`.
    pub config: serde_json::Value,
    /// Where the config came from: `file` or `api`.
    pub source: RecordSource,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last change.
    pub updated_at_ms: i64,
}

/// A routing config as declared by a catalog file: matched to a stored config by `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSpec {
    /// Unique id.
    pub id: String,
    /// The config JSON.
    pub config: serde_json::Value,
}

/// A gateway key to create through the admin API. The caller generated the secret and shows
/// it once; only its hash reaches the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// Unique name.
    pub name: String,
    /// `service`, `user` or `gateway` (the admin key is managed with
    /// [`Store::ensure_admin_key`]).
    pub key_type: KeyType,
    /// The end user of a user key.
    pub user: Option<String>,
    /// SHA-256 of the secret.
    pub hash: KeyHash,
    /// Hint of the secret.
    pub hint: String,
    /// `@slug` or `@slug/model` patterns; `None` means all.
    pub allowed_models: Option<Vec<String>>,
    /// The id of an existing config to attach.
    pub config: Option<String>,
    /// Whether payloads are logged.
    pub log_payloads: bool,
    /// Its budget and rate limit.
    pub limits: Limits,
    /// Unix milliseconds from which the key is refused; `None`: it does not expire.
    pub expires_at_ms: Option<i64>,
}

/// A change to a key through the admin API: `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyPatch {
    /// New patterns; `Some(None)` allows everything.
    pub allowed_models: Option<Option<Vec<String>>>,
    /// New config id; `Some(None)` detaches the config.
    pub config: Option<Option<String>>,
    /// New payload logging setting.
    pub log_payloads: Option<bool>,
    /// New end user (user keys only); `Some(None)` clears it.
    pub user: Option<Option<String>>,
    /// New budget; `Some(None)` removes it.
    pub budget: Option<Option<BudgetSpec>>,
    /// New rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<RateLimitSpec>>,
    /// New expiry (Unix milliseconds); `Some(None)`: the key no longer expires.
    pub expires_at_ms: Option<Option<i64>>,
}

/// Everything a catalog file (plus environment detection) declares, applied in one transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogApply {
    /// Providers with source `File`, `Env` or `Default`. Stored providers of those sources that
    /// are not listed here are removed; `Api` providers are never touched.
    pub providers: Vec<ProviderRecord>,
    /// File keys. Stored `File` keys not listed are revoked (not deleted: their history stays).
    pub keys: Vec<KeySpec>,
    /// File configs. Stored `File` configs not listed are deleted; that fails while an active
    /// `api` key still uses one. `Api` configs are never touched.
    pub configs: Vec<ConfigSpec>,
    /// File budgets (the `budgets:` list), matched by name. Stored `File` budgets not listed
    /// are deleted (their spend stays in the ledger); `Api` budgets are never touched.
    pub budgets: Vec<NamedBudget>,
    /// File guardrails (the `guardrails:` list), matched by id. Stored `File` guardrails not
    /// listed are deleted (a config that still names one gets a 400 naming it); `Api`
    /// guardrails are never touched, and a file guardrail may not take the id of one.
    pub guardrails: Vec<GuardrailSpec>,
}

/// What an apply changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyReport {
    /// Names of keys created by this apply (the caller prints generated secrets for these).
    pub created_keys: Vec<String>,
    /// Names of keys whose fixed secret changed.
    pub rotated_keys: Vec<String>,
    /// Names of keys revoked because the file no longer declares them.
    pub revoked_keys: Vec<String>,
    /// Slugs inserted or changed.
    pub changed_providers: Vec<String>,
    /// Slugs removed.
    pub removed_providers: Vec<String>,
    /// Config ids inserted or changed.
    pub changed_configs: Vec<String>,
    /// Config ids removed.
    pub removed_configs: Vec<String>,
    /// Names of budgets inserted or changed.
    pub changed_budgets: Vec<String>,
    /// Names of budgets removed.
    pub removed_budgets: Vec<String>,
    /// Ids of guardrails inserted or changed.
    pub changed_guardrails: Vec<String>,
    /// Ids of guardrails removed.
    pub removed_guardrails: Vec<String>,
    /// Every object written, one [`Change`] each with the fields that changed: the plan
    /// `portico apply` prints. Empty when the apply changed nothing. Ordered by kind (providers,
    /// configs, guardrails, keys, budgets), then name.
    pub changes: Vec<Change>,
}

/// A budget of the `budgets:` list as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRecord {
    /// Its name, match and limits.
    pub budget: NamedBudget,
    /// Where it came from: `file` or `api`.
    pub source: RecordSource,
    /// Unix milliseconds of creation.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last change.
    pub updated_at_ms: i64,
}

/// A store error. Messages name what failed; they never include secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, migrated or queried.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored secret could not be decrypted: the master key is not the one it was written with.
    #[error(
        "cannot decrypt stored provider secrets: the master key from {path} is not the one they \
         were encrypted with; set PORTICO_MASTER_KEY to the original key, or restore the data \
         dir's master.key; after `portico master-key rotate`, use the key it gave (a rotation \
         interrupted after its commit left it in the data dir's master.key.new: rename that \
         to master.key)"
    )]
    WrongMasterKey {
        /// Where the master key came from, for the message.
        path: String,
    },
    /// The master key file or variable is malformed or unreadable.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A stored row could not be read back (corrupt or from a newer version).
    #[error("corrupt record in table {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A uniqueness or reference constraint was violated, or a record of the catalog file
    /// was to be changed through the API.
    #[error("{0}")]
    Conflict(String),
    /// The record to read or change does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// A routing config is invalid, or names a provider the catalog does not have.
    #[error("config `{id}`: {}{message}", at_path(path))]
    InvalidConfig {
        /// The config's id.
        id: String,
        /// The field at fault inside the config (`targets[1].provider`); empty for the whole
        /// config.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A value given to an admin method is not acceptable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
}

fn at_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Persistence for the catalog and keys. Implemented by [`SqlStore`] on SQLite and PostgreSQL.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The catalog's version: a counter that every write changing the catalog (providers,
    /// models, keys, configs, guardrails, named budgets; an apply or admin-key check only when
    /// it changed something) increments in its own transaction. One single-row read, cheap
    /// enough to poll about once a second: a process that sees it move reloads its snapshot,
    /// so a change made through another process's admin API reaches it (spec section 9).
    /// Hybrid gateways get it as their snapshot's version.
    async fn catalog_version(&self) -> Result<i64, StoreError>;

    /// Applies a catalog in one transaction (see [`CatalogApply`]). Idempotent.
    ///
    /// Fails with [`StoreError::Conflict`], changing nothing, when the catalog declares a slug,
    /// a model of one provider or a key name twice; declares an admin key (type `admin` or name
    /// `admin`) or a provider with source `Api`; names a provider or key that was created
    /// through the API; or gives a key a secret that another key already has.
    async fn apply_catalog(&self, apply: &CatalogApply) -> Result<ApplyReport, StoreError> {
        self.apply_catalog_with(apply, ApplyOptions::default())
            .await
    }

    /// [`Store::apply_catalog`] as `options` say: a dry run (the report of what the apply
    /// would change, worked out by the same code and written nowhere), or a start without a
    /// catalog file (the file's records stay as they are).
    async fn apply_catalog_with(
        &self,
        apply: &CatalogApply,
        options: ApplyOptions,
    ) -> Result<ApplyReport, StoreError>;

    /// Every provider with its models, secrets decrypted, ordered by slug.
    async fn list_providers(&self) -> Result<Vec<ProviderRecord>, StoreError>;

    /// Every key, revoked ones included, ordered by name.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Makes sure the admin key exists with this hash: creates it (returning `true`) or, when
    /// `replace` is set, replaces the stored hash (an admin key given by file or environment
    /// wins). With `replace` unset an existing admin key is left as it is.
    ///
    /// The admin key's row is named `admin` and keeps its id when replaced. A revoked admin key
    /// counts as missing: it is given this hash, un-revoked, and `true` is returned (so a
    /// generated secret gets printed). A non-admin key named `admin` is a
    /// [`StoreError::Conflict`], and so is a hash that another key already has.
    async fn ensure_admin_key(
        &self,
        hash: KeyHash,
        hint: &str,
        replace: bool,
    ) -> Result<bool, StoreError>;

    /// Whether an admin key exists that is not revoked.
    async fn has_admin_key(&self) -> Result<bool, StoreError>;

    /// When each provider was created and last changed, by slug (kept apart from
    /// [`ProviderRecord`], which describes what a provider *is* and is compared as such).
    async fn provider_times(&self) -> Result<BTreeMap<String, RecordTimes>, StoreError>;

    /// Every routing config, ordered by id.
    async fn list_configs(&self) -> Result<Vec<ConfigRecord>, StoreError>;

    /// The provider `slug`, if it exists.
    async fn get_provider(&self, slug: &str) -> Result<Option<ProviderRecord>, StoreError>;

    /// Adds a provider with source `api`. [`StoreError::Conflict`] when the slug exists.
    async fn create_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError>;

    /// Replaces an `api` provider. An `api_key` of `None` keeps the stored key, and empty
    /// `credentials` keep the stored ones (secrets are never answered, so a client editing a
    /// provider cannot send them back). [`StoreError::NotFound`] for an unknown slug,
    /// [`StoreError::Conflict`] for a provider of the catalog file or environment, and
    /// [`StoreError::InvalidConfig`] when a stored config names a provider no longer there.
    async fn replace_provider(&self, provider: &ProviderRecord) -> Result<(), StoreError>;

    /// Deletes an `api` provider and its models. [`StoreError::Conflict`] while a config
    /// names it (the message names the configs) or when it is not an `api` provider.
    async fn delete_provider(&self, slug: &str) -> Result<(), StoreError>;

    /// Creates a key with source `api`; [`StoreError::Conflict`] when the name or secret is
    /// taken, [`StoreError::NotFound`] for an unknown config.
    async fn create_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError>;

    /// The key with this id, or else with this name.
    async fn get_key(&self, id_or_name: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Changes an `api` key (see [`KeyPatch`]) and answers it as it is now.
    async fn update_key(&self, id_or_name: &str, patch: &KeyPatch)
    -> Result<KeyRecord, StoreError>;

    /// Revokes an `api` key (kept, with `revoked_at` set, for its history). Revoking a
    /// revoked key changes nothing.
    async fn revoke_key(&self, id_or_name: &str) -> Result<KeyRecord, StoreError>;

    /// Gives an `api` key a new secret (its hash and hint): the key keeps its id, name,
    /// settings and so its spend, and its old secret stops working. A revoked key cannot be
    /// rotated ([`StoreError::Conflict`]); an expired one can (its expiry stays).
    async fn rotate_key(
        &self,
        id_or_name: &str,
        hash: KeyHash,
        hint: &str,
    ) -> Result<KeyRecord, StoreError>;

    /// The config `id`, if it exists.
    async fn get_config(&self, id: &str) -> Result<Option<ConfigRecord>, StoreError>;

    /// Adds a config with source `api`, validated; [`StoreError::Conflict`] when the id exists.
    async fn create_config(
        &self,
        id: &str,
        config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError>;

    /// Replaces the JSON of an `api` config, validated.
    async fn replace_config(
        &self,
        id: &str,
        config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError>;

    /// Deletes an `api` config; [`StoreError::Conflict`] while an active key uses it (the
    /// message names the keys). Revoked keys that referred to it lose the reference.
    async fn delete_config(&self, id: &str) -> Result<(), StoreError>;

    /// Every named guardrail (the catalog file's and the admin API's), ordered by id.
    async fn list_guardrails(&self) -> Result<Vec<GuardrailRecord>, StoreError>;

    /// The guardrail `id`, if it is stored (the catalog file's or the admin API's).
    async fn get_guardrail(&self, id: &str) -> Result<Option<GuardrailRecord>, StoreError>;

    /// Adds a guardrail (validated by the caller); [`StoreError::Conflict`] when the id exists.
    async fn create_guardrail(
        &self,
        id: &str,
        guardrail: &serde_json::Value,
    ) -> Result<GuardrailRecord, StoreError>;

    /// Replaces a guardrail's JSON (validated by the caller); [`StoreError::NotFound`] for an
    /// unknown id, [`StoreError::Conflict`] for one of the catalog file (so for delete).
    async fn replace_guardrail(
        &self,
        id: &str,
        guardrail: &serde_json::Value,
    ) -> Result<GuardrailRecord, StoreError>;

    /// Deletes a guardrail; [`StoreError::NotFound`] for an unknown id. Configs that name it
    /// are left as they are (a request through one then gets a 400 naming the guardrail).
    async fn delete_guardrail(&self, id: &str) -> Result<(), StoreError>;

    /// Every budget of the `budgets:` list, ordered by name.
    async fn list_budgets(&self) -> Result<Vec<BudgetRecord>, StoreError>;

    /// The budget `name`, if it exists.
    async fn get_budget(&self, name: &str) -> Result<Option<BudgetRecord>, StoreError>;

    /// Adds a budget with source `api`; [`StoreError::Conflict`] when the name exists.
    async fn create_budget(&self, budget: &NamedBudget) -> Result<BudgetRecord, StoreError>;

    /// Replaces the match and limits of an `api` budget (its spend is kept).
    async fn replace_budget(&self, budget: &NamedBudget) -> Result<BudgetRecord, StoreError>;

    /// Deletes an `api` budget.
    async fn delete_budget(&self, name: &str) -> Result<(), StoreError>;
}

/// How long a spend delivery's id is kept (30 days): far longer than a gateway or process
/// retries an unacknowledged batch, which it does for as long as its link is down.
pub const DELIVERY_RETENTION_MS: i64 = 30 * 24 * 3_600_000;

/// The ledger of budgets and rate limits on disk: each subject's spend in its current period
/// and its rate window. The engine keeps the ledger in memory and writes the subjects that
/// changed in batches, off the request path; it reads them once at start. A trait of its own,
/// so that a shared store (Redis, for many processes) can take the ledger while the catalog
/// stays elsewhere.
#[async_trait]
pub trait SpendStore: Send + Sync + 'static {
    /// Every persisted subject's state.
    async fn load_spend(&self) -> Result<Vec<SpendState>, StoreError>;

    /// Writes these subjects' states (replacing what was stored for them), in one
    /// transaction.
    async fn save_spend(&self, states: &[SpendState]) -> Result<(), StoreError>;

    /// Adds a hybrid gateway's spend, delivered as the batch `batch`, exactly once: in one
    /// transaction, records the batch and adds each [`SpendDelta`] to its subject's row. A
    /// delta of the stored period adds its cost and tokens; one of a later period replaces
    /// the row's period, cost and tokens (a new period began; the rate window is kept); one of
    /// an earlier period is skipped (that period is closed). A batch already applied (the
    /// gateway delivered it again because the first answer was lost) changes nothing and
    /// returns `false`; otherwise `true`.
    async fn apply_delivery(&self, batch: &str, deltas: &[SpendDelta]) -> Result<bool, StoreError>;

    /// Forgets the deliveries applied before `before_ms` (Unix ms) and answers how many: the
    /// table would otherwise grow by a row per process and second of traffic. A batch
    /// delivered again after its record is gone would be applied again, so callers keep
    /// records far longer than any batch is retried ([`DELIVERY_RETENTION_MS`]).
    async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// How long kept responses stay before they are pruned: 30 days, as OpenAI keeps them.
pub const RESPONSE_RETENTION_MS: i64 = 30 * 24 * 3_600_000;

/// The responses the gateway keeps for OpenAI's Responses API, so that
/// `previous_response_id` continues a conversation on any provider and any process. The
/// engine writes them in batches off the request path and reads one only when a request
/// names it.
#[async_trait]
pub trait ResponseStore: Send + Sync + 'static {
    /// Writes these responses; one already stored (a batch written again) is left as it is.
    async fn save_responses(&self, rows: &[ResponseRow]) -> Result<(), StoreError>;

    /// The response `id`, whoever owns it (the caller checks the owner).
    async fn load_response(&self, id: &str) -> Result<Option<ResponseRow>, StoreError>;

    /// Deletes the response `id` when `owner` owns it; whether it did.
    async fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError>;

    /// Forgets the responses made before `before_ms` (Unix ms); how many.
    async fn prune_responses(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// One kept response, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRow {
    /// `resp_…`.
    pub id: String,
    /// The gateway key (and user) that made it.
    pub owner: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The stored response as JSON, opaque to the store.
    pub payload: String,
}

/// Spend a hybrid gateway counted for one subject since its last delivery, added to the
/// control plane's ledger by [`SpendStore::apply_delivery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendDelta {
    /// Whom it belongs to, in its displayed form on the wire (`key:backend`).
    #[serde(with = "subject_text")]
    pub subject: Subject,
    /// The period it was counted in, when the subject has a budget.
    pub period: Option<Period>,
    /// Start of that period, Unix milliseconds: decides whether the delta adds to the stored
    /// spend, starts a new period, or is too late to count.
    pub period_start_ms: i64,
    /// USD spent.
    pub cost_usd: f64,
    /// Tokens spent.
    pub tokens: u64,
}

/// [`Subject`] as its displayed text (`key:backend`), the form the ledger stores it in
/// (`portico_core` gives it no serde form of its own).
mod subject_text {
    use portico_core::Subject;
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(subject: &Subject, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(subject)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Subject, D::Error> {
        let text = String::deserialize(d)?;
        Subject::parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown subject `{text}`: expected key:, provider:, user: or budget: and a name"
            ))
        })
    }
}

mod configs;
mod crypto;
mod guardrails;
mod plan;
pub mod private_files;
mod sql;

pub use configs::{is_valid_config_id, provider_refs, validate_config};

pub use crypto::MasterKey;
pub use guardrails::{GuardrailRecord, GuardrailSpec};
pub use plan::{ApplyOptions, Change, ChangeAction, FieldChange, ObjectKind};
pub use sql::{RotationReport, SqlStore};

/// The name [`SqlStore`] had while it served SQLite only; kept so that callers opening a
/// SQLite file (`SqliteStore::open`, `SqliteStore::open_in_memory`) read as before.
pub type SqliteStore = SqlStore;
