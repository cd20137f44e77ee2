//! [`SnapshotStore`]: the [`Store`] a gateway's engine reads its catalog from, answered from
//! the control plane's last snapshot.
//!
//! The engine builds its request-path snapshot with `Snapshot::load(&store, ..)` and
//! `Gateway::reload(&store)`; implementing the trait here lets it do so unchanged. Reads
//! answer from the records of the snapshot in force (none before the first one); writes
//! are refused with [`StoreError::Conflict`], since the catalog of a gateway is the control
//! plane's.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use portico_core::{KeyHash, NamedBudget};
use portico_store::{
    ApplyOptions, ApplyReport, BudgetRecord, CatalogApply, ConfigRecord, GuardrailRecord, KeyPatch,
    KeyRecord, KeyType, NewKey, ProviderRecord, RecordTimes, Store, StoreError,
};

use crate::document::Records;

/// The catalog of the snapshot in force, behind the [`Store`] trait.
#[derive(Debug)]
pub struct SnapshotStore {
    records: ArcSwap<Records>,
    /// The catalog version of the records, `None` before the first snapshot.
    version: ArcSwap<Option<i64>>,
    /// The control plane's address, for the refusal of writes.
    control_plane: String,
}

impl SnapshotStore {
    /// An empty store for a gateway of the control plane at `control_plane`.
    pub fn new(control_plane: impl Into<String>) -> SnapshotStore {
        SnapshotStore {
            records: ArcSwap::from_pointee(Records::default()),
            version: ArcSwap::from_pointee(None),
            control_plane: control_plane.into(),
        }
    }

    /// Puts the records of catalog `version` in force; answers the ones they replace.
    pub fn replace(&self, records: Records, version: i64) -> (Arc<Records>, Option<i64>) {
        let old = self.records.swap(Arc::new(records));
        let old_version = *self.version.swap(Arc::new(Some(version)));
        (old, old_version)
    }

    /// Puts back what [`SnapshotStore::replace`] answered (a snapshot the engine refused).
    pub fn restore(&self, records: Arc<Records>, version: Option<i64>) {
        self.records.store(records);
        self.version.store(Arc::new(version));
    }

    /// The catalog version in force, `None` before the first snapshot.
    pub fn version(&self) -> Option<i64> {
        **self.version.load()
    }

    fn read(&self) -> Arc<Records> {
        self.records.load_full()
    }

    fn managed(&self) -> StoreError {
        StoreError::Conflict(format!(
            "this gateway is managed by its control plane at {}: change the catalog there; it reaches the gateway within seconds",
            self.control_plane
        ))
    }
}

#[async_trait]
impl Store for SnapshotStore {
    /// The snapshot's version (the control plane's catalog version); 0 before the first.
    async fn catalog_version(&self) -> Result<i64, StoreError> {
        Ok(self.version().unwrap_or(0))
    }

    async fn apply_catalog_with(
        &self,
        _apply: &CatalogApply,
        _options: ApplyOptions,
    ) -> Result<ApplyReport, StoreError> {
        Err(self.managed())
    }

