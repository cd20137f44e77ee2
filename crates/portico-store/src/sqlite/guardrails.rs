//! The `guardrails` table: named guardrails of the catalog file (`file`) and the admin API
//! (`api`). The API changes only its own; an apply of the file replaces only the file's.

use sqlx::SqliteConnection;

use super::rows;
use crate::{GuardrailRecord, RecordSource, StoreError};

type Row = (String, String, String, i64, i64);

fn record(row: Row) -> Result<GuardrailRecord, StoreError> {
    let (id, text, source, created_at_ms, updated_at_ms) = row;
    Ok(GuardrailRecord {
        id,
        guardrail: rows::from_json("guardrails", &text)?,
        source: if source == "file" {
            RecordSource::File
        } else {
            RecordSource::Api
        },
        created_at_ms,
        updated_at_ms,
    })
}

/// A file guardrail cannot be changed through the admin API.
fn check_api(found: Option<&GuardrailRecord>, id: &str) -> Result<(), StoreError> {
    match found {
        None => Err(StoreError::NotFound(format!("no guardrail `{id}`"))),
        Some(g) if g.source != RecordSource::Api => Err(StoreError::Conflict(format!(
            "guardrail `{id}` cannot be changed through the admin API: it is declared in the catalog file; change it there and apply the file again"
        ))),
        Some(_) => Ok(()),
    }
}

/// Replaces the catalog file's guardrails with `declared` (id, JSON); an id the admin API
/// already uses is a conflict.
pub(super) async fn replace_file(
    conn: &mut SqliteConnection,
    declared: &[(String, serde_json::Value)],
    now: i64,
) -> Result<(), StoreError> {
    let stored = list(conn).await?;
    for (id, _) in declared {
        if stored
            .iter()
            .any(|g| g.id == *id && g.source == RecordSource::Api)
        {
            return Err(StoreError::Conflict(format!(
                "guardrail `{id}` was created through the admin API, so the catalog cannot change it; rename it in the catalog or delete it through the API"
            )));
        }
    }
    sqlx::query("DELETE FROM guardrails WHERE source = 'file'")
        .execute(&mut *conn)
        .await?;
    for (id, guardrail) in declared {
        let created = stored
            .iter()
            .find(|g| g.id == *id)
            .map_or(now, |g| g.created_at_ms);
        sqlx::query(
            "INSERT INTO guardrails (id, guardrail, source, created_at, updated_at) VALUES (?, ?, 'file', ?, ?)",
        )
        .bind(id)
        .bind(rows::to_json("guardrails", guardrail)?)
        .bind(created)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn list(conn: &mut SqliteConnection) -> Result<Vec<GuardrailRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, guardrail, source, created_at, updated_at FROM guardrails ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(record).collect()
}

pub(super) async fn get(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<GuardrailRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, guardrail, source, created_at, updated_at FROM guardrails WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(record).transpose()
}

pub(super) async fn create(
    conn: &mut SqliteConnection,
    id: &str,
    guardrail: &serde_json::Value,
    now: i64,
) -> Result<GuardrailRecord, StoreError> {
    if let Some(found) = get(conn, id).await? {
        let how = if found.source == RecordSource::Api {
            "replace it with PUT"
        } else {
            "the catalog file declares it"
        };
        return Err(StoreError::Conflict(format!(
            "a guardrail `{id}` already exists; choose another id ({how})"
        )));
    }
    sqlx::query(
        "INSERT INTO guardrails (id, guardrail, source, created_at, updated_at) VALUES (?, ?, 'api', ?, ?)",
    )
    .bind(id)
    .bind(rows::to_json("guardrails", guardrail)?)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    get(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("guardrail `{id}` vanished")))
}

pub(super) async fn replace(
    conn: &mut SqliteConnection,
    id: &str,
    guardrail: &serde_json::Value,
    now: i64,
) -> Result<GuardrailRecord, StoreError> {
    check_api(get(conn, id).await?.as_ref(), id)?;
    let done = sqlx::query("UPDATE guardrails SET guardrail = ?, updated_at = ? WHERE id = ?")
        .bind(rows::to_json("guardrails", guardrail)?)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("no guardrail `{id}`")));
    }
    get(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("guardrail `{id}` vanished")))
}

pub(super) async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<(), StoreError> {
    check_api(get(conn, id).await?.as_ref(), id)?;
    let done = sqlx::query("DELETE FROM guardrails WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("no guardrail `{id}`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::sqlite::SqliteStore;
    use crate::{MasterKey, RecordSource, Store, StoreError};

    #[tokio::test]
    async fn the_api_and_the_file_each_change_only_their_own() {
        let store = SqliteStore::open_in_memory(MasterKey::generate())
            .await
            .unwrap();
        let g = json!({"checks": [], "deny": true});
        store.create_guardrail("mine", &g).await.unwrap();
        assert!(matches!(
            store.create_guardrail("mine", &g).await,
            Err(StoreError::Conflict(_))
        ));
        store
            .replace_file_guardrails(&[("theirs".to_owned(), g.clone())])
            .await
            .unwrap();
        let all = store.list_guardrails().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].source, RecordSource::File);
        // The API cannot change the file's, nor the file the API's.
        assert!(matches!(
            store.delete_guardrail("theirs").await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store
                .replace_file_guardrails(&[("mine".to_owned(), g.clone())])
                .await,
            Err(StoreError::Conflict(_))
        ));
        let replaced = store
            .replace_guardrail("mine", &json!({"checks": []}))
            .await
            .unwrap();
        assert_eq!(replaced.guardrail, json!({"checks": []}));
        // A later apply without it removes the file's guardrail, never the API's.
        store.replace_file_guardrails(&[]).await.unwrap();
        let ids: Vec<String> = store
            .list_guardrails()
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.id)
            .collect();
        assert_eq!(ids, ["mine"]);
        store.delete_guardrail("mine").await.unwrap();
        assert!(matches!(
            store.delete_guardrail("mine").await,
            Err(StoreError::NotFound(_))
        ));
    }
}
