//! `portico.moderation`: a local content classifier, a weighted lexicon per category.
//!
//! How it scores: each category has a list of terms and phrases with weights (a strong term
//! such as an explicit threat weighs 0.6 to 0.9, an ambiguous one 0.2 to 0.4). A text's score
//! in a category is the sum of the weights of the distinct terms found (as whole words,
//! case-insensitively), capped at 1. The check fails when a chosen category reaches
//! `threshold` (default 0.5).
//!
//! Honest limits: a lexicon knows words, not meaning. It misses paraphrase, misspellings
//! meant to evade it, other languages and context (a history lesson about violence scores
//! like a threat), and it flags quotations. It needs no network and costs microseconds,
//! which is why it is the default; it is a first line, not a replacement for a trained
//! moderation model.
//!
//! With `provider`, the check asks a provider's moderation endpoint instead (the engine makes
//! the call); [`provider_verdict`] reads its answer. OpenAI's moderation categories are this
//! module's six, each with sub-categories written `violence/graphic`, `self-harm/intent`:
//! a chosen category covers its sub-categories.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::checks::Outcome;

/// A moderation category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Threats and incitement to physical harm.
    Violence,
    /// Self-harm and suicide.
    SelfHarm,
    /// Hate speech against protected groups.
    Hate,
    /// Harassment and abuse of a person.
    Harassment,
    /// Sexual content.
    Sexual,
    /// Instructions for weapons, explosives and drugs.
    Illicit,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 6] = [
        Category::Violence,
        Category::SelfHarm,
        Category::Hate,
        Category::Harassment,
        Category::Sexual,
        Category::Illicit,
    ];
    /// The names, for errors.
    pub const NAMES: &'static str = "violence, self_harm, hate, harassment, sexual, illicit";

    /// The category of a parameter name.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Category::Violence => "violence",
            Category::SelfHarm => "self_harm",
            Category::Hate => "hate",
            Category::Harassment => "harassment",
            Category::Sexual => "sexual",
            Category::Illicit => "illicit",
        }
    }

    /// The name of the category in OpenAI's moderation answers (its sub-categories are
    /// `name/...`).
    pub fn upstream_name(self) -> &'static str {
        match self {
            Category::SelfHarm => "self-harm",
            other => other.name(),
        }
    }

    /// Whether an upstream category (`violence`, `violence/graphic`) is this one or one of
    /// its sub-categories.
    fn covers(self, upstream: &str) -> bool {
        let name = self.upstream_name();
        upstream
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    fn lexicon(self) -> &'static [(&'static str, f64)] {
        match self {
            Category::Violence => &[
                ("kill you", 0.9),
                ("i will kill", 0.9),
                ("going to kill", 0.8),
                ("murder", 0.5),
                ("shoot them", 0.8),
                ("stab", 0.4),
                ("massacre", 0.5),
                ("beat you up", 0.7),
                ("slit your throat", 0.9),
                ("torture", 0.4),
            ],
            Category::SelfHarm => &[
                ("kill myself", 0.9),
                ("suicide", 0.5),
                ("end my life", 0.9),
                ("cut myself", 0.8),
                ("self harm", 0.6),
                ("self-harm", 0.6),
                ("want to die", 0.7),
                ("overdose", 0.4),
            ],
            Category::Hate => &[
                ("subhuman", 0.7),
                ("inferior race", 0.9),
                ("ethnic cleansing", 0.9),
                ("gas the", 0.8),
                ("racial purity", 0.7),
                ("go back to your country", 0.6),
            ],
            Category::Harassment => &[
                ("you are worthless", 0.6),
                ("you're worthless", 0.6),
                ("nobody likes you", 0.5),
                ("shut up", 0.2),
                ("idiot", 0.3),
                ("stupid", 0.2),
                ("loser", 0.3),
                ("i know where you live", 0.9),
            ],
            Category::Sexual => &[
                ("porn", 0.6),
                ("explicit sex", 0.7),
                ("nude", 0.4),
                ("naked", 0.3),
                ("sexual", 0.3),
                ("erotic", 0.5),
            ],
            Category::Illicit => &[
                ("build a bomb", 0.9),
                ("make a bomb", 0.9),
                ("pipe bomb", 0.8),
                ("make meth", 0.9),
                ("synthesize meth", 0.9),
                ("untraceable gun", 0.8),
                ("nerve agent", 0.7),
                ("ransomware", 0.4),
            ],
        }
    }
}

/// One regex per category (all terms as alternatives, whole words, case-insensitive).
static MATCHERS: LazyLock<Vec<(Category, Option<Regex>)>> = LazyLock::new(|| {
    Category::ALL
        .iter()
        .map(|c| {
            let alternatives: Vec<String> =
                c.lexicon().iter().map(|(t, _)| regex::escape(t)).collect();
            let pattern = format!(r"(?i)(?-u:\b)(?:{})(?-u:\b)", alternatives.join("|"));
            (*c, Regex::new(&pattern).ok())
        })
        .collect()
});

