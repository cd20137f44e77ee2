//! Rows as stored, and their decoding into the public records.
//!
//! Every stored string that names an enum (kind, source, key type) or holds JSON is parsed here;
//! a value this version cannot read gives [`StoreError::Corrupt`] naming the table.

use std::collections::{BTreeMap, HashMap};

use portico_core::{KeyHash, ProviderKind, Secret};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;

use crate::{
    ConfigRecord, KeyRecord, KeyType, MasterKey, ModelRecord, Pricing, ProviderRecord,
    RecordSource, StoreError,
};

/// A `providers` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ProviderRow {
    pub(super) slug: String,
    pub(super) kind: String,
    pub(super) base_url: Option<String>,
    pub(super) api_key_enc: Option<Vec<u8>>,
    pub(super) credentials_enc: Option<Vec<u8>>,
    pub(super) settings: String,
    pub(super) has_models: i64,
    pub(super) source: String,
    pub(super) limits: Option<String>,
}

/// A `models` row, without its provider and position (implied by where it is kept).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct ModelRow {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) pricing: Option<String>,
}

/// A `keys` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct KeyRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) key_type: String,
    pub(super) user_id: Option<String>,
    pub(super) key_hash: String,
    pub(super) hint: String,
    pub(super) allowed_models: Option<String>,
    pub(super) log_payloads: i64,
    pub(super) config_id: Option<String>,
    pub(super) source: String,
    pub(super) created_at: i64,
    pub(super) revoked_at: Option<i64>,
    pub(super) expires_at: Option<i64>,
}

/// A `configs` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ConfigRow {
    pub(super) id: String,
    pub(super) config: String,
    pub(super) source: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

/// The columns of [`KeyRow`], for queries that select keys.
pub(super) const KEY_COLUMNS: &str = "id, name, key_type, user_id, key_hash, hint, \
    allowed_models, log_payloads, config_id, source, created_at, revoked_at, expires_at";

/// Every provider, ordered by slug.
pub(super) async fn load_providers(
    conn: &mut AnyConnection,
) -> Result<Vec<ProviderRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT slug, kind, base_url, api_key_enc, credentials_enc, settings, has_models, \
         source, limits FROM providers ORDER BY slug",
    )
    .fetch_all(conn)
    .await?)
}

/// Every model, grouped by provider slug, each list in catalog order.
pub(super) async fn load_models(
    conn: &mut AnyConnection,
) -> Result<HashMap<String, Vec<ModelRow>>, StoreError> {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT provider_slug, id, name, pricing FROM models ORDER BY provider_slug, position",
    )
    .fetch_all(conn)
    .await?;
    let mut by_slug: HashMap<String, Vec<ModelRow>> = HashMap::new();
    for (slug, id, name, pricing) in rows {
        by_slug
            .entry(slug)
            .or_default()
            .push(ModelRow { id, name, pricing });
    }
    Ok(by_slug)
}

/// Every key, ordered by name.
pub(super) async fn load_keys(conn: &mut AnyConnection) -> Result<Vec<KeyRow>, StoreError> {
    Ok(
        sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY name"))
            .fetch_all(conn)
            .await?,
    )
}

/// Every config, ordered by id.
pub(super) async fn load_configs(conn: &mut AnyConnection) -> Result<Vec<ConfigRow>, StoreError> {
    Ok(
        sqlx::query_as(
            "SELECT id, config, source, created_at, updated_at FROM configs ORDER BY id",
        )
        .fetch_all(conn)
        .await?,
    )
}

/// Every provider slug.
pub(super) async fn load_slugs(
    conn: &mut AnyConnection,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM providers")
        .fetch_all(conn)
        .await?;
    Ok(slugs.into_iter().collect())
}

impl ConfigRow {
    /// The public record.
    pub(super) fn into_record(self) -> Result<ConfigRecord, StoreError> {
        Ok(ConfigRecord {
            config: from_json("configs", &self.config)?,
            source: parse_source("configs", &self.source)?,
            id: self.id,
            created_at_ms: self.created_at,
            updated_at_ms: self.updated_at,
        })
    }
}

