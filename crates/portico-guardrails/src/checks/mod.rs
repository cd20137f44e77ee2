//! The checks a guardrail can hold: their ids, their parameters (Portkey's names), compiled
//! once by [`CheckKind::compile`], and their verdicts ([`CheckKind::evaluate`]).
//!
//! A check reads a [`Subject`]: the text Portkey's checks read (the last message of a request,
//! the answer's text), every text of the request or answer (for the `portico.*` detectors),
//! the model, the metadata and the request type. A check that cannot reach a verdict
//! (nothing to check, no model) returns an error result, which passes unless the check sets
//! `failOnError: true` (the policy decides that, see [`crate::Check::fail_on_error`]).
//!
//! Mutators (`default.regexReplace`, `portico.pii` with `redact: true`) also rewrite text
//! ([`CheckKind::rewrite`]); `default.addPrefix` rewrites the request's messages
//! ([`crate::text::add_prefix`]).

mod basic;
mod params;

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::pii::{self, PiiKind};
use crate::shape::{GuardrailError, Hook};
use crate::{injection, moderation};

pub(crate) use params::compile_regex;

/// What a check reads.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Before or after the upstream call.
    pub hook: Hook,
    /// The text Portkey's checks read: the request's last message (or `prompt`, `input`), or
    /// the answer's text.
    pub text: &'a str,
    /// Every text of the request (system and all messages) or of the answer.
    pub all_text: &'a str,
    /// The request body's `model`.
    pub model: Option<&'a str>,
    /// `x-portkey-metadata`.
    pub metadata: Option<&'a Map<String, Value>>,
    /// Portkey's request type: `chatComplete`, `complete`, `embed` or `messages`.
    pub request_type: &'a str,
}

/// `any`, `all` or `none` (Portkey's `operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// At least one.
    Any,
    /// Every one.
    All,
    /// Not one.
    None,
}

impl Operator {
    fn holds(self, found: usize, total: usize) -> bool {
        match self {
            Operator::Any => found > 0,
            Operator::All => found == total,
            Operator::None => found == 0,
        }
    }
}

/// `default.addPrefix`'s parameters.
#[derive(Debug, Clone)]
pub struct Prefix {
    /// `prefix`.
    pub prefix: String,
    /// `applyToRole` (default `user`).
    pub apply_to_role: String,
    /// `addToExisting` (default true): prepend to the role's first message, else insert a
    /// new message before it.
    pub add_to_existing: bool,
    /// `onlyIfEmpty` (default false): only add a message when the role has none.
    pub only_if_empty: bool,
}

/// A webhook-style call (`default.webhook`, `default.log`): the engine makes it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `webhookURL` / `logURL`.
    pub url: url::Url,
    /// `headers`.
    pub headers: Vec<(String, String)>,
    /// `timeout` in milliseconds (default 3,000).
    pub timeout_ms: u64,
}

/// `portico.moderation` with `provider`: the catalog provider whose moderation endpoint
/// (OpenAI's `POST /moderations`) classifies the text; the engine makes the call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationProvider {
    /// The provider's slug (`provider`, written `@slug` or `slug`).
    pub slug: String,
    /// `model` (default `omni-moderation-latest`).
    pub model: String,
    /// `timeout` in milliseconds (default 3,000).
    pub timeout_ms: u64,
    /// `threshold` when given: a chosen category scoring this or more fails the check too,
    /// besides the ones the provider flags itself.
    pub threshold: Option<f64>,
}

