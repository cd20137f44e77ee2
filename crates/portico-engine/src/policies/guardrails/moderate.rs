//! `portico.moderation` with `provider`: the call to a catalog provider's moderation
//! endpoint (OpenAI's `POST /moderations`), through the provider's own adapter.
//!
//! The adapter is the one the gateway routes to (from the current snapshot), so the call
//! uses the provider's base URL and key, the shared client, and the provider's secret
//! redactor: an error quoting the upstream cannot carry the key into the check's result,
//! the request log or a 446 body. The caller's key must be allowed the provider and model,
//! as for a request naming them. The answer must come within the check's `timeout`; a
//! timeout, an error status, an unknown provider or one without a moderation endpoint is the
//! check's error: it passes unless the check sets `failOnError: true` (fail closed).

use std::sync::Arc;
use std::time::Duration;

use portico_core::JsonBody;
use portico_guardrails::moderation::{Category, provider_verdict};
use portico_guardrails::{ModerationProvider, Outcome};
use serde_json::{Map, Value};

use super::Shared;

/// Classifies `text` with `p`'s provider; `allowed` says whether the caller's key may use it.
pub(crate) async fn call(
    shared: &Shared,
    p: &ModerationProvider,
    categories: &[Category],
    text: &str,
    allowed: bool,
) -> Outcome {
    let slug = &p.slug;
    if text.is_empty() {
        return error("there is no text to check".to_owned());
    }
    if !allowed {
        return error(format!(
            "this key may not use `@{slug}/{}`, which the moderation check names",
            p.model
        ));
    }
    let snapshot = shared.snapshot.load_full();
    let Some(provider) = snapshot
        .as_ref()
        .and_then(|s| s.provider(slug))
        .map(|entry| Arc::clone(&entry.provider))
    else {
        return error(format!(
            "the catalog has no provider `@{slug}` for the moderation check"
        ));
    };
    let mut body = Map::new();
    body.insert("model".to_owned(), Value::String(p.model.clone()));
    body.insert("input".to_owned(), Value::String(text.to_owned()));
    let body = JsonBody::from_map(&body);
    let timeout = Duration::from_millis(p.timeout_ms);
    match tokio::time::timeout(timeout, provider.send_moderation(body)).await {
        Err(_) => error(format!(
            "the moderation endpoint of `@{slug}` did not answer within {} ms",
            p.timeout_ms
        )),
        Ok(None) => error(format!(
            "provider `@{slug}` ({}) has no moderation endpoint; name an OpenAI or OpenAI-compatible provider",
            provider.kind()
        )),
        // The adapter's redactor has already removed the provider's secrets from the error.
        Ok(Some(Err(e))) => error(format!("the moderation call to `@{slug}` failed: {e}")),
        Ok(Some(Ok(answer))) => match serde_json::from_slice::<Value>(&answer) {
            Ok(answer) => provider_verdict(&answer, categories, p.threshold),
            Err(e) => error(format!(
                "the moderation answer of `@{slug}` is not JSON: {e}"
            )),
        },
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
