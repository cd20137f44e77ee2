//! `auth:` of the catalog file: callers that present something other than a gateway key.
//! Today that is `auth.jwt`, JWTs of an identity provider (spec section 3), checked by the
//! engine against the provider's published keys.
//!
//! ```yaml
//! auth:
//!   jwt:
//!     jwks_url: https://idp.example.com/.well-known/jwks.json   # required, http(s)
//!     issuer: https://idp.example.com/                          # required: the `iss` claim
//!     audience: portico                                         # required: one of `aud`
//!     user_claim: email                                         # default `sub`
//!     budget: { cost_usd: 20, period: month }                   # a JWT user's default budget
//! ```
//!
//! `issuer` and `audience` are required: without them any token the identity provider ever
//! signed, for any application, would be accepted.
//!
//! Also here: RFC 3339 times (a key's `expires_at`), read with chrono.

use portico_core::{BudgetSpec, Limits};
use serde::Deserialize;
use url::Url;

use crate::error::{ConfigError, field_path};
use crate::file::BudgetFile;
use crate::validate::{Validator, present};

/// The claim that names a JWT's user when `user_claim` is not set.
pub const DEFAULT_USER_CLAIM: &str = "sub";

/// `auth:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthConfig {
    /// `auth.jwt`; `None`: JWTs are not accepted.
    pub jwt: Option<JwtConfig>,
}

/// `auth.jwt:`: JWTs signed by an identity provider whose public keys are at `jwks_url`.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    /// Where the identity provider publishes its signing keys (a JWKS), http(s).
    pub jwks_url: String,
    /// The `iss` a token must carry.
    pub issuer: String,
    /// A value `aud` must carry (a string, or one of a list).
    pub audience: String,
    /// The claim that names the token's user (default [`DEFAULT_USER_CLAIM`]).
    pub user_claim: String,
    /// The budget of a JWT user no user key of theirs gives one.
    pub budget: Option<BudgetSpec>,
}

impl JwtConfig {
    /// The limits of a JWT user without a user key of their own: `budget`, no rate limit.
    pub fn default_user_limits(&self) -> Limits {
        Limits {
            budget: self.budget,
            rate_limit: None,
        }
    }
}

/// `auth:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthFile {
    pub(crate) jwt: Option<JwtFile>,
}

/// `auth.jwt:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtFile {
    pub(crate) jwks_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
    pub(crate) user_claim: Option<String>,
    pub(crate) budget: Option<BudgetFile>,
}

