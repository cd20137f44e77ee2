//! The admin API's writes: one record at a time, each in its own write transaction.
//!
//! Only `api` records are changed here. A record of the catalog file, the environment or the
//! built-in `@mock` is refused with [`StoreError::Conflict`]: the next apply would silently undo
//! the change, which is worse than saying where to make it.

use portico_core::KeyHash;
use sqlx::AnyConnection;

use super::apply::{ProviderState, delete_config_row, write_provider};
use super::conflict_on_unique;
use super::rows::{self, ConfigRow, KEY_COLUMNS, KeyRow, ProviderRow};
use crate::configs::{check_providers, provider_refs, validate_config};
use crate::{
    ConfigRecord, KeyPatch, KeyRecord, KeyType, MasterKey, NewKey, ProviderRecord, RecordSource,
    StoreError,
};

/// The message for a change to a record the catalog file (or environment) owns.
fn not_api(what: &str, source: &str) -> StoreError {
    let origin = match source {
        "file" => "it is declared in the catalog file; change it there and apply the file again",
        "env" => {
            "it was detected from a provider API key in the environment; declare it in the catalog file to change it"
        }
        _ => "it is built in",
    };
    StoreError::Conflict(format!(
        "{what} cannot be changed through the admin API: {origin}"
    ))
}

async fn provider_row(
    conn: &mut AnyConnection,
    slug: &str,
) -> Result<Option<ProviderRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT slug, kind, base_url, api_key_enc, credentials_enc, settings, has_models, \
         source, limits FROM providers WHERE slug = $1",
    )
    .bind(slug)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn get_provider(
    conn: &mut AnyConnection,
    master: &MasterKey,
    slug: &str,
) -> Result<Option<ProviderRecord>, StoreError> {
    let Some(row) = provider_row(conn, slug).await? else {
        return Ok(None);
    };
    let mut models = rows::load_models(conn).await?;
    let listed = models.remove(slug);
    row.into_record(master, listed).map(Some)
}

pub(super) async fn create_provider(
    conn: &mut AnyConnection,
    master: &MasterKey,
    provider: &ProviderRecord,
    now: i64,
) -> Result<(), StoreError> {
    if provider_row(conn, &provider.slug).await?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a provider `@{}` already exists; choose another slug, or replace it with PUT",
            provider.slug
        )));
    }
    let mut state = ProviderState::declared(provider)?;
    state.source = RecordSource::Api.as_str().to_owned();
    write_provider(conn, master, &provider.slug, &state, false, now).await
}

pub(super) async fn replace_provider(
    conn: &mut AnyConnection,
    master: &MasterKey,
    provider: &ProviderRecord,
    now: i64,
) -> Result<(), StoreError> {
    let slug = &provider.slug;
    let Some(row) = provider_row(conn, slug).await? else {
        return Err(StoreError::NotFound(format!("no provider `@{slug}`")));
    };
    if row.source != RecordSource::Api.as_str() {
        return Err(not_api(&format!("provider `@{slug}`"), &row.source));
    }
    let mut state = ProviderState::declared(provider)?;
    state.source = RecordSource::Api.as_str().to_owned();
    if state.api_key.is_none() {
        state.api_key = row.api_key(master)?;
    }
    if state.credentials.is_empty() {
        state.credentials = row.credentials(master)?;
    }
    write_provider(conn, master, slug, &state, true, now).await
}

pub(super) async fn delete_provider(
    conn: &mut AnyConnection,
    slug: &str,
) -> Result<(), StoreError> {
    let Some(row) = provider_row(conn, slug).await? else {
        return Err(StoreError::NotFound(format!("no provider `@{slug}`")));
    };
    if row.source != RecordSource::Api.as_str() {
        return Err(not_api(&format!("provider `@{slug}`"), &row.source));
    }
    let mut users = Vec::new();
    for config in rows::load_configs(conn).await? {
        let record = config.into_record()?;
        let parsed = validate_config(&record.id, &record.config)?;
        if provider_refs(&parsed).iter().any(|(_, s)| s == slug) {
            users.push(format!("`{}`", record.id));
        }
    }
    if !users.is_empty() {
        return Err(StoreError::Conflict(format!(
            "provider `@{slug}` cannot be deleted: configs route to it: {}; change them first",
            users.join(", ")
        )));
    }
    sqlx::query("DELETE FROM providers WHERE slug = $1")
        .bind(slug)
        .execute(conn)
        .await?;
    Ok(())
}

