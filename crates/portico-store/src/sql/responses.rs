//! [`ResponseStore`]: the responses the gateway keeps for the Responses API, one row each,
//! written in batches off the request path.

use async_trait::async_trait;

use super::SqlStore;
use crate::{ResponseRow, ResponseStore, StoreError};

#[async_trait]
impl ResponseStore for SqlStore {
    async fn save_responses(&self, rows: &[ResponseRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO responses (id, owner, created_at, payload) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&row.id)
            .bind(&row.owner)
            .bind(row.created_at_ms)
            .bind(&row.payload)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn load_response(&self, id: &str) -> Result<Option<ResponseRow>, StoreError> {
        let row: Option<(String, String, i64, String)> =
            sqlx::query_as("SELECT id, owner, created_at, payload FROM responses WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, owner, created_at_ms, payload)| ResponseRow {
            id,
            owner,
            created_at_ms,
            payload,
        }))
    }

    async fn delete_response(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE id = $1 AND owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn prune_responses(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE created_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::SqlStore;
    use crate::sql::test_support::on_both_engines;
    use crate::{ResponseRow, ResponseStore as _};

    fn row(id: &str, owner: &str, at: i64) -> ResponseRow {
        ResponseRow {
            id: id.into(),
            owner: owner.into(),
            created_at_ms: at,
            payload: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    async fn responses_are_saved_once_found_deleted_by_their_owner_and_pruned(store: SqlStore) {
        store
            .save_responses(&[row("resp_a", "k1", 10), row("resp_b", "k2", 20)])
            .await
            .unwrap();
        // Saved again (a retried batch): nothing changes.
        let mut again = row("resp_a", "k1", 10);
        again.payload = "{}".into();
        store.save_responses(&[again]).await.unwrap();
        let a = store.load_response("resp_a").await.unwrap().unwrap();
        assert_eq!(a, row("resp_a", "k1", 10));
        assert!(store.load_response("resp_x").await.unwrap().is_none());
        assert!(!store.delete_response("resp_a", "k2").await.unwrap());
        assert!(store.delete_response("resp_a", "k1").await.unwrap());
        assert!(store.load_response("resp_a").await.unwrap().is_none());
        assert_eq!(store.prune_responses(15).await.unwrap(), 0);
        assert_eq!(store.prune_responses(25).await.unwrap(), 1);
        assert!(store.load_response("resp_b").await.unwrap().is_none());
    }

    on_both_engines!(responses_are_saved_once_found_deleted_by_their_owner_and_pruned);
}
