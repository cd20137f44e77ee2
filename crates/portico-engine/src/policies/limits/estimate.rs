//! A request's estimate from what the gateway knows before sending it: the body's size, its
//! `max_completion_tokens` / `max_tokens`, and the price of the model it goes to
//! (`portico_limits`' `estimate` module has the rule and its reasons).

use portico_core::{ModelRef, Usage};
use portico_limits::{DEFAULT_COMPLETION_TOKENS, Estimate, prompt_tokens};

use crate::pipeline::Family;
use crate::pipeline::policy::PolicyRequest;
use crate::snapshot::Snapshot;

/// The tokens a request is expected to use.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Size {
    prompt: u64,
    completion: u64,
}

impl Size {
    /// The size of `request`: a quarter of its body's bytes, plus `max_completion_tokens`,
    /// else `max_tokens`, else the default (nothing for embeddings and the other operations
    /// that generate no tokens).
    pub(super) fn of(request: &PolicyRequest<'_>) -> Size {
        let body = &*request.body;
        let completion = match request.family {
            Family::OpenAi(endpoint) if !endpoint.generates_tokens() => 0,
            _ => ["max_completion_tokens", "max_tokens", "max_output_tokens"]
                .into_iter()
                .find_map(|field| body.get::<u64>(field).and_then(Result::ok))
                .unwrap_or(DEFAULT_COMPLETION_TOKENS),
        };
        Size {
            prompt: prompt_tokens(body.original_len()),
            completion,
        }
    }

    /// The estimate without a price.
    pub(super) fn estimate(self) -> Estimate {
        Estimate::tokens(self.prompt, self.completion)
    }

    /// The cost of these tokens at `model` of provider `slug`, when its price is known.
    pub(super) fn cost_at(self, snapshot: &Snapshot, slug: &str, model: &str) -> Option<f64> {
        let entry = snapshot.provider(slug)?;
        let price = portico_pricing::price_of(entry.kind, model, entry.pricing(model))?;
        Some(price.cost(&Usage {
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
            cached_tokens: 0,
            cache_write_tokens: 0,
        }))
    }

    /// The cost at the `@slug/model` the request names, when it names one with a known
    /// price.
    pub(super) fn cost_at_named(self, snapshot: &Snapshot, model: Option<&str>) -> Option<f64> {
        let named = ModelRef::parse(model?).ok()?;
        self.cost_at(snapshot, &named.slug, &named.model)
    }
}
