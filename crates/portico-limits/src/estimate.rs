//! What a request is expected to cost before it is sent ([`Estimate`]), and what it cost
//! once it has ended ([`Charge`]).
//!
//! The estimate follows what OpenAI counts against its own token rate limits: the prompt's
//! size plus the most the answer may use (`max_completion_tokens`, else `max_tokens`). The
//! prompt is counted as a quarter of the request body's bytes (JSON punctuation included, so
//! it errs on the high side for English text); without a `max_*` the answer is assumed to
//! use [`DEFAULT_COMPLETION_TOKENS`]. The estimate matters only while a request is in flight:
//! it is replaced by the usage the provider reports when the request ends.

/// Bytes of request body counted as one prompt token.
pub const BYTES_PER_TOKEN: u64 = 4;

/// Completion tokens assumed for a request that sets neither `max_completion_tokens` nor
/// `max_tokens`.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 1024;

/// The prompt tokens of a request body of `body_bytes` bytes.
pub fn prompt_tokens(body_bytes: usize) -> u64 {
    u64::try_from(body_bytes)
        .unwrap_or(u64::MAX)
        .div_ceil(BYTES_PER_TOKEN)
}

/// What a request may cost, reserved on admission.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimate {
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Their price in USD at the model's price; 0 when the price is unknown (an exhausted
    /// cost budget still refuses).
    pub cost_usd: f64,
}

impl Estimate {
    /// Tokens only; [`Estimate::priced`] adds the cost.
    pub fn tokens(prompt: u64, completion: u64) -> Estimate {
        Estimate {
            tokens: prompt.saturating_add(completion),
            cost_usd: 0.0,
        }
    }

    /// The same estimate at this cost.
    pub fn priced(self, cost_usd: f64) -> Estimate {
        Estimate {
            cost_usd: if cost_usd.is_finite() {
                cost_usd.max(0.0)
            } else {
                0.0
            },
            ..self
        }
    }
}

/// What a finished request is charged: the reported usage, priced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Charge {
    /// USD.
    pub cost_usd: f64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
}

impl Charge {
    /// Nothing (a request that failed or was refused before reaching a provider).
    pub const ZERO: Charge = Charge {
        cost_usd: 0.0,
        tokens: 0,
    };

    /// Whether nothing is charged.
    pub fn is_zero(&self) -> bool {
        self.tokens == 0 && self.cost_usd <= 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_a_quarter_of_the_body_rounded_up() {
        assert_eq!(prompt_tokens(0), 0);
        assert_eq!(prompt_tokens(1), 1);
        assert_eq!(prompt_tokens(8), 2);
        assert_eq!(prompt_tokens(9), 3);
        let e = Estimate::tokens(10, 32).priced(0.5);
        assert_eq!(e.tokens, 42);
        assert_eq!(e.cost_usd, 0.5);
        assert_eq!(Estimate::tokens(1, 1).priced(f64::NAN).cost_usd, 0.0);
        assert!(Charge::ZERO.is_zero());
    }
}
