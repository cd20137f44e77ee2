//! The verdicts of Portkey's deterministic `default.*` checks.

use serde_json::{Value, json};

use super::{CheckKind, Outcome, Subject, apply_not};
use crate::schema;

/// Portkey's `containsCode` names for a fence's language tag.
const LANGUAGES: &[(&str, &str)] = &[
    ("sql", "SQL"),
    ("py", "Python"),
    ("python", "Python"),
    ("ts", "TypeScript"),
    ("typescript", "TypeScript"),
    ("js", "JavaScript"),
    ("javascript", "JavaScript"),
    ("java", "Java"),
    ("cs", "C#"),
    ("csharp", "C#"),
    ("cpp", "C++"),
    ("c", "C"),
    ("rb", "Ruby"),
    ("ruby", "Ruby"),
    ("php", "PHP"),
    ("swift", "Swift"),
    ("kt", "Kotlin"),
    ("kotlin", "Kotlin"),
    ("go", "Go"),
    ("rs", "Rust"),
    ("rust", "Rust"),
    ("scala", "Scala"),
    ("r", "R"),
    ("pl", "Perl"),
    ("perl", "Perl"),
    ("sh", "Shell"),
    ("bash", "Shell"),
    ("shell", "Shell"),
    ("html", "HTML"),
    ("css", "CSS"),
    ("xml", "XML"),
    ("json", "JSON"),
    ("yml", "YAML"),
    ("yaml", "YAML"),
    ("md", "Markdown"),
    ("markdown", "Markdown"),
    ("dockerfile", "Dockerfile"),
];

