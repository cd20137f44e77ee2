//! The soak's traffic: the kinds of request, their weights, and what each is expected to
//! cost.

use std::fmt;

/// The model every request names (the mock answers it whatever it is called).
pub(crate) const MODEL: &str = "gpt-4o-mini";

/// The catalog's price of [`MODEL`] on every soak provider, in micro-USD per token:
/// `input_per_mtok: 1.0`, `output_per_mtok: 2.0`. Whole micro-dollars per token, so every
/// request's cost is a whole number of micro-dollars and sums compare exactly.
pub(crate) const INPUT_MICRO_USD_PER_TOKEN: i64 = 1;
/// See [`INPUT_MICRO_USD_PER_TOKEN`].
pub(crate) const OUTPUT_MICRO_USD_PER_TOKEN: i64 = 2;

/// Content events of the mock's streams; its usage event says this many completion tokens.
pub(crate) const STREAM_CHUNKS: usize = 16;

/// The usage the mock reports for a whole stream: 12 prompt tokens, one completion token a
/// content event. What a stream the client left costs when the gateway had already
/// forwarded all of it (the client's leaving came too late to cut it off).
pub(crate) const STREAM_USAGE: (i64, i64) = (12, STREAM_CHUNKS as i64);

/// `max_tokens` of every request: it sizes the budget's estimate.
pub(crate) const MAX_TOKENS: i64 = 16;

/// One kind of request of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A whole chat completion.
    Chat,
    /// A streamed chat completion, read to its end.
    Stream,
    /// A chat completion to a provider that answers 500: the client gets the failure.
    Fail500,
    /// A chat completion to a provider that answers 429: the client gets the failure.
    Fail429,
    /// A chat completion through a fallback config whose first target answers 500.
    Fallback,
    /// A streamed chat completion the client leaves after its first bytes.
    Cancel,
    /// A chat completion on a key whose small budget runs out during the soak: 412s after.
    Budget,
    /// A whole Anthropic Messages request (`/v1/messages`), translated to the upstream.
    Messages,
}

impl Kind {
    /// Every kind, in the report's order.
    pub(crate) const ALL: [Kind; 8] = [
        Kind::Chat,
        Kind::Stream,
        Kind::Fail500,
        Kind::Fail429,
        Kind::Fallback,
        Kind::Cancel,
        Kind::Budget,
        Kind::Messages,
    ];

    /// The kind's name in `--mix`, the metadata and the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Stream => "stream",
            Kind::Fail500 => "fail500",
            Kind::Fail429 => "fail429",
            Kind::Fallback => "fallback",
            Kind::Cancel => "cancel",
            Kind::Budget => "budget",
            Kind::Messages => "messages",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The default weight (percent of the requests).
    fn default_weight(self) -> u32 {
        match self {
            Kind::Chat => 35,
            Kind::Stream => 25,
            Kind::Fail500 => 5,
            Kind::Fail429 => 3,
            Kind::Fallback => 10,
            Kind::Cancel => 7,
            Kind::Budget => 10,
            Kind::Messages => 5,
        }
    }

    /// The gateway key the kind's requests carry (one key per kind, so each kind's spend
    /// is its key's budget line).
    pub(crate) fn key_name(self) -> String {
        format!("soak-{}", self.name())
    }

