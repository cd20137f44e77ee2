//! Reading a check's parameters (Portkey's names) into a [`CheckKind`], with field-path errors.

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use super::{Call, CheckKind, ModerationProvider, Operator, Prefix};
use crate::moderation::Category;
use crate::pii::PiiKind;
use crate::shape::GuardrailError;

/// The longest regex source accepted from a config.
const MAX_RULE_CHARS: usize = 4096;
/// The compiled size bound of a config regex (the regex crate refuses bigger programs).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The longest webhook timeout.
const MAX_TIMEOUT_MS: u64 = 60_000;
/// `portico.moderation`'s model when it calls a provider and names none.
const DEFAULT_MODERATION_MODEL: &str = "omni-moderation-latest";
/// The most entries in a list parameter (`words`, `keys`, `models`).
const MAX_LIST: usize = 1024;

/// The ids of every check, for the error on an unknown one.
const KNOWN: &str = "default.regexMatch, default.sentenceCount, default.wordCount, default.characterCount, default.jsonSchema, default.jsonKeys, default.contains, default.validUrls, default.containsCode, default.alluppercase, default.alllowercase, default.endsWith, default.modelWhitelist, default.requiredMetadataKeys, default.allowedRequestTypes, default.notNull, default.webhook, default.log, default.addPrefix, default.regexReplace, portico.pii, portico.moderation, portico.promptInjection";

