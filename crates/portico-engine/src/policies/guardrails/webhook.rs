//! `default.webhook` and `default.log`: the HTTP call, behind the address guard.
//!
//! The URL's host is checked, then resolved and every address checked again (a name that
//! points at the metadata service is refused too); the shared client refuses redirects, so
//! an allowed host cannot bounce the call elsewhere. The answer must come within the check's
//! `timeout` (default 3 s) and hold `{"verdict": bool}`. A refused address, a timeout, a
//! non-2xx status or an answer without a verdict is the check's error: it passes unless the
//! check sets `failOnError: true` (fail closed).
//!
//! Residual risk (docs/guardrails.md): the name is resolved twice, once by the guard and
//! once by the client, so a DNS server that answers differently the second time (DNS
//! rebinding) could still steer a call; list trusted hosts in `webhook_allow` and keep the
//! admin API off networks where that matters.

use std::net::SocketAddr;
use std::time::Duration;

use portico_guardrails::{Call, Outcome};
use serde_json::{Value, json};

use super::Shared;

/// The largest webhook answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Calls a webhook (or a log URL when `log_only`: any 2xx answer passes) with `body`.
pub(crate) async fn call(shared: &Shared, call: &Call, body: &Value, log_only: bool) -> Outcome {
    let timeout = Duration::from_millis(call.timeout_ms);
    match tokio::time::timeout(timeout, send(shared, call, body)).await {
        Err(_) => error(timed_out(call)),
        Ok(Err(message)) => error(message),
        Ok(Ok(answer)) if log_only => {
            let _ = answer;
            pass(true, "logged")
        }
        Ok(Ok(answer)) => match portico_guardrails::Webhook::verdict(&answer) {
            Some(verdict) => pass(
                verdict,
                if verdict {
                    "the webhook passed the request"
                } else {
                    "the webhook failed the request"
                },
            )
            .with_answer(answer),
            None => error("the webhook's answer has no boolean `verdict`".to_owned()),
        },
    }
}

async fn send(shared: &Shared, call: &Call, body: &Value) -> Result<Value, String> {
    let guard = shared.guard.load_full();
    guard
        .check_url(&call.url)
        .map_err(|e| format!("refused: {e}"))?;
    let host = call.url.host_str().unwrap_or_default();
    let port = call.url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot resolve the webhook host: {e}"))?
        .collect();
    guard
        .check_resolved(&call.url, &addrs)
        .map_err(|e| format!("refused: {e}"))?;
    let mut request = shared
        .client
        .post(call.url.clone())
        .timeout(Duration::from_millis(call.timeout_ms))
        .json(body);
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            timed_out(call)
        } else {
            format!("the webhook call failed: {}", e.without_url())
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the webhook answered HTTP {}", status.as_u16()));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("the webhook's answer broke off: {}", e.without_url()))?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err("the webhook's answer is larger than 1 MiB".to_owned());
    }
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the webhook's answer is not JSON: {e}"))
}

fn timed_out(call: &Call) -> String {
    format!("the webhook did not answer within {} ms", call.timeout_ms)
}

fn pass(verdict: bool, explanation: &str) -> Outcome {
    Outcome {
        verdict,
        explanation: explanation.to_owned(),
        data: None,
        error: None,
    }
}

fn error(message: String) -> Outcome {
    Outcome {
        verdict: false,
        explanation: format!("no verdict: {message}"),
        data: None,
        error: Some(message),
    }
}

trait WithAnswer {
    fn with_answer(self, answer: Value) -> Outcome;
}

impl WithAnswer for Outcome {
    fn with_answer(mut self, answer: Value) -> Outcome {
        self.data = Some(json!({"webhook": answer}));
        self
    }
}
