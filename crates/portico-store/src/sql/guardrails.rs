//! The `guardrails` table: named guardrails of the catalog file (`file`) and the admin API
//! (`api`). The API changes only its own; an apply of the file changes only the file's, in
//! the apply's transaction (so its plan lists them, and a failed apply writes none).

use std::collections::{HashMap, HashSet};

use sqlx::AnyConnection;

use super::diff::guardrail_fields;
use super::rows;
use crate::{
    ApplyReport, Change, ChangeAction, GuardrailRecord, GuardrailSpec, ObjectKind, RecordSource,
    StoreError,
};

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

/// Brings the catalog file's guardrails to `declared`, inside the apply's transaction:
/// inserts new ones, rewrites those whose JSON differs (keeping `created_at`), deletes the
/// file's that it no longer declares, and reports each write as one [`Change`]. An id the
/// admin API already uses is a conflict; the API's guardrails are never touched.
pub(super) async fn apply_file(
    conn: &mut AnyConnection,
    declared: &[GuardrailSpec],
    now: i64,
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let stored: Vec<Row> =
        sqlx::query_as("SELECT id, guardrail, source, created_at, updated_at FROM guardrails")
            .fetch_all(&mut *conn)
            .await?;
    let stored: HashMap<&str, &Row> = stored.iter().map(|row| (row.0.as_str(), row)).collect();
    for spec in declared {
        let text = rows::to_json("guardrails", &spec.guardrail)?;
        let change = match stored.get(spec.id.as_str()) {
            Some((_, _, source, _, _)) if source != RecordSource::File.as_str() => {
                return Err(StoreError::Conflict(format!(
                    "guardrail `{}` was created through the admin API, so the catalog cannot \
                     change it; rename it in the catalog or delete it through the API",
                    spec.id
                )));
            }
            Some((_, stored_text, _, _, _)) => {
                let fields = guardrail_fields(&spec.guardrail, &text, stored_text);
                if fields.is_empty() {
                    continue;
                }
                sqlx::query("UPDATE guardrails SET guardrail = $1, updated_at = $2 WHERE id = $3")
                    .bind(&text)
                    .bind(now)
                    .bind(&spec.id)
                    .execute(&mut *conn)
                    .await?;
                Change::new(
                    ChangeAction::Update,
                    ObjectKind::Guardrail,
                    &spec.id,
                    RecordSource::File,
                )
                .with_fields(fields)
            }
            None => {
                sqlx::query(
                    "INSERT INTO guardrails (id, guardrail, source, created_at, updated_at) \
                     VALUES ($1, $2, 'file', $3, $4)",
                )
                .bind(&spec.id)
                .bind(&text)
                .bind(now)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                Change::new(
                    ChangeAction::Create,
                    ObjectKind::Guardrail,
                    &spec.id,
                    RecordSource::File,
                )
            }
        };
        report.changes.push(change);
        report.changed_guardrails.push(spec.id.clone());
    }
    let declared: HashSet<&str> = declared.iter().map(|g| g.id.as_str()).collect();
    let mut removed: Vec<&str> = stored
        .values()
        .filter(|(id, _, source, _, _)| {
            source == RecordSource::File.as_str() && !declared.contains(id.as_str())
        })
        .map(|(id, _, _, _, _)| id.as_str())
        .collect();
    removed.sort_unstable();
    for id in removed {
        sqlx::query("DELETE FROM guardrails WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        report.changes.push(Change::new(
            ChangeAction::Delete,
            ObjectKind::Guardrail,
            id,
            RecordSource::File,
        ));
        report.removed_guardrails.push(id.to_owned());
    }
    Ok(())
}

pub(super) async fn list(conn: &mut AnyConnection) -> Result<Vec<GuardrailRecord>, StoreError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, guardrail, source, created_at, updated_at FROM guardrails ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(record).collect()
}

pub(super) async fn get(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<GuardrailRecord>, StoreError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, guardrail, source, created_at, updated_at FROM guardrails WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(record).transpose()
}

pub(super) async fn create(
    conn: &mut AnyConnection,
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
        "INSERT INTO guardrails (id, guardrail, source, created_at, updated_at) VALUES ($1, $2, 'api', $3, $4)",
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
    conn: &mut AnyConnection,
    id: &str,
    guardrail: &serde_json::Value,
    now: i64,
) -> Result<GuardrailRecord, StoreError> {
    check_api(get(conn, id).await?.as_ref(), id)?;
    let done = sqlx::query("UPDATE guardrails SET guardrail = $1, updated_at = $2 WHERE id = $3")
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

pub(super) async fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    check_api(get(conn, id).await?.as_ref(), id)?;
    let done = sqlx::query("DELETE FROM guardrails WHERE id = $1")
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

    use crate::sql::SqlStore;
    use crate::sql::test_support::on_both_engines;
    use crate::{CatalogApply, GuardrailSpec, RecordSource, Store, StoreError};

    /// A catalog that declares only these guardrails.
    fn file(ids: &[&str], guardrail: &serde_json::Value) -> CatalogApply {
        CatalogApply {
            guardrails: ids
                .iter()
                .map(|id| GuardrailSpec {
                    id: (*id).to_owned(),
                    guardrail: guardrail.clone(),
                })
                .collect(),
            ..CatalogApply::default()
        }
    }

    on_both_engines!(the_api_and_the_file_each_change_only_their_own);
    async fn the_api_and_the_file_each_change_only_their_own(store: SqlStore) {
        let g = json!({"checks": [], "deny": true});
        store.create_guardrail("mine", &g).await.unwrap();
        assert!(matches!(
            store.create_guardrail("mine", &g).await,
            Err(StoreError::Conflict(_))
        ));
        store.apply_catalog(&file(&["theirs"], &g)).await.unwrap();
        let all = store.list_guardrails().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].source, RecordSource::File);
        // The API cannot change the file's, nor the file the API's.
        assert!(matches!(
            store.delete_guardrail("theirs").await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.apply_catalog(&file(&["mine"], &g)).await,
            Err(StoreError::Conflict(_))
        ));
        let replaced = store
            .replace_guardrail("mine", &json!({"checks": []}))
            .await
            .unwrap();
        assert_eq!(replaced.guardrail, json!({"checks": []}));
        // A later apply without it removes the file's guardrail, never the API's.
        store.apply_catalog(&file(&[], &g)).await.unwrap();
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