pub(crate) fn compile(id: &str, p: &Map<String, Value>) -> Result<CheckKind, GuardrailError> {
    let not = boolean(p, "not", false)?;
    Ok(match id {
        "default.regexMatch" => CheckKind::RegexMatch {
            rule: compile_regex(&string(p, "rule")?, "rule")?,
            not,
        },
        "default.sentenceCount" => CheckKind::SentenceCount {
            min: number(p, "minSentences", 0.0)?,
            max: number(p, "maxSentences", 99_999.0)?,
            not,
        },
        "default.wordCount" => CheckKind::WordCount {
            min: number(p, "minWords", 0.0)?,
            max: number(p, "maxWords", 99_999.0)?,
            not,
        },
        "default.characterCount" => CheckKind::CharacterCount {
            min: number(p, "minCharacters", 0.0)?,
            max: number(p, "maxCharacters", 9_999_999.0)?,
            not,
        },
        "default.jsonSchema" => {
            let schema = match p.get("schema") {
                Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                    GuardrailError::new("schema", format!("is not valid JSON: {e}"))
                })?,
                Some(v @ Value::Object(_)) => v.clone(),
                _ => {
                    return Err(GuardrailError::new(
                        "schema",
                        "is required: a JSON schema object",
                    ));
                }
            };
            CheckKind::JsonSchema { schema, not }
        }
        "default.jsonKeys" => CheckKind::JsonKeys {
            keys: strings(p, "keys")?,
            operator: operator(p)?,
        },
        "default.contains" => CheckKind::Contains {
            words: strings(p, "words")?,
            operator: operator(p)?,
        },
        "default.validUrls" => {
            boolean(p, "onlyDNS", false)?;
            CheckKind::ValidUrls { not }
        }
        "default.containsCode" => CheckKind::ContainsCode {
            format: string(p, "format")?,
            not,
        },
        "default.alluppercase" => CheckKind::AllUppercase { not },
        "default.alllowercase" => CheckKind::AllLowercase { not },
        "default.endsWith" => CheckKind::EndsWith {
            suffix: string(p, "suffix")?,
            not,
        },
        "default.modelWhitelist" => {
            let models = optional_strings(p, "models")?;
            let mut rules = Vec::new();
            if let Some(raw) = p.get("metadataRules") {
                let Value::Array(items) = raw else {
                    return Err(GuardrailError::new("metadataRules", "must be an array"));
                };
                for (i, item) in items.iter().enumerate() {
                    let path = format!("metadataRules[{i}]");
                    let Value::Object(rule) = item else {
                        return Err(GuardrailError::new(path, "must be an object"));
                    };
                    let key = string(rule, "metadataKey").map_err(|e| e.under(&path))?;
                    let values = strings(rule, "values").map_err(|e| e.under(&path))?;
                    let models = strings(rule, "models").map_err(|e| e.under(&path))?;
                    rules.push((key, values, models));
                }
            }
            if models.is_empty() && rules.is_empty() {
                return Err(GuardrailError::new(
                    "models",
                    "is required: the allowed models (or `metadataRules`)",
                ));
            }
            CheckKind::ModelWhitelist { models, rules, not }
        }
        "default.requiredMetadataKeys" => CheckKind::RequiredMetadataKeys {
            keys: strings(p, "metadataKeys")?,
            operator: operator_default(p, Operator::All)?,
        },
        "default.allowedRequestTypes" => CheckKind::AllowedRequestTypes {
            allowed: list_or_csv(p, "allowedTypes")?,
            blocked: list_or_csv(p, "blockedTypes")?,
        },
        "default.notNull" => CheckKind::NotNull { not },
        "default.webhook" => CheckKind::Webhook(call(p, "webhookURL")?),
        "default.log" => CheckKind::Log(call(p, "logURL")?),
        "default.addPrefix" => CheckKind::AddPrefix(Prefix {
            prefix: string(p, "prefix")?,
            apply_to_role: optional_string(p, "applyToRole")?.unwrap_or_else(|| "user".to_owned()),
            add_to_existing: boolean(p, "addToExisting", true)?,
            only_if_empty: boolean(p, "onlyIfEmpty", false)?,
        }),
        "default.regexReplace" => CheckKind::RegexReplace {
            rule: compile_regex(&string(p, "rule")?, "rule")?,
            redact_text: optional_string(p, "redactText")?
                .unwrap_or_else(|| "[REDACTED]".to_owned()),
            fail_on_detection: boolean(p, "failOnDetection", false)?,
        },
        "portico.pii" => {
            let kinds = match p.get("categories") {
                None | Some(Value::Null) => PiiKind::ALL.to_vec(),
                Some(_) => strings(p, "categories")?
                    .iter()
                    .map(|name| {
                        PiiKind::parse(name).ok_or_else(|| {
                            GuardrailError::new(
                                "categories",
                                format!("unknown PII category `{name}`; use {}", PiiKind::NAMES),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            CheckKind::Pii {
                kinds,
                redact: boolean(p, "redact", false)?,
            }
        }
        "portico.moderation" => {
            let categories = match p.get("categories") {
                None | Some(Value::Null) => Category::ALL.to_vec(),
                Some(_) => strings(p, "categories")?
                    .iter()
                    .map(|name| {
                        Category::parse(name).ok_or_else(|| {
                            GuardrailError::new(
                                "categories",
                                format!("unknown category `{name}`; use {}", Category::NAMES),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            let provider = match optional_string(p, "provider")? {
                None => {
                    if p.get("model").is_some_and(|m| !m.is_null()) {
                        return Err(GuardrailError::new(
                            "model",
                            "needs `provider`: the catalog provider whose moderation endpoint to call, such as \"@openai-prod\"",
                        ));
                    }
                    None
                }
                Some(raw) => {
                    let slug = raw.strip_prefix('@').unwrap_or(&raw);
                    if slug.is_empty() || slug.contains('/') {
                        return Err(GuardrailError::new(
                            "provider",
                            "must name a catalog provider, such as \"@openai-prod\" (the model goes in `model`)",
                        ));
                    }
                    let model = optional_string(p, "model")?
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| DEFAULT_MODERATION_MODEL.to_owned());
                    let threshold = match p.get("threshold") {
                        None | Some(Value::Null) => None,
                        Some(_) => Some(fraction(p, "threshold", 0.5)?),
                    };
                    Some(ModerationProvider {
                        slug: slug.to_owned(),
                        model,
                        timeout_ms: timeout(p)?,
                        threshold,
                    })
                }
            };
            CheckKind::Moderation {
                categories,
                threshold: fraction(p, "threshold", 0.5)?,
                provider,
            }
        }
        "portico.promptInjection" => CheckKind::PromptInjection {
            threshold: fraction(p, "threshold", 0.5)?,
        },
        other => {
            let hint = if other.starts_with("portkey.") {
                " Portkey's hosted checks are not available; Portico runs portico.pii, portico.moderation and portico.promptInjection locally instead."
            } else {
                ""
            };
            return Err(GuardrailError::new(
                "",
                format!("unknown check `{other}`; the checks are {KNOWN}.{hint}"),
            ));
        }
    })
}

/// Compiles a regex from a config, bounded in source length and compiled size. The syntax is
/// the `regex` crate's (linear time: no look-around, no back-references).
pub(crate) fn compile_regex(source: &str, field: &str) -> Result<Regex, GuardrailError> {
    if source.chars().count() > MAX_RULE_CHARS {
        return Err(GuardrailError::new(
            field,
            format!("is longer than {MAX_RULE_CHARS} characters"),
        ));
    }
    RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // The regex crate's message spans lines (a caret under the pattern): one line.
            let detail = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            GuardrailError::new(
                field,
                format!(
                    "is not a valid regex (Rust `regex` syntax: no look-around or back-references): {detail}"
                ),
            )
        })
}

fn call(p: &Map<String, Value>, field: &str) -> Result<Call, GuardrailError> {
    let raw = string(p, field)?;
    let url = url::Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| GuardrailError::new(field, "must be an absolute http(s) URL"))?;
    let mut headers = Vec::new();
    match p.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let Value::String(v) = v else {
                    return Err(GuardrailError::new(
                        format!("headers.{k}"),
                        "must be a string",
                    ));
                };
                headers.push((k.clone(), v.clone()));
            }
        }
        Some(Value::String(s)) => {
            // Portkey's UI stores headers as a JSON string.
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(s) else {
                return Err(GuardrailError::new("headers", "must be a JSON object"));
            };
            for (k, v) in map {
                headers.push((
                    k,
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                ));
            }
        }
        Some(_) => return Err(GuardrailError::new("headers", "must be an object")),
    }
    Ok(Call {
        url,
        headers,
        timeout_ms: timeout(p)?,
    })
}

/// `timeout`: milliseconds, 3,000 by default.
fn timeout(p: &Map<String, Value>) -> Result<u64, GuardrailError> {
    match p.get("timeout") {
        None | Some(Value::Null) => Ok(3_000),
        Some(v) => match v.as_u64() {
            Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(ms),
            _ => Err(GuardrailError::new(
                "timeout",
                format!("must be milliseconds from 1 to {MAX_TIMEOUT_MS}"),
            )),
        },
    }
}

fn string(p: &Map<String, Value>, field: &str) -> Result<String, GuardrailError> {
    match p.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(GuardrailError::new(field, "must not be empty")),
        None | Some(Value::Null) => Err(GuardrailError::new(field, "is required")),
        Some(_) => Err(GuardrailError::new(field, "must be a string")),
    }
}

fn optional_string(p: &Map<String, Value>, field: &str) -> Result<Option<String>, GuardrailError> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(GuardrailError::new(field, "must be a string")),
    }
}

