//! [`SnapshotDocument`]: everything a gateway needs to route, as the control plane answers
//! it on `GET /gateway/v1/snapshot` and the gateway keeps it (encrypted) in its data dir.
//!
//! The document is JSON with the store's records in it, secrets included (the gateway calls
//! the providers itself), so it is only ever sent over the authenticated gateway endpoint,
//! signed ([`crate::signing`]) and encrypted at rest ([`crate::at_rest`]). Field names follow
//! the catalog file and the admin API. Unknown fields are ignored, so a newer control plane
//! can add some without breaking older gateways; `format` changes when a change would.
//!
//! Keys of type `gateway` are left out: they are refused on every data plane anyway (a
//! gateway answers them 401 instead of 403), and their hashes are what signatures are keyed
//! with, which a gateway's copy of the document should not carry.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use portico_core::{KeyHash, Limits, NamedBudget, Period, ProviderKind, Secret, Subject};
use portico_store::{
    BudgetRecord, ConfigRecord, GuardrailRecord, KeyRecord, KeyType, ModelRecord, ProviderRecord,
    RecordSource, RecordTimes, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The document format this version writes and reads.
pub const FORMAT: u32 = 1;

/// A catalog snapshot for gateways; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDocument {
    /// [`FORMAT`].
    pub format: u32,
    /// The control plane's catalog version the records were read at (they may be newer:
    /// the version is read first, so a write in between makes the next poll answer again).
    pub version: i64,
    /// When the control plane made the document, RFC 3339 UTC.
    pub created_at: String,
    /// The same, Unix milliseconds.
    pub created_at_ms: i64,
    /// The name of the gateway key it was made for.
    pub gateway: String,
    /// Providers with their models and secrets, by slug.
    pub providers: Vec<ProviderDoc>,
    /// Keys (hashes, never secrets), revoked ones included; no keys of type `gateway`.
    pub keys: Vec<KeyDoc>,
    /// Routing configs, by id.
    pub configs: Vec<ConfigDoc>,
    /// Named guardrails, by id.
    pub guardrails: Vec<GuardrailDoc>,
    /// Named budgets (`budgets:`), by name.
    pub budgets: Vec<BudgetDoc>,
    /// The control plane's spend per budgeted subject, gateways' delivered spend included.
    pub spend: Vec<SpendDoc>,
    /// The control plane's clock when it started reading `spend`, Unix ms: a spend batch it
    /// applied before this instant is in `spend` (see `crate::spend`).
    pub spend_at_ms: i64,
}

/// A provider as the document carries it: a [`ProviderRecord`] with its secrets in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderDoc {
    /// Addressed as `@slug`.
    pub slug: String,
    /// The catalog file's kind name (`openai`, `anthropic`, ...).
    pub kind: String,
    /// Base URL override.
    pub base_url: Option<String>,
    /// The provider's API key.
    pub api_key: Option<String>,
    /// Kind-specific settings.
    pub settings: serde_json::Value,
    /// Kind-specific secrets.
    pub credentials: BTreeMap<String, String>,
    /// The model allow-list.
    pub models: Option<Vec<ModelRecord>>,
    /// Where the record came from on the control plane.
    pub source: RecordSource,
    /// Budget and rate limit.
    pub limits: Limits,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// A key as the document carries it: its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyDoc {
    /// Stable id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `admin`, `service` or `user`.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// The end user of a user key.
    pub user: Option<String>,
    /// SHA-256 of the secret, lowercase hex.
    pub hash: String,
    /// The hint shown in listings.
    pub hint: String,
    /// `@slug` / `@slug/model` patterns.
    pub allowed_models: Option<Vec<String>>,
    /// Whether payloads are logged.
    pub log_payloads: bool,
    /// The attached routing config.
    pub config: Option<String>,
    /// Where the key came from.
    pub source: RecordSource,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Revocation, Unix ms.
    pub revoked_at_ms: Option<i64>,
    /// Expiry, Unix ms.
    pub expires_at_ms: Option<i64>,
    /// Budget and rate limit.
    pub limits: Limits,
}

/// A routing config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigDoc {
    /// Unique id.
    pub id: String,
    /// The config JSON.
    pub config: serde_json::Value,
    /// Where it came from.
    pub source: RecordSource,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// A named guardrail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardrailDoc {
    /// Unique id.
    pub id: String,
    /// Portkey's guardrail JSON.
    pub guardrail: serde_json::Value,
    /// Where it came from.
    pub source: RecordSource,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// A named budget of the `budgets:` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetDoc {
    /// Unique name.
    pub name: String,
    /// Metadata key (without `metadata.`) → the value it must have.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// Budget and rate limit.
    pub limits: Limits,
    /// Where it came from.
    pub source: RecordSource,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
}