async fn key_row(conn: &mut AnyConnection, id_or_name: &str) -> Result<Option<KeyRow>, StoreError> {
    // An id is a UUID and names are free text, so a name could equal another key's id: the id
    // wins.
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM keys WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1"
    ))
    .bind(id_or_name)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn get_key(
    conn: &mut AnyConnection,
    id_or_name: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let Some(row) = key_row(conn, id_or_name).await? else {
        return Ok(None);
    };
    let mut record = row.into_record()?;
    record.limits = super::limits::key_limits(conn, &record.id).await?;
    Ok(Some(record))
}

async fn require_config(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    if config_row(conn, id).await?.is_none() {
        return Err(StoreError::Invalid(format!(
            "no config `{id}`; create it first, or name one of the configs listed by GET \
             /admin/v1/configs"
        )));
    }
    Ok(())
}

/// The rule of the catalog file, kept for the API: a user key names its user, a service or
/// gateway key has none.
fn check_user(key_type: KeyType, user: Option<&str>) -> Result<(), StoreError> {
    match (key_type, user) {
        (KeyType::User, None) => Err(StoreError::Invalid(
            "a user key needs `user`: the person it belongs to, like alice@example.com".into(),
        )),
        (KeyType::Service | KeyType::Gateway, Some(_)) => Err(StoreError::Invalid(
            "`user` is only allowed on keys of type user".into(),
        )),
        _ => Ok(()),
    }
}

pub(super) async fn create_key(
    conn: &mut AnyConnection,
    key: &NewKey,
    now: i64,
) -> Result<KeyRecord, StoreError> {
    if key.key_type == KeyType::Admin {
        return Err(StoreError::Invalid(
            "keys of type admin cannot be created; the admin key is set with PORTICO_ADMIN_KEY \
             (or admin_key in the catalog file)"
                .into(),
        ));
    }
    check_user(key.key_type, key.user.as_deref())?;
    if key_row(conn, &key.name).await?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a key named `{}` already exists; choose another name",
            key.name
        )));
    }
    if let Some(config) = &key.config {
        require_config(conn, config).await?;
    }
    let allowed_models = key
        .allowed_models
        .as_ref()
        .map(|m| rows::to_json("keys", m))
        .transpose()?;
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO keys (id, name, key_type, user_id, key_hash, hint, allowed_models, \
         log_payloads, config_id, source, created_at, updated_at, revoked_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13)",
    )
    .bind(&id)
    .bind(&key.name)
    .bind(key.key_type.as_str())
    .bind(&key.user)
    .bind(key.hash.to_hex())
    .bind(&key.hint)
    .bind(allowed_models)
    .bind(i64::from(key.log_payloads))
    .bind(&key.config)
    .bind(RecordSource::Api.as_str())
    .bind(now)
    .bind(now)
    .bind(key.expires_at_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        conflict_on_unique(e, || {
            format!("key `{}`: its secret is already another key's", key.name)
        })
    })?;
    super::limits::set_key_limits(conn, &id, &key.limits).await?;
    get_key(conn, &id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("key `{}` vanished", key.name)))
}

/// The key to change through the API: it exists and is an `api` key.
async fn api_key_row(conn: &mut AnyConnection, id_or_name: &str) -> Result<KeyRow, StoreError> {
    let Some(row) = key_row(conn, id_or_name).await? else {
        return Err(StoreError::NotFound(format!(
            "no key with id or name `{id_or_name}`"
        )));
    };
    if row.source != RecordSource::Api.as_str() {
        let what = format!("key `{}`", row.name);
        return Err(if row.key_type == KeyType::Admin.as_str() {
            StoreError::Conflict(format!(
                "{what} is the admin key; it is set with PORTICO_ADMIN_KEY (or admin_key in \
                 the catalog file)"
            ))
        } else {
            not_api(&what, &row.source)
        });
    }
    Ok(row)
}

pub(super) async fn update_key(
    conn: &mut AnyConnection,
    id_or_name: &str,
    patch: &KeyPatch,
    now: i64,
) -> Result<KeyRecord, StoreError> {
    let row = api_key_row(conn, id_or_name).await?;
    let record = row.clone().into_record()?;
    let user = patch.user.clone().unwrap_or(record.user);
    check_user(record.key_type, user.as_deref())?;
    let config = patch.config.clone().unwrap_or(record.config);
    if let Some(id) = &config {
        require_config(conn, id).await?;
    }
    let allowed_models = patch
        .allowed_models
        .clone()
        .unwrap_or(record.allowed_models)
        .map(|m| rows::to_json("keys", &m))
        .transpose()?;
    let log_payloads = patch.log_payloads.unwrap_or(record.log_payloads);
    let expires_at = patch.expires_at_ms.unwrap_or(record.expires_at_ms);
    sqlx::query(
        "UPDATE keys SET user_id = $1, config_id = $2, allowed_models = $3, log_payloads = $4, \
         expires_at = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&user)
    .bind(&config)
    .bind(allowed_models)
    .bind(i64::from(log_payloads))
    .bind(expires_at)
    .bind(now)
    .bind(&row.id)
    .execute(&mut *conn)
    .await?;
    if patch.budget.is_some() || patch.rate_limit.is_some() {
        let mut limits = super::limits::key_limits(conn, &row.id).await?;
        if let Some(budget) = patch.budget {
            limits.budget = budget;
        }
        if let Some(rate_limit) = patch.rate_limit {
            limits.rate_limit = rate_limit;
        }
        super::limits::set_key_limits(conn, &row.id, &limits).await?;
    }
    get_key(conn, &row.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("key `{}` vanished", row.name)))
}

