//! The load: requests of the mix sent at a fixed rate (open loop: a slow answer does not
//! delay the next request), each tallied with what the client saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;

use super::mix::{Kind, Mix, cost_micro_usd};

/// What the client saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) seq: u64,
    pub(crate) kind: Kind,
    /// The status answered; `None`: no answer at all (connection refused, reset, timeout).
    pub(crate) status: Option<u16>,
    /// The client left a 200 stream after its first bytes, on purpose.
    pub(crate) cancelled: bool,
    /// `(prompt, completion)` tokens of the answer's usage.
    pub(crate) usage: Option<(i64, i64)>,
    /// What went wrong on the client's side: a transport error, an answer without usage.
    pub(crate) problem: Option<String>,
}

impl Sent {
    /// The outcome the request log should hold.
    pub(crate) fn expected_outcome(&self) -> &'static str {
        match self.status {
            _ if self.cancelled => "client_disconnected",
            Some(s) if s < 400 => "completed",
            _ => "failed",
        }
    }

    /// The cost the log should hold, in micro-USD (a failure, a refusal and a stream cut
    /// off before its usage have none).
    pub(crate) fn expected_log_cost(&self) -> i64 {
        match self.usage {
            Some((p, c)) if !self.cancelled => cost_micro_usd(p, c),
            _ => 0,
        }
    }

    /// What the key's budget should be charged, in micro-USD: the usage, or, for a stream
    /// cut off before its usage came, the request's estimate (docs/budgets.md).
    pub(crate) fn expected_charge(&self) -> i64 {
        if self.cancelled {
            self.kind.estimate_micro_usd()
        } else {
            self.expected_log_cost()
        }
    }
}

/// Everything a request needs, shared by all of them.
pub(crate) struct Load {
    pub(crate) client: reqwest::Client,
    pub(crate) url: String,
    pub(crate) run_id: String,
    /// The key secret and the body of each kind.
    pub(crate) kinds: Vec<(Kind, String, bytes::Bytes)>,
    pub(crate) sent: Mutex<Vec<Sent>>,
    pub(crate) in_flight: AtomicU64,
    /// Requests not sent because `max_in_flight` were still waiting (the gateway stalled).
    pub(crate) skipped: AtomicU64,
    pub(crate) max_in_flight: u64,
}

impl Load {
    /// The trace id of request `seq`.
    pub(crate) fn trace_id(&self, seq: u64) -> String {
        format!("soak-{}-{seq}", self.run_id)
    }

    /// Requests answered so far.
    pub(crate) fn answered(&self) -> usize {
        self.sent.lock().map_or(0, |s| s.len())
    }
}

/// Sends `mix` at `rate` requests/s until `until`, from `first_seq` on; answers the next
/// sequence number. Waits for every request sent to be answered.
pub(crate) async fn run(
    load: &Arc<Load>,
    mix: &mut Mix,
    rate: f64,
    until: Instant,
    first_seq: u64,
) -> u64 {
    let tracker = TaskTracker::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut seq = first_seq;
    let mut n: u32 = 0;
    loop {
        // The schedule is fixed from the start: a late tick sends at once (open loop).
        let due = start + interval * n;
        if due.into_std() >= until {
            break;
        }
        tokio::time::sleep_until(due).await;
        n += 1;
        let kind = mix.next_kind();
        if load.in_flight.load(Ordering::Relaxed) >= load.max_in_flight {
            load.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        let load = Arc::clone(load);
        tracker.spawn(async move {
            let sent = one(&load, seq, kind).await;
            load.in_flight.fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut all) = load.sent.lock() {
                all.push(sent);
            }
        });
        seq += 1;
    }
    tracker.close();
    tracker.wait().await;
    seq
}

