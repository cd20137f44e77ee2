//! One model's prices and the cost of a request's usage at those prices.

use portico_core::Usage;
use serde::{Deserialize, Serialize};

/// Prices of one model in USD per million tokens.
///
/// The same shape as the catalog's `models[].pricing`. An absent cache price means the
/// provider publishes none: those tokens are priced as plain input (see [`ModelPrice::cost`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input_per_mtok: f64,
    /// Output tokens (reasoning included).
    pub output_per_mtok: f64,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<f64>,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<f64>,
}

impl ModelPrice {
    /// A price of zero for everything: local models (Ollama) and the simulated `mock` provider.
    pub const FREE: ModelPrice = ModelPrice {
        input_per_mtok: 0.0,
        output_per_mtok: 0.0,
        cache_read_per_mtok: Some(0.0),
        cache_write_per_mtok: Some(0.0),
    };

    /// The cost of `usage` in USD.
    ///
    /// `usage.prompt_tokens` counts cached reads and cache writes too (OpenAI's meaning), so
    /// those are taken out of the input and priced on their own: uncached input at
    /// `input_per_mtok`, cache reads at `cache_read_per_mtok`, cache writes at
    /// `cache_write_per_mtok`; a missing cache price falls back to the input price. An
    /// upstream that reports more cached tokens than prompt tokens gets no negative input.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens;
        let written = usage.cache_write_tokens;
        let uncached = usage
            .prompt_tokens
            .saturating_sub(cached.saturating_add(written));
        let read_price = self.cache_read_per_mtok.unwrap_or(self.input_per_mtok);
        let write_price = self.cache_write_per_mtok.unwrap_or(self.input_per_mtok);
        (uncached as f64 * self.input_per_mtok
            + cached as f64 * read_price
            + written as f64 * write_price
            + usage.completion_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }

    /// Every price multiplied by `factor` (Bedrock's regional surcharge).
    pub(crate) fn scaled(self, factor: f64) -> ModelPrice {
        ModelPrice {
            input_per_mtok: self.input_per_mtok * factor,
            output_per_mtok: self.output_per_mtok * factor,
            cache_read_per_mtok: self.cache_read_per_mtok.map(|p| p * factor),
            cache_write_per_mtok: self.cache_write_per_mtok.map(|p| p * factor),
        }
    }
}

/// A price override from the catalog (`models[].pricing`), where every field is optional.
///
/// [`PriceOverride::resolve`] fills the fields it leaves out from the built-in price, so
/// `{ input_per_mtok: 2.5 }` changes only the input price of a model the table knows.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PriceOverride {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_per_mtok: Option<f64>,
    /// Output tokens.
    #[serde(default)]
    pub output_per_mtok: Option<f64>,
    /// Cache reads.
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Cache writes.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

impl PriceOverride {
    /// The price this override gives, its missing fields taken from `builtin`.
    ///
    /// `None` when input or output price is still unknown: a cost is never guessed.
    pub fn resolve(&self, builtin: Option<ModelPrice>) -> Option<ModelPrice> {
        Some(ModelPrice {
            input_per_mtok: self.input_per_mtok.or(builtin.map(|b| b.input_per_mtok))?,
            output_per_mtok: self
                .output_per_mtok
                .or(builtin.map(|b| b.output_per_mtok))?,
            cache_read_per_mtok: self
                .cache_read_per_mtok
                .or(builtin.and_then(|b| b.cache_read_per_mtok)),
            cache_write_per_mtok: self
                .cache_write_per_mtok
                .or(builtin.and_then(|b| b.cache_write_per_mtok)),
        })
    }
}