/// A compiled check: its kind and its parameters.
#[derive(Debug, Clone)]
#[expect(
    missing_docs,
    reason = "each variant's doc names its fields' Portkey parameters, in order"
)]
pub enum CheckKind {
    /// `default.regexMatch`: `rule`, `not`.
    RegexMatch { rule: Regex, not: bool },
    /// `default.sentenceCount`: `minSentences`, `maxSentences`, `not`.
    SentenceCount { min: f64, max: f64, not: bool },
    /// `default.wordCount`: `minWords`, `maxWords`, `not`.
    WordCount { min: f64, max: f64, not: bool },
    /// `default.characterCount`: `minCharacters`, `maxCharacters`, `not`.
    CharacterCount { min: f64, max: f64, not: bool },
    /// `default.jsonSchema`: `schema`, `not`.
    JsonSchema { schema: Value, not: bool },
    /// `default.jsonKeys`: `keys`, `operator`.
    JsonKeys {
        keys: Vec<String>,
        operator: Operator,
    },
    /// `default.contains`: `words`, `operator`.
    Contains {
        words: Vec<String>,
        operator: Operator,
    },
    /// `default.validUrls`: `onlyDNS` (accepted; no network is used), `not`.
    ValidUrls { not: bool },
    /// `default.containsCode`: `format`, `not`.
    ContainsCode { format: String, not: bool },
    /// `default.alluppercase`: `not`.
    AllUppercase { not: bool },
    /// `default.alllowercase`: `not`.
    AllLowercase { not: bool },
    /// `default.endsWith`: `suffix`, `not`.
    EndsWith { suffix: String, not: bool },
    /// `default.modelWhitelist`: `models`, `metadataRules`, `not`.
    ModelWhitelist {
        models: Vec<String>,
        rules: Vec<(String, Vec<String>, Vec<String>)>,
        not: bool,
    },
    /// `default.requiredMetadataKeys`: `metadataKeys`, `operator`.
    RequiredMetadataKeys {
        keys: Vec<String>,
        operator: Operator,
    },
    /// `default.allowedRequestTypes`: `allowedTypes`, `blockedTypes`.
    AllowedRequestTypes {
        allowed: Vec<String>,
        blocked: Vec<String>,
    },
    /// `default.notNull`: `not`.
    NotNull { not: bool },
    /// `default.webhook`: `webhookURL`, `headers`, `timeout`.
    Webhook(Call),
    /// `default.log`: `logURL`, `headers`; always passes.
    Log(Call),
    /// `default.addPrefix`: `prefix`, `applyToRole`, `addToExisting`, `onlyIfEmpty`.
    AddPrefix(Prefix),
    /// `default.regexReplace`: `rule`, `redactText`, `failOnDetection`.
    RegexReplace {
        rule: Regex,
        redact_text: String,
        fail_on_detection: bool,
    },
    /// `portico.pii`: `categories`, `redact`.
    Pii { kinds: Vec<PiiKind>, redact: bool },
    /// `portico.moderation`: `categories`, `threshold`, and `provider`, `model`, `timeout`
    /// (a provider's moderation endpoint instead of the local classifier).
    Moderation {
        categories: Vec<moderation::Category>,
        threshold: f64,
        provider: Option<ModerationProvider>,
    },
    /// `portico.promptInjection`: `threshold`.
    PromptInjection { threshold: f64 },
}

/// A check's verdict before the policy adds its id and timing.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Passed.
    pub verdict: bool,
    /// Why, in one sentence.
    pub explanation: String,
    /// Details (counts, what matched).
    pub data: Option<Value>,
    /// Set when no verdict could be reached.
    pub error: Option<String>,
}

impl Outcome {
    pub(crate) fn pass(verdict: bool, explanation: impl Into<String>) -> Outcome {
        Outcome {
            verdict,
            explanation: explanation.into(),
            data: None,
            error: None,
        }
    }

    pub(crate) fn error(message: impl Into<String>) -> Outcome {
        let message = message.into();
        Outcome {
            verdict: false,
            explanation: format!("no verdict: {message}"),
            data: None,
            error: Some(message),
        }
    }

    pub(crate) fn with_data(mut self, data: Value) -> Outcome {
        self.data = Some(data);
        self
    }
}

/// `not` inverts a verdict, as Portkey's checks do.
pub(crate) fn apply_not(verdict: bool, not: bool) -> bool {
    verdict != not
}

/// Mutation results: how many replacements a rewrite made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mutation {
    /// Replacements made in all the texts.
    pub replaced: usize,
}

impl CheckKind {
    /// Compiles the check `id` (full, `default.x`) with its parameters.
    pub(crate) fn compile(id: &str, p: &Map<String, Value>) -> Result<CheckKind, GuardrailError> {
        params::compile(id, p)
    }

