//! The mirror: the shared subjects' state copied from Redis into the local ledger every
//! second, and Redis seeded from the local ledger where it has no state.
//!
//! Why: the admin API's `GET /admin/v1/budgets` and the ledger's persistence (the engine's
//! `LedgerWriter`, which writes changed accounts to the SQL store every second) read the
//! local `Ledger`. With the key, user and budget subjects checked in Redis, their local
//! accounts would stay empty; the mirror keeps them at the shared figures (spend of the
//! period, what every live process holds, the rate window), so the page shows what every
//! process spent and the store keeps it. Provider subjects stay local and are not touched.
//!
//! Seeding: for each subject, the same script first writes the local state into Redis if
//! Redis has none for it (no period field; no window key), and only if the local period is
//! the current one. At start the local ledger holds what the store loaded, so the first sync
//! (run before the gateway serves) carries the persisted spend into an empty Redis, and one
//! process restarting never overwrites what the others spent. After Redis itself restarts
//! empty, the next sync of any process puts back the figures it last mirrored (a request
//! settled in Redis in the second between the restart and that sync can be lost from the
//! spend: its subject's state was created fresh by that request).

use std::sync::Arc;

use portico_core::{Period, SpendState, Subject, WindowBucket};
use portico_limits::{Account, Ledger};

use super::{LimitsInner, PROC_TTL_MS, budget_ttl_ms};
use crate::conn::{Script, Unavailable};

/// Subjects per script call, so one call never keeps Redis busy long.
const CHUNK: usize = 200;

/// One sync: heartbeat, seed, read back into `ledger`'s shared subjects (none without a
/// ledger: then it only keeps the process alive).
pub(super) async fn sync(
    inner: &LimitsInner,
    script: &Script,
    ledger: Option<&Ledger>,
    now_ms: i64,
) -> Result<usize, Unavailable> {
    let accounts: Vec<Arc<Account>> = ledger.map_or_else(Vec::new, |ledger| {
        ledger
            .accounts()
            .into_iter()
            .filter(|a| !matches!(a.subject(), Subject::Provider(_)))
            .collect()
    });
    if accounts.is_empty() {
        let call = heartbeat_call(inner, script, now_ms);
        call.run::<Vec<Vec<String>>>(&inner.conn, inner.conn.timeout())
            .await?;
        return Ok(0);
    }
    for chunk in accounts.chunks(CHUNK) {
        let mut call = heartbeat_call(inner, script, now_ms);
        for account in chunk {
            let label = account.label();
            call.key(inner.budget_key(label))
                .key(inner.window_key(label));
            push_seed(&mut call, &account.spend_state(now_ms), now_ms);
        }
        let rows = call
            .run::<Vec<Vec<String>>>(&inner.conn, inner.conn.timeout())
            .await?;
        for (account, row) in chunk.iter().zip(rows) {
            apply(account, &row, now_ms);
        }
    }
    Ok(accounts.len())
}

fn heartbeat_call<'a>(
    inner: &LimitsInner,
    script: &'a Script,
    now_ms: i64,
) -> crate::conn::ScriptCall<'a> {
    let mut call = script.call();
    call.arg(now_ms.div_euclid(1000))
        .arg(&inner.pid)
        .arg(&inner.proc_prefix)
        .arg(PROC_TTL_MS);
    call
}

/// The seed arguments of one subject: its local state when it is of the current period.
fn push_seed(call: &mut crate::conn::ScriptCall<'_>, state: &SpendState, now_ms: i64) {
    match state.period {
        Some(period) if period.start(now_ms) == state.period_start_ms => {
            call.arg(period.as_str())
                .arg(state.period_start_ms)
                .arg(finite(state.cost_usd))
                .arg(state.tokens)
                .arg(budget_ttl_ms(period, now_ms));
        }
        _ => {
            call.arg("").arg(0).arg(0).arg(0).arg(0);
        }
    }
    let window: Vec<String> = state
        .window
        .iter()
        .map(|b| format!("{}:{}:{}", b.second, b.requests, b.tokens))
        .collect();
    call.arg(window.join(","));
}

/// Puts one subject's shared state into its local account.
fn apply(account: &Account, row: &[String], now_ms: i64) {
    let [pk, ps, usd, tok, held_usd, held_tok, window] = row else {
        return;
    };
    let period = Period::parse(pk);
    let buckets = parse_window(window);
    if period.is_none() && buckets.is_empty() {
        // Redis has nothing: the local state stands (it is what seeds Redis).
        return;
    }
    let state = SpendState {
        subject: account.subject().clone(),
        period,
        period_start_ms: ps.parse().unwrap_or(0),
        cost_usd: number(usd),
        tokens: whole(tok),
        window: buckets,
        updated_at_ms: now_ms,
    };
    account.replace_shared(&state, number(held_usd), whole(held_tok), now_ms);
}

/// `second:requests:tokens,...`, oldest first.
pub(super) fn parse_window(text: &str) -> Vec<WindowBucket> {
    let mut buckets: Vec<WindowBucket> = text
        .split(',')
        .filter_map(|part| {
            let mut fields = part.split(':');
            let second = fields.next()?.parse().ok()?;
            let requests = fields.next()?.parse().ok()?;
            let tokens = fields.next()?.parse().ok()?;
            Some(WindowBucket {
                second,
                requests,
                tokens,
            })
        })
        .filter(|b| b.requests > 0 || b.tokens > 0)
        .collect();
    buckets.sort_by_key(|b| b.second);
    buckets
}

/// A number Redis sent as text; 0 when it is not one.
pub(super) fn number(text: &str) -> f64 {
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .unwrap_or(0.0)
}

/// A count Redis sent as text (possibly as a float); 0 when it is not one.
pub(super) fn whole(text: &str) -> u64 {
    text.parse::<u64>()
        .unwrap_or_else(|_| number(text).max(0.0).round() as u64)
}

/// A USD amount safe to send: a NaN or an infinity (a price bug) would fail the script.
pub(super) fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_windows_read_back() {
        assert_eq!(whole("12"), 12);
        assert_eq!(whole("1e+17"), 100_000_000_000_000_000);
        assert_eq!(whole("-3"), 0);
        assert_eq!(number("0.30000000000000004"), 0.300_000_000_000_000_04);
        assert_eq!(number("nan"), 0.0);
        assert_eq!(
            parse_window("20:1:5,10:2:0,30:0:0,bad"),
            vec![
                WindowBucket {
                    second: 10,
                    requests: 2,
                    tokens: 0
                },
                WindowBucket {
                    second: 20,
                    requests: 1,
                    tokens: 5
                },
            ]
        );
        assert!(parse_window("").is_empty());
        assert_eq!(finite(f64::NAN), 0.0);
    }
}