    async fn list_providers(&self) -> Result<Vec<ProviderRecord>, StoreError> {
        Ok(self.read().providers.clone())
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.read().keys.clone())
    }

    async fn ensure_admin_key(
        &self,
        _hash: KeyHash,
        _hint: &str,
        _replace: bool,
    ) -> Result<bool, StoreError> {
        Err(self.managed())
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        Ok(self
            .read()
            .keys
            .iter()
            .any(|k| k.key_type == KeyType::Admin && k.revoked_at_ms.is_none()))
    }

    async fn provider_times(&self) -> Result<BTreeMap<String, RecordTimes>, StoreError> {
        Ok(self.read().provider_times.clone())
    }

    async fn list_configs(&self) -> Result<Vec<ConfigRecord>, StoreError> {
        Ok(self.read().configs.clone())
    }

    async fn get_provider(&self, slug: &str) -> Result<Option<ProviderRecord>, StoreError> {
        Ok(self
            .read()
            .providers
            .iter()
            .find(|p| p.slug == slug)
            .cloned())
    }

    async fn create_provider(&self, _provider: &ProviderRecord) -> Result<(), StoreError> {
        Err(self.managed())
    }

    async fn replace_provider(&self, _provider: &ProviderRecord) -> Result<(), StoreError> {
        Err(self.managed())
    }

    async fn delete_provider(&self, _slug: &str) -> Result<(), StoreError> {
        Err(self.managed())
    }

    async fn create_key(&self, _key: &NewKey) -> Result<KeyRecord, StoreError> {
        Err(self.managed())
    }

    async fn get_key(&self, id_or_name: &str) -> Result<Option<KeyRecord>, StoreError> {
        let records = self.read();
        Ok(records
            .keys
            .iter()
            .find(|k| k.id == id_or_name)
            .or_else(|| records.keys.iter().find(|k| k.name == id_or_name))
            .cloned())
    }

    async fn update_key(
        &self,
        _id_or_name: &str,
        _patch: &KeyPatch,
    ) -> Result<KeyRecord, StoreError> {
        Err(self.managed())
    }

    async fn revoke_key(&self, _id_or_name: &str) -> Result<KeyRecord, StoreError> {
        Err(self.managed())
    }

    async fn rotate_key(
        &self,
        _id_or_name: &str,
        _hash: KeyHash,
        _hint: &str,
    ) -> Result<KeyRecord, StoreError> {
        Err(self.managed())
    }

    async fn get_config(&self, id: &str) -> Result<Option<ConfigRecord>, StoreError> {
        Ok(self.read().configs.iter().find(|c| c.id == id).cloned())
    }

    async fn create_config(
        &self,
        _id: &str,
        _config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError> {
        Err(self.managed())
    }

    async fn replace_config(
        &self,
        _id: &str,
        _config: &serde_json::Value,
    ) -> Result<ConfigRecord, StoreError> {
        Err(self.managed())
    }

    async fn delete_config(&self, _id: &str) -> Result<(), StoreError> {
        Err(self.managed())
    }

    async fn list_guardrails(&self) -> Result<Vec<GuardrailRecord>, StoreError> {
        Ok(self.read().guardrails.clone())
    }

    async fn get_guardrail(&self, id: &str) -> Result<Option<GuardrailRecord>, StoreError> {
        Ok(self.read().guardrails.iter().find(|g| g.id == id).cloned())
    }

    async fn create_guardrail(
        &self,
        _id: &str,
        _guardrail: &serde_json::Value,
    ) -> Result<GuardrailRecord, StoreError> {
        Err(self.managed())
    }

    async fn replace_guardrail(
        &self,
        _id: &str,
        _guardrail: &serde_json::Value,
    ) -> Result<GuardrailRecord, StoreError> {
        Err(self.managed())
    }

    async fn delete_guardrail(&self, _id: &str) -> Result<(), StoreError> {
        Err(self.managed())
    }

    async fn list_budgets(&self) -> Result<Vec<BudgetRecord>, StoreError> {
        Ok(self.read().budgets.clone())
    }

    async fn get_budget(&self, name: &str) -> Result<Option<BudgetRecord>, StoreError> {
        Ok(self
            .read()
            .budgets
            .iter()
            .find(|b| b.budget.name == name)
            .cloned())
    }

    async fn create_budget(&self, _budget: &NamedBudget) -> Result<BudgetRecord, StoreError> {
        Err(self.managed())
    }

    async fn replace_budget(&self, _budget: &NamedBudget) -> Result<BudgetRecord, StoreError> {
        Err(self.managed())
    }

    async fn delete_budget(&self, _name: &str) -> Result<(), StoreError> {
        Err(self.managed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::tests::sample;

    #[tokio::test]
    async fn reads_answer_from_the_snapshot_and_writes_are_refused() {
        let store = SnapshotStore::new("http://cp:8787");
        assert!(store.list_providers().await.unwrap().is_empty());
        assert_eq!(store.version(), None);
        store.replace(sample(4).records().unwrap(), 4);
        assert_eq!(store.version(), Some(4));
        assert_eq!(store.list_providers().await.unwrap()[0].slug, "oa");
        assert_eq!(store.get_key("service").await.unwrap().unwrap().id, "k1");
        assert_eq!(store.get_key("k1").await.unwrap().unwrap().name, "service");
        assert!(store.get_config("retry").await.unwrap().is_some());
        assert!(store.get_budget("team").await.unwrap().is_some());
        assert!(!store.has_admin_key().await.unwrap());
        let err = store.delete_config("retry").await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert!(
            err.to_string()
                .contains("managed by its control plane at http://cp:8787"),
            "{err}"
        );
        assert!(store.apply_catalog(&CatalogApply::default()).await.is_err());
    }
}