/// One subject's spend in one budget period, on the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendDoc {
    /// `key:backend-service`, `provider:…`, `user:…`, `budget:…`.
    pub subject: String,
    /// The budget's period.
    pub period: Period,
    /// The start of the period the spend is counted in, Unix ms.
    pub period_start_ms: i64,
    /// USD charged in it.
    pub cost_usd: f64,
    /// Tokens charged in it.
    pub tokens: u64,
}

/// Why a document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON of this shape.
    #[error("the snapshot is not a snapshot document: {0}")]
    Json(#[from] serde_json::Error),
    /// Written in a format this version does not read.
    #[error(
        "the snapshot is in format {found}, this gateway reads format {FORMAT}: run the same Portico version on the control plane and its gateways"
    )]
    Format {
        /// The document's format.
        found: u32,
    },
    /// A record in it is not valid.
    #[error("the snapshot's {what} is not valid: {detail}")]
    Record {
        /// Which record (`provider @x`, `key y`).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// The records of a document, as the [`Store`] trait answers them.
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Providers, by slug.
    pub providers: Vec<ProviderRecord>,
    /// When each provider was created and changed.
    pub provider_times: BTreeMap<String, RecordTimes>,
    /// Keys, by name.
    pub keys: Vec<KeyRecord>,
    /// Configs, by id.
    pub configs: Vec<ConfigRecord>,
    /// Guardrails, by id.
    pub guardrails: Vec<GuardrailRecord>,
    /// Budgets, by name.
    pub budgets: Vec<BudgetRecord>,
}

impl SnapshotDocument {
    /// Reads the catalog from `store` into a document for the gateway key `gateway`, with
    /// the control plane's `spend` (read from `spend_at_ms` on).
    pub async fn read(
        store: &dyn Store,
        version: i64,
        now_ms: i64,
        gateway: &str,
        spend: Vec<SpendDoc>,
        spend_at_ms: i64,
    ) -> Result<SnapshotDocument, StoreError> {
        let times = store.provider_times().await?;
        let providers = store
            .list_providers()
            .await?
            .iter()
            .map(|p| ProviderDoc::of(p, times.get(&p.slug)))
            .collect();
        let keys = store
            .list_keys()
            .await?
            .iter()
            .filter(|k| k.key_type != KeyType::Gateway)
            .map(KeyDoc::of)
            .collect();
        let configs = store
            .list_configs()
            .await?
            .into_iter()
            .map(|c| ConfigDoc {
                id: c.id,
                config: c.config,
                source: c.source,
                created_at_ms: c.created_at_ms,
                updated_at_ms: c.updated_at_ms,
            })
            .collect();
        let guardrails = store
            .list_guardrails()
            .await?
            .into_iter()
            .map(|g| GuardrailDoc {
                id: g.id,
                guardrail: g.guardrail,
                source: g.source,
                created_at_ms: g.created_at_ms,
                updated_at_ms: g.updated_at_ms,
            })
            .collect();
        let budgets = store
            .list_budgets()
            .await?
            .into_iter()
            .map(|b| BudgetDoc {
                name: b.budget.name,
                matches: b.budget.matches,
                limits: b.budget.limits,
                source: b.source,
                created_at_ms: b.created_at_ms,
                updated_at_ms: b.updated_at_ms,
            })
            .collect();
        Ok(SnapshotDocument {
            format: FORMAT,
            version,
            created_at: portico_core::rfc3339_utc(now_ms),
            created_at_ms: now_ms,
            gateway: gateway.to_owned(),
            providers,
            keys,
            configs,
            guardrails,
            budgets,
            spend,
            spend_at_ms,
        })
    }

    /// Parses a document, refusing a format this version does not read.
    pub fn parse(body: &[u8]) -> Result<SnapshotDocument, DocumentError> {
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(body)?;
        if head.format != FORMAT {
            return Err(DocumentError::Format { found: head.format });
        }
        Ok(serde_json::from_slice(body)?)
    }

