//! [`Store::apply_catalog`](crate::Store::apply_catalog): diff the catalog against the stored
//! rows inside one write transaction and write only what differs.
//!
//! Writing only differences is what makes an apply idempotent in the report *and* on disk: a
//! restart with an unchanged file rewrites no row, so `updated_at` means something. Each
//! object written is one [`Change`] of the report, with the fields `diff` found to differ:
//! the plan `portico apply` prints is this code's own account of what it writes (a dry run
//! runs it in a transaction that is rolled back).

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::AnyConnection;

use super::diff::{budget_changes, config_fields, key_fields};
use super::rows::{self, KeyRow, ModelRow, ProviderRow};
use super::{ADMIN_KEY_NAME, conflict_on_unique};
use crate::configs::{check_providers, validate_config};
use crate::{
    ApplyOptions, ApplyReport, CatalogApply, Change, ChangeAction, ConfigSpec, KeySpec, KeyType,
    MasterKey, ObjectKind, ProviderRecord, RecordSource, StoreError,
};

/// What the plan says of a key the file no longer declares.
const REVOKED_NOTE: &str =
    "revoked, not deleted: its logs and spend keep it; declaring it again restores it";
/// What the plan says of a revoked key declared again.
const RESTORED_NOTE: &str = "declared again: restored with its id and spend";
/// What the plan says of a new key without a fixed secret.
const GENERATED_NOTE: &str = "its secret is generated and shown once";

/// Rejects catalogs that no store could apply: duplicates, and records an apply may not write.
pub(super) fn validate(catalog: &CatalogApply, options: ApplyOptions) -> Result<(), StoreError> {
    let file_records = !catalog.keys.is_empty()
        || !catalog.configs.is_empty()
        || !catalog.budgets.is_empty()
        || !catalog.guardrails.is_empty()
        || catalog
            .providers
            .iter()
            .any(|p| p.source == RecordSource::File);
    if options.keep_file_records && file_records {
        return Err(StoreError::Invalid(
            "an apply that keeps the file's records declares environment and built-in \
             providers only"
                .to_owned(),
        ));
    }
    let mut slugs = HashSet::new();
    for p in &catalog.providers {
        if p.source == RecordSource::Api {
            return Err(StoreError::Conflict(format!(
                "provider `@{}` has source `api`; a catalog apply writes only file, env and \
                 default providers",
                p.slug
            )));
        }
        if !slugs.insert(p.slug.as_str()) {
            return Err(StoreError::Conflict(format!(
                "provider `@{}` is declared twice",
                p.slug
            )));
        }
        let mut ids = HashSet::new();
        for m in p.models.iter().flatten() {
            if !ids.insert(m.id.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "provider `@{}` lists model `{}` twice",
                    p.slug, m.id
                )));
            }
        }
    }
    let mut config_ids = HashSet::new();
    for c in &catalog.configs {
        validate_config(&c.id, &c.config)?;
        if !config_ids.insert(c.id.as_str()) {
            return Err(StoreError::Conflict(format!(
                "config `{}` is declared twice",
                c.id
            )));
        }
    }
    let mut names = HashSet::new();
    for k in &catalog.keys {
        if let Some(config) = &k.config
            && !config_ids.contains(config.as_str())
        {
            return Err(StoreError::Conflict(format!(
                "key `{}`: config `{config}` is not declared under the catalog's configs; a key \
                 of the catalog file names one of the file's configs",
                k.name
            )));
        }
        if k.key_type == KeyType::Admin || k.name == ADMIN_KEY_NAME {
            return Err(StoreError::Conflict(format!(
                "key `{}`: the admin key is set with `admin_key` (or PORTICO_ADMIN_KEY), not \
                 under `keys`, and the name `{ADMIN_KEY_NAME}` is reserved for it",
                k.name
            )));
        }
        if !names.insert(k.name.as_str()) {
            return Err(StoreError::Conflict(format!(
                "key `{}` is declared twice",
                k.name
            )));
        }
    }
    let mut guardrails = HashSet::new();
    for g in &catalog.guardrails {
        if !guardrails.insert(g.id.as_str()) {
            return Err(StoreError::Conflict(format!(
                "guardrail `{}` is declared twice",
                g.id
            )));
        }
    }
    let mut budgets = HashSet::new();
    for b in &catalog.budgets {
        if !budgets.insert(b.name.as_str()) {
            return Err(StoreError::Conflict(format!(
                "budget `{}` is declared twice",
                b.name
            )));
        }
    }
    Ok(())
}

