//! JWT callers: `Authorization: Bearer <JWT>` checked against `auth.jwt`.
//!
//! A token is accepted when, in this order: its header names RS256 or ES256; the identity
//! provider's key set has the key it names (`kid`; [`super::jwks`] fetches it); its signature
//! verifies with that key (by `jsonwebtoken`); it has an `exp` in the future and, when it has
//! one, an `nbf` in the past, each within [`CLOCK_SKEW_SECS`] of the gateway's clock; its `iss`
//! is `auth.jwt.issuer` and its `aud` (a string or a list) holds `auth.jwt.audience`; and its
//! `auth.jwt.user_claim` (default `sub`) is a non-empty string (or a number), which names the
//! user. The signature is checked before any claim is read, so a refusal never reports the
//! claims of a forged token.
//!
//! Times are read from the gateway's clock, not the system's, so tests move them.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use portico_config::JwtConfig;
use portico_core::{ApiError, ErrorCode};
use portico_providers::http::HttpClient;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::Jwks;

/// How far a token's `exp` and `nbf` may be off the gateway's clock: 60 s, for clocks that
/// are not quite in step.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// The longest claim value a refusal quotes back.
const MAX_QUOTED: usize = 80;

/// The signature algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Alg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }
}

/// What a token's header says, read before anything is verified.
#[derive(Debug)]
pub(crate) struct TokenHeader {
    /// `alg`, as written.
    alg: String,
    /// `kid`.
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

/// The header of `credential` when it is shaped like a JWT: three dot-separated segments of
/// base64url characters (the last one may be empty, as in an unsigned token) whose first
/// decodes to a JSON object with a string `alg`. Anything else is a gateway key (a fixed key
/// may contain dots, so the shape alone does not decide).
pub(crate) fn header_of(credential: &str) -> Option<TokenHeader> {
    let mut segments = credential.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return None;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if header.is_empty()
        || claims.is_empty()
        || ![header, claims, signature].into_iter().all(base64url)
    {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let raw: RawHeader = serde_json::from_slice(&bytes).ok()?;
    Some(TokenHeader {
        alg: raw.alg,
        kid: raw.kid,
    })
}

/// Why a JWT was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JwtError {
    /// The gateway has no `auth.jwt`.
    NotConfigured,
    /// `alg` is not RS256 or ES256.
    Algorithm(String),
    /// No `kid`, and the key set has more than one key of the token's algorithm.
    NoKid,
    /// The key set has no key with this `kid` (after a refetch, or within the interval).
    UnknownKey(String),
    /// No `kid`, and the key set has no key of the token's algorithm.
    NoKeyForAlg(Alg),
    /// The key named is for another algorithm.
    KeyAlgorithm {
        /// The key id.
        kid: String,
        /// The key's algorithm.
        key: Alg,
        /// The token's.
        token: Alg,
    },
    /// The key set could not be fetched, and none is kept.
    KeysUnavailable(String),
    /// The signature does not verify.
    BadSignature,
    /// The token is not well-formed (base64, JSON).
    Malformed,
    /// No `exp` claim.
    NoExpiry,
    /// `exp` (Unix seconds) has passed.
    Expired(i64),
    /// `nbf` (Unix seconds) has not come yet.
    NotYetValid(i64),
    /// `iss` is not the configured issuer; what the token says, if anything.
    WrongIssuer(Option<String>),
    /// `aud` does not hold the configured audience; what the token says.
    WrongAudience(Vec<String>),
    /// The user claim is missing or empty.
    NoUser(String),
}

impl JwtError {
    /// The refusal as the client sees it: 401, or 503 when the keys could not be fetched.
    pub(crate) fn to_api(&self) -> ApiError {
        let code = match self {
            JwtError::KeysUnavailable(_) => ErrorCode::Unavailable,
            _ => ErrorCode::InvalidApiKey,
        };
        ApiError::new(code, format!("invalid JWT: {}", self.reason()))
    }

