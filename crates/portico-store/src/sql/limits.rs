//! Budgets and rate limits as the catalog declares them: a key's limits (`key_limits`, by key
//! id) and the named budgets of the `budgets:` list (`budgets`), written by the catalog apply
//! (source `file`) and the admin API (source `api`). A provider's limits are a column of its
//! row and go with it (`apply` and `admin`).

use std::collections::{BTreeMap, HashMap, HashSet};

use portico_core::{Limits, NamedBudget};
use sqlx::AnyConnection;

use super::rows;
use crate::{ApplyReport, BudgetRecord, RecordSource, StoreError};

/// Limits as stored: JSON, `None` when there are none.
pub(super) fn limits_json(limits: &Limits) -> Result<Option<String>, StoreError> {
    if limits.is_empty() {
        return Ok(None);
    }
    rows::to_json("limits", limits).map(Some)
}

/// Limits read back; `None` reads as none.
pub(super) fn limits_of(table: &'static str, text: Option<&str>) -> Result<Limits, StoreError> {
    match text {
        Some(text) => rows::from_json(table, text),
        None => Ok(Limits::default()),
    }
}

/// Every key's limits, by key id.
pub(super) async fn load_key_limits(
    conn: &mut AnyConnection,
) -> Result<HashMap<String, Limits>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT key_id, limits FROM key_limits")
        .fetch_all(conn)
        .await?;
    rows.into_iter()
        .map(|(id, text)| Ok((id, limits_of("key_limits", Some(&text))?)))
        .collect()
}

/// One key's limits.
pub(super) async fn key_limits(
    conn: &mut AnyConnection,
    key_id: &str,
) -> Result<Limits, StoreError> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT limits FROM key_limits WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(conn)
            .await?;
    limits_of("key_limits", text.as_deref())
}