    /// The document's records, checked.
    pub fn records(&self) -> Result<Records, DocumentError> {
        let mut records = Records::default();
        for p in &self.providers {
            records.provider_times.insert(
                p.slug.clone(),
                RecordTimes {
                    created_at_ms: p.created_at_ms,
                    updated_at_ms: p.updated_at_ms,
                },
            );
            records.providers.push(p.record()?);
        }
        for k in &self.keys {
            records.keys.push(k.record()?);
        }
        records.configs = self
            .configs
            .iter()
            .map(|c| ConfigRecord {
                id: c.id.clone(),
                config: c.config.clone(),
                source: c.source,
                created_at_ms: c.created_at_ms,
                updated_at_ms: c.updated_at_ms,
            })
            .collect();
        records.guardrails = self
            .guardrails
            .iter()
            .map(|g| GuardrailRecord {
                id: g.id.clone(),
                guardrail: g.guardrail.clone(),
                source: g.source,
                created_at_ms: g.created_at_ms,
                updated_at_ms: g.updated_at_ms,
            })
            .collect();
        records.budgets = self
            .budgets
            .iter()
            .map(|b| BudgetRecord {
                budget: NamedBudget {
                    name: b.name.clone(),
                    matches: b.matches.clone(),
                    limits: b.limits,
                },
                source: b.source,
                created_at_ms: b.created_at_ms,
                updated_at_ms: b.updated_at_ms,
            })
            .collect();
        Ok(records)
    }

    /// A digest of [`SnapshotDocument::spend`]: what the gateway sends back as `spend=` so
    /// that the control plane answers a fresh snapshot when its spend has moved on.
    pub fn spend_fingerprint(&self) -> String {
        spend_fingerprint(&self.spend)
    }
}

/// A digest of spend entries, independent of their order.
pub fn spend_fingerprint(spend: &[SpendDoc]) -> String {
    let mut lines: Vec<String> = spend
        .iter()
        .map(|s| {
            format!(
                "{}|{}|{}|{}|{}",
                s.subject,
                s.period.as_str(),
                s.period_start_ms,
                s.cost_usd.to_bits(),
                s.tokens
            )
        })
        .collect();
    lines.sort();
    let digest = Sha256::digest(lines.join("\n").as_bytes());
    hex::encode(&digest[..12])
}

impl ProviderDoc {
    fn of(p: &ProviderRecord, times: Option<&RecordTimes>) -> ProviderDoc {
        ProviderDoc {
            slug: p.slug.clone(),
            kind: p.kind.as_str().to_owned(),
            base_url: p.base_url.clone(),
            api_key: p.api_key.as_ref().map(|s| s.expose().to_owned()),
            settings: p.settings.clone(),
            credentials: p
                .credentials
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                .collect(),
            models: p.models.clone(),
            source: p.source,
            limits: p.limits,
            created_at_ms: times.map_or(0, |t| t.created_at_ms),
            updated_at_ms: times.map_or(0, |t| t.updated_at_ms),
        }
    }

    fn record(&self) -> Result<ProviderRecord, DocumentError> {
        let kind = ProviderKind::from_str(&self.kind).map_err(|e| DocumentError::Record {
            what: format!("provider @{}", self.slug),
            detail: e.to_string(),
        })?;
        Ok(ProviderRecord {
            slug: self.slug.clone(),
            kind,
            base_url: self.base_url.clone(),
            api_key: self.api_key.clone().map(Secret::new),
            settings: self.settings.clone(),
            credentials: self
                .credentials
                .iter()
                .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                .collect(),
            models: self.models.clone(),
            source: self.source,
            limits: self.limits,
        })
    }
}

impl KeyDoc {
    fn of(k: &KeyRecord) -> KeyDoc {
        KeyDoc {
            id: k.id.clone(),
            name: k.name.clone(),
            key_type: k.key_type,
            user: k.user.clone(),
            hash: k.hash.to_hex(),
            hint: k.hint.clone(),
            allowed_models: k.allowed_models.clone(),
            log_payloads: k.log_payloads,
            config: k.config.clone(),
            source: k.source,
            created_at_ms: k.created_at_ms,
            revoked_at_ms: k.revoked_at_ms,
            expires_at_ms: k.expires_at_ms,
            limits: k.limits,
        }
    }

    fn record(&self) -> Result<KeyRecord, DocumentError> {
        let hash = KeyHash::from_hex(&self.hash).ok_or_else(|| DocumentError::Record {
            what: format!("key {}", self.name),
            detail: "its hash is not 64 hex digits".to_owned(),
        })?;
        Ok(KeyRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            key_type: self.key_type,
            user: self.user.clone(),
            hash,
            hint: self.hint.clone(),
            allowed_models: self.allowed_models.clone(),
            log_payloads: self.log_payloads,
            config: self.config.clone(),
            source: self.source,
            created_at_ms: self.created_at_ms,
            revoked_at_ms: self.revoked_at_ms,
            expires_at_ms: self.expires_at_ms,
            limits: self.limits,
        })
    }
}

