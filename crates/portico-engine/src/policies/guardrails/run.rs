//! [`GuardrailsRun`]: one request's guardrails, across the pipeline's hooks.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::{ApiError, Endpoint, ErrorCode, JsonBody, Outcome as LogOutcome, RequestRecord};
use portico_guardrails::{
    CheckResult, Guardrail, GuardrailResult, Hook, HookResults, Mutation, Subject, Webhook, text,
};
use serde_json::{Map, Value};

use super::respond::{self, FLAGGED, HOOKS_FAILED, MESSAGE};
use super::{Shared, webhook};
use crate::pipeline::Family;
use crate::pipeline::policy::{
    Before, Canned, OutputBody, OutputCheck, PolicyRequest, PolicyRun, Refusal,
};

/// One request's guardrails; see the module docs.
pub(crate) struct GuardrailsRun {
    shared: Arc<Shared>,
    input: Vec<Arc<Guardrail>>,
    output: Vec<Arc<Guardrail>>,
    /// A named guardrail the config refers to that does not exist: `before` answers 400.
    unknown: Option<String>,
    family: Family,
    stream: bool,
    model: Option<String>,
    metadata: Option<Map<String, Value>>,
    /// The request as sent upstream, for output webhooks (only kept when one needs it).
    request: Option<Value>,
    results: HookResults,
    refused: bool,
}

