//! [`ResponseStore`]: the responses the gateway keeps for the Responses API, one row each,
//! written in batches off the request path.

use async_trait::async_trait;

use super::SqlStore;
use crate::{ResponseRow, ResponseStore, StoreError};

/// Rows per `INSERT`: four parameters each, far below SQLite's and PostgreSQL's limits.
const ROWS_PER_STATEMENT: usize = 128;

#[async_trait]
impl ResponseStore for SqlStore {
    async fn save_responses(&self, rows: &[ResponseRow]) -> Result<(), StoreError> {
        // One multi-row statement per chunk: each statement is a round trip to the
        // database's worker, which cost more than the rows themselves one by one.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut sql =
                String::from("INSERT INTO responses (id, owner, created_at, payload) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let n = i * 4;
                sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4));
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = query
                    .bind(&row.id)
                    .bind(&row.owner)
                    .bind(row.created_at_ms)
                    .bind(&row.payload);
            }
            query.execute(&self.pool).await?;
        }
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
        // More rows than one statement takes, one of them twice.
        let mut many: Vec<ResponseRow> = (0..300)
            .map(|i| row(&format!("resp_m{i}"), "k3", 30))
            .collect();
        many.push(row("resp_m7", "k3", 30));
        store.save_responses(&many).await.unwrap();
        for i in [0, 127, 128, 299] {
            assert!(
                store
                    .load_response(&format!("resp_m{i}"))
                    .await
                    .unwrap()
                    .is_some(),
                "{i}"
            );
        }
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