/// Each chosen category's score on `text`, with the terms found.
pub fn scores(text: &str, categories: &[Category]) -> Vec<(Category, f64, Vec<String>)> {
    let mut out = Vec::new();
    for (category, matcher) in MATCHERS.iter() {
        if !categories.contains(category) {
            continue;
        }
        let Some(re) = matcher else { continue };
        let mut terms: Vec<String> = Vec::new();
        for m in re.find_iter(text) {
            let term = m.as_str().to_lowercase();
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        let score: f64 = terms
            .iter()
            .filter_map(|t| {
                category
                    .lexicon()
                    .iter()
                    .find(|(w, _)| w == t)
                    .map(|(_, s)| *s)
            })
            .sum();
        out.push((*category, score.min(1.0), terms));
    }
    out
}

pub(crate) fn evaluate(text: &str, categories: &[Category], threshold: f64) -> Outcome {
    if text.is_empty() {
        return Outcome::error("there is no text to check");
    }
    let scores = scores(text, categories);
    let flagged: Vec<&str> = scores
        .iter()
        .filter(|(_, s, _)| *s >= threshold && *s > 0.0)
        .map(|(c, _, _)| c.name())
        .collect();
    let mut data = Map::new();
    for (c, s, terms) in &scores {
        data.insert(c.name().to_owned(), json!({"score": s, "terms": terms}));
    }
    Outcome::pass(
        flagged.is_empty(),
        if flagged.is_empty() {
            "no category reached the threshold".to_owned()
        } else {
            format!("flagged: {}", flagged.join(", "))
        },
    )
    .with_data(Value::Object(data))
}

/// The verdict of a moderation endpoint's answer (OpenAI's shape: `results`, one per input,
/// each with `flagged`, `categories` (name to boolean) and `category_scores` (name to a
/// number from 0 to 1)): the check fails when the provider flags one of the chosen
/// `categories` (a sub-category counts for its category), or, with a `threshold`, when a
/// chosen category scores that or more. An answer without results is an error (no verdict).
pub fn provider_verdict(
    answer: &Value,
    categories: &[Category],
    threshold: Option<f64>,
) -> Outcome {
    let Some(results) = answer
        .get("results")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return Outcome::error("the moderation answer has no `results`");
    };
    let chosen = |name: &str| categories.iter().any(|c| c.covers(name));
    let mut flagged: Vec<String> = Vec::new();
    let mut scores = Map::new();
    let mut upstream_flagged = false;
    for result in results {
        upstream_flagged |= result.get("flagged").and_then(Value::as_bool) == Some(true);
        if let Some(Value::Object(flags)) = result.get("categories") {
            for (name, on) in flags {
                if on.as_bool() == Some(true) && chosen(name) && !flagged.contains(name) {
                    flagged.push(name.clone());
                }
            }
        }
        if let Some(Value::Object(by_name)) = result.get("category_scores") {
            for (name, score) in by_name {
                let Some(score) = score.as_f64() else {
                    continue;
                };
                if !chosen(name) {
                    continue;
                }
                let best = scores
                    .get(name)
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
                    .max(score);
                scores.insert(name.clone(), json!(best));
                if threshold.is_some_and(|t| score >= t) && !flagged.contains(name) {
                    flagged.push(name.clone());
                }
            }
        }
    }
    let data = json!({
        "model": answer.get("model").cloned().unwrap_or(Value::Null),
        "flagged": upstream_flagged,
        "categories": flagged,
        "category_scores": scores,
    });
    Outcome::pass(
        flagged.is_empty(),
        if flagged.is_empty() {
            "the provider flagged no chosen category".to_owned()
        } else {
            format!("flagged by the provider: {}", flagged.join(", "))
        },
    )
    .with_data(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_answers_map_to_the_chosen_categories() {
        let answer = json!({"id": "modr-1", "model": "omni-moderation-latest", "results": [{
            "flagged": true,
            "categories": {"violence": false, "violence/graphic": true, "self-harm": false, "sexual": false},
            "category_scores": {"violence": 0.3, "violence/graphic": 0.8, "self-harm": 0.6, "sexual": 0.01}
        }]});
        let all = provider_verdict(&answer, &Category::ALL, None);
        assert!(!all.verdict);
        assert_eq!(all.explanation, "flagged by the provider: violence/graphic");
        assert!(provider_verdict(&answer, &[Category::Sexual], None).verdict);
        // A threshold adds the categories scoring above it.
        let strict = provider_verdict(&answer, &[Category::SelfHarm], Some(0.5));
        assert!(!strict.verdict);
        assert!(strict.explanation.contains("self-harm"));
        assert_eq!(strict.data.unwrap()["category_scores"]["self-harm"], 0.6);
        let none = provider_verdict(&json!({"results": []}), &Category::ALL, None);
        assert!(none.error.is_some());
        assert!(!Category::Harassment.covers("harassmentx"));
        assert!(Category::Harassment.covers("harassment/threatening"));
    }

    #[test]
    fn scores_whole_words_per_category() {
        let bad = evaluate("I will kill you tomorrow", &Category::ALL, 0.5);
        assert!(!bad.verdict);
        assert!(bad.explanation.contains("violence"));
        assert!(evaluate("The skill of killing time", &Category::ALL, 0.5).verdict);
        assert!(evaluate("you idiot", &Category::ALL, 0.5).verdict);
        assert!(!evaluate("you idiot", &Category::ALL, 0.3).verdict);
        assert!(evaluate("how to build a bomb", &[Category::Hate], 0.5).verdict);
    }
}
