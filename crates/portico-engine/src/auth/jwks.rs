//! The identity provider's signing keys: its JWKS, fetched from `auth.jwt.jwks_url` and kept.
//!
//! When it is fetched:
//!
//! - by the first JWT after start, not at start: an identity provider that is down must not
//!   stop the gateway from starting, nor the gateway keys from working;
//! - when the kept set is older than [`JWKS_MAX_AGE_MS`], so a key the provider withdrew stops
//!   being accepted: the request that notices refreshes it, while the others go on with the
//!   kept set, and every request keeps using it when the refresh fails;
//! - when a token names a key id (`kid`) the set lacks, which is how a key rotation shows:
//!   at most once per [`JWKS_REFETCH_INTERVAL_MS`], so a flood of tokens with made-up key ids
//!   costs the provider one request per interval, not one per token. The first load does not
//!   count against the interval (a token signed with a new key right after start still gets
//!   its refetch), and a failed fetch counts like a successful one.
//!
//! A fetch is single-flight: requests that need one while it runs wait for it rather than
//! starting their own. It goes through the shared upstream client (its connect timeout, no
//! redirects), within [`JWKS_FETCH_TIMEOUT`] and [`JWKS_MAX_BYTES`].
//!
//! Only keys a token could be checked with are kept: RSA keys (RS256) and EC keys on P-256
//! (ES256), not marked for encryption (`use: enc`), whose `alg`, when given, is one of those.
//! Others (and malformed entries) are skipped, so one odd key cannot hide the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use portico_providers::http::HttpClient;
use serde::Deserialize;

use super::jwt::{Alg, JwtError};

/// The least time between two fetches for an unknown key id: 30 s. A rotation is seen within
/// that time at worst; a client sending tokens with made-up key ids cannot make the gateway
/// call the identity provider more often.
pub const JWKS_REFETCH_INTERVAL_MS: i64 = 30_000;

/// How long a fetched key set is used before it is fetched again: 10 minutes.
pub const JWKS_MAX_AGE_MS: i64 = 10 * 60_000;

/// How long one fetch may take, connection included.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest key set read: a real one is a few KiB.
const JWKS_MAX_BYTES: usize = 1024 * 1024;

/// A key a token's signature can be checked with.
pub(crate) struct VerifyKey {
    /// The algorithm it checks.
    pub(crate) alg: Alg,
    /// The public key.
    pub(crate) key: DecodingKey,
}

/// A fetched key set.
#[derive(Default)]
struct KeySet {
    /// Keys by `kid`.
    by_kid: HashMap<String, Arc<VerifyKey>>,
    /// Keys without a `kid` (a token without one may use them).
    unnamed: Vec<Arc<VerifyKey>>,
    /// When it was fetched (Unix ms); `None` until the first successful fetch.
    fetched_at_ms: Option<i64>,
}

/// What looking a key up found.
enum Found {
    Key(Arc<VerifyKey>),
    /// No key for this `kid` (or, for a token without one, no single key of its algorithm).
    Missing,
}

impl KeySet {
    fn find(&self, kid: Option<&str>, alg: Alg) -> Result<Found, JwtError> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) if key.alg == alg => Ok(Found::Key(Arc::clone(key))),
                Some(key) => Err(JwtError::KeyAlgorithm {
                    kid: kid.to_owned(),
                    key: key.alg,
                    token: alg,
                }),
                None => Ok(Found::Missing),
            },
            None => {
                let mut candidates = self
                    .unnamed
                    .iter()
                    .chain(self.by_kid.values())
                    .filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => Ok(Found::Key(Arc::clone(key))),
                    (None, _) => Ok(Found::Missing),
                    (Some(_), Some(_)) => Err(JwtError::NoKid),
                }
            }
        }
    }
}

/// The kept key set of one JWKS URL and when to fetch it again.
pub(crate) struct Jwks {
    url: String,
    set: ArcSwap<KeySet>,
    /// When the last refetch for an unknown key id, or the last failed first load, started.
    last_refetch_ms: AtomicI64,
    /// Why the last fetch failed, for the answer to a token that needed it.
    last_error: ArcSwap<Option<String>>,
    /// Held while a fetch runs: requests that need one wait for it.
    fetching: tokio::sync::Mutex<()>,
}