/// Applies a validated catalog on `conn`, which must be inside a write transaction.
pub(super) async fn apply(
    conn: &mut AnyConnection,
    master: &MasterKey,
    catalog: &CatalogApply,
    options: ApplyOptions,
    now: i64,
) -> Result<ApplyReport, StoreError> {
    let mut report = ApplyReport::default();
    let keep_file_records = options.keep_file_records;
    apply_providers(
        conn,
        master,
        &catalog.providers,
        keep_file_records,
        now,
        &mut report,
    )
    .await?;
    if !keep_file_records {
        // Configs before keys, which refer to them; stale ones after, once keys have let go.
        upsert_configs(conn, &catalog.configs, now, &mut report).await?;
        // Configs name guardrails only by id, checked when a request uses one, so their
        // order does not matter; in this transaction, so a failed apply writes none.
        super::guardrails::apply_file(conn, &catalog.guardrails, now, &mut report).await?;
        apply_keys(conn, &catalog.keys, now, &mut report).await?;
        remove_configs(conn, &catalog.configs, &mut report).await?;
        let budgets_before = super::limits::list_budgets(conn).await?;
        super::limits::apply_budgets(conn, &catalog.budgets, now, &mut report).await?;
        let budgets = budget_changes(&budgets_before, &catalog.budgets, &report);
        report.changes.extend(budgets);
    }
    check_config_providers(conn).await?;
    report
        .changes
        .sort_by(|a, b| (a.object, &a.name).cmp(&(b.object, &b.name)));
    Ok(report)
}