fn number(p: &Map<String, Value>, field: &str, default: f64) -> Result<f64, GuardrailError> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| GuardrailError::new(field, "must be a number ≥ 0")),
    }
}

fn fraction(p: &Map<String, Value>, field: &str, default: f64) -> Result<f64, GuardrailError> {
    let n = number(p, field, default)?;
    if n > 1.0 {
        return Err(GuardrailError::new(field, "must be from 0 to 1"));
    }
    Ok(n)
}

fn boolean(p: &Map<String, Value>, field: &str, default: bool) -> Result<bool, GuardrailError> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(GuardrailError::new(field, "must be true or false")),
    }
}

fn strings(p: &Map<String, Value>, field: &str) -> Result<Vec<String>, GuardrailError> {
    let list = optional_strings(p, field)?;
    if list.is_empty() {
        return Err(GuardrailError::new(
            field,
            "is required: a non-empty array of strings",
        ));
    }
    Ok(list)
}

fn optional_strings(p: &Map<String, Value>, field: &str) -> Result<Vec<String>, GuardrailError> {
    match p.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_LIST => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| GuardrailError::new(format!("{field}[{i}]"), "must be a string"))
            })
            .collect(),
        Some(Value::Array(_)) => Err(GuardrailError::new(
            field,
            format!("holds at most {MAX_LIST} entries"),
        )),
        Some(_) => Err(GuardrailError::new(field, "must be an array of strings")),
    }
}

fn list_or_csv(p: &Map<String, Value>, field: &str) -> Result<Vec<String>, GuardrailError> {
    match p.get(field) {
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()),
        _ => optional_strings(p, field),
    }
}

fn operator(p: &Map<String, Value>) -> Result<Operator, GuardrailError> {
    operator_default(p, Operator::Any)
}

fn operator_default(p: &Map<String, Value>, default: Operator) -> Result<Operator, GuardrailError> {
    match p.get("operator") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => match s.as_str() {
            "any" => Ok(Operator::Any),
            "all" => Ok(Operator::All),
            "none" => Ok(Operator::None),
            _ => Err(GuardrailError::new("operator", "must be any, all or none")),
        },
        Some(_) => Err(GuardrailError::new("operator", "must be any, all or none")),
    }
}
