//! After the load: the request log and the budgets, checked against the soak's own tally.
//!
//! Every request the client got an answer to must be in the log exactly once, under its
//! trace id, with the status and outcome the client saw and the cost of the usage the client
//! was sent (to the micro-dollar); every key's budget must have been charged exactly what
//! its requests cost, with nothing left reserved.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use super::gateway::{Gateway, key_name};
use super::load::Sent;
use super::mix::{Kind, STREAM_USAGE, cost_micro_usd};

/// One log record, as the check needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Logged {
    pub(crate) seq: u64,
    pub(crate) status: u16,
    pub(crate) outcome: String,
    /// `cost_usd` in micro-USD (rounded); 0 when null.
    pub(crate) cost: i64,
}

/// The figures of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KindFigures {
    pub(crate) sent: u64,
    /// Status the client saw → count (`0`: no answer).
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) cancelled: u64,
    /// Of those, streams whose usage the gateway had before it saw the client leave
    /// (logged and charged with their whole usage): a race the soak allows.
    pub(crate) cancelled_late: u64,
    pub(crate) prompt_tokens: i64,
    pub(crate) completion_tokens: i64,
    pub(crate) logged: u64,
    pub(crate) expected_log_cost: i64,
    pub(crate) log_cost: i64,
    pub(crate) expected_charge: i64,
    /// The key's budget: spent and still reserved, in micro-USD (`None`: not found).
    pub(crate) budget_spent: Option<i64>,
    pub(crate) budget_reserved: Option<i64>,
}

/// The check's result.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checked {
    pub(crate) kinds: BTreeMap<Kind, KindFigures>,
    /// Answered requests without a log record.
    pub(crate) lost: Vec<u64>,
    /// Trace ids logged more than once.
    pub(crate) duplicates: Vec<u64>,
    /// Log records of this run that the soak never sent.
    pub(crate) strangers: u64,
    /// `seq: what differs` for records whose status, outcome or cost is not the client's.
    pub(crate) mismatches: Vec<String>,
    /// Client-side problems: no answer, an answer without usage.
    pub(crate) problems: Vec<String>,
    /// How long the log took to hold every answered request after the load ended.
    pub(crate) flush_wait_s: f64,
}

impl Checked {
    /// Sum over the kinds.
    pub(crate) fn total(&self) -> KindFigures {
        let mut total = KindFigures::default();
        for f in self.kinds.values() {
            total.sent += f.sent;
            for (s, n) in &f.statuses {
                *total.statuses.entry(*s).or_default() += n;
            }
            total.cancelled += f.cancelled;
            total.cancelled_late += f.cancelled_late;
            total.prompt_tokens += f.prompt_tokens;
            total.completion_tokens += f.completion_tokens;
            total.logged += f.logged;
            total.expected_log_cost += f.expected_log_cost;
            total.log_cost += f.log_cost;
            total.expected_charge += f.expected_charge;
            total.budget_spent =
                Some(total.budget_spent.unwrap_or(0) + f.budget_spent.unwrap_or(0));
            total.budget_reserved =
                Some(total.budget_reserved.unwrap_or(0) + f.budget_reserved.unwrap_or(0));
        }
        total
    }

    /// What fails the soak on the accounting side, one line each.
    pub(crate) fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.lost.is_empty() {
            out.push(format!(
                "{} answered requests have no log record (first seqs: {:?})",
                self.lost.len(),
                &self.lost[..self.lost.len().min(10)]
            ));
        }
        if !self.duplicates.is_empty() {
            out.push(format!(
                "{} trace ids are logged more than once",
                self.duplicates.len()
            ));
        }
        if self.strangers > 0 {
            out.push(format!(
                "{} log records of this run were never sent",
                self.strangers
            ));
        }
        if !self.mismatches.is_empty() {
            out.push(format!(
                "{} log records differ from what the client saw (first: {})",
                self.mismatches.len(),
                self.mismatches[..self.mismatches.len().min(5)].join("; ")
            ));
        }
        if !self.problems.is_empty() {
            out.push(format!(
                "{} requests had a client-side problem (first: {})",
                self.problems.len(),
                self.problems[..self.problems.len().min(5)].join("; ")
            ));
        }
        for (kind, f) in &self.kinds {
            if f.log_cost != f.expected_log_cost {
                out.push(format!(
                    "{kind}: the log's cost is {} µUSD, the tally's {}",
                    f.log_cost, f.expected_log_cost
                ));
            }
            match f.budget_spent {
                Some(spent) if spent == f.expected_charge => {}
                Some(spent) => out.push(format!(
                    "{kind}: the key's budget was charged {spent} µUSD, the tally says {}",
                    f.expected_charge
                )),
                None if f.sent > 0 => out.push(format!("{kind}: the key's budget is not listed")),
                None => {}
            }
            if let Some(reserved) = f.budget_reserved.filter(|r| *r != 0) {
                out.push(format!(
                    "{kind}: {reserved} µUSD still reserved on the key's budget after the load"
                ));
            }
        }
        out
    }
}