pub(super) fn evaluate(kind: &CheckKind, s: &Subject<'_>) -> Outcome {
    let text = s.text;
    let needs_text = !matches!(
        kind,
        CheckKind::ModelWhitelist { .. }
            | CheckKind::RequiredMetadataKeys { .. }
            | CheckKind::AllowedRequestTypes { .. }
            | CheckKind::NotNull { .. }
    );
    if needs_text && text.is_empty() {
        return Outcome::error("there is no text to check");
    }
    match kind {
        CheckKind::RegexMatch { rule, not } => {
            let found = rule.find(text);
            let verdict = apply_not(found.is_some(), *not);
            Outcome::pass(
                verdict,
                if found.is_some() {
                    format!("the pattern `{}` matched", rule.as_str())
                } else {
                    format!("the pattern `{}` did not match", rule.as_str())
                },
            )
            .with_data(json!({"matched": found.map(|m| excerpt(m.as_str()))}))
        }
        CheckKind::SentenceCount { min, max, not } => {
            let count = text
                .chars()
                .filter(|c| matches!(c, '.' | '!' | '?'))
                .count();
            range("sentences", count, *min, *max, *not)
        }
        CheckKind::WordCount { min, max, not } => {
            range("words", text.split_whitespace().count(), *min, *max, *not)
        }
        CheckKind::CharacterCount { min, max, not } => {
            range("characters", text.chars().count(), *min, *max, *not)
        }
        CheckKind::JsonSchema { schema, not } => {
            let candidates = json_candidates(text);
            if candidates.is_empty() {
                return Outcome::pass(apply_not(false, *not), "no JSON found in the text");
            }
            let mut last_errors = Vec::new();
            for candidate in &candidates {
                match schema::validate(schema, candidate) {
                    Ok(()) => {
                        return Outcome::pass(apply_not(true, *not), "the JSON matches the schema");
                    }
                    Err(errors) => last_errors = errors,
                }
            }
            Outcome::pass(
                apply_not(false, *not),
                format!(
                    "the JSON does not match the schema: {}",
                    last_errors.join("; ")
                ),
            )
            .with_data(json!({"errors": last_errors}))
        }
        CheckKind::JsonKeys { keys, operator } => {
            let objects: Vec<Value> = json_candidates(text)
                .into_iter()
                .filter(Value::is_object)
                .collect();
            if objects.is_empty() {
                return Outcome::pass(false, "no JSON object found in the text");
            }
            // The object with the most of the keys decides, as Portkey's check does.
            let best = objects
                .iter()
                .map(|o| keys.iter().filter(|k| o.get(k.as_str()).is_some()).count())
                .max()
                .unwrap_or(0);
            let found = if *operator == super::Operator::None {
                objects
                    .iter()
                    .map(|o| keys.iter().filter(|k| o.get(k.as_str()).is_some()).count())
                    .min()
                    .unwrap_or(0)
            } else {
                best
            };
            let verdict = operator.holds(found, keys.len());
            Outcome::pass(verdict, format!("{found} of {} keys found", keys.len()))
        }
        CheckKind::Contains { words, operator } => {
            let found: Vec<&String> = words.iter().filter(|w| text.contains(w.as_str())).collect();
            let verdict = operator.holds(found.len(), words.len());
            Outcome::pass(
                verdict,
                format!("{} of {} words or phrases found", found.len(), words.len()),
            )
            .with_data(json!({"found": found}))
        }
        CheckKind::ValidUrls { not } => {
            let urls: Vec<&str> = text
                .split(|c: char| {
                    c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '(' | ')')
                })
                .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
                .map(|w| w.trim_end_matches(['.', ',', ';', ':', '!', '?', ']']))
                .collect();
            if urls.is_empty() {
                return Outcome::pass(apply_not(true, *not), "no URLs found");
            }
            let invalid: Vec<&str> = urls.iter().copied().filter(|u| !valid_url(u)).collect();
            Outcome::pass(
                apply_not(invalid.is_empty(), *not),
                if invalid.is_empty() {
                    format!("all {} URLs are well-formed", urls.len())
                } else {
                    format!("{} of {} URLs are malformed", invalid.len(), urls.len())
                },
            )
            .with_data(json!({"invalid": invalid}))
        }
        CheckKind::ContainsCode { format, not } => {
            let found = code_languages(text);
            let has = found.iter().any(|l| l == format);
            Outcome::pass(
                apply_not(has, *not),
                if has {
                    format!("found a {format} code block")
                } else {
                    format!("no {format} code block found")
                },
            )
            .with_data(json!({"foundFormats": found}))
        }
        CheckKind::AllUppercase { not } => {
            let upper = !text.chars().any(char::is_lowercase);
            Outcome::pass(
                apply_not(upper, *not),
                if upper {
                    "all letters are uppercase"
                } else {
                    "some letters are lowercase"
                },
            )
        }
        CheckKind::AllLowercase { not } => {
            let lower = !text.chars().any(char::is_uppercase);
            Outcome::pass(
                apply_not(lower, *not),
                if lower {
                    "all letters are lowercase"
                } else {
                    "some letters are uppercase"
                },
            )
        }
        CheckKind::EndsWith { suffix, not } => {
            let ends = text.ends_with(suffix.as_str())
                || text
                    .strip_suffix('.')
                    .is_some_and(|t| t.ends_with(suffix.as_str()));
            Outcome::pass(
                apply_not(ends, *not),
                if ends {
                    format!("the text ends with \"{suffix}\"")
                } else {
                    format!("the text does not end with \"{suffix}\"")
                },
            )
        }
        CheckKind::ModelWhitelist { models, rules, not } => {
            let Some(model) = s.model else {
                return Outcome::error("the request names no model");
            };
            let mut allowed: Vec<&String> = Vec::new();
            if let Some(metadata) = s.metadata {
                for (key, values, rule_models) in rules {
                    let matches = match metadata.get(key) {
                        Some(Value::Array(items)) => {
                            items.iter().any(|v| values.contains(&text_of(v)))
                        }
                        Some(Value::Null) | None => false,
                        Some(v) => values.contains(&text_of(v)),
                    };
                    if matches {
                        allowed.extend(rule_models.iter());
                    }
                }
            }
            if allowed.is_empty() {
                allowed.extend(models.iter());
            }
            if allowed.is_empty() {
                return Outcome::error("no metadata rule matched and no `models` are given");
            }
            let listed = allowed.iter().any(|m| m.as_str() == model);
            Outcome::pass(
                apply_not(listed, *not),
                if listed {
                    format!("the model `{model}` is in the list")
                } else {
                    format!("the model `{model}` is not in the list")
                },
            )
        }
        CheckKind::RequiredMetadataKeys { keys, operator } => {
            let found = keys
                .iter()
                .filter(|k| s.metadata.is_some_and(|m| m.contains_key(k.as_str())))
                .count();
            let missing: Vec<&String> = keys
                .iter()
                .filter(|k| !s.metadata.is_some_and(|m| m.contains_key(k.as_str())))
                .collect();
            Outcome::pass(
                operator.holds(found, keys.len()),
                format!("{found} of {} metadata keys present", keys.len()),
            )
            .with_data(json!({"missing_metadata_keys": missing}))
        }
        CheckKind::AllowedRequestTypes { allowed, blocked } => {
            let from_metadata = |key: &str| -> Vec<String> {
                match s.metadata.and_then(|m| m.get(key)) {
                    Some(Value::String(v)) => v
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    Some(Value::Array(items)) => items.iter().map(text_of).collect(),
                    _ => Vec::new(),
                }
            };
            let allowed = if allowed.is_empty() {
                from_metadata("supported_endpoints")
            } else {
                allowed.clone()
            };
            let blocked = if blocked.is_empty() {
                from_metadata("blocked_endpoints")
            } else {
                blocked.clone()
            };
            if let Some(both) = allowed.iter().find(|t| blocked.contains(t)) {
                return Outcome::error(format!(
                    "`{both}` is in both allowedTypes and blockedTypes"
                ));
            }
            let kind = s.request_type.to_owned();
            let verdict =
                !blocked.contains(&kind) && (allowed.is_empty() || allowed.contains(&kind));
            Outcome::pass(
                verdict,
                if verdict {
                    format!("the request type `{kind}` is allowed")
                } else {
                    format!("the request type `{kind}` is not allowed")
                },
            )
        }
        CheckKind::NotNull { not } => {
            let present = !text.trim().is_empty();
            Outcome::pass(
                apply_not(present, *not),
                if present {
                    "the text is not empty"
                } else {
                    "the text is empty"
                },
            )
        }
        _ => Outcome::error("this check is evaluated elsewhere"),
    }
}

