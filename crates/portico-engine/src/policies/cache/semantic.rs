//! The semantic cache: a question close enough in meaning to one answered before, in the
//! same scope, gets that answer.
//!
//! - **Which requests** (Portkey's rule is "short conversations only"; ours, precisely): a
//!   chat completion or a Messages request of at most [`MAX_MESSAGES`] messages (a system
//!   message counts; Messages' `system` field is part of the scope instead) whose last
//!   message is the user's, in text (a string, or text parts only), or a completion whose
//!   `prompt` is one string; the text at most [`MAX_QUESTION_BYTES`]. Embeddings requests
//!   and anything else use the simple cache only.
//! - **The scope**: everything but that text, keyed as the simple cache keys a request (the
//!   endpoint, provider, config, metadata, namespace) over the body with the last message's
//!   content taken out. So the model and every parameter must be the same, and so must the
//!   earlier messages.
//! - **The vector**: the catalog's embedding model named by `--cache-embedding-model`
//!   (`@slug/model`), called with the text as `input`, normalized. Its call is not logged
//!   or charged as a request. An embedding call that fails is a miss.
//! - **The match**: cosine similarity at least the threshold (`--cache-semantic-threshold`,
//!   [`DEFAULT_THRESHOLD`]), nearest first ([`portico_cache::VectorIndex`]).

use std::sync::{Arc, PoisonError, RwLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use portico_cache::{CacheKey, VectorIndex, normalize};
use portico_core::{Endpoint, JsonBody, ModelRef};
use portico_providers::{UpstreamRequest, UpstreamResponse};
use serde_json::Value;

use super::key;
use crate::pipeline::Family;
use crate::pipeline::policy::PolicyRequest;
use crate::snapshot::Snapshot;

/// The similarity a hit needs by default (Portkey's).
pub const DEFAULT_THRESHOLD: f32 = 0.95;
/// The longest conversation the semantic cache answers, in messages.
pub const MAX_MESSAGES: usize = 4;
/// The longest question the semantic cache embeds, in bytes.
pub const MAX_QUESTION_BYTES: usize = 8 * 1024;

/// How the semantic cache is set up (`portico serve` flags).
#[derive(Debug, Clone)]
pub struct SemanticSettings {
    /// The catalog's embedding model, as `@slug/model`.
    pub embedding_model: ModelRef,
    /// The similarity a hit needs, in `[0, 1]`.
    pub threshold: f32,
    /// The most questions kept in the index.
    pub max_entries: usize,
}

/// The semantic cache's state: the settings, the catalog (for the embedding provider) and
/// the index.
pub(super) struct Semantic {
    settings: SemanticSettings,
    snapshot: ArcSwap<Snapshot>,
    index: RwLock<VectorIndex>,
}

/// A request's question: its scope and its vector.
pub(super) struct Question {
    scope: CacheKey,
    vector: Vec<f32>,
}

impl Semantic {
    pub(super) fn new(settings: SemanticSettings) -> Semantic {
        Semantic {
            index: RwLock::new(VectorIndex::new(settings.max_entries)),
            settings,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
        }
    }

    pub(super) fn catalog_changed(&self, snapshot: &Arc<Snapshot>) {
        self.snapshot.store(Arc::clone(snapshot));
    }

    /// The question of `request`, when the semantic cache applies to it and the embedding
    /// model answered.
    pub(super) async fn question(&self, request: &PolicyRequest<'_>) -> Option<Question> {
        let (text, rest) = split(request.family, request.body)?;
        let mut scope = key::common(request, "semantic");
        scope.part("rest", &rest);
        let vector = self.embed(&text).await?;
        Some(Question {
            scope: scope.finish(),
            vector,
        })
    }

    /// The key of the nearest answered question, with its similarity.
    pub(super) fn search(&self, question: &Question, now_ms: i64) -> Option<(CacheKey, f32)> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index
            .search(
                &question.scope,
                &question.vector,
                self.settings.threshold,
                now_ms,
            )
            .map(|found| (found.key, found.similarity))
    }

    /// Remembers that `question` is answered under `key` until `expires_at_ms`.
    pub(super) fn remember(
        &self,
        question: Question,
        key: CacheKey,
        expires_at_ms: i64,
        now_ms: i64,
    ) {
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        index.insert(question.scope, key, &question.vector, expires_at_ms, now_ms);
    }

    /// The normalized embedding of `text` from the configured model.
    async fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let ModelRef { slug, model } = &self.settings.embedding_model;
        let provider = Arc::clone(&self.snapshot.load().provider(slug)?.provider);
        let body = serde_json::json!({"model": model, "input": text}).to_string();
        let body = JsonBody::parse(Bytes::from(body)).ok()?;
        let answer = provider
            .send(UpstreamRequest {
                endpoint: Endpoint::Embeddings,
                model: model.clone(),
                body,
                stream: false,
            })
            .await;
        let body = match answer {
            Ok(UpstreamResponse::Complete { body, .. }) => body,
            Ok(UpstreamResponse::Stream { .. }) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "the semantic cache's embedding call failed; a miss");
                return None;
            }
        };
        let parsed: Value = serde_json::from_slice(&body).ok()?;
        let values: Vec<f64> = parsed
            .get("data")?
            .get(0)?
            .get("embedding")?
            .as_array()?
            .iter()
            .map(Value::as_f64)
            .collect::<Option<_>>()?;
        normalize(&values)
    }
}