async fn upsert_configs(
    conn: &mut AnyConnection,
    declared: &[ConfigSpec],
    now: i64,
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let stored: HashMap<String, rows::ConfigRow> = rows::load_configs(conn)
        .await?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    for spec in declared {
        let text = rows::to_json("configs", &spec.config)?;
        match stored.get(&spec.id) {
            Some(row) if row.source != RecordSource::File.as_str() => {
                return Err(StoreError::Conflict(format!(
                    "config `{}` was created through the admin API, so the catalog cannot \
                     change it; rename it in the catalog or delete it through the API",
                    spec.id
                )));
            }
            Some(row) => {
                let fields = config_fields(&spec.config, &text, &row.config);
                if fields.is_empty() {
                    continue;
                }
                sqlx::query("UPDATE configs SET config = $1, updated_at = $2 WHERE id = $3")
                    .bind(&text)
                    .bind(now)
                    .bind(&spec.id)
                    .execute(&mut *conn)
                    .await?;
                report.changes.push(
                    Change::new(
                        ChangeAction::Update,
                        ObjectKind::Config,
                        &spec.id,
                        RecordSource::File,
                    )
                    .with_fields(fields),
                );
            }
            None => {
                sqlx::query(
                    "INSERT INTO configs (id, config, source, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&spec.id)
                .bind(&text)
                .bind(RecordSource::File.as_str())
                .bind(now)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                report.changes.push(Change::new(
                    ChangeAction::Create,
                    ObjectKind::Config,
                    &spec.id,
                    RecordSource::File,
                ));
            }
        }
        report.changed_configs.push(spec.id.clone());
    }
    Ok(())
}

/// Deletes the file's configs that it no longer declares.
async fn remove_configs(
    conn: &mut AnyConnection,
    declared: &[ConfigSpec],
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let declared: HashSet<&str> = declared.iter().map(|c| c.id.as_str()).collect();
    for row in rows::load_configs(conn).await? {
        if row.source != RecordSource::File.as_str() || declared.contains(row.id.as_str()) {
            continue;
        }
        delete_config_row(conn, &row.id, true).await?;
        report.changes.push(Change::new(
            ChangeAction::Delete,
            ObjectKind::Config,
            &row.id,
            RecordSource::File,
        ));
        report.removed_configs.push(row.id);
    }
    Ok(())
}

/// Deletes a config unless an active key uses it; revoked keys lose the reference.
/// `from_file`: the catalog file dropped it (for the message).
pub(super) async fn delete_config_row(
    conn: &mut AnyConnection,
    id: &str,
    from_file: bool,
) -> Result<(), StoreError> {
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM keys WHERE config_id = $1 AND revoked_at IS NULL ORDER BY name",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    if !users.is_empty() {
        let names: Vec<String> = users.iter().map(|n| format!("`{n}`")).collect();
        let what = if from_file {
            format!("config `{id}` was removed from the catalog file, but")
        } else {
            format!("config `{id}` cannot be deleted:")
        };
        return Err(StoreError::Conflict(format!(
            "{what} keys still use it: {}; attach another config to them (or none) first",
            names.join(", ")
        )));
    }
    sqlx::query("UPDATE keys SET config_id = NULL WHERE config_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM configs WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Every stored config names only providers the catalog has: checked after any write that
/// changes providers or configs, inside its transaction.
pub(super) async fn check_config_providers(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let slugs = rows::load_slugs(conn).await?;
    for row in rows::load_configs(conn).await? {
        let record = row.into_record()?;
        let parsed = validate_config(&record.id, &record.config)?;
        check_providers(&record.id, &parsed, &slugs)?;
    }
    Ok(())
}

/// A provider in the form it is stored, secret decrypted, to compare stored with declared.
#[derive(Debug, PartialEq)]
pub(super) struct ProviderState {
    pub(super) kind: &'static str,
    pub(super) base_url: Option<String>,
    pub(super) api_key: Option<String>,
    pub(super) credentials: BTreeMap<String, String>,
    pub(super) settings: String,
    pub(super) models: Option<Vec<ModelRow>>,
    pub(super) source: String,
    pub(super) limits: Option<String>,
}

impl ProviderState {
    pub(super) fn declared(p: &ProviderRecord) -> Result<ProviderState, StoreError> {
        Ok(ProviderState {
            kind: p.kind.as_str(),
            base_url: p.base_url.clone(),
            api_key: p.api_key.as_ref().map(|s| s.expose().to_owned()),
            credentials: p
                .credentials
                .iter()
                .map(|(name, secret)| (name.clone(), secret.expose().to_owned()))
                .collect(),
            // Compared as text: parsing floats back from JSON need not give the same bits, and
            // the same value always serializes to the same text.
            settings: p.settings.to_string(),
            models: p
                .models
                .as_ref()
                .map(|ms| ms.iter().map(ModelRow::from_record).collect())
                .transpose()?,
            source: p.source.as_str().to_owned(),
            limits: super::limits::limits_json(&p.limits)?,
        })
    }
}

/// Inserts, updates and removes providers. With `keep_file_records`, the file's providers are
/// neither changed nor removed.
async fn apply_providers(
    conn: &mut AnyConnection,
    master: &MasterKey,
    declared: &[ProviderRecord],
    keep_file_records: bool,
    now: i64,
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let kept = |row: &ProviderRow| {
        row.source == RecordSource::Api.as_str()
            || (keep_file_records && row.source == RecordSource::File.as_str())
    };
    let stored: HashMap<String, ProviderRow> = rows::load_providers(conn)
        .await?
        .into_iter()
        .map(|row| (row.slug.clone(), row))
        .collect();
    let stored_models = rows::load_models(conn).await?;

    for p in declared {
        let state = ProviderState::declared(p)?;
        let existing = stored.get(&p.slug);
        let change = match existing {
            Some(row) if row.source == RecordSource::Api.as_str() => {
                return Err(StoreError::Conflict(format!(
                    "provider `@{}` was created through the admin API, so the catalog cannot \
                     change it; rename it in the catalog or delete it through the API",
                    p.slug
                )));
            }
            // A file's provider, on a start without a file: as the last file applied left it.
            Some(row) if kept(row) => continue,
            Some(row) => {
                let fields = state.changed_fields(row, stored_models.get(&p.slug), master)?;
                if fields.is_empty() {
                    continue;
                }
                Change::new(
                    ChangeAction::Update,
                    ObjectKind::Provider,
                    &p.slug,
                    p.source,
                )
                .with_fields(fields)
            }
            None => Change::new(
                ChangeAction::Create,
                ObjectKind::Provider,
                &p.slug,
                p.source,
            ),
        };
        write_provider(conn, master, &p.slug, &state, existing.is_some(), now).await?;
        report.changed_providers.push(p.slug.clone());
        report.changes.push(change);
    }

    let declared: HashSet<&str> = declared.iter().map(|p| p.slug.as_str()).collect();
    let mut removed: Vec<&ProviderRow> = stored
        .values()
        .filter(|row| !kept(row))
        .filter(|row| !declared.contains(row.slug.as_str()))
        .collect();
    removed.sort_by(|a, b| a.slug.cmp(&b.slug));
    for row in removed {
        // Its models go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM providers WHERE slug = $1")
            .bind(&row.slug)
            .execute(&mut *conn)
            .await?;
        let source = rows::parse_source("providers", &row.source)?;
        report.changes.push(Change::new(
            ChangeAction::Delete,
            ObjectKind::Provider,
            &row.slug,
            source,
        ));
        report.removed_providers.push(row.slug.clone());
    }
    Ok(())
}

/// Inserts or updates one provider and replaces its models.
pub(super) async fn write_provider(
    conn: &mut AnyConnection,
    master: &MasterKey,
    slug: &str,
    state: &ProviderState,
    exists: bool,
    now: i64,
) -> Result<(), StoreError> {
    let api_key_enc = state.api_key.as_ref().map(|k| master.encrypt(k.as_bytes()));
    let credentials_enc = if state.credentials.is_empty() {
        None
    } else {
        let plain = rows::to_json("providers", &state.credentials)?;
        Some(master.encrypt(plain.as_bytes()))
    };
    let has_models = i64::from(state.models.is_some());
    if exists {
        sqlx::query(
            "UPDATE providers SET kind = $1, base_url = $2, api_key_enc = $3, credentials_enc = $4, \
             settings = $5, has_models = $6, source = $7, limits = $8, updated_at = $9 WHERE slug = $10",
        )
        .bind(state.kind)
        .bind(&state.base_url)
        .bind(api_key_enc)
        .bind(credentials_enc)
        .bind(&state.settings)
        .bind(has_models)
        .bind(&state.source)
        .bind(&state.limits)
        .bind(now)
        .bind(slug)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM models WHERE provider_slug = $1")
            .bind(slug)
            .execute(&mut *conn)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO providers (slug, kind, base_url, api_key_enc, credentials_enc, \
             settings, has_models, source, limits, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(slug)
        .bind(state.kind)
        .bind(&state.base_url)
        .bind(api_key_enc)
        .bind(credentials_enc)
        .bind(&state.settings)
        .bind(has_models)
        .bind(&state.source)
        .bind(&state.limits)
        .bind(now)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    for (position, model) in (0_i64..).zip(state.models.iter().flatten()) {
        sqlx::query(
            "INSERT INTO models (provider_slug, id, name, pricing, position) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(slug)
        .bind(&model.id)
        .bind(&model.name)
        .bind(&model.pricing)
        .bind(position)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn apply_keys(
    conn: &mut AnyConnection,
    declared: &[KeySpec],
    now: i64,
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let stored_rows = rows::load_keys(conn).await?;
    let stored: HashMap<&str, &KeyRow> = stored_rows
        .iter()
        .map(|row| (row.name.as_str(), row))
        .collect();
    let stored_limits = super::limits::load_key_limits(conn).await?;

    for spec in declared {
        let allowed_models = spec
            .allowed_models
            .as_ref()
            .map(|m| rows::to_json("keys", m))
            .transpose()?;
        let taken = || {
            format!(
                "key `{}`: its secret is already the secret of another key; give it a \
                 different one",
                spec.name
            )
        };
        let Some(row) = stored.get(spec.name.as_str()) else {
            insert_key(conn, spec, allowed_models, now)
                .await
                .map_err(|e| conflict_on_unique(e, taken))?;
            super::limits::set_key_limits_by_name(conn, &spec.name, &spec.limits).await?;
            report.created_keys.push(spec.name.clone());
            let created = Change::new(
                ChangeAction::Create,
                ObjectKind::Key,
                &spec.name,
                RecordSource::File,
            );
            report.changes.push(if spec.fixed {
                created
            } else {
                created.with_note(GENERATED_NOTE)
            });
            continue;
        };
        if row.source != RecordSource::File.as_str() {
            return Err(StoreError::Conflict(format!(
                "key `{}` was created through the admin API (source `{}`), so the catalog \
                 cannot change it; rename the key in the catalog or delete it through the API",
                spec.name, row.source
            )));
        }

        let limits = stored_limits.get(&row.id).copied().unwrap_or_default();
        let fields = key_fields(spec, row, allowed_models.as_ref(), &limits);
        if fields.is_empty() {
            continue;
        }
        // Limits are kept apart from the key's row (`key_limits`), and written apart.
        if limits != spec.limits {
            super::limits::set_key_limits(conn, &row.id, &spec.limits).await?;
        }
        // A fixed secret in the file wins; a generated one was printed once and must stay.
        let rotate = fields.iter().any(|f| f.name == "key");
        let (hash, hint) = if rotate {
            (spec.hash.to_hex(), spec.hint.as_str())
        } else {
            (row.key_hash.clone(), row.hint.as_str())
        };
        // Declared again: a revoked key is live again, with the same id (and spend).
        sqlx::query(
            "UPDATE keys SET key_type = $1, user_id = $2, key_hash = $3, hint = $4, \
             allowed_models = $5, log_payloads = $6, config_id = $7, expires_at = $8, \
             revoked_at = NULL, updated_at = $9 WHERE id = $10",
        )
        .bind(spec.key_type.as_str())
        .bind(&spec.user)
        .bind(hash)
        .bind(hint)
        .bind(allowed_models)
        .bind(i64::from(spec.log_payloads))
        .bind(&spec.config)
        .bind(spec.expires_at_ms)
        .bind(now)
        .bind(&row.id)
        .execute(&mut *conn)
        .await
        .map_err(|e| conflict_on_unique(e, taken))?;
        if rotate {
            report.rotated_keys.push(spec.name.clone());
        }
        let changed = Change::new(
            ChangeAction::Update,
            ObjectKind::Key,
            &spec.name,
            RecordSource::File,
        );
        let changed = if row.revoked_at.is_some() {
            changed.with_note(RESTORED_NOTE)
        } else {
            changed
        };
        report.changes.push(changed.with_fields(fields));
    }

    let declared: HashSet<&str> = declared.iter().map(|k| k.name.as_str()).collect();
    for row in &stored_rows {
        let revoke = row.source == RecordSource::File.as_str()
            && row.key_type != KeyType::Admin.as_str()
            && row.revoked_at.is_none()
            && !declared.contains(row.name.as_str());
        if !revoke {
            continue;
        }
        sqlx::query("UPDATE keys SET revoked_at = $1, updated_at = $2 WHERE id = $3")
            .bind(now)
            .bind(now)
            .bind(&row.id)
            .execute(&mut *conn)
            .await?;
        report.revoked_keys.push(row.name.clone());
        report.changes.push(
            Change::new(
                ChangeAction::Revoke,
                ObjectKind::Key,
                &row.name,
                RecordSource::File,
            )
            .with_note(REVOKED_NOTE),
        );
    }
    Ok(())
}

async fn insert_key(
    conn: &mut AnyConnection,
    spec: &KeySpec,
    allowed_models: Option<String>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO keys (id, name, key_type, user_id, key_hash, hint, allowed_models, \
         log_payloads, config_id, source, created_at, updated_at, revoked_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&spec.name)
    .bind(spec.key_type.as_str())
    .bind(&spec.user)
    .bind(spec.hash.to_hex())
    .bind(&spec.hint)
    .bind(allowed_models)
    .bind(i64::from(spec.log_payloads))
    .bind(&spec.config)
    .bind(RecordSource::File.as_str())
    .bind(now)
    .bind(now)
    .bind(spec.expires_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}