impl SpendDoc {
    /// The subject, if its name is one ([`Subject::parse`]).
    pub fn subject(&self) -> Option<Subject> {
        Subject::parse(&self.subject)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small document with one provider (with a secret), a key, a config and spend.
    pub(crate) fn sample(version: i64) -> SnapshotDocument {
        SnapshotDocument {
            format: FORMAT,
            version,
            created_at: portico_core::rfc3339_utc(1_000),
            created_at_ms: 1_000,
            gateway: "edge-1".to_owned(),
            providers: vec![ProviderDoc {
                slug: "oa".to_owned(),
                kind: "openai".to_owned(),
                base_url: Some("http://127.0.0.1:9/v1".to_owned()),
                api_key: Some("sk-secret-provider-key".to_owned()),
                settings: serde_json::json!({}),
                credentials: BTreeMap::new(),
                models: None,
                source: RecordSource::Api,
                limits: Limits::default(),
                created_at_ms: 1,
                updated_at_ms: 2,
            }],
            keys: vec![KeyDoc {
                id: "k1".to_owned(),
                name: "service".to_owned(),
                key_type: KeyType::Service,
                user: None,
                hash: KeyHash::of("prt-service").to_hex(),
                hint: "…vice".to_owned(),
                allowed_models: None,
                log_payloads: true,
                config: Some("retry".to_owned()),
                source: RecordSource::File,
                created_at_ms: 1,
                revoked_at_ms: None,
                expires_at_ms: None,
                limits: Limits::default(),
            }],
            configs: vec![ConfigDoc {
                id: "retry".to_owned(),
                config: serde_json::json!({"retry": {"attempts": 1}}),
                source: RecordSource::Api,
                created_at_ms: 1,
                updated_at_ms: 1,
            }],
            guardrails: Vec::new(),
            budgets: vec![BudgetDoc {
                name: "team".to_owned(),
                matches: [("team".to_owned(), "a".to_owned())].into(),
                limits: Limits::default(),
                source: RecordSource::Api,
                created_at_ms: 1,
                updated_at_ms: 1,
            }],
            spend: vec![SpendDoc {
                subject: "key:service".to_owned(),
                period: Period::Month,
                period_start_ms: 0,
                cost_usd: 0.5,
                tokens: 10,
            }],
            spend_at_ms: 1_000,
        }
    }

    #[test]
    fn a_document_round_trips_and_yields_store_records() {
        let doc = sample(3);
        let body = serde_json::to_vec(&doc).unwrap();
        let back = SnapshotDocument::parse(&body).unwrap();
        assert_eq!(back, doc);
        let records = back.records().unwrap();
        assert_eq!(records.providers[0].kind, ProviderKind::OpenAi);
        assert_eq!(
            records.providers[0].api_key.as_ref().unwrap().expose(),
            "sk-secret-provider-key"
        );
        assert_eq!(records.keys[0].hash, KeyHash::of("prt-service"));
        assert_eq!(records.budgets[0].budget.matches["team"], "a");
        assert_eq!(records.provider_times["oa"].updated_at_ms, 2);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["keys"][0]["type"], "service");
        assert_eq!(json["budgets"][0]["match"]["team"], "a");
    }

    #[test]
    fn other_formats_and_bad_records_are_refused_saying_why() {
        let mut json = serde_json::to_value(sample(1)).unwrap();
        json["format"] = 2.into();
        let err = SnapshotDocument::parse(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("format 2"), "{err}");
        let mut doc = sample(1);
        doc.providers[0].kind = "carrier-pigeon".to_owned();
        let err = doc.records().unwrap_err();
        assert!(err.to_string().contains("provider @oa"), "{err}");
        let mut doc = sample(1);
        doc.keys[0].hash = "zz".to_owned();
        assert!(
            doc.records()
                .unwrap_err()
                .to_string()
                .contains("key service")
        );
    }

    #[test]
    fn the_spend_fingerprint_ignores_order_and_sees_every_change() {
        let mut doc = sample(1);
        doc.spend.push(SpendDoc {
            subject: "provider:oa".to_owned(),
            period: Period::Day,
            period_start_ms: 0,
            cost_usd: 1.0,
            tokens: 1,
        });
        let before = doc.spend_fingerprint();
        doc.spend.reverse();
        assert_eq!(doc.spend_fingerprint(), before);
        doc.spend[0].tokens += 1;
        assert_ne!(doc.spend_fingerprint(), before);
    }
}