    /// Whether the check rewrites texts ([`CheckKind::rewrite`]).
    pub fn rewrites_text(&self) -> bool {
        matches!(
            self,
            CheckKind::RegexReplace { .. } | CheckKind::Pii { redact: true, .. }
        )
    }

    /// The check's webhook-style call, when it makes one (the engine's part).
    pub fn call(&self) -> Option<&Call> {
        match self {
            CheckKind::Webhook(call) | CheckKind::Log(call) => Some(call),
            _ => None,
        }
    }

    /// `portico.moderation`'s provider and chosen categories, when it calls a provider's
    /// moderation endpoint (the engine's part; [`moderation::provider_verdict`] reads the
    /// answer).
    pub fn moderation_provider(&self) -> Option<(&ModerationProvider, &[moderation::Category])> {
        match self {
            CheckKind::Moderation {
                categories,
                provider: Some(provider),
                ..
            } => Some((provider, categories)),
            _ => None,
        }
    }

    /// `default.addPrefix`'s parameters.
    pub fn prefix(&self) -> Option<&Prefix> {
        match self {
            CheckKind::AddPrefix(p) => Some(p),
            _ => None,
        }
    }

    /// Rewrites one text: the new text and the number of replacements, or `None` when
    /// nothing changed.
    pub fn rewrite(&self, text: &str) -> Option<(String, usize)> {
        match self {
            CheckKind::RegexReplace {
                rule, redact_text, ..
            } => {
                let count = rule.find_iter(text).count();
                if count == 0 {
                    return None;
                }
                let replaced = rule.replace_all(text, regex::NoExpand(redact_text));
                Some((replaced.into_owned(), count))
            }
            CheckKind::Pii {
                kinds,
                redact: true,
            } => pii::redact(text, kinds),
            _ => None,
        }
    }

    /// The verdict on `subject`. `mutation` is what this check's rewrite did, for mutators.
    pub fn evaluate(&self, subject: &Subject<'_>, mutation: Mutation) -> Outcome {
        match self {
            CheckKind::Webhook(_) | CheckKind::Log(_) => {
                Outcome::error("a webhook check is run by the gateway, not locally")
            }
            CheckKind::AddPrefix(p) => {
                if subject.hook == Hook::Output {
                    Outcome::pass(true, "addPrefix applies to requests only; nothing done")
                } else {
                    Outcome::pass(
                        true,
                        format!("added the prefix for role `{}`", p.apply_to_role),
                    )
                }
            }
            CheckKind::RegexReplace {
                fail_on_detection, ..
            } => {
                let found = mutation.replaced > 0;
                let verdict = !(found && *fail_on_detection);
                Outcome::pass(
                    verdict,
                    if found {
                        format!("replaced {} match(es)", mutation.replaced)
                    } else {
                        "the pattern matched nothing".to_owned()
                    },
                )
                .with_data(json!({"replaced": mutation.replaced}))
            }
            CheckKind::Pii { kinds, redact } => {
                if *redact {
                    Outcome::pass(
                        true,
                        if mutation.replaced > 0 {
                            format!("redacted {} PII match(es)", mutation.replaced)
                        } else {
                            "no PII found".to_owned()
                        },
                    )
                    .with_data(json!({"redacted": mutation.replaced}))
                } else {
                    let found = pii::find(subject.all_text, kinds);
                    let counts = pii::counts(&found);
                    Outcome::pass(
                        found.is_empty(),
                        if found.is_empty() {
                            "no PII found".to_owned()
                        } else {
                            format!("found PII: {}", pii::summary(&counts))
                        },
                    )
                    .with_data(json!({"found": counts}))
                }
            }
            CheckKind::Moderation {
                provider: Some(_), ..
            } => Outcome::error("a provider's moderation check is run by the gateway, not locally"),
            CheckKind::Moderation {
                categories,
                threshold,
                provider: None,
            } => moderation::evaluate(subject.all_text, categories, *threshold),
            CheckKind::PromptInjection { threshold } => {
                injection::evaluate(subject.all_text, *threshold)
            }
            other => basic::evaluate(other, subject),
        }
    }
}

#[cfg(test)]
mod tests;
