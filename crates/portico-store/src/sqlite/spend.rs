//! [`SpendStore`] on SQLite: the ledger of budgets and rate limits, one `spend` row per
//! subject, upserted in one transaction per batch.

use async_trait::async_trait;
use portico_core::{Period, SpendState, Subject, WindowBucket};

use super::{BEGIN_WRITE, SqliteStore, rows};
use crate::{SpendStore, StoreError};

/// A `spend` row.
type SpendRow = (String, Option<String>, i64, f64, i64, Option<String>, i64);

#[async_trait]
impl SpendStore for SqliteStore {
    async fn load_spend(&self) -> Result<Vec<SpendState>, StoreError> {
        let rows: Vec<SpendRow> = sqlx::query_as(
            "SELECT subject, period, period_start, cost_usd, tokens, rate_window, updated_at \
             FROM spend ORDER BY subject",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(state_of).collect()
    }

    async fn save_spend(&self, states: &[SpendState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        for state in states {
            let window = if state.window.is_empty() {
                None
            } else {
                Some(rows::to_json("spend", &state.window)?)
            };
            sqlx::query(
                "INSERT INTO spend (subject, period, period_start, cost_usd, tokens, \
                 rate_window, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (subject) DO UPDATE SET period = excluded.period, \
                 period_start = excluded.period_start, cost_usd = excluded.cost_usd, \
                 tokens = excluded.tokens, rate_window = excluded.rate_window, \
                 updated_at = excluded.updated_at",
            )
            .bind(state.subject.to_string())
            .bind(state.period.map(Period::as_str))
            .bind(state.period_start_ms)
            .bind(state.cost_usd)
            .bind(i64::try_from(state.tokens).unwrap_or(i64::MAX))
            .bind(window)
            .bind(state.updated_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn state_of(row: SpendRow) -> Result<SpendState, StoreError> {
    let (subject, period, period_start_ms, cost_usd, tokens, window, updated_at_ms) = row;
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "spend",
        detail,
    };
    let subject =
        Subject::parse(&subject).ok_or_else(|| corrupt(format!("unknown subject `{subject}`")))?;
    let period = match period {
        Some(name) => {
            Some(Period::parse(&name).ok_or_else(|| corrupt(format!("unknown period `{name}`")))?)
        }
        None => None,
    };
    let window: Vec<WindowBucket> = match window {
        Some(text) => rows::from_json("spend", &text)?,
        None => Vec::new(),
    };
    Ok(SpendState {
        subject,
        period,
        period_start_ms,
        cost_usd,
        tokens: u64::try_from(tokens).unwrap_or(0),
        window,
        updated_at_ms,
    })
}