/// A request's question text and the rest of its body (the last message's content taken
/// out), when the semantic cache applies to it (see the module docs).
pub(super) fn split(family: Family, body: &JsonBody) -> Option<(String, Vec<u8>)> {
    let mut map = match family {
        Family::OpenAi(Endpoint::ChatCompletions | Endpoint::Completions) | Family::Messages => {
            body.to_map()
        }
        Family::OpenAi(_) => return None,
    };
    let text = if family == Family::OpenAi(Endpoint::Completions) {
        match map.get_mut("prompt")? {
            Value::String(prompt) => std::mem::take(prompt),
            _ => return None,
        }
    } else {
        let messages = map.get_mut("messages")?.as_array_mut()?;
        if messages.is_empty() || messages.len() > MAX_MESSAGES {
            return None;
        }
        let last = messages.last_mut()?.as_object_mut()?;
        if last.get("role")?.as_str()? != "user" {
            return None;
        }
        let text = text_of(last.get("content")?)?;
        last.insert("content".to_owned(), Value::Null);
        text
    };
    if text.trim().is_empty() || text.len() > MAX_QUESTION_BYTES {
        return None;
    }
    let rest = serde_json::to_vec(&map).ok()?;
    Some((text, rest))
}

/// A message's text: a string, or text parts only, joined by line breaks.
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Option<Vec<&str>> = parts
                .iter()
                .map(|p| {
                    (p.get("type")?.as_str()? == "text")
                        .then(|| p.get("text")?.as_str())
                        .flatten()
                })
                .collect();
            Some(texts?.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> JsonBody {
        JsonBody::parse(Bytes::from(value.to_string())).unwrap()
    }

    const CHAT: Family = Family::OpenAi(Endpoint::ChatCompletions);

    #[test]
    fn the_question_is_the_last_user_message_and_the_rest_is_the_scope() {
        let a = split(
            CHAT,
            &body(json!({"model": "@oa/m", "temperature": 0,
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "What is the capital of France?"}]})),
        )
        .unwrap();
        let b = split(
            CHAT,
            &body(json!({"model": "@oa/m", "temperature": 0,
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": [{"type": "text", "text": "capital of France?"}]}]})),
        )
        .unwrap();
        assert_eq!(a.0, "What is the capital of France?");
        assert_eq!(b.0, "capital of France?");
        assert_eq!(a.1, b.1, "same scope");
        let other = split(
            CHAT,
            &body(json!({"model": "@oa/m", "temperature": 1,
                "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "What is the capital of France?"}]})),
        )
        .unwrap();
        assert_ne!(a.1, other.1, "another temperature, another scope");
        let completion = split(
            Family::OpenAi(Endpoint::Completions),
            &body(json!({"model": "@oa/m", "prompt": "Once upon"})),
        )
        .unwrap();
        assert_eq!(completion.0, "Once upon");
    }

    #[test]
    fn long_conversations_and_other_shapes_are_not_semantic() {
        let turn = json!({"role": "user", "content": "hi"});
        let long = json!({"model": "m", "messages": vec![turn.clone(); MAX_MESSAGES + 1]});
        assert!(split(CHAT, &body(long)).is_none());
        let short = json!({"model": "m", "messages": vec![turn; MAX_MESSAGES]});
        assert!(split(CHAT, &body(short)).is_some());
        for not in [
            json!({"model": "m", "messages": [{"role": "assistant", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": "  "}]}),
            json!({"model": "m", "messages": []}),
            json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(MAX_QUESTION_BYTES + 1)}]}),
        ] {
            assert!(split(CHAT, &body(not.clone())).is_none(), "{not}");
        }
        assert!(
            split(
                Family::OpenAi(Endpoint::Embeddings),
                &body(json!({"model": "m", "input": "x"}))
            )
            .is_none()
        );
        assert!(
            split(
                Family::Messages,
                &body(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
            )
            .is_some()
        );
    }
}