    /// The provider slug its model names.
    pub(crate) fn provider(self) -> &'static str {
        match self {
            Kind::Fail500 => "soak-fail500",
            Kind::Fail429 => "soak-fail429",
            _ => "soak",
        }
    }

    /// The request path.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Kind::Messages => "/v1/messages",
            _ => "/v1/chat/completions",
        }
    }

    /// Whether the request asks for a stream.
    pub(crate) fn streams(self) -> bool {
        matches!(self, Kind::Stream | Kind::Cancel)
    }

    /// The request body (the same for every request of a kind: the trace id and metadata
    /// headers tell them apart).
    pub(crate) fn body(self) -> String {
        let model = format!("@{}/{MODEL}", self.provider());
        match self {
            Kind::Messages => format!(
                r#"{{"model":"{model}","max_tokens":{MAX_TOKENS},"messages":[{{"role":"user","content":"Say hello."}}]}}"#
            ),
            _ if self.streams() => format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":{MAX_TOKENS},"stream":true,"stream_options":{{"include_usage":true}}}}"#
            ),
            _ => format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":{MAX_TOKENS}}}"#
            ),
        }
    }

    /// What a budget holds for one request of this kind, and charges when the answer is
    /// cut off before its usage came (docs/budgets.md): a quarter of the body's bytes
    /// (rounded up) as prompt tokens, plus `max_tokens`, at the catalog price.
    pub(crate) fn estimate_micro_usd(self) -> i64 {
        let prompt = (self.body().len() as i64 + 3) / 4;
        prompt * INPUT_MICRO_USD_PER_TOKEN + MAX_TOKENS * OUTPUT_MICRO_USD_PER_TOKEN
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The cost of reported usage at the catalog price, in micro-USD.
pub(crate) fn cost_micro_usd(prompt_tokens: i64, completion_tokens: i64) -> i64 {
    prompt_tokens * INPUT_MICRO_USD_PER_TOKEN + completion_tokens * OUTPUT_MICRO_USD_PER_TOKEN
}

/// The weighted mix, drawn in a fixed, interleaved order (smooth weighted round robin): the
/// same run sends the same sequence, and every kind is spread over the whole run.
#[derive(Debug, Clone)]
pub(crate) struct Mix {
    weights: Vec<(Kind, i64)>,
    current: Vec<i64>,
    total: i64,
}

impl Mix {
    /// The default mix, changed by `spec` (`kind=weight,...`; a weight of 0 drops a kind).
    pub(crate) fn parse(spec: Option<&str>) -> anyhow::Result<Mix> {
        let mut weights: Vec<(Kind, i64)> = Kind::ALL
            .into_iter()
            .map(|k| (k, i64::from(k.default_weight())))
            .collect();
        for part in spec
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--mix: `{part}` is not kind=weight"))?;
            let kind = Kind::parse(name.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "--mix: unknown kind `{name}`; the kinds are {}",
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })?;
            let weight: i64 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| (0..=1000).contains(w))
                .ok_or_else(|| anyhow::anyhow!("--mix: the weight of {name} must be 0 to 1000"))?;
            if let Some(entry) = weights.iter_mut().find(|(k, _)| *k == kind) {
                entry.1 = weight;
            }
        }
        weights.retain(|(_, w)| *w > 0);
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            anyhow::bail!("--mix leaves no kind with a weight above 0");
        }
        Ok(Mix {
            current: vec![0; weights.len()],
            weights,
            total,
        })
    }

    /// The share of `kind` in the mix, 0 to 1.
    pub(crate) fn share(&self, kind: Kind) -> f64 {
        self.weights
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, w)| *w as f64 / self.total as f64)
    }

    /// The kinds and their weights, as `kind=weight` text.
    pub(crate) fn describe(&self) -> String {
        self.weights
            .iter()
            .map(|(k, w)| format!("{k}={w}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The next request's kind.
    pub(crate) fn next_kind(&mut self) -> Kind {
        let mut best = 0;
        for (i, (_, weight)) in self.weights.iter().enumerate() {
            self.current[i] += weight;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        self.weights[best].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_its_weights_exactly_over_one_round() {
        let mut mix = Mix::parse(Some("chat=3,stream=1,fail500=0")).unwrap();
        let total: i64 = mix.weights.iter().map(|(_, w)| w).sum();
        let mut counts = std::collections::HashMap::new();
        for _ in 0..total * 2 {
            *counts.entry(mix.next_kind()).or_insert(0) += 1;
        }
        assert_eq!(counts[&Kind::Chat], 6);
        assert_eq!(counts[&Kind::Stream], 2);
        assert!(!counts.contains_key(&Kind::Fail500));
        assert_eq!(counts[&Kind::Budget], 2 * 10);
        assert!((mix.share(Kind::Chat) - 3.0 / total as f64).abs() < 1e-12);
    }

    #[test]
    fn a_bad_mix_is_refused_with_the_reason() {
        let err = Mix::parse(Some("nope=1")).unwrap_err().to_string();
        assert!(err.contains("unknown kind `nope`"), "{err}");
        assert!(Mix::parse(Some("chat")).is_err());
        assert!(Mix::parse(Some("chat=-1")).is_err());
        let none = Kind::ALL.map(|k| format!("{k}=0")).join(",");
        assert!(Mix::parse(Some(&none)).is_err());
    }

    #[test]
    fn bodies_are_json_and_estimates_follow_the_budget_rule() {
        for kind in Kind::ALL {
            let body: serde_json::Value = serde_json::from_str(&kind.body()).unwrap();
            assert_eq!(body["max_tokens"], MAX_TOKENS);
            assert_eq!(body["stream"].as_bool().unwrap_or(false), kind.streams());
        }
        let len = Kind::Cancel.body().len() as i64;
        assert_eq!(
            Kind::Cancel.estimate_micro_usd(),
            (len + 3) / 4 + MAX_TOKENS * 2
        );
        assert_eq!(cost_micro_usd(12, 9), 30);
    }
}