fn range(what: &str, count: usize, min: f64, max: f64, not: bool) -> Outcome {
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts of a text far below 2^52"
    )]
    let n = count as f64;
    let inside = n >= min && n <= max;
    Outcome::pass(
        apply_not(inside, not),
        format!("{count} {what}, allowed {min} to {max}"),
    )
    .with_data(json!({"count": count}))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most 100 characters of a match, for the log.
fn excerpt(s: &str) -> String {
    s.chars().take(100).collect()
}

/// A URL that parses, with an http(s) scheme and a host with a dot or `localhost`.
fn valid_url(candidate: &str) -> bool {
    url::Url::parse(candidate).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| {
                h == "localhost" || (h.contains('.') && !h.starts_with('.') && !h.ends_with('.'))
            })
    })
}

/// The languages of the text's fenced code blocks (```lang ... ```), in Portkey's names.
fn code_languages(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(line_end) = after.find('\n') else {
            break;
        };
        let tag = after[..line_end].trim();
        let body = &after[line_end + 1..];
        let Some(close) = body.find("```") else { break };
        if !tag.is_empty() && tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
            let lower = tag.to_lowercase();
            let name = LANGUAGES
                .iter()
                .find(|(k, _)| *k == lower)
                .map_or(lower.clone(), |(_, v)| (*v).to_owned());
            found.push(name);
        }
        rest = &body[close + 3..];
    }
    found
}

/// The JSON values in a text: the whole text, fenced ```json blocks, and the outermost
/// `{...}` spans that parse.
pub(crate) fn json_candidates(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
        out.push(v);
        return out;
    }
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        let body = &after[body_start..];
        let Some(close) = body.find("```") else { break };
        if let Ok(v) = serde_json::from_str::<Value>(body[..close].trim()) {
            out.push(v);
        }
        rest = &body[close + 3..];
    }
    if out.is_empty()
        && let (Some(open), Some(close)) = (text.find('{'), text.rfind('}'))
        && open < close
        && let Ok(v) = serde_json::from_str::<Value>(&text[open..=close])
    {
        out.push(v);
    }
    out
}