/// Waits until the log holds `expected` records of the run (or stops growing for 30 s, or
/// `timeout` passes), then compares it and the budgets with `sent`.
pub(crate) async fn check(
    gateway: &Gateway,
    client: &reqwest::Client,
    run_id: &str,
    sent: &[Sent],
    timeout: Duration,
) -> anyhow::Result<Checked> {
    let answered = sent.iter().filter(|s| s.status.is_some()).count() as u64;
    let flush_wait_s = wait_for_log(gateway, client, run_id, answered, timeout).await?;
    let logged = read_log(gateway, client, run_id).await?;
    let budgets = read_budgets(gateway, client, run_id).await?;
    let mut checked = compare(sent, &logged, &budgets);
    checked.flush_wait_s = flush_wait_s;
    Ok(checked)
}

/// Polls the analytics total of the run's records.
async fn wait_for_log(
    gateway: &Gateway,
    client: &reqwest::Client,
    run_id: &str,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let path = format!("/admin/v1/analytics?interval=day&metadata.soak_run={run_id}");
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    loop {
        let analytics = gateway
            .admin(client, reqwest::Method::GET, &path, None)
            .await?;
        let count = analytics["totals"]["requests"].as_u64().unwrap_or(0);
        if count >= expected {
            return Ok(started.elapsed().as_secs_f64());
        }
        if count != last {
            (last, last_change) = (count, Instant::now());
        }
        if last_change.elapsed() > Duration::from_secs(30) || started.elapsed() > timeout {
            eprintln!(
                "portico-bench soak: the log holds {count} of {expected} records after {:.0} s; checking what is there",
                started.elapsed().as_secs_f64()
            );
            return Ok(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every item of a paged admin listing (its `data`, following `next_cursor`), from `path`
/// (which has a query already).
async fn every_item(
    gateway: &Gateway,
    client: &reqwest::Client,
    path: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_path = path.to_owned();
        if let Some(cursor) = &cursor {
            page_path.push_str("&cursor=");
            page_path.push_str(cursor);
        }
        let mut page = gateway
            .admin(client, reqwest::Method::GET, &page_path, None)
            .await?;
        let next = page["next_cursor"].as_str().map(str::to_owned);
        let Value::Array(data) = page["data"].take() else {
            anyhow::bail!("GET {path}: no data");
        };
        let empty = data.is_empty();
        out.extend(data);
        match next {
            Some(next) if !empty => cursor = Some(next),
            _ => return Ok(out),
        }
    }
}

/// Every record of the run, through `GET /admin/v1/logs` pages of 500.
async fn read_log(
    gateway: &Gateway,
    client: &reqwest::Client,
    run_id: &str,
) -> anyhow::Result<Vec<Logged>> {
    let prefix = format!("soak-{run_id}-");
    let path = format!("/admin/v1/logs?limit=500&metadata.soak_run={run_id}");
    every_item(gateway, client, &path)
        .await?
        .iter()
        .map(|entry| logged_of(entry, &prefix))
        .collect()
}

fn logged_of(entry: &Value, prefix: &str) -> anyhow::Result<Logged> {
    let trace = entry["trace_id"].as_str().unwrap_or_default();
    let seq = trace
        .strip_prefix(prefix)
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    Ok(Logged {
        seq,
        status: entry["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .context("a log record without a status")?,
        outcome: entry["outcome"].as_str().unwrap_or_default().to_owned(),
        cost: micro_usd(&entry["cost_usd"]),
    })
}

/// A USD amount in whole micro-dollars (0 for null).
fn micro_usd(value: &Value) -> i64 {
    value.as_f64().map_or(0, |usd| (usd * 1e6).round() as i64)
}

/// Each kind's key budget: `(spent, reserved)` in micro-USD.
async fn read_budgets(
    gateway: &Gateway,
    client: &reqwest::Client,
    run_id: &str,
) -> anyhow::Result<HashMap<Kind, (i64, i64)>> {
    let mut out = HashMap::new();
    for entry in every_item(gateway, client, "/admin/v1/budgets?limit=500").await? {
        if entry["kind"] != "budget" {
            continue;
        }
        let subject = entry["subject"].as_str().unwrap_or_default();
        if let Some(kind) = Kind::ALL
            .into_iter()
            .find(|k| subject == format!("key:{}", key_name(*k, run_id)))
        {
            out.insert(
                kind,
                (
                    micro_usd(&entry["cost_usd_spent"]),
                    micro_usd(&entry["cost_usd_reserved"]),
                ),
            );
        }
    }
    Ok(out)
}

/// Compares the tally with the log and the budgets.
pub(crate) fn compare(
    sent: &[Sent],
    logged: &[Logged],
    budgets: &HashMap<Kind, (i64, i64)>,
) -> Checked {
    let mut checked = Checked::default();
    let mut by_seq: HashMap<u64, &Logged> = HashMap::with_capacity(logged.len());
    for record in logged {
        if by_seq.insert(record.seq, record).is_some() {
            checked.duplicates.push(record.seq);
        }
    }
    let mut known = 0u64;
    for s in sent {
        let f = checked.kinds.entry(s.kind).or_default();
        f.sent += 1;
        *f.statuses.entry(s.status.unwrap_or(0)).or_default() += 1;
        f.cancelled += u64::from(s.cancelled);
        if let Some((p, c)) = s.usage {
            f.prompt_tokens += p;
            f.completion_tokens += c;
        }
        if let Some(problem) = &s.problem {
            checked
                .problems
                .push(format!("{} #{}: {problem}", s.kind, s.seq));
        }
        let record = by_seq.get(&s.seq);
        // A stream the client left after its first bytes is cut off before its usage came,
        // unless the gateway was slower to notice than the mock to finish (a busy machine):
        // then it had the whole stream's usage, logs and charges it, and the record says
        // `completed` (all of it was written before the close was seen) or
        // `client_disconnected` (a write after the usage failed). Which one happened is the
        // log's word; what it costs is the tally's: the mock's whole usage.
        let late = s.cancelled && record.is_some_and(|r| r.outcome == "completed" || r.cost != 0);
        let (outcome, log_cost, charge) = if late {
            f.cancelled_late += 1;
            let whole = cost_micro_usd(STREAM_USAGE.0, STREAM_USAGE.1);
            let outcome = match record.map(|r| r.outcome.as_str()) {
                Some("completed") => "completed",
                _ => "client_disconnected",
            };
            (outcome, whole, whole)
        } else {
            (
                s.expected_outcome(),
                s.expected_log_cost(),
                s.expected_charge(),
            )
        };
        f.expected_log_cost += log_cost;
        f.expected_charge += charge;
        let Some(record) = record else {
            if s.status.is_some() {
                checked.lost.push(s.seq);
            }
            continue;
        };
        known += 1;
        f.logged += 1;
        f.log_cost += record.cost;
        let mut differs = Vec::new();
        if let Some(status) = s.status
            && status != record.status
        {
            differs.push(format!("status {} (client {status})", record.status));
        }
        if s.status.is_some() && record.outcome != outcome {
            differs.push(format!("outcome {} (expected {outcome})", record.outcome));
        }
        if record.cost != log_cost {
            differs.push(format!("cost {} µUSD (expected {log_cost})", record.cost));
        }
        if !differs.is_empty() {
            checked
                .mismatches
                .push(format!("{} #{}: {}", s.kind, s.seq, differs.join(", ")));
        }
    }
    checked.strangers = (by_seq.len() as u64).saturating_sub(known);
    for (kind, (spent, reserved)) in budgets {
        let f = checked.kinds.entry(*kind).or_default();
        f.budget_spent = Some(*spent);
        f.budget_reserved = Some(*reserved);
    }
    checked.lost.sort_unstable();
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(seq: u64, kind: Kind, status: u16, usage: Option<(i64, i64)>) -> Sent {
        Sent {
            seq,
            kind,
            status: Some(status),
            cancelled: false,
            usage,
            problem: None,
        }
    }

    fn logged(seq: u64, status: u16, outcome: &str, cost: i64) -> Logged {
        Logged {
            seq,
            status,
            outcome: outcome.to_owned(),
            cost,
        }
    }

    #[test]
    fn a_log_that_matches_the_tally_passes() {
        let mut cancel = sent(3, Kind::Cancel, 200, None);
        cancel.cancelled = true;
        let tally = vec![
            sent(1, Kind::Chat, 200, Some((12, 9))),
            sent(2, Kind::Budget, 412, None),
            cancel,
        ];
        let log = vec![
            logged(1, 200, "completed", 30),
            logged(2, 412, "failed", 0),
            logged(3, 200, "client_disconnected", 0),
        ];
        let estimate = Kind::Cancel.estimate_micro_usd();
        let budgets = HashMap::from([
            (Kind::Chat, (30, 0)),
            (Kind::Budget, (0, 0)),
            (Kind::Cancel, (estimate, 0)),
        ]);
        let checked = compare(&tally, &log, &budgets);
        assert_eq!(checked.failures(), Vec::<String>::new());
        let total = checked.total();
        assert_eq!((total.sent, total.logged, total.log_cost), (3, 3, 30));
        assert_eq!(total.expected_charge, 30 + estimate);
        assert_eq!(total.statuses[&200], 2);
    }

    #[test]
    fn a_stream_left_too_late_to_cut_counts_whole_and_nothing_else_passes_for_it() {
        let cancel = |seq: u64| {
            let mut s = sent(seq, Kind::Cancel, 200, None);
            s.cancelled = true;
            s
        };
        let tally = vec![cancel(1), cancel(2), cancel(3), cancel(4)];
        let whole = cost_micro_usd(12, 16);
        let log = vec![
            logged(1, 200, "client_disconnected", 0),
            logged(2, 200, "completed", whole),
            // The usage came before the close was seen: charged whole, still a disconnect.
            logged(3, 200, "client_disconnected", whole),
            // Completed, but at another cost than the mock's whole stream: a mismatch.
            logged(4, 200, "completed", whole + 1),
        ];
        let estimate = Kind::Cancel.estimate_micro_usd();
        let budgets = HashMap::from([(Kind::Cancel, (estimate + 3 * whole, 0))]);
        let checked = compare(&tally, &log, &budgets);
        let f = &checked.kinds[&Kind::Cancel];
        assert_eq!((f.cancelled, f.cancelled_late), (4, 3));
        assert_eq!(f.expected_charge, estimate + 3 * whole);
        assert_eq!(checked.mismatches.len(), 1, "{:?}", checked.mismatches);
        assert!(checked.mismatches[0].starts_with("cancel #4: cost"));
    }

    #[test]
    fn lost_duplicated_strange_and_different_records_fail() {
        let tally = vec![
            sent(1, Kind::Chat, 200, Some((12, 9))),
            sent(2, Kind::Chat, 200, Some((12, 9))),
            sent(3, Kind::Stream, 502, None),
        ];
        let log = vec![
            logged(1, 200, "completed", 31),
            logged(1, 200, "completed", 31),
            logged(3, 500, "failed", 0),
            logged(99, 200, "completed", 30),
        ];
        let budgets = HashMap::from([(Kind::Chat, (60, 5))]);
        let checked = compare(&tally, &log, &budgets);
        assert_eq!(checked.lost, vec![2]);
        assert_eq!(checked.duplicates, vec![1]);
        assert_eq!(checked.strangers, 1);
        assert_eq!(checked.mismatches.len(), 2, "{:?}", checked.mismatches);
        let failures = checked.failures().join("\n");
        assert!(failures.contains("no log record"), "{failures}");
        assert!(
            failures.contains("chat: the log's cost is 31 µUSD, the tally's 60"),
            "{failures}"
        );
        assert!(failures.contains("5 µUSD still reserved"), "{failures}");
        assert!(
            failures.contains("stream: the key's budget is not listed"),
            "{failures}"
        );
    }

    #[test]
    fn usd_rounds_to_whole_micro_dollars() {
        assert_eq!(micro_usd(&serde_json::json!(3.0e-5)), 30);
        assert_eq!(micro_usd(&serde_json::json!(2.9999999999e-5)), 30);
        assert_eq!(micro_usd(&Value::Null), 0);
    }
}
