//! What the environment contributes: `${VAR}` substitution and providers detected from API-key
//! variables.
//!
//! The environment is always passed in as a lookup function rather than read here, so tests
//! (and the binary's `--env-file`, should it grow one) decide what it contains.

use portico_core::{ProviderKind, Secret};

use crate::ProviderConfig;
use crate::error::{item_path, key_segment};
use crate::yaml::Value;

/// Why a `${VAR}` reference could not be replaced. Messages never repeat the surrounding text,
/// because that text may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    /// `${NAME}` names a variable that is not set, and gives no default.
    #[error(
        "environment variable `{0}` is not set; set it, or give a default with `${{{0}:-default}}`"
    )]
    Unset(String),
    /// `${` with no closing `}`.
    #[error("`${{` is not closed by `}}`; close it, or write `$${{` for a literal `${{`")]
    Unterminated,
    /// The text between `${` and `}` (or `:-`) is not a variable name.
    #[error(
        "`${{...}}` holds an invalid variable name (names are letters, digits and `_`, not \
         starting with a digit); write `$${{` for a literal `${{`"
    )]
    InvalidName,
}

/// Replaces `${VAR}` and `${VAR:-default}` in `text` with values from `env`.
///
/// - `${VAR}`: the variable's value; an error when it is unset (an empty value is kept).
/// - `${VAR:-default}`: the value, or `default` when the variable is unset *or empty* (as in
///   POSIX shells, so `${KEY:-}` means "optional").
/// - `$${` is a literal `${`. Any other `$` is kept as is, so secrets such as `pa$$word` need no
///   escaping.
///
/// The default is literal text up to the first `}`: it is not itself substituted.
pub fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let from_dollar = &rest[dollar..];
        if let Some(tail) = from_dollar.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = from_dollar.strip_prefix("${") {
            let end = tail.find('}').ok_or(SubstituteError::Unterminated)?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                return Err(SubstituteError::InvalidName);
            }
            // `:-` treats an empty value like an unset one; a plain `${VAR}` keeps it.
            let value = env(name).filter(|v| default.is_none() || !v.is_empty());
            match (value, default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(SubstituteError::Unset(name.to_owned())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &from_dollar[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A POSIX-style variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Substitutes inside every string scalar of a parsed document, in place.
///
/// Working on the parsed tree rather than the raw text means a variable's value can never
/// change the document's structure (a value with `: ` or a newline stays one string), and
/// `${...}` in comments or mapping keys is left alone. On error, returns the field path.
pub(crate) fn substitute_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, SubstituteError)> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = substitute(s, env).map_err(|e| (path.to_owned(), e))?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &item_path(path, i), env)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let child = crate::error::field_path(path, &key_segment(key));
                substitute_value(item, &child, env)?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Providers implied by the environment: one per [`ProviderKind`] with an
/// [`api_key_env`](ProviderKind::api_key_env) variable that is set and not blank, with slug
/// [`ProviderKind::as_str`] (`OPENAI_API_KEY` gives `@openai`), that key, no `base_url` (the
/// kind's default applies), no model allow-list, and the kind's default settings
/// (`anthropic_version` for `@anthropic`).
///
/// Whether to use them is the caller's decision (`auto_providers:` and slugs the file already
/// declares win).
pub fn detect_env_providers(env: &dyn Fn(&str) -> Option<String>) -> Vec<ProviderConfig> {
    ProviderKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let key = env(kind.api_key_env()?).filter(|v| !v.trim().is_empty())?;
            Some(ProviderConfig {
                slug: kind.as_str().to_owned(),
                kind,
                api_key: Some(Secret::new(key)),
                base_url: None,
                models: None,
                mock: None,
                settings: crate::kind_fields::default_settings(kind),
                credentials: std::collections::BTreeMap::new(),
                limits: portico_core::Limits::default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn replaces_variables_and_defaults() {
        let env = env_of(&[("HOST", "example.com"), ("EMPTY", "")]);
        assert_eq!(
            substitute("https://${HOST}/v1", &env).unwrap(),
            "https://example.com/v1"
        );
        assert_eq!(
            substitute("${MISSING:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(
            substitute("${HOST:-fallback}", &env).unwrap(),
            "example.com"
        );
        // `:-` treats empty like unset; plain `${VAR}` keeps the empty value.
        assert_eq!(substitute("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(substitute("a${EMPTY}b", &env).unwrap(), "ab");
        assert_eq!(substitute("${MISSING:-}", &env).unwrap(), "");
        // The default is literal: it may hold `:-` and `$` but ends at the first `}`.
        assert_eq!(substitute("${MISSING:-a:-$b}", &env).unwrap(), "a:-$b");
    }

    #[test]
    fn escapes_and_lone_dollars() {
        let env = env_of(&[("X", "1")]);
        assert_eq!(substitute("$${X}", &env).unwrap(), "${X}");
        assert_eq!(substitute("pa$$word$", &env).unwrap(), "pa$$word$");
        assert_eq!(
            substitute("$X and $${X} and ${X}", &env).unwrap(),
            "$X and ${X} and 1"
        );
        assert_eq!(substitute("no vars", &env).unwrap(), "no vars");
        // A value is not scanned again, so it may contain `${`.
        let env = env_of(&[("X", "${Y}")]);
        assert_eq!(substitute("${X}", &env).unwrap(), "${Y}");
    }

    #[test]
    fn errors_name_the_variable_but_not_the_text() {
        let env = env_of(&[]);
        let err = substitute("sk-secret-${OPENAI_KEY}", &env).unwrap_err();
        assert_eq!(err, SubstituteError::Unset("OPENAI_KEY".into()));
        let msg = err.to_string();
        assert!(msg.contains("`OPENAI_KEY`"), "{msg}");
        assert!(msg.contains("${OPENAI_KEY:-default}"), "{msg}");
        assert!(!msg.contains("sk-secret"), "{msg}");

        assert_eq!(
            substitute("sk-secret-${OOPS", &env).unwrap_err(),
            SubstituteError::Unterminated
        );
        for bad in ["${}", "${1X}", "${A-B}", "${ X }", "${A:default}"] {
            let err = substitute(bad, &env).unwrap_err();
            assert_eq!(err, SubstituteError::InvalidName, "{bad}");
        }
    }

    #[test]
    fn tree_substitution_tracks_paths_and_skips_keys() {
        let mut doc = crate::yaml::parse(
            "providers:\n  - slug: a\n    api_key: ${KEY}\n  - slug: b\n    api_key: ${NOPE}\n",
            "c.yaml",
        )
        .unwrap();
        let env = env_of(&[("KEY", "sk-1")]);
        let (path, err) = substitute_value(&mut doc, "", &env).unwrap_err();
        assert_eq!(path, "providers[1].api_key");
        assert_eq!(err, SubstituteError::Unset("NOPE".into()));

        let mut doc =
            crate::yaml::parse("${K}: ${V}\nn: 5\nlist: [\"${V}\", x]\n", "c.yaml").unwrap();
        let env = env_of(&[("V", "v")]);
        substitute_value(&mut doc, "", &env).unwrap();
        let expected = crate::yaml::parse("${K}: v\nn: 5\nlist: [v, x]\n", "c.yaml").unwrap();
        assert_eq!(doc, expected);
    }

    #[test]
    fn detects_providers_with_a_non_blank_key() {
        let env = env_of(&[
            ("OPENAI_API_KEY", "sk-openai"),
            ("GROQ_API_KEY", "   "),
            ("MISTRAL_API_KEY", ""),
            ("DEEPSEEK_API_KEY", "sk-ds"),
        ]);
        let found = detect_env_providers(&env);
        let slugs: Vec<&str> = found.iter().map(|p| p.slug.as_str()).collect();
        assert_eq!(slugs, ["openai", "deepseek"]);
        assert_eq!(found[0].kind, ProviderKind::OpenAi);
        assert_eq!(found[0].api_key.as_ref().unwrap().expose(), "sk-openai");
        assert_eq!(found[0].base_url, None);
        assert_eq!(found[0].models, None);
        assert_eq!(found[0].mock, None);
        assert!(detect_env_providers(&env_of(&[])).is_empty());
    }

    #[test]
    fn detects_anthropic_and_gemini_with_default_settings() {
        let env = env_of(&[
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("GEMINI_API_KEY", "gem-key"),
            // No variable adds bedrock or azure-openai: they need more than a key.
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AZURE_OPENAI_API_KEY", "az"),
        ]);
        let found = detect_env_providers(&env);
        let slugs: Vec<(&str, ProviderKind)> =
            found.iter().map(|p| (p.slug.as_str(), p.kind)).collect();
        assert_eq!(
            slugs,
            [
                ("anthropic", ProviderKind::Anthropic),
                ("gemini", ProviderKind::Gemini)
            ]
        );
        assert_eq!(found[0].api_key.as_ref().unwrap().expose(), "sk-ant");
        assert_eq!(
            found[0].settings.get("anthropic_version"),
            Some(&serde_json::Value::from(crate::DEFAULT_ANTHROPIC_VERSION))
        );
        assert_eq!(found[1].api_key.as_ref().unwrap().expose(), "gem-key");
        assert!(found[1].settings.is_empty());
        assert!(found.iter().all(|p| p.credentials.is_empty()));
    }
}