/// Unix milliseconds of an RFC 3339 time (`2027-01-31T00:00:00Z`, `2027-01-31T01:00:00+01:00`),
/// or `None` when `text` is not one.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Validator<'_> {
    /// `auth:`.
    pub(crate) fn auth(&self, raw: Option<AuthFile>) -> Result<AuthConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(AuthConfig::default());
        };
        let jwt = raw.jwt.map(|jwt| self.jwt(jwt, "auth.jwt")).transpose()?;
        Ok(AuthConfig { jwt })
    }

    fn jwt(&self, raw: JwtFile, path: &str) -> Result<JwtConfig, ConfigError> {
        let url_path = field_path(path, "jwks_url");
        let jwks_url = present(raw.jwks_url).ok_or_else(|| {
            self.invalid(
                &url_path,
                "is required: the URL where the identity provider publishes its signing keys, \
                 like https://idp.example.com/.well-known/jwks.json",
            )
        })?;
        let jwks_url = Url::parse(jwks_url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                self.invalid(
                    &url_path,
                    "is not an absolute http(s) URL; write it with its scheme, like \
                     https://idp.example.com/.well-known/jwks.json",
                )
            })?
            .to_string();
        let issuer = self.claim_value(
            raw.issuer,
            &field_path(path, "issuer"),
            "the `iss` claim every accepted token carries, like https://idp.example.com/ \
             (without it, tokens of any issuer whose keys are in the set would pass)",
        )?;
        let audience = self.claim_value(
            raw.audience,
            &field_path(path, "audience"),
            "a value every accepted token's `aud` claim carries, like portico (without it, \
             tokens the identity provider issued for any other application would pass)",
        )?;
        let user_claim = match present(raw.user_claim) {
            None => DEFAULT_USER_CLAIM.to_owned(),
            Some(claim) => claim.trim().to_owned(),
        };
        let budget = raw
            .budget
            .map(|b| self.budget(b, &field_path(path, "budget")))
            .transpose()?;
        Ok(JwtConfig {
            jwks_url,
            issuer,
            audience,
            user_claim,
            budget,
        })
    }

    /// A required claim value, compared exactly (so no trimming).
    fn claim_value(
        &self,
        value: Option<String>,
        path: &str,
        what: &str,
    ) -> Result<String, ConfigError> {
        present(value).ok_or_else(|| self.invalid(path, format!("is required: {what}")))
    }

    /// A key's `expires_at:`, an RFC 3339 time.
    pub(crate) fn expires_at(
        &self,
        raw: Option<String>,
        path: &str,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(text) = present(raw) else {
            return Ok(None);
        };
        parse_rfc3339_ms(&text).map(Some).ok_or_else(|| {
            self.invalid(
                path,
                format!(
                    "{text:?} is not an RFC 3339 time; write it like 2027-01-31T00:00:00Z (a \
                     date, `T`, a time and a time zone)"
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use portico_core::Period;

    use super::*;

    fn parse(text: &str) -> Result<crate::Catalog, ConfigError> {
        crate::parse_str(text, "c.yaml", &|_| None)
    }

    #[test]
    fn auth_jwt_is_read_with_its_defaults() {
        let catalog = parse(
            "auth:\n  jwt:\n    jwks_url: https://idp.example.com/jwks.json\n    issuer: \
             https://idp.example.com/\n    audience: portico\n    budget: { cost_usd: 20, \
             period: month }\n",
        )
        .unwrap();
        let jwt = catalog.auth.jwt.unwrap();
        assert_eq!(jwt.jwks_url, "https://idp.example.com/jwks.json");
        assert_eq!(jwt.issuer, "https://idp.example.com/");
        assert_eq!(jwt.audience, "portico");
        assert_eq!(jwt.user_claim, "sub");
        let budget = jwt.budget.unwrap();
        assert_eq!(budget.cost_usd, Some(20.0));
        assert_eq!(budget.period, Period::Month);
        assert_eq!(jwt.default_user_limits().budget, Some(budget));
        assert!(parse("auth:\n").unwrap().auth.jwt.is_none());
        assert!(parse("").unwrap().auth.jwt.is_none());
    }

    #[test]
    fn auth_jwt_errors_name_the_field() {
        let cases = [
            (
                "auth:\n  jwt: { issuer: i, audience: a }\n",
                "auth.jwt.jwks_url",
                "is required",
            ),
            (
                "auth:\n  jwt: { jwks_url: idp/jwks, issuer: i, audience: a }\n",
                "auth.jwt.jwks_url",
                "absolute http(s) URL",
            ),
            (
                "auth:\n  jwt: { jwks_url: \"http://i/j\", audience: a }\n",
                "auth.jwt.issuer",
                "is required",
            ),
            (
                "auth:\n  jwt: { jwks_url: \"http://i/j\", issuer: i }\n",
                "auth.jwt.audience",
                "is required",
            ),
            (
                "auth:\n  jwt: { jwks_url: \"http://i/j\", issuer: i, audience: a, budget: { \
                 cost_usd: 0, period: day } }\n",
                "auth.jwt.budget.cost_usd",
                "above 0",
            ),
            (
                "auth:\n  jwt: { jwks_uri: \"http://i/j\" }\n",
                "auth.jwt.jwks_uri",
                "jwks_url",
            ),
            ("auth:\n  oidc: {}\n", "auth.oidc", "jwt"),
            ("auth: [jwt]\n", "auth", "a mapping"),
        ];
        for (text, path, needle) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path(), Some(path), "{text}: {err}");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn key_expiry_is_rfc3339_and_gateway_keys_have_no_user() {
        let catalog = parse(
            "keys:\n  - { name: a, expires_at: \"2027-01-31T00:00:00Z\" }\n  - { name: b, \
             expires_at: \"2027-01-31T01:00:00+01:00\", type: gateway }\n  - { name: c }\n",
        )
        .unwrap();
        assert_eq!(catalog.keys[0].expires_at_ms, Some(1_801_353_600_000));
        assert_eq!(catalog.keys[1].expires_at_ms, Some(1_801_353_600_000));
        assert_eq!(catalog.keys[1].kind, crate::KeyKind::Gateway);
        assert_eq!(catalog.keys[2].expires_at_ms, None);
        for (text, path) in [
            (
                "keys:\n  - { name: a, expires_at: tomorrow }\n",
                "keys[0].expires_at",
            ),
            (
                "keys:\n  - { name: a, expires_at: \"2027-01-31\" }\n",
                "keys[0].expires_at",
            ),
            (
                "keys:\n  - { name: a, type: gateway, user: bob }\n",
                "keys[0].user",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.path(), Some(path), "{text}: {err}");
        }
    }
}