/// Sets (or, when empty, clears) the limits of the key with this id.
pub(super) async fn set_key_limits(
    conn: &mut AnyConnection,
    key_id: &str,
    limits: &Limits,
) -> Result<(), StoreError> {
    match limits_json(limits)? {
        None => {
            sqlx::query("DELETE FROM key_limits WHERE key_id = $1")
                .bind(key_id)
                .execute(conn)
                .await?;
        }
        Some(text) => {
            sqlx::query(
                "INSERT INTO key_limits (key_id, limits) VALUES ($1, $2) \
                 ON CONFLICT (key_id) DO UPDATE SET limits = excluded.limits",
            )
            .bind(key_id)
            .bind(text)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// Sets the limits of the key named `name` (the catalog apply, which matches keys by name).
pub(super) async fn set_key_limits_by_name(
    conn: &mut AnyConnection,
    name: &str,
    limits: &Limits,
) -> Result<(), StoreError> {
    let id: Option<String> = sqlx::query_scalar("SELECT id FROM keys WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    match id {
        Some(id) => set_key_limits(conn, &id, limits).await,
        None => Err(StoreError::NotFound(format!("key `{name}` vanished"))),
    }
}

/// A `budgets` row.
#[derive(Debug, sqlx::FromRow)]
struct BudgetRow {
    name: String,
    matches: String,
    limits: String,
    source: String,
    created_at: i64,
    updated_at: i64,
}

impl BudgetRow {
    fn into_record(self) -> Result<BudgetRecord, StoreError> {
        let matches: BTreeMap<String, String> = rows::from_json("budgets", &self.matches)?;
        Ok(BudgetRecord {
            budget: NamedBudget {
                name: self.name,
                matches,
                limits: limits_of("budgets", Some(&self.limits))?,
            },
            source: rows::parse_source("budgets", &self.source)?,
            created_at_ms: self.created_at,
            updated_at_ms: self.updated_at,
        })
    }
}

const BUDGET_COLUMNS: &str = "name, matches, limits, source, created_at, updated_at";

/// Every named budget, ordered by name.
pub(super) async fn list_budgets(
    conn: &mut AnyConnection,
) -> Result<Vec<BudgetRecord>, StoreError> {
    let rows: Vec<BudgetRow> = sqlx::query_as(&format!(
        "SELECT {BUDGET_COLUMNS} FROM budgets ORDER BY name"
    ))
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(BudgetRow::into_record).collect()
}

/// The named budget `name`.
pub(super) async fn get_budget(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<BudgetRecord>, StoreError> {
    let row: Option<BudgetRow> = sqlx::query_as(&format!(
        "SELECT {BUDGET_COLUMNS} FROM budgets WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.map(BudgetRow::into_record).transpose()
}

/// Inserts or updates one named budget with `source`.
async fn write_budget(
    conn: &mut AnyConnection,
    budget: &NamedBudget,
    source: RecordSource,
    exists: bool,
    now: i64,
) -> Result<(), StoreError> {
    let matches = rows::to_json("budgets", &budget.matches)?;
    let limits = rows::to_json("budgets", &budget.limits)?;
    if exists {
        sqlx::query(
            "UPDATE budgets SET matches = $1, limits = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(matches)
        .bind(limits)
        .bind(now)
        .bind(&budget.name)
        .execute(conn)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO budgets (name, matches, limits, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&budget.name)
        .bind(matches)
        .bind(limits)
        .bind(source.as_str())
        .bind(now)
        .bind(now)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Creates an `api` budget; [`StoreError::Conflict`] when the name is taken.
pub(super) async fn create_budget(
    conn: &mut AnyConnection,
    budget: &NamedBudget,
    now: i64,
) -> Result<BudgetRecord, StoreError> {
    if get_budget(conn, &budget.name).await?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a budget `{}` already exists; choose another name, or replace it with PUT",
            budget.name
        )));
    }
    write_budget(conn, budget, RecordSource::Api, false, now).await?;
    stored(conn, &budget.name).await
}

/// Replaces an `api` budget.
pub(super) async fn replace_budget(
    conn: &mut AnyConnection,
    budget: &NamedBudget,
    now: i64,
) -> Result<BudgetRecord, StoreError> {
    api_budget(conn, &budget.name).await?;
    write_budget(conn, budget, RecordSource::Api, true, now).await?;
    stored(conn, &budget.name).await
}

/// Deletes an `api` budget (its spend stays in the ledger, found again if it comes back).
pub(super) async fn delete_budget(conn: &mut AnyConnection, name: &str) -> Result<(), StoreError> {
    api_budget(conn, name).await?;
    sqlx::query("DELETE FROM budgets WHERE name = $1")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

async fn stored(conn: &mut AnyConnection, name: &str) -> Result<BudgetRecord, StoreError> {
    get_budget(conn, name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("budget `{name}` vanished")))
}

/// The budget to change through the API: it exists and is an `api` budget.
async fn api_budget(conn: &mut AnyConnection, name: &str) -> Result<BudgetRecord, StoreError> {
    let Some(record) = get_budget(conn, name).await? else {
        return Err(StoreError::NotFound(format!("no budget `{name}`")));
    };
    if record.source != RecordSource::Api {
        return Err(StoreError::Conflict(format!(
            "budget `{name}` cannot be changed through the admin API: it is declared in the \
             catalog file; change it there and apply the file again"
        )));
    }
    Ok(record)
}

/// The catalog apply's part: the file's budgets inserted or updated by name, the file's
/// budgets it no longer declares deleted; `api` budgets are never touched, and the file may
/// not take one's name.
pub(super) async fn apply_budgets(
    conn: &mut AnyConnection,
    declared: &[NamedBudget],
    now: i64,
    report: &mut ApplyReport,
) -> Result<(), StoreError> {
    let stored: HashMap<String, BudgetRecord> = list_budgets(conn)
        .await?
        .into_iter()
        .map(|r| (r.budget.name.clone(), r))
        .collect();
    for budget in declared {
        match stored.get(&budget.name) {
            Some(record) if record.source != RecordSource::File => {
                return Err(StoreError::Conflict(format!(
                    "budget `{}` was created through the admin API, so the catalog cannot \
                     change it; rename it in the catalog or delete it through the API",
                    budget.name
                )));
            }
            Some(record) if record.budget == *budget => continue,
            existing => {
                write_budget(conn, budget, RecordSource::File, existing.is_some(), now).await?;
            }
        }
        report.changed_budgets.push(budget.name.clone());
    }
    let declared: HashSet<&str> = declared.iter().map(|b| b.name.as_str()).collect();
    let mut removed: Vec<&BudgetRecord> = stored
        .values()
        .filter(|r| r.source == RecordSource::File && !declared.contains(r.budget.name.as_str()))
        .collect();
    removed.sort_by(|a, b| a.budget.name.cmp(&b.budget.name));
    for record in removed {
        sqlx::query("DELETE FROM budgets WHERE name = $1")
            .bind(&record.budget.name)
            .execute(&mut *conn)
            .await?;
        report.removed_budgets.push(record.budget.name.clone());
    }
    Ok(())
}
