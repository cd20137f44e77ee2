//! Authentication: who is calling, from the credential a request presents.
//!
//! Two kinds of credential are accepted on the data plane:
//!
//! - **A gateway key.** Its SHA-256 is looked up in the snapshot, which holds every stored
//!   key, revoked and expired ones too, so that a refusal says why ("the key `x` was revoked
//!   at ..."). The lookup costs what it did before keys had states: one hash and one map
//!   probe, no allocation; the clock is read only for a key that has an expiry, so a key
//!   that expires while the gateway runs is refused from that moment on, without a reload.
//!   A key of type `gateway` (spec section 9) is refused with 403: it exists for a
//!   `portico gateway` to reach its control plane, not for requests.
//! - **A JWT**, when the catalog file has `auth.jwt` ([`JwtAuth`]). A credential is taken for
//!   a JWT only after the key lookup missed, and only by its shape (three base64url segments
//!   whose first is a JSON header with `alg`): a fixed key that happens to contain dots is
//!   still a key, and the key path pays nothing for JWTs. The caller is a [`KeyEntry`] made
//!   for the request ([`KeyEntry::for_jwt`]): named [`JWT_KEY_NAME`], its user the token's
//!   user claim. Only this path may wait, and only on a fetch of the identity provider's
//!   keys (`jwks`).
//!
//! The admin API takes the admin key only ([`Gateway::authenticate_admin`]).
//!
//! Main types: [`JwtAuth`]; the constants that bound it, [`CLOCK_SKEW_SECS`],
//! [`JWKS_REFETCH_INTERVAL_MS`], [`JWKS_MAX_AGE_MS`].

mod jwks;
mod jwt;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use portico_core::{ApiError, ErrorCode, KeyHash, rfc3339_utc};
use portico_store::KeyType;

pub use jwks::{JWKS_MAX_AGE_MS, JWKS_REFETCH_INTERVAL_MS};
pub use jwt::{CLOCK_SKEW_SECS, JwtAuth};

use crate::gateway::Gateway;
use crate::snapshot::KeyEntry;

/// The key name a JWT caller's requests carry (in the request log, metrics and the access
/// log); its user is the token's user claim.
pub const JWT_KEY_NAME: &str = "jwt";

impl Gateway {
    /// The caller of a data-plane request that presents `secret`: a gateway key in force (not
    /// revoked, not expired, not of type `gateway`), or a valid JWT. Otherwise 401 saying
    /// why (403 for a key of type `gateway`, 503 when a JWT cannot be checked because the
    /// identity provider's keys cannot be fetched).
    pub async fn authenticate(&self, secret: Option<&str>) -> Result<Arc<KeyEntry>, ApiError> {
        let secret = present(secret)?;
        let Some(key) = self.stored_key(&KeyHash::of(secret)) else {
            return self.authenticate_jwt(secret).await;
        };
        self.in_force(&key)?;
        if key.key_type == KeyType::Gateway {
            return Err(gateway_key_refused(
                &key,
                "the data plane",
                "a service or user key",
            ));
        }
        Ok(key)
    }

    /// The stored key `secret` belongs to, when it is in force, whatever its type: what a
    /// `portico gateway`'s token (type `gateway`) will be checked with by its control plane.
    /// 401 saying why otherwise.
    pub fn authenticate_key(&self, secret: Option<&str>) -> Result<Arc<KeyEntry>, ApiError> {
        let secret = present(secret)?;
        let key = self
            .stored_key(&KeyHash::of(secret))
            .ok_or_else(|| unknown_key(secret))?;
        self.in_force(&key)?;
        Ok(key)
    }

    /// The admin key a request to the admin API presented: 401 without a key in force, 403
    /// for any other key.
    pub fn authenticate_admin(&self, secret: Option<&str>) -> Result<Arc<KeyEntry>, ApiError> {
        let key = self.authenticate_key(secret)?;
        match key.key_type {
            KeyType::Admin => Ok(key),
            KeyType::Gateway => Err(gateway_key_refused(&key, "the admin API", "the admin key")),
            KeyType::Service | KeyType::User => Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "the key `{}` is a gateway key, not an admin key; the admin API needs the admin key Portico printed on first start (or PORTICO_ADMIN_KEY)",
                    key.name
                ),
            )),
        }
    }

    /// Whether a stored key may be used now: not revoked, and not expired by the gateway's
    /// clock (read only for a key that has an expiry).
    fn in_force(&self, key: &KeyEntry) -> Result<(), ApiError> {
        if let Some(at) = key.revoked_at_ms {
            return Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                format!(
                    "the key `{}` was revoked at {}; ask an admin for a new key",
                    key.name,
                    rfc3339_utc(at)
                ),
            ));
        }
        if let Some(at) = key.expires_at_ms
            && self.clock().now_ms() >= at
        {
            return Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                format!(
                    "the key `{}` expired at {}; ask an admin to extend it (its expires_at) or for a new key",
                    key.name,
                    rfc3339_utc(at)
                ),
            ));
        }
        Ok(())
    }

    /// A credential no stored key has: a JWT, when it is shaped like one.
    async fn authenticate_jwt(&self, secret: &str) -> Result<Arc<KeyEntry>, ApiError> {
        if jwt::header_of(secret).is_none() {
            return Err(unknown_key(secret));
        }
        let Some(auth) = self.jwt() else {
            return Err(jwt::JwtError::NotConfigured.to_api());
        };
        let user = auth
            .check(secret, self.clock().now_ms(), self.client())
            .await?;
        Ok(Arc::new(KeyEntry::for_jwt(
            user,
            auth.config().default_user_limits(),
        )))
    }
}

/// The credential, or 401 when there is none.
fn present(secret: Option<&str>) -> Result<&str, ApiError> {
    secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingApiKey,
            "missing gateway key: send `Authorization: Bearer <key>` or `x-portkey-api-key: <key>`",
        )
    })
}

/// 401 for a credential no stored key has.
fn unknown_key(secret: &str) -> ApiError {
    let message = if jwt::header_of(secret).is_some() {
        "invalid gateway key: this is a JWT, and only gateway keys are accepted here"
    } else {
        "invalid gateway key: no key has this secret (a rotated key's old secret no longer works); use a key Portico printed when it was created or rotated, or the admin key"
    };
    ApiError::new(ErrorCode::InvalidApiKey, message)
}

fn gateway_key_refused(key: &KeyEntry, place: &str, instead: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "the key `{}` is of type gateway: it is for a `portico gateway` (hybrid mode) to reach its control plane, and is refused on {place}; use {instead}",
            key.name
        ),
    )
}