impl Jwks {
    /// The key set at `url`, not fetched yet.
    pub(crate) fn new(url: String) -> Jwks {
        Jwks {
            url,
            set: ArcSwap::from_pointee(KeySet::default()),
            last_refetch_ms: AtomicI64::new(i64::MIN),
            last_error: ArcSwap::from_pointee(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The key a token with `kid` and `alg` is signed with, fetching the set when it must
    /// (see the module docs).
    pub(crate) async fn key(
        &self,
        kid: Option<&str>,
        alg: Alg,
        now_ms: i64,
        client: &HttpClient,
    ) -> Result<Arc<VerifyKey>, JwtError> {
        let mut set = self.set.load_full();
        let mut fresh = false;
        if set.fetched_at_ms.is_none() {
            set = self.first_load(now_ms, client).await?;
            fresh = true;
        } else if set
            .fetched_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) >= JWKS_MAX_AGE_MS)
        {
            // Whoever gets the lock refreshes; the others go on with the kept set.
            if let Ok(_fetching) = self.fetching.try_lock()
                && let Ok(new) = self.fetch(now_ms, client).await
            {
                set = new;
                fresh = true;
            }
        }
        if let Found::Key(key) = set.find(kid, alg)? {
            return Ok(key);
        }
        let unknown = || match kid {
            Some(kid) => JwtError::UnknownKey(kid.to_owned()),
            None => JwtError::NoKeyForAlg(alg),
        };
        if fresh {
            return Err(unknown());
        }
        // A key id the kept set lacks: the provider may have rotated its keys.
        let _fetching = self.fetching.lock().await;
        let current = self.set.load_full();
        if !Arc::ptr_eq(&current, &set)
            && let Found::Key(key) = current.find(kid, alg)?
        {
            // Another request fetched while this one waited.
            return Ok(key);
        }
        let last = self.last_refetch_ms.load(Ordering::Acquire);
        if now_ms.saturating_sub(last) < JWKS_REFETCH_INTERVAL_MS {
            return Err(unknown());
        }
        self.last_refetch_ms.store(now_ms, Ordering::Release);
        match self.fetch(now_ms, client).await?.find(kid, alg)? {
            Found::Key(key) => Ok(key),
            Found::Missing => Err(unknown()),
        }
    }

    /// The first load, waited for by every request that needs it. A failed one is not tried
    /// again within the refetch interval: the requests meanwhile are told why it failed.
    async fn first_load(&self, now_ms: i64, client: &HttpClient) -> Result<Arc<KeySet>, JwtError> {
        let _fetching = self.fetching.lock().await;
        let set = self.set.load_full();
        if set.fetched_at_ms.is_some() {
            return Ok(set);
        }
        let last = self.last_refetch_ms.load(Ordering::Acquire);
        if now_ms.saturating_sub(last) < JWKS_REFETCH_INTERVAL_MS {
            let why = Option::clone(&self.last_error.load())
                .unwrap_or_else(|| "it has not been fetched yet".to_owned());
            return Err(JwtError::KeysUnavailable(why));
        }
        match self.fetch(now_ms, client).await {
            Ok(set) => Ok(set),
            Err(err) => {
                self.last_refetch_ms.store(now_ms, Ordering::Release);
                Err(err)
            }
        }
    }

    /// Fetches the set and keeps it; the caller holds `fetching`.
    async fn fetch(&self, now_ms: i64, client: &HttpClient) -> Result<Arc<KeySet>, JwtError> {
        match self.download(client).await {
            Ok(body) => match parse(&body, now_ms) {
                Ok(set) => {
                    tracing::info!(
                        keys = set.by_kid.len() + set.unnamed.len(),
                        "fetched the JWKS of auth.jwt"
                    );
                    let set = Arc::new(set);
                    self.set.store(Arc::clone(&set));
                    self.last_error.store(Arc::new(None));
                    Ok(set)
                }
                Err(why) => Err(self.failed(why)),
            },
            Err(why) => Err(self.failed(why)),
        }
    }

    fn failed(&self, why: String) -> JwtError {
        tracing::warn!(url = %self.url, error = %why, "cannot fetch the JWKS of auth.jwt");
        self.last_error.store(Arc::new(Some(why.clone())));
        JwtError::KeysUnavailable(why)
    }

    /// The JWKS document's bytes, or why not (in words safe to tell a client: no URL, no
    /// address).
    async fn download(&self, client: &HttpClient) -> Result<Vec<u8>, String> {
        let mut response = client
            .reqwest()
            .get(&self.url)
            .timeout(JWKS_FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the JWKS URL answered HTTP {}", status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if body.len() + chunk.len() > JWKS_MAX_BYTES {
                return Err(format!(
                    "the JWKS is larger than {} KiB",
                    JWKS_MAX_BYTES / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A transport failure in words that name neither the URL nor an address.
fn transport(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    format!("fetching the JWKS {what}")
}

/// One entry of a JWKS, the fields this gateway reads.
#[derive(Debug, Deserialize)]
struct JwkFields {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWKS document.
fn parse(body: &[u8], now_ms: i64) -> Result<KeySet, String> {
    let doc: JwksDocument = serde_json::from_slice(body)
        .map_err(|_| "the JWKS is not a JSON object with a `keys` list".to_owned())?;
    let mut set = KeySet {
        fetched_at_ms: Some(now_ms),
        ..KeySet::default()
    };
    for value in doc.keys {
        let Ok(fields) = serde_json::from_value::<JwkFields>(value) else {
            continue;
        };
        let Some(key) = usable(&fields) else {
            continue;
        };
        let key = Arc::new(key);
        match fields.kid {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.unnamed.push(key),
        }
    }
    Ok(set)
}

/// The key of one JWKS entry, when a token could be checked with it.
fn usable(jwk: &JwkFields) -> Option<VerifyKey> {
    if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, key) = match jwk.kty.as_deref()? {
        "RSA" => (
            Alg::Rs256,
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
        ),
        "EC" if jwk.crv.as_deref() == Some("P-256") => (
            Alg::Es256,
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
        ),
        _ => return None,
    };
    if jwk.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return None;
    }
    Some(VerifyKey { alg, key })
}
