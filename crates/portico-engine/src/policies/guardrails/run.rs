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
use tokio::sync::OwnedSemaphorePermit;

use super::respond::{self, FLAGGED, HOOKS_FAILED, MESSAGE};
use super::{MAX_ASYNC_IN_FLIGHT, Shared, moderate, webhook};
use crate::pipeline::Family;
use crate::pipeline::policy::{
    Amend, Before, Canned, Deferred, Finished, Output, OutputBody, OutputCheck, PolicyRequest,
    PolicyRun, Refusal,
};

/// One request's guardrails; see the module docs.
pub(crate) struct GuardrailsRun {
    shared: Arc<Shared>,
    /// The input guardrails run on the request path (not `async`).
    input: Vec<Arc<Guardrail>>,
    /// The output guardrails run on the request path (not `async`).
    output: Vec<Arc<Guardrail>>,
    /// The `async: true` guardrails, run by [`PolicyRun::deferred`] after the answer.
    async_input: Vec<Arc<Guardrail>>,
    async_output: Vec<Arc<Guardrail>>,
    /// The request as it went upstream, for the async input guardrails.
    async_body: Option<Map<String, Value>>,
    /// This run's room in the background ([`super::MAX_ASYNC_IN_FLIGHT`]), taken when the
    /// request ends.
    slot: Option<OwnedSemaphorePermit>,
    /// The moderation providers (`slug`, `model`) the caller's key may not use.
    denied_providers: Vec<(String, String)>,
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
        Family::OpenAi(Endpoint::Responses) => "createModelResponse",
        // Portkey's names for the same operations.
        Family::OpenAi(Endpoint::Moderations) => "moderate",
        Family::OpenAi(Endpoint::ImageGenerations) => "imageGenerate",
        Family::OpenAi(Endpoint::AudioTranscriptions) => "createTranscription",
        Family::OpenAi(Endpoint::AudioSpeech) => "createSpeech",
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
        let denied_providers = input
            .iter()
            .chain(&output)
            .flat_map(|g| g.checks.iter())
            .filter_map(|c| c.kind.moderation_provider())
            .filter(|(p, _)| !request.key.may_use(&p.slug, &p.model))
            .map(|(p, _)| (p.slug.clone(), p.model.clone()))
            .collect();
        let (async_input, input): (Vec<_>, Vec<_>) = input.into_iter().partition(|g| g.is_async);
        let (async_output, output): (Vec<_>, Vec<_>) = output.into_iter().partition(|g| g.is_async);
        GuardrailsRun {
            shared,
            input,
            output,
            async_input,
            async_output,
            async_body: None,
            slot: None,
            denied_providers,
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
            let mut outcome = if let Some(call) = check.kind.call() {
                let body = self.webhook_body(hook, target, &last);
                let log_only = check.id == "default.log";
                webhook::call(&self.shared, call, &body, log_only).await
            } else if let Some((provider, categories)) = check.kind.moderation_provider() {
                let allowed = !self
                    .denied_providers
                    .iter()
                    .any(|(slug, model)| *slug == provider.slug && *model == provider.model);
                moderate::call(&self.shared, provider, categories, &all, allowed).await
            } else {
                check.kind.evaluate(&subject, mutation)
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
            .chain(&self.async_output)
            .any(|g| g.checks.iter().any(|c| c.kind.call().is_some()))
    }

    fn has_async(&self) -> bool {
        !self.async_input.is_empty() || !self.async_output.is_empty()
    }

    /// Records the async guardrails as skipped: the background is full.
    fn skip_async(&mut self) {
        let message = format!(
            "not run: {MAX_ASYNC_IN_FLIGHT} requests' async guardrails were already running in the background"
        );
        let skipped = |g: &Arc<Guardrail>| GuardrailResult {
            id: g.id.clone(),
            verdict: true,
            deny: g.deny,
            is_async: true,
            transformed: false,
            checks: g
                .checks
                .iter()
                .map(|c| CheckResult {
                    id: c.id.clone(),
                    verdict: true,
                    explanation: message.clone(),
                    data: None,
                    error: Some(message.clone()),
                    duration_us: 0,
                    transformed: false,
                })
                .collect(),
            duration_us: 0,
        };
        let before: Vec<_> = self.async_input.drain(..).map(|g| skipped(&g)).collect();
        let after: Vec<_> = self.async_output.drain(..).map(|g| skipped(&g)).collect();
        self.results.before.extend(before);
        self.results.after.extend(after);
    }

    /// The answer the async output guardrails read: a complete, successful answer from the
    /// upstream (not a refusal, an error, a cut stream or a cache hit).
    fn async_output_target(&self, finished: &Finished<'_>) -> Option<Owned> {
        let record = finished.record;
        let from_upstream = !matches!(record.cache_status, Some("hit" | "semantic_hit"));
        if self.async_output.is_empty()
            || self.refused
            || !from_upstream
            || record.outcome != LogOutcome::Completed
            || !(200..300).contains(&record.status)
        {
            return None;
        }
        match finished.output {
            Output::None => None,
            Output::Whole(body) => serde_json::from_slice(body).ok().map(Owned::Response),
            Output::Stream(chunks) => {
                let mut sse = Vec::new();
                for chunk in chunks {
                    sse.extend_from_slice(chunk);
                }
                Some(Owned::Stream(text::stream_text(&sse)))
            }
        }
    }

    /// A run that owns what the async guardrails need, for the background.
    fn background(&mut self) -> GuardrailsRun {
        GuardrailsRun {
            shared: Arc::clone(&self.shared),
            input: Vec::new(),
            output: Vec::new(),
            async_input: std::mem::take(&mut self.async_input),
            async_output: std::mem::take(&mut self.async_output),
            async_body: self.async_body.take(),
            slot: self.slot.take(),
            denied_providers: std::mem::take(&mut self.denied_providers),
            unknown: None,
            family: self.family,
            stream: self.stream,
            model: self.model.take(),
            metadata: self.metadata.take(),
            request: self.request.take(),
            results: std::mem::take(&mut self.results),
            refused: self.refused,
        }
    }

    /// Runs the async guardrails (in the background) and returns the record's amendment:
    /// every verdict, the request path's and these.
    async fn run_async(mut self, output: Option<Owned>) -> Amend {
        let input = std::mem::take(&mut self.async_input);
        if let Some(mut map) = self.async_body.take() {
            for g in &input {
                let result = self
                    .run(g, Hook::Input, &mut Target::Request(&mut map))
                    .await;
                self.results.before.push(result);
            }
        }
        let guardrails = std::mem::take(&mut self.async_output);
        match output {
            Some(Owned::Response(mut value)) => {
                for g in &guardrails {
                    let result = self
                        .run(g, Hook::Output, &mut Target::Response(&mut value))
                        .await;
                    self.results.after.push(result);
                }
            }
            Some(Owned::Stream(assembled)) => {
                for g in &guardrails {
                    let result = self
                        .run(g, Hook::Output, &mut Target::Stream(&assembled))
                        .await;
                    self.results.after.push(result);
                }
            }
            None => {}
        }
        // The room is given back before the record is written.
        drop(self.slot.take());
        let results = (!self.results.is_empty()).then(|| self.results.to_json());
        Box::new(move |record: &mut RequestRecord| {
            if results.is_some() {
                record.guardrails = results;
            }
        })
    }
}

/// An answer kept for the async output guardrails.
enum Owned {
    Response(Value),
    Stream(String),
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
            if !self.async_input.is_empty() {
                self.async_body = Some(request.body.to_map());
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
        if !self.async_input.is_empty() {
            self.async_body = Some(map.clone());
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
        if self.has_async() {
            match Arc::clone(&self.shared.async_slots).try_acquire_owned() {
                Ok(slot) => self.slot = Some(slot),
                Err(_) => self.skip_async(),
            }
        }
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

    fn deferred(&mut self, finished: &Finished<'_>) -> Option<Deferred> {
        if !self.has_async() || self.slot.is_none() {
            return None;
        }
        let output = self.async_output_target(finished);
        let work: Deferred = Box::pin(self.background().run_async(output));
        Some(work)
    }
}
