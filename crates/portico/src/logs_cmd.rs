//! `portico logs`: reads the request log of a running instance through its admin API.
//!
//! One line per request, oldest first (like `tail`): time, status, provider/model, latency,
//! tokens, cost, trace id, id. `--json` prints each entry as its JSON line instead.
//! `--follow` keeps polling for new entries. Entries are written when a request ends and
//! carry its arrival time, so a long request can show up after shorter, later ones; follow
//! mode therefore re-reads a window (`FOLLOW_WINDOW`) behind the newest entry seen and
//! prints each id once.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::Fatal;
use crate::admin_client::AdminClient;
use crate::cli::LogsArgs;

/// How often `--follow` asks for new entries.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How far behind the newest entry `--follow` still looks for late ones (requests that ran
/// longer than this and end later are not printed).
const FOLLOW_WINDOW_MS: i64 = 10 * 60 * 1000;
/// The admin API's largest page.
const MAX_PAGE: u32 = 500;

/// Runs `portico logs`.
pub(crate) async fn run(args: LogsArgs) -> Result<(), Fatal> {
    let api = Api {
        client: AdminClient::new(&args.admin)?,
        trace_id: args.trace_id.clone(),
    };

    let mut entries = api.page(args.limit, None, None).await?.0;
    entries.reverse();
    let mut out = Output::new(args.json);
    for entry in &entries {
        out.print(entry)?;
    }
    if !args.follow {
        return Ok(());
    }
    // id -> arrival (ms) of everything printed inside the window.
    let mut seen: HashMap<String, i64> = entries
        .iter()
        .filter_map(|e| Some((e["id"].as_str()?.to_owned(), arrival_ms(e)?)))
        .collect();
    let mut newest = seen
        .values()
        .copied()
        .max()
        .unwrap_or_else(portico_core::now_ms);
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        let from = newest - FOLLOW_WINDOW_MS;
        let mut fresh = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = api.page(MAX_PAGE, Some(from), cursor.take()).await?;
            let known = page.iter().filter(|e| is_seen(&seen, e)).count();
            fresh.extend(page.into_iter().filter(|e| !is_seen(&seen, e)));
            // Newest first: a page with known entries reached what was printed before.
            match next {
                Some(next) if known == 0 => cursor = Some(next),
                _ => break,
            }
        }
        fresh.sort_by_key(|e| arrival_ms(e).unwrap_or_default());
        for entry in &fresh {
            out.print(entry)?;
            if let (Some(id), Some(at)) = (entry["id"].as_str(), arrival_ms(entry)) {
                seen.insert(id.to_owned(), at);
                newest = newest.max(at);
            }
        }
        let horizon = newest - FOLLOW_WINDOW_MS;
        seen.retain(|_, at| *at >= horizon);
    }
}

fn is_seen(seen: &HashMap<String, i64>, entry: &Value) -> bool {
    entry["id"].as_str().is_some_and(|id| seen.contains_key(id))
}

fn arrival_ms(entry: &Value) -> Option<i64> {
    let text = entry["created_at"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The log pages `portico logs` reads, through the admin API.
struct Api {
    client: AdminClient,
    trace_id: Option<String>,
}

impl Api {
    /// One page of `GET /admin/v1/logs`, newest first, and its `next_cursor`.
    async fn page(
        &self,
        limit: u32,
        from_ms: Option<i64>,
        cursor: Option<String>,
    ) -> Result<(Vec<Value>, Option<String>), Fatal> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(trace_id) = &self.trace_id {
            query.push(("trace_id", trace_id.clone()));
        }
        if let Some(from) = from_ms {
            query.push(("from", from.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let body = self.client.get_query("/logs", &query).await?;
        let data = body["data"].as_array().cloned().ok_or_else(|| {
            Fatal::other("the admin API answered something that is not a log list")
        })?;
        let next = body["next_cursor"].as_str().map(str::to_owned);
        Ok((data, next))
    }
}

struct Output {
    json: bool,
    stdout: std::io::Stdout,
}

impl Output {
    fn new(json: bool) -> Output {
        Output {
            json,
            stdout: std::io::stdout(),
        }
    }

    fn print(&mut self, entry: &Value) -> Result<(), Fatal> {
        let line = if self.json {
            entry.to_string()
        } else {
            human_line(entry)
        };
        let mut out = self.stdout.lock();
        match writeln!(out, "{line}").and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            // `portico logs | head`: the reader left; stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            Err(e) => Err(Fatal::other(format!("cannot write to stdout: {e}"))),
        }
    }
}

/// `2026-11-25T15:04:05.123Z 200 openai/gpt-4o-mini 180ms 900+120 tok $0.004200 trace=t id=i`
fn human_line(e: &Value) -> String {
    let text = |key: &str| e[key].as_str().unwrap_or("-").to_owned();
    let tokens = match (e["prompt_tokens"].as_u64(), e["completion_tokens"].as_u64()) {
        (Some(p), Some(c)) => format!("{p}+{c} tok"),
        _ => "- tok".to_owned(),
    };
    let cost = e["cost_usd"]
        .as_f64()
        .map_or_else(|| "$-".to_owned(), |c| format!("${c:.6}"));
    let latency = e["latency_ms"]
        .as_u64()
        .map_or_else(|| "-".to_owned(), |l| format!("{l}ms"));
    let mut line = format!(
        "{} {} {}/{} {latency} {tokens} {cost} trace={} id={}",
        text("created_at"),
        e["status"].as_u64().unwrap_or(0),
        text("provider"),
        text("model"),
        text("trace_id"),
        text("id"),
    );
    if let Some(error) = e["error"].as_str() {
        line.push_str(&format!(" error={error:?}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_human_line_has_every_column() {
        let line = human_line(&json!({
            "created_at": "2026-11-25T15:04:05.123Z", "status": 200, "provider": "openai",
            "model": "gpt-4o-mini", "latency_ms": 180, "prompt_tokens": 900,
            "completion_tokens": 120, "cost_usd": 0.0042, "trace_id": "t-1", "id": "r-1"
        }));
        assert_eq!(
            line,
            "2026-11-25T15:04:05.123Z 200 openai/gpt-4o-mini 180ms 900+120 tok $0.004200 trace=t-1 id=r-1"
        );
        let failed = human_line(&json!({"status": 502, "error": "upstream down", "id": "r"}));
        assert!(
            failed.contains("- tok $- trace=- id=r error=\"upstream down\""),
            "{failed}"
        );
    }

    #[test]
    fn arrival_is_read_from_created_at() {
        let entry = json!({"id": "a", "created_at": "1970-01-01T00:00:01.500Z"});
        assert_eq!(arrival_ms(&entry), Some(1500));
        assert_eq!(arrival_ms(&json!({"id": "b"})), None);
    }
}
