//! Guardrails in the metrics: checks by id and verdict, and requests by what their
//! guardrails decided. Read from the record's `guardrails` (`hook_results`), so a request
//! without guardrails costs one `None` test.

use portico_core::RequestRecord;
use prometheus::{IntCounterVec, Opts, Registry};
use serde_json::Value;

/// The guardrail families.
pub(crate) struct GuardrailFamilies {
    checks: IntCounterVec,
    requests: IntCounterVec,
}

impl GuardrailFamilies {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<GuardrailFamilies, prometheus::Error> {
        let checks = IntCounterVec::new(
            Opts::new(
                "portico_guardrail_checks_total",
                "Guardrail checks run, by check id (default.wordCount, portico.pii, ...), hook (input, output) and verdict (pass, fail).",
            ),
            &["check", "hook", "verdict"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "portico_guardrail_requests_total",
                "Requests with guardrails, by outcome: passed, flagged (246) or denied (446).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(checks.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        Ok(GuardrailFamilies { checks, requests })
    }

    /// Counts one finished request's guardrail results.
    pub(crate) fn observe(&self, record: &RequestRecord) {
        let Some(results) = &record.guardrails else {
            return;
        };
        let mut denied = false;
        let mut flagged = false;
        for (field, hook) in [
            ("before_request_hooks", "input"),
            ("after_request_hooks", "output"),
        ] {
            let Some(Value::Array(guardrails)) = results.get(field) else {
                continue;
            };
            for g in guardrails {
                let passed = g.get("verdict").and_then(Value::as_bool).unwrap_or(true);
                let deny = g.get("deny").and_then(Value::as_bool).unwrap_or(false);
                let is_async = g.get("async").and_then(Value::as_bool).unwrap_or(false);
                if !passed && !is_async {
                    if deny {
                        denied = true;
                    } else {
                        flagged = true;
                    }
                }
                let Some(Value::Array(checks)) = g.get("checks") else {
                    continue;
                };
                for c in checks {
                    // Check ids come from the closed set of known checks (parsing refuses
                    // others), so the label stays bounded.
                    let id = c.get("id").and_then(Value::as_str).unwrap_or("unknown");
                    let verdict = if c.get("verdict").and_then(Value::as_bool).unwrap_or(true) {
                        "pass"
                    } else {
                        "fail"
                    };
                    self.checks.with_label_values(&[id, hook, verdict]).inc();
                }
            }
        }
        let outcome = if denied {
            "denied"
        } else if flagged {
            "flagged"
        } else {
            "passed"
        };
        self.requests.with_label_values(&[outcome]).inc();
    }
}