    fn reason(&self) -> String {
        match self {
            JwtError::NotConfigured => "this gateway does not accept JWTs (the catalog file has no `auth.jwt`); send a gateway key".to_owned(),
            JwtError::Algorithm(alg) => format!("its algorithm `{}` is not accepted; sign with RS256 or ES256", quote(alg)),
            JwtError::NoKid => "it names no signing key (`kid`) and the identity provider has several; add `kid` to its header".to_owned(),
            JwtError::UnknownKey(kid) => format!("its signing key `{}` (kid) is unknown: the identity provider's key set (auth.jwt.jwks_url) does not have it", quote(kid)),
            JwtError::NoKeyForAlg(alg) => format!("the identity provider's key set (auth.jwt.jwks_url) has no {} key", alg.as_str()),
            JwtError::KeyAlgorithm { kid, key, token } => format!("its signing key `{}` is a {} key, but the token is signed with {}", quote(kid), key.as_str(), token.as_str()),
            JwtError::KeysUnavailable(why) => format!("cannot check it: the identity provider's key set is not available ({why}); try again later"),
            JwtError::BadSignature => "bad signature: it was not signed by the identity provider's key it names".to_owned(),
            JwtError::Malformed => "it is malformed (not base64url-encoded JSON)".to_owned(),
            JwtError::NoExpiry => "it has no `exp` (expiry) claim; only tokens that expire are accepted".to_owned(),
            JwtError::Expired(exp) => format!("it expired at {} (exp; {CLOCK_SKEW_SECS} s of clock skew allowed)", portico_core::rfc3339_utc(exp.saturating_mul(1000))),
            JwtError::NotYetValid(nbf) => format!("it is not valid before {} (nbf; {CLOCK_SKEW_SECS} s of clock skew allowed)", portico_core::rfc3339_utc(nbf.saturating_mul(1000))),
            JwtError::WrongIssuer(Some(iss)) => format!("wrong issuer: `{}` is not the issuer this gateway accepts (auth.jwt.issuer)", quote(iss)),
            JwtError::WrongIssuer(None) => "wrong issuer: it has no `iss` claim".to_owned(),
            JwtError::WrongAudience(aud) if aud.is_empty() => "wrong audience: it has no `aud` claim".to_owned(),
            JwtError::WrongAudience(aud) => format!("wrong audience: {} does not include this gateway's (auth.jwt.audience)", aud.iter().map(|a| format!("`{}`", quote(a))).collect::<Vec<_>>().join(", ")),
            JwtError::NoUser(claim) => format!("it has no `{claim}` claim naming the user (auth.jwt.user_claim)"),
        }
    }
}

/// A value from a token, cut to a length a message can carry.
fn quote(text: &str) -> String {
    let cut: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUOTED)
        .collect();
    if cut.chars().count() < text.chars().count() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// The JWT check of one gateway: `auth.jwt` and its identity provider's key set.
pub struct JwtAuth {
    config: JwtConfig,
    jwks: Jwks,
    /// `jsonwebtoken`'s settings per algorithm: the signature only (claims are checked here,
    /// against the gateway's clock).
    rs256: Validation,
    es256: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    validation
}

impl JwtAuth {
    /// The check `config` describes; its key set is fetched when the first token needs it.
    pub fn new(config: JwtConfig) -> JwtAuth {
        JwtAuth {
            jwks: Jwks::new(config.jwks_url.clone()),
            config,
            rs256: signature_only(Alg::Rs256.algorithm()),
            es256: signature_only(Alg::Es256.algorithm()),
        }
    }

    /// The settings it checks tokens by.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Checks the bearer credential `token` at `now_ms` (the gateway's clock), fetching the
    /// identity provider's key set with `client` when it must: the user the token names, or
    /// the refusal as the client sees it (401 saying why; 503 when the key set cannot be
    /// fetched). A credential that is not shaped like a JWT is refused as malformed.
    ///
    /// # Errors
    ///
    /// The refusal, as above.
    pub async fn check(
        &self,
        token: &str,
        now_ms: i64,
        client: &HttpClient,
    ) -> Result<String, ApiError> {
        let header = header_of(token).ok_or_else(|| JwtError::Malformed.to_api())?;
        self.verify(token, header, now_ms, client)
            .await
            .map_err(|e| e.to_api())
    }

    /// Checks `token` (whose header is `header`) at `now_ms`; answers the user it names.
    async fn verify(
        &self,
        token: &str,
        header: TokenHeader,
        now_ms: i64,
        client: &HttpClient,
    ) -> Result<String, JwtError> {
        let alg = match header.alg.as_str() {
            "RS256" => Alg::Rs256,
            "ES256" => Alg::Es256,
            other => return Err(JwtError::Algorithm(other.to_owned())),
        };
        let key = self
            .jwks
            .key(header.kid.as_deref(), alg, now_ms, client)
            .await?;
        let validation = match alg {
            Alg::Rs256 => &self.rs256,
            Alg::Es256 => &self.es256,
        };
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtError::BadSignature,
                _ => JwtError::Malformed,
            })?
            .claims;
        self.check_claims(&claims, now_ms)
    }

    /// The claims' checks, after the signature's; answers the user.
    fn check_claims(&self, claims: &Map<String, Value>, now_ms: i64) -> Result<String, JwtError> {
        let now = now_ms.div_euclid(1000);
        let exp = claims
            .get("exp")
            .and_then(seconds)
            .ok_or(JwtError::NoExpiry)?;
        if now >= exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err(JwtError::Expired(exp));
        }
        if let Some(nbf) = claims.get("nbf").and_then(seconds)
            && now.saturating_add(CLOCK_SKEW_SECS) < nbf
        {
            return Err(JwtError::NotYetValid(nbf));
        }
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if iss == self.config.issuer => {}
            other => return Err(JwtError::WrongIssuer(other.map(str::to_owned))),
        }
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|a| *a == self.config.audience) {
            return Err(JwtError::WrongAudience(
                audiences.into_iter().map(str::to_owned).collect(),
            ));
        }
        let user = match claims.get(&self.config.user_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(JwtError::NoUser(self.config.user_claim.clone())),
        };
        Ok(user)
    }
}

/// A NumericDate claim (RFC 7519: seconds, possibly fractional) in whole seconds.
fn seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}