/// Sends request `seq` of `kind` and reads its answer as the kind says.
async fn one(load: &Load, seq: u64, kind: Kind) -> Sent {
    let mut sent = Sent {
        seq,
        kind,
        status: None,
        cancelled: false,
        usage: None,
        problem: None,
    };
    let Some((_, secret, body)) = load.kinds.iter().find(|(k, _, _)| *k == kind) else {
        sent.problem = Some("no key for this kind".to_owned());
        return sent;
    };
    let metadata = format!(r#"{{"soak_run":"{}","soak_kind":"{kind}"}}"#, load.run_id);
    let request = load
        .client
        .post(format!("{}{}", load.url, kind.path()))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-portkey-trace-id", load.trace_id(seq))
        .header("x-portkey-metadata", metadata)
        .body(body.clone());
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            sent.problem = Some(format!("no answer: {err}"));
            return sent;
        }
    };
    let status = response.status().as_u16();
    sent.status = Some(status);
    if kind == Kind::Cancel && status == 200 {
        // Leave after the first bytes: the stream has started, its usage is far off.
        match response.chunk().await {
            Ok(Some(_)) => sent.cancelled = true,
            Ok(None) => sent.problem = Some("the stream ended before its first bytes".to_owned()),
            Err(err) => sent.problem = Some(format!("the stream broke: {err}")),
        }
        drop(response);
        return sent;
    }
    let text = match response.bytes().await {
        Ok(text) => text,
        Err(err) => {
            sent.problem = Some(format!("the answer broke: {err}"));
            return sent;
        }
    };
    if status < 400 {
        sent.usage = if kind.streams() {
            stream_usage(&text)
        } else {
            whole_usage(&text)
        };
        if sent.usage.is_none() {
            sent.problem = Some("a successful answer without usage".to_owned());
        }
    }
    sent
}

/// Usage of a whole answer: OpenAI's `prompt_tokens`/`completion_tokens` or Anthropic's
/// `input_tokens`/`output_tokens`.
fn whole_usage(body: &[u8]) -> Option<(i64, i64)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    usage_of(&value["usage"])
}

fn usage_of(usage: &serde_json::Value) -> Option<(i64, i64)> {
    let get = |a: &str, b: &str| usage[a].as_i64().or_else(|| usage[b].as_i64());
    Some((
        get("prompt_tokens", "input_tokens")?,
        get("completion_tokens", "output_tokens")?,
    ))
}

/// Usage of a streamed answer: the last `data:` event that carries a `usage` object.
fn stream_usage(text: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok())
        .find_map(|event| usage_of(&event["usage"]))
}

/// Seconds since `start`, rounded to 0.1.
pub(crate) fn secs_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_whole_and_streamed_answers() {
        assert_eq!(
            whole_usage(br#"{"usage":{"prompt_tokens":12,"completion_tokens":9}}"#),
            Some((12, 9))
        );
        assert_eq!(
            whole_usage(br#"{"usage":{"input_tokens":12,"output_tokens":9}}"#),
            Some((12, 9))
        );
        assert_eq!(whole_usage(br#"{"error":{}}"#), None);
        let sse = b"data: {\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":16}}\n\ndata: [DONE]\n\n";
        assert_eq!(stream_usage(sse), Some((12, 16)));
        assert_eq!(stream_usage(b"data: [DONE]\n\n"), None);
    }

    #[test]
    fn expectations_follow_what_the_client_saw() {
        let mut sent = Sent {
            seq: 1,
            kind: Kind::Chat,
            status: Some(200),
            cancelled: false,
            usage: Some((12, 9)),
            problem: None,
        };
        assert_eq!(sent.expected_outcome(), "completed");
        assert_eq!((sent.expected_log_cost(), sent.expected_charge()), (30, 30));
        sent.status = Some(412);
        sent.usage = None;
        assert_eq!(sent.expected_outcome(), "failed");
        assert_eq!((sent.expected_log_cost(), sent.expected_charge()), (0, 0));
        sent.kind = Kind::Cancel;
        sent.status = Some(200);
        sent.cancelled = true;
        assert_eq!(sent.expected_outcome(), "client_disconnected");
        assert_eq!(sent.expected_log_cost(), 0);
        assert_eq!(sent.expected_charge(), Kind::Cancel.estimate_micro_usd());
    }
}