impl ProviderRow {
    /// The stored API key, decrypted.
    pub(super) fn api_key(&self, master: &MasterKey) -> Result<Option<String>, StoreError> {
        let Some(blob) = &self.api_key_enc else {
            return Ok(None);
        };
        let plain = master.decrypt_for("providers", blob)?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                table: "providers",
                detail: format!("the API key of `{}` is not UTF-8", self.slug),
            })
    }

    /// The stored credentials, decrypted: name → secret, empty when there are none.
    pub(super) fn credentials(
        &self,
        master: &MasterKey,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let Some(blob) = &self.credentials_enc else {
            return Ok(BTreeMap::new());
        };
        let plain = master.decrypt_for("providers", blob)?;
        // The JSON error would quote the decrypted text, so it is not passed on.
        serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt {
            table: "providers",
            detail: format!(
                "the credentials of `{}` are not a JSON object of strings",
                self.slug
            ),
        })
    }

    /// The record, with `models` the rows listed for this provider (if any).
    pub(super) fn into_record(
        self,
        master: &MasterKey,
        models: Option<Vec<ModelRow>>,
    ) -> Result<ProviderRecord, StoreError> {
        let api_key = self.api_key(master)?.map(Secret::new);
        let credentials = self
            .credentials(master)?
            .into_iter()
            .map(|(name, value)| (name, Secret::new(value)))
            .collect();
        let kind = self
            .kind
            .parse::<ProviderKind>()
            .map_err(|e| corrupt("providers", format!("provider `{}`: {e}", self.slug)))?;
        let source = parse_source("providers", &self.source)?;
        let settings = from_json("providers", &self.settings)?;
        let limits = super::limits::limits_of("providers", self.limits.as_deref())?;
        let models = if self.has_models != 0 {
            let rows = models.unwrap_or_default();
            Some(
                rows.into_iter()
                    .map(ModelRow::into_record)
                    .collect::<Result<Vec<_>, _>>()?,
            )
        } else {
            None
        };
        Ok(ProviderRecord {
            slug: self.slug,
            kind,
            base_url: self.base_url,
            api_key,
            settings,
            credentials,
            models,
            source,
            limits,
        })
    }
}

impl ModelRow {
    /// The row a catalog model is stored as.
    pub(super) fn from_record(model: &ModelRecord) -> Result<ModelRow, StoreError> {
        Ok(ModelRow {
            id: model.id.clone(),
            name: model.name.clone(),
            pricing: model
                .pricing
                .as_ref()
                .map(|p| to_json("models", p))
                .transpose()?,
        })
    }

    fn into_record(self) -> Result<ModelRecord, StoreError> {
        let pricing = match &self.pricing {
            Some(text) => Some(from_json::<Pricing>("models", text)?),
            None => None,
        };
        Ok(ModelRecord {
            id: self.id,
            name: self.name,
            pricing,
        })
    }
}

impl KeyRow {
    /// The public record.
    pub(super) fn into_record(self) -> Result<KeyRecord, StoreError> {
        let hash = KeyHash::from_hex(&self.key_hash)
            .ok_or_else(|| corrupt("keys", format!("key `{}`: malformed hash", self.name)))?;
        let allowed_models = match &self.allowed_models {
            Some(text) => Some(from_json("keys", text)?),
            None => None,
        };
        Ok(KeyRecord {
            key_type: parse_key_type(&self.key_type)?,
            source: parse_source("keys", &self.source)?,
            id: self.id,
            name: self.name,
            user: self.user_id,
            hash,
            hint: self.hint,
            allowed_models,
            log_payloads: self.log_payloads != 0,
            config: self.config_id,
            created_at_ms: self.created_at,
            revoked_at_ms: self.revoked_at,
            expires_at_ms: self.expires_at,
            // Kept in `key_limits`; the queries that answer keys fill them in.
            limits: portico_core::Limits::default(),
        })
    }
}

pub(super) fn parse_source(table: &'static str, s: &str) -> Result<RecordSource, StoreError> {
    [
        RecordSource::File,
        RecordSource::Env,
        RecordSource::Default,
        RecordSource::Api,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
    .ok_or_else(|| corrupt(table, format!("unknown source `{s}`")))
}

fn parse_key_type(s: &str) -> Result<KeyType, StoreError> {
    KeyType::parse(s).ok_or_else(|| corrupt("keys", format!("unknown key type `{s}`")))
}

/// Serializes a value kept as JSON text.
pub(super) fn to_json<T: Serialize + ?Sized>(
    table: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt(table, format!("cannot encode JSON: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(table, format!("malformed JSON: {e}")))
}

fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}