/// What a guardrail's checks read and may rewrite.
enum Target<'a> {
    Request(&'a mut Map<String, Value>),
    Response(&'a mut Value),
    Stream(&'a str),
}

impl Target<'_> {
    /// (the text `default.*` checks read, every text).
    fn texts(&self) -> (String, String) {
        match self {
            Target::Request(map) => {
                let t = text::request_text(map);
                (t.last, t.all)
            }
            Target::Response(value) => {
                let t = text::response_text(value);
                (t.clone(), t)
            }
            Target::Stream(t) => ((*t).to_owned(), (*t).to_owned()),
        }
    }
}

fn request_type(family: Family) -> &'static str {
    match family {
        Family::OpenAi(Endpoint::ChatCompletions) => "chatComplete",
        Family::OpenAi(Endpoint::Completions) => "complete",
        Family::OpenAi(Endpoint::Embeddings) => "embed",
        Family::Messages => "messages",
    }
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl GuardrailsRun {
    pub(crate) fn new(
        shared: Arc<Shared>,
        request: &PolicyRequest<'_>,
        input: Vec<Arc<Guardrail>>,
        output: Vec<Arc<Guardrail>>,
        unknown: Option<String>,
    ) -> GuardrailsRun {
        GuardrailsRun {
            shared,
            input,
            output,
            unknown,
            family: request.family,
            stream: request.record.stream,
            model: request.model.map(str::to_owned),
            metadata: request.record.metadata.clone(),
            request: None,
            results: HookResults::default(),
            refused: false,
        }
    }

    fn flagged_input(&self) -> bool {
        self.results.before.iter().any(GuardrailResult::flags)
    }

    /// Runs one guardrail's checks on `target`.
    async fn run(&self, g: &Guardrail, hook: Hook, target: &mut Target<'_>) -> GuardrailResult {
        let started = Instant::now();
        let mut texts: Option<(String, String)> = None;
        let mut checks = Vec::with_capacity(g.checks.len());
        let mut transformed_any = false;
        for check in &g.checks {
            let t0 = Instant::now();
            let mut mutation = Mutation::default();
            let mut transformed = false;
            let mut note = None;
            if let Some(prefix) = check.kind.prefix() {
                if let Target::Request(map) = target {
                    transformed = text::add_prefix(map, prefix);
                }
            } else if check.kind.rewrites_text() {
                let kind = &check.kind;
                let mut rewrite = |s: &str| {
                    kind.rewrite(s).map(|(new, n)| {
                        mutation.replaced += n;
                        new
                    })
                };
                match target {
                    Target::Request(map) => transformed = text::rewrite_request(map, &mut rewrite),
                    Target::Response(value) => {
                        transformed = text::rewrite_response(value, &mut rewrite);
                    }
                    Target::Stream(t) => {
                        // A stream's text has reached the client: report, do not rewrite.
                        let _ = rewrite(t);
                        note =
                            Some("a stream cannot be rewritten once sent; matches only reported");
                    }
                }
            }
            if transformed {
                texts = None;
                transformed_any = true;
            }
            let (last, all) = texts.get_or_insert_with(|| target.texts()).clone();
            let subject = Subject {
                hook,
                text: &last,
                all_text: &all,
                model: self.model.as_deref(),
                metadata: self.metadata.as_ref(),
                request_type: request_type(self.family),
            };
            let mut outcome = match check.kind.call() {
                Some(call) => {
                    let body = self.webhook_body(hook, target, &last);
                    let log_only = check.id == "default.log";
                    webhook::call(&self.shared, call, &body, log_only).await
                }
                None => check.kind.evaluate(&subject, mutation),
            };
            if let Some(note) = note {
                outcome.explanation = format!("{} ({note})", outcome.explanation);
            }
            let verdict = if outcome.error.is_some() {
                !check.fail_on_error
            } else {
                outcome.verdict
            };
            checks.push(CheckResult {
                id: check.id.clone(),
                verdict,
                explanation: outcome.explanation,
                data: outcome.data,
                error: outcome.error,
                duration_us: micros(t0),
                transformed,
            });
        }
        GuardrailResult {
            id: g.id.clone(),
            verdict: checks.iter().all(|c| c.verdict),
            deny: g.deny,
            is_async: g.is_async,
            transformed: transformed_any,
            checks,
            duration_us: micros(started),
        }
    }

    fn webhook_body(&self, hook: Hook, target: &Target<'_>, last: &str) -> Value {
        let metadata = self.metadata.as_ref();
        match target {
            Target::Request(map) => {
                Webhook::body(hook, &Value::Object((*map).clone()), last, None, metadata)
            }
            Target::Response(value) => Webhook::body(
                hook,
                self.request.as_ref().unwrap_or(&Value::Null),
                "",
                Some((value, last)),
                metadata,
            ),
            Target::Stream(t) => Webhook::body(
                hook,
                self.request.as_ref().unwrap_or(&Value::Null),
                "",
                Some((&Value::Null, t)),
                metadata,
            ),
        }
    }

    fn output_needs_request(&self) -> bool {
        self.output
            .iter()
            .any(|g| g.checks.iter().any(|c| c.kind.call().is_some()))
    }
}

#[async_trait]
impl PolicyRun for GuardrailsRun {
    async fn before(&mut self, request: &mut PolicyRequest<'_>) -> Result<Before, ApiError> {
        if let Some(message) = self.unknown.take() {
            return Err(
                ApiError::new(ErrorCode::InvalidParameter, message).with_param("input_guardrails")
            );
        }
        if self.input.is_empty() {
            if self.output_needs_request() {
                self.request = Some(Value::Object(request.body.to_map()));
            }
            return Ok(Before::Continue);
        }
        let mut map = request.body.to_map();
        let mut changed = false;
        let guardrails = std::mem::take(&mut self.input);
        for g in &guardrails {
            let result = self
                .run(g, Hook::Input, &mut Target::Request(&mut map))
                .await;
            changed |= result.transformed;
            let denies = result.denies();
            self.results.before.push(result);
            if denies {
                break;
            }
        }
        self.input = guardrails;
        if changed {
            *request.body = JsonBody::from_map(&map);
            if request.record.log_payloads {
                // The log keeps the request as it went upstream: redacted.
                request.record.request = Some(request.body.to_bytes());
            }
        }
        if self.output_needs_request() {
            self.request = Some(Value::Object(map));
        }
        if self.results.denied() {
            self.refused = true;
            let refusal = respond::refusal(self.family, &self.results);
            return Ok(Before::Answer(Canned::Whole {
                status: refusal.status,
                body: Bytes::from(refusal.body.to_string()),
                usage: None,
            }));
        }
        Ok(Before::Continue)
    }

    fn checks_output(&self) -> bool {
        !self.output.is_empty() || (self.flagged_input() && !self.stream)
    }

    async fn check_output(&mut self, output: &mut OutputCheck<'_>) -> Result<(), Refusal> {
        let guardrails = std::mem::take(&mut self.output);
        match &mut output.body {
            OutputBody::Whole { status, body } => {
                let mut value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let mut changed = false;
                for g in &guardrails {
                    let result = self
                        .run(g, Hook::Output, &mut Target::Response(&mut value))
                        .await;
                    changed |= result.transformed;
                    self.results.after.push(result);
                }
                if changed && let Ok(bytes) = serde_json::to_vec(&value) {
                    **body = Bytes::from(bytes);
                }
                self.output = guardrails;
                if self.results.denied() {
                    self.refused = true;
                    return Err(respond::refusal(self.family, &self.results));
                }
                if self.results.flagged()
                    && let Some(flagged) = respond::with_results(body, &self.results)
                {
                    **status = FLAGGED;
                    **body = flagged;
                }
                Ok(())
            }
            OutputBody::Stream(chunks) => {
                let mut sse = Vec::new();
                for chunk in chunks.iter() {
                    sse.extend_from_slice(chunk);
                }
                let assembled = text::stream_text(&sse);
                for g in &guardrails {
                    let result = self
                        .run(g, Hook::Output, &mut Target::Stream(&assembled))
                        .await;
                    self.results.after.push(result);
                }
                self.output = guardrails;
                if self.results.denied() {
                    self.refused = true;
                    return Err(respond::refusal(self.family, &self.results));
                }
                Ok(())
            }
        }
    }

    fn stream_status(&mut self, status: u16) -> u16 {
        if status == 200 && self.flagged_input() {
            FLAGGED
        } else {
            status
        }
    }

    fn annotate(&mut self, record: &mut RequestRecord) {
        if self.results.is_empty() {
            return;
        }
        record.guardrails = Some(self.results.to_json());
        if self.refused {
            if record.error_code.is_none() {
                record.error_code = Some(HOOKS_FAILED.to_owned());
                record.error = Some(MESSAGE.to_owned());
            }
            if record.outcome == LogOutcome::Completed {
                record.outcome = LogOutcome::Failed;
            }
        }
    }
}
