//! [`CacheRun`]: the cache's work on one request: look up before, store after.

use std::sync::Arc;

use async_trait::async_trait;
use portico_cache::{CacheKey, CacheStore, CachedAnswer, Payload};
use portico_core::{ApiError, Clock, Outcome};

use super::semantic::{Question, Semantic};
use super::{key, replay};
use crate::pipeline::policy::{Before, Finished, Output, PolicyRequest, PolicyRun};
use crate::pipeline::request::CACHE_FORCE_REFRESH;

/// The cache's work on one request.
pub(super) struct CacheRun {
    store: Arc<dyn CacheStore>,
    clock: Arc<dyn Clock>,
    semantic: Option<Arc<Semantic>>,
    max_age_ms: i64,
    /// Set by `before` on a miss or a refresh: where `after` stores the answer.
    fill: Option<Fill>,
}

/// Where a fresh answer goes.
struct Fill {
    key: CacheKey,
    /// The question's scope and vector, for the semantic index.
    question: Option<Question>,
}

impl CacheRun {
    pub(super) fn new(
        store: Arc<dyn CacheStore>,
        clock: Arc<dyn Clock>,
        semantic: Option<Arc<Semantic>>,
        max_age_ms: i64,
    ) -> CacheRun {
        CacheRun {
            store,
            clock,
            semantic,
            max_age_ms,
            fill: None,
        }
    }

    /// The answer under `key`, if stored within this request's `max_age`. A store that
    /// fails is a miss.
    async fn lookup(&self, key: &CacheKey, now: i64) -> Option<Arc<CachedAnswer>> {
        match self.store.get(key, now).await {
            Ok(found) => found.filter(|a| now.saturating_sub(a.stored_at_ms) < self.max_age_ms),
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; the request goes upstream");
                None
            }
        }
    }
}

/// Whether `x-portkey-cache-force-refresh` asks for a fresh answer.
fn force_refresh(request: &PolicyRequest<'_>) -> bool {
    request
        .headers
        .get(CACHE_FORCE_REFRESH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Fills the record of a hit on `answer` and returns the pipeline's answer.
fn hit(request: &mut PolicyRequest<'_>, answer: &CachedAnswer, status: &'static str) -> Before {
    let record = &mut *request.record;
    record.cache_status = Some(status);
    record.provider.clone_from(&answer.provider);
    record.model.clone_from(&answer.model);
    // The usage the replayed answer reports, which the client sees; it costs nothing.
    record.prompt_tokens = answer.prompt_tokens;
    record.completion_tokens = answer.completion_tokens;
    record.cost_usd = Some(0.0);
    record.cache_saved_usd = answer.cost_usd;
    Before::Answer(replay::canned(answer))
}

#[async_trait]
impl PolicyRun for CacheRun {
    async fn before(&mut self, request: &mut PolicyRequest<'_>) -> Result<Before, ApiError> {
        let now = self.clock.now_ms();
        let key = key::simple(request);
        let refresh = force_refresh(request);
        if !refresh && let Some(answer) = self.lookup(&key, now).await {
            return Ok(hit(request, &answer, "hit"));
        }
        let mut question = None;
        let mut status = if refresh { "refresh" } else { "miss" };
        if let Some(semantic) = &self.semantic
            && let Some(asked) = semantic.question(request).await
        {
            if !refresh
                && let Some((key, similarity)) = semantic.search(&asked, now)
                && let Some(answer) = self.lookup(&key, now).await
            {
                let answered = hit(request, &answer, "semantic_hit");
                request.record.cache_similarity = Some(f64::from(similarity));
                return Ok(answered);
            }
            if !refresh {
                status = "semantic_miss";
            }
            question = Some(asked);
        }
        request.record.cache_status = Some(status);
        self.fill = Some(Fill { key, question });
        Ok(Before::Continue)
    }

    fn after(&mut self, finished: &Finished<'_>) {
        let Some(fill) = self.fill.take() else {
            return;
        };
        let record = finished.record;
        if record.status != 200 || record.outcome != Outcome::Completed || record.error.is_some() {
            return;
        }
        let payload = match finished.output {
            // A copy, exactly the answer's size: a shared `Bytes` may be a slice of a larger
            // buffer, which the store's byte bound would not see.
            Output::Whole(body) if !body.is_empty() => {
                Payload::Whole(bytes::Bytes::copy_from_slice(body))
            }
            Output::Stream(chunks) => match replay::events(chunks) {
                Some(events) => Payload::Stream(events),
                None => return,
            },
            Output::Whole(_) | Output::None => return,
        };
        let now = self.clock.now_ms();
        let expires_at_ms = now.saturating_add(self.max_age_ms);
        self.store.put(
            fill.key,
            CachedAnswer {
                status: record.status,
                payload,
                provider: record.provider.clone(),
                model: record.model.clone(),
                prompt_tokens: record.prompt_tokens,
                completion_tokens: record.completion_tokens,
                cost_usd: record.cost_usd,
                stored_at_ms: now,
            },
            expires_at_ms,
        );
        if let (Some(semantic), Some(question)) = (&self.semantic, fill.question) {
            semantic.remember(question, fill.key, expires_at_ms, now);
        }
    }
}
