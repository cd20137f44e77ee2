//! [`SpendStore`]: the ledger of budgets and rate limits, one `spend` row per subject,
//! upserted in one transaction per batch; and the deliveries of hybrid gateways' spend,
//! applied once each.

use async_trait::async_trait;
use portico_core::{Period, SpendState, Subject, WindowBucket};
use sqlx::AnyConnection;

use super::{SqlStore, rows};
use crate::{SpendDelta, SpendStore, StoreError};

/// A `spend` row.
type SpendRow = (String, Option<String>, i64, f64, i64, Option<String>, i64);

/// The columns of [`SpendRow`].
const SPEND_COLUMNS: &str =
    "subject, period, period_start, cost_usd, tokens, rate_window, updated_at";

#[async_trait]
impl SpendStore for SqlStore {
    async fn load_spend(&self) -> Result<Vec<SpendState>, StoreError> {
        let rows: Vec<SpendRow> = sqlx::query_as(&format!(
            "SELECT {SPEND_COLUMNS} FROM spend ORDER BY subject"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(state_of).collect()
    }

    async fn save_spend(&self, states: &[SpendState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for state in states {
            let window = if state.window.is_empty() {
                None
            } else {
                Some(rows::to_json("spend", &state.window)?)
            };
            upsert(&mut tx, state, window).await?;
        }
        // The ledger is not the catalog: its version stays.
        super::commit_write(tx, false).await
    }

    async fn apply_delivery(&self, batch: &str, deltas: &[SpendDelta]) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        // The write lock makes the read-add-write of each row below safe against another
        // delivery or flush of the same subject, in this process or another.
        let mut tx = self.begin_write().await?;
        let first = sqlx::query(
            "INSERT INTO spend_deliveries (batch, applied_at) VALUES ($1, $2) \
             ON CONFLICT (batch) DO NOTHING",
        )
        .bind(batch)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for delta in deltas {
            add_delta(&mut tx, delta, now).await?;
        }
        super::commit_write(tx, false).await?;
        Ok(true)
    }

    async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM spend_deliveries WHERE applied_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Adds one delivered delta to its subject's row, as [`SpendStore::apply_delivery`] says.
async fn add_delta(
    conn: &mut AnyConnection,
    delta: &SpendDelta,
    now: i64,
) -> Result<(), StoreError> {
    let subject = delta.subject.to_string();
    let stored: Option<SpendRow> = sqlx::query_as(&format!(
        "SELECT {SPEND_COLUMNS} FROM spend WHERE subject = $1"
    ))
    .bind(&subject)
    .fetch_optional(&mut *conn)
    .await?;
    let (period_start_ms, cost_usd, tokens, window) = match stored {
        Some((_, _, start, ..)) if delta.period_start_ms < start => return Ok(()),
        Some((_, _, start, cost, tokens, window, _)) if delta.period_start_ms == start => (
            start,
            cost + delta.cost_usd,
            tokens.saturating_add(tokens_of(delta.tokens)),
            window,
        ),
        // No row yet, or a stored period that has ended: the delta starts the new one. The
        // rate window is the gateway's business, not counted here: kept as it was.
        Some((_, _, _, _, _, window, _)) => (
            delta.period_start_ms,
            delta.cost_usd,
            tokens_of(delta.tokens),
            window,
        ),
        None => (
            delta.period_start_ms,
            delta.cost_usd,
            tokens_of(delta.tokens),
            None,
        ),
    };
    let state = SpendState {
        subject: delta.subject.clone(),
        period: delta.period,
        period_start_ms,
        cost_usd,
        tokens: u64::try_from(tokens).unwrap_or(0),
        window: Vec::new(),
        updated_at_ms: now,
    };
    upsert(conn, &state, window).await
}

/// Tokens as stored (a BIGINT): a count beyond `i64::MAX` is kept at the maximum.
fn tokens_of(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

/// Writes `state` as its subject's row, with `window` (JSON) as its rate window.
async fn upsert(
    conn: &mut AnyConnection,
    state: &SpendState,
    window: Option<String>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO spend (subject, period, period_start, cost_usd, tokens, \
         rate_window, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (subject) DO UPDATE SET period = excluded.period, \
         period_start = excluded.period_start, cost_usd = excluded.cost_usd, \
         tokens = excluded.tokens, rate_window = excluded.rate_window, \
         updated_at = excluded.updated_at",
    )
    .bind(state.subject.to_string())
    .bind(state.period.map(Period::as_str))
    .bind(state.period_start_ms)
    .bind(state.cost_usd)
    .bind(tokens_of(state.tokens))
    .bind(window)
    .bind(state.updated_at_ms)
    .execute(conn)
    .await?;
    Ok(())
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
