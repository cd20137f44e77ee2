//! The `@slug/model` address of a model in the catalog.

use std::fmt;

/// A model addressed through the catalog: `@slug/model`.
///
/// The model part is everything after the first `/`, so upstream names that contain slashes
/// (`@together/meta-llama/Llama-3.3-70B-Instruct-Turbo`) or colons (`@ollama/llama3:8b`) work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// The provider's slug, without the `@`.
    pub slug: String,
    /// The model name sent upstream.
    pub model: String,
}

/// Why a `model` string is not a valid `@slug/model` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefError {
    /// The string does not start with `@`: a bare model name with no provider.
    #[error(
        "`{0}` names no provider; address models as `@provider/model` (for example `@openai/gpt-4o-mini`), or send the `x-portkey-provider` header"
    )]
    NoProvider(String),
    /// `@slug` with no `/model` part.
    #[error("`{0}` names a provider but no model; address models as `{0}/model-name`")]
    NoModel(String),
    /// The slug part is empty or has characters slugs cannot have.
    #[error("`{0}` has an invalid provider slug; slugs use lowercase letters, digits, `-` and `_`")]
    BadSlug(String),
}

impl ModelRef {
    /// Parses `@slug/model`.
    pub fn parse(s: &str) -> Result<ModelRef, ModelRefError> {
        let Some(rest) = s.strip_prefix('@') else {
            return Err(ModelRefError::NoProvider(s.to_owned()));
        };
        let Some((slug, model)) = rest.split_once('/') else {
            return Err(ModelRefError::NoModel(s.to_owned()));
        };
        if !is_valid_slug(slug) {
            return Err(ModelRefError::BadSlug(s.to_owned()));
        }
        if model.trim().is_empty() {
            return Err(ModelRefError::NoModel(format!("@{slug}")));
        }
        Ok(ModelRef {
            slug: slug.to_owned(),
            model: model.to_owned(),
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}/{}", self.slug, self.model)
    }
}

/// Whether `slug` is a valid provider slug: 1 to 64 of lowercase ASCII letters, digits, `-`
/// and `_`, starting with a letter or digit.
pub fn is_valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_slug_and_model() {
        let r = ModelRef::parse("@anthropic-prod/claude-sonnet-4-5").unwrap();
        assert_eq!(r.slug, "anthropic-prod");
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(r.to_string(), "@anthropic-prod/claude-sonnet-4-5");
    }

    #[test]
    fn model_may_contain_slashes_and_colons() {
        let r = ModelRef::parse("@together/meta-llama/Llama-3.3-70B").unwrap();
        assert_eq!(r.model, "meta-llama/Llama-3.3-70B");
        assert_eq!(
            ModelRef::parse("@ollama/llama3:8b").unwrap().model,
            "llama3:8b"
        );
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        assert!(matches!(
            ModelRef::parse("gpt-4o"),
            Err(ModelRefError::NoProvider(_))
        ));
        assert!(matches!(
            ModelRef::parse("@openai"),
            Err(ModelRefError::NoModel(_))
        ));
        assert!(matches!(
            ModelRef::parse("@openai/"),
            Err(ModelRefError::NoModel(_))
        ));
        assert!(matches!(
            ModelRef::parse("@Open AI/x"),
            Err(ModelRefError::BadSlug(_))
        ));
        assert!(matches!(
            ModelRef::parse("@/x"),
            Err(ModelRefError::BadSlug(_))
        ));
    }

    #[test]
    fn messages_show_the_address_form() {
        let msg = ModelRef::parse("gpt-4o").unwrap_err().to_string();
        assert!(msg.contains("@provider/model"), "{msg}");
    }
}
