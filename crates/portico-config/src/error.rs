//! [`ConfigError`]: everything that can be wrong with a catalog file, as one line that names
//! the file, the field path and the fix.
//!
//! Secrets never reach this type: the stages that build errors only ever hand it field paths,
//! variable names and descriptions of a value's *type*, never the value of `api_key`, `key` or
//! `admin_key`.

use std::path::PathBuf;

use crate::env::SubstituteError;
use crate::yaml::Value;

/// Why a catalog file could not be loaded. Display is one line:
/// `catalog.yaml: providers[1].base_url: "not a url" is not an absolute http(s) URL; ...`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read catalog file {}: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The text is not valid YAML.
    #[error("{origin}: {}invalid YAML: {message}", at_line(*location))]
    Syntax {
        /// The file name, for the message.
        origin: String,
        /// 1-based line and column, when the parser knows them.
        location: Option<(usize, usize)>,
        /// The parser's description of the problem.
        message: String,
    },

    /// A `${VAR}` reference could not be replaced.
    #[error("{}{source}", at_path(origin, path))]
    Substitution {
        /// The file name, for the message.
        origin: String,
        /// The field whose value holds the reference, like `providers[0].api_key`.
        path: String,
        /// What was wrong with the reference.
        #[source]
        source: SubstituteError,
    },

    /// A section or field the spec defines but this version does not implement yet.
    #[error(
        "{}`{}` is not supported yet by this version of Portico; remove it for now",
        at_path(origin, path),
        last_segment(path)
    )]
    Unsupported {
        /// The file name, for the message.
        origin: String,
        /// The field, like `configs` or `keys[0].budget`.
        path: String,
    },

    /// A field name that no version of the file format has.
    #[error(
        "{}unknown field; the fields allowed here are {}{}",
        at_path(origin, path),
        allowed.join(", "),
        did_you_mean(*suggestion)
    )]
    UnknownField {
        /// The file name, for the message.
        origin: String,
        /// The unknown field itself, like `providers[1].base_ur`.
        path: String,
        /// The fields the enclosing object may have.
        allowed: &'static [&'static str],
        /// An allowed field whose name is close to the unknown one (a likely typo).
        suggestion: Option<&'static str>,
    },

    /// A field is missing, has the wrong type, or has a value that is not allowed.
    #[error("{}{message}", at_path(origin, path))]
    Invalid {
        /// The file name, for the message.
        origin: String,
        /// The field, like `providers[1].base_url`; empty for the document itself.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ConfigError {
    /// The field path the error is about (`providers[1].base_url`), when it is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } | ConfigError::Syntax { .. } => None,
            ConfigError::Substitution { path, .. }
            | ConfigError::Unsupported { path, .. }
            | ConfigError::UnknownField { path, .. }
            | ConfigError::Invalid { path, .. } => Some(path),
        }
    }

    /// Shorthand for [`ConfigError::Invalid`].
    pub(crate) fn invalid(origin: &str, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: origin.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// `origin: path: ` prefix; the path part is left out for errors about the whole document.
fn at_path(origin: &str, path: &str) -> String {
    if path.is_empty() {
        format!("{origin}: ")
    } else {
        format!("{origin}: {path}: ")
    }
}

fn at_line(location: Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!("line {line}, column {column}: "),
        None => String::new(),
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

/// The field name at the end of a path: `budget` for `keys[0].budget`.
fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Builds field paths in the form users see: `providers[1].models[0].pricing`.
pub(crate) fn field_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// How a mapping key appears in a path: its text, or its YAML form for a non-string key.
pub(crate) fn key_segment(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Sequence(_) | Value::Mapping(_) => "?".to_owned(),
    }
}

/// `parent[index]`.
pub(crate) fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_like_the_docs_show_them() {
        let p = item_path(&field_path("", "providers"), 1);
        assert_eq!(field_path(&p, "base_url"), "providers[1].base_url");
    }

    #[test]
    fn messages_are_one_line_with_origin_and_path() {
        let e = ConfigError::invalid("catalog.yaml", "providers[1].base_url", "is bad");
        assert_eq!(e.to_string(), "catalog.yaml: providers[1].base_url: is bad");
        assert_eq!(e.path(), Some("providers[1].base_url"));
        let e = ConfigError::invalid("catalog.yaml", "", "must be a mapping");
        assert_eq!(e.to_string(), "catalog.yaml: must be a mapping");
    }

    #[test]
    fn unsupported_names_the_field() {
        let e = ConfigError::Unsupported {
            origin: "c.yaml".into(),
            path: "keys[0].budget".into(),
        };
        assert_eq!(
            e.to_string(),
            "c.yaml: keys[0].budget: `budget` is not supported yet by this version of Portico; \
             remove it for now"
        );
    }

    #[test]
    fn syntax_without_location() {
        let e = ConfigError::Syntax {
            origin: "c.yaml".into(),
            location: None,
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "c.yaml: invalid YAML: boom");
    }
}