/// Revokes the key; also answers whether that changed anything (a revoked key stays as it
/// was revoked).
pub(super) async fn revoke_key(
    conn: &mut AnyConnection,
    id_or_name: &str,
    now: i64,
) -> Result<(KeyRecord, bool), StoreError> {
    let row = api_key_row(conn, id_or_name).await?;
    let changed = row.revoked_at.is_none();
    if changed {
        sqlx::query("UPDATE keys SET revoked_at = $1, updated_at = $2 WHERE id = $3")
            .bind(now)
            .bind(now)
            .bind(&row.id)
            .execute(&mut *conn)
            .await?;
    }
    let record = get_key(conn, &row.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("key `{}` vanished", row.name)))?;
    Ok((record, changed))
}

pub(super) async fn rotate_key(
    conn: &mut AnyConnection,
    id_or_name: &str,
    hash: &KeyHash,
    hint: &str,
    now: i64,
) -> Result<KeyRecord, StoreError> {
    let row = api_key_row(conn, id_or_name).await?;
    if row.revoked_at.is_some() {
        return Err(StoreError::Conflict(format!(
            "key `{}` is revoked, and a revoked key stays revoked; create a new key instead",
            row.name
        )));
    }
    sqlx::query("UPDATE keys SET key_hash = $1, hint = $2, updated_at = $3 WHERE id = $4")
        .bind(hash.to_hex())
        .bind(hint)
        .bind(now)
        .bind(&row.id)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || {
                format!(
                    "key `{}`: the new secret is already another key's",
                    row.name
                )
            })
        })?;
    get_key(conn, &row.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("key `{}` vanished", row.name)))
}

async fn config_row(conn: &mut AnyConnection, id: &str) -> Result<Option<ConfigRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, config, source, created_at, updated_at FROM configs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn get_config(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ConfigRecord>, StoreError> {
    config_row(conn, id)
        .await?
        .map(ConfigRow::into_record)
        .transpose()
}

/// Validates a config and the providers it names against the catalog.
async fn check_new_config(
    conn: &mut AnyConnection,
    id: &str,
    config: &serde_json::Value,
) -> Result<String, StoreError> {
    let parsed = validate_config(id, config)?;
    check_providers(id, &parsed, &rows::load_slugs(conn).await?)?;
    rows::to_json("configs", config)
}

pub(super) async fn create_config(
    conn: &mut AnyConnection,
    id: &str,
    config: &serde_json::Value,
    now: i64,
) -> Result<ConfigRecord, StoreError> {
    let text = check_new_config(conn, id, config).await?;
    if config_row(conn, id).await?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a config `{id}` already exists; choose another id, or replace it with PUT"
        )));
    }
    sqlx::query(
        "INSERT INTO configs (id, config, source, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(&text)
    .bind(RecordSource::Api.as_str())
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    get_config(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("config `{id}` vanished")))
}

pub(super) async fn replace_config(
    conn: &mut AnyConnection,
    id: &str,
    config: &serde_json::Value,
    now: i64,
) -> Result<ConfigRecord, StoreError> {
    let Some(row) = config_row(conn, id).await? else {
        return Err(StoreError::NotFound(format!("no config `{id}`")));
    };
    if row.source != RecordSource::Api.as_str() {
        return Err(not_api(&format!("config `{id}`"), &row.source));
    }
    let text = check_new_config(conn, id, config).await?;
    sqlx::query("UPDATE configs SET config = $1, updated_at = $2 WHERE id = $3")
        .bind(&text)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    get_config(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("config `{id}` vanished")))
}

pub(super) async fn delete_config(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    let Some(row) = config_row(conn, id).await? else {
        return Err(StoreError::NotFound(format!("no config `{id}`")));
    };
    if row.source != RecordSource::Api.as_str() {
        return Err(not_api(&format!("config `{id}`"), &row.source));
    }
    delete_config_row(conn, id, false).await
}
