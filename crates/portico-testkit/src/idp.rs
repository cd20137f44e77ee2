//! A mock identity provider for JWT tests: serves a JWKS on `127.0.0.1:0`, counts how often
//! it is fetched, and signs tokens with fixed test keys.
//!
//! The keys are checked in under `fixtures/jwt/` (made once with `openssl genpkey`; their
//! public halves are in `public-jwks.json`). They are test keys: never trust them anywhere.
//!
//! ```no_run
//! # async fn demo() {
//! use portico_testkit::idp::{MockIdp, TestKey};
//!
//! let idp = MockIdp::start(&[TestKey::RsaA]).await;
//! let token = TestKey::RsaA.sign(&serde_json::json!({"sub": "alice", "exp": 4_000_000_000_i64}));
//! // Point `auth.jwt.jwks_url` at `idp.jwks_url()`; later, rotate:
//! idp.publish(&[TestKey::RsaA, TestKey::RsaB]);
//! assert_eq!(idp.hits(), 0);
//! # let _ = token;
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The path the JWKS is served at.
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The public halves of every test key, as JWKs, by name.
const PUBLIC_JWKS: &str = include_str!("../fixtures/jwt/public-jwks.json");

/// A test signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// RSA 2048, RS256, kid `rsa-a`.
    RsaA,
    /// RSA 2048, RS256, kid `rsa-b` (the key a rotation brings).
    RsaB,
    /// EC P-256, ES256, kid `ec-a`.
    EcA,
    /// RSA 2048, kid `rsa-rogue`: never published, for forged signatures.
    RsaRogue,
}

impl TestKey {
    /// Its key id.
    pub fn kid(self) -> &'static str {
        match self {
            TestKey::RsaA => "rsa-a",
            TestKey::RsaB => "rsa-b",
            TestKey::EcA => "ec-a",
            TestKey::RsaRogue => "rsa-rogue",
        }
    }

    fn pem(self) -> &'static str {
        match self {
            TestKey::RsaA => include_str!("../fixtures/jwt/rsa-a.pem"),
            TestKey::RsaB => include_str!("../fixtures/jwt/rsa-b.pem"),
            TestKey::EcA => include_str!("../fixtures/jwt/ec-a.pem"),
            TestKey::RsaRogue => include_str!("../fixtures/jwt/rsa-rogue.pem"),
        }
    }

    /// Its algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            TestKey::EcA => Algorithm::ES256,
            _ => Algorithm::RS256,
        }
    }

    /// Its public half as a JWK.
    #[expect(
        clippy::expect_used,
        reason = "test support: the fixture is checked in"
    )]
    pub fn jwk(self) -> Value {
        let all: Value = serde_json::from_str(PUBLIC_JWKS).expect("public-jwks.json is JSON");
        all[self.kid()].clone()
    }

    /// A token of `claims`, its header naming this key's id.
    pub fn sign(self, claims: &Value) -> String {
        self.sign_as(claims, Some(self.kid()))
    }

    /// A token of `claims` signed with this key, its header naming `kid` (or none).
    #[expect(
        clippy::expect_used,
        reason = "test support: the fixtures are valid keys"
    )]
    pub fn sign_as(self, claims: &Value, kid: Option<&str>) -> String {
        let key = match self.algorithm() {
            Algorithm::ES256 => EncodingKey::from_ec_pem(self.pem().as_bytes()),
            _ => EncodingKey::from_rsa_pem(self.pem().as_bytes()),
        }
        .expect("the fixture is a PEM private key");
        let mut header = Header::new(self.algorithm());
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key).expect("signing with a test key")
    }
}

#[derive(Debug)]
struct Shared {
    keys: Mutex<Vec<Value>>,
    hits: AtomicUsize,
    /// 0: serve the JWKS; else answer this status.
    fail_status: AtomicU16,
}

/// A JWKS server with a fetch counter.
#[derive(Debug)]
pub struct MockIdp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: JoinSet<()>,
}

impl MockIdp {
    /// Binds `127.0.0.1:0` and serves a JWKS of `keys`.
    #[expect(clippy::expect_used, reason = "test support: no port means no test")]
    pub async fn start(keys: &[TestKey]) -> MockIdp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the mock identity provider");
        let addr = listener.local_addr().expect("local address of the mock");
        let shared = Arc::new(Shared {
            keys: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            hits: AtomicUsize::new(0),
            fail_status: AtomicU16::new(0),
        });
        let app = Router::new()
            .route(JWKS_PATH, get(jwks))
            .with_state(Arc::clone(&shared));
        let mut server = JoinSet::new();
        server.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockIdp {
            addr,
            shared,
            _server: server,
        }
    }

    /// The URL of its JWKS.
    pub fn jwks_url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }

    /// How many times the JWKS was requested.
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Serves `keys` from now on (a rotation).
    pub fn publish(&self, keys: &[TestKey]) {
        *self
            .shared
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = keys.iter().map(|k| k.jwk()).collect();
    }

    /// Answers every request with `status` (an outage), or serves the JWKS again with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        self.shared
            .fail_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let status = shared.fail_status.load(Ordering::SeqCst);
    if status != 0 {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, "identity provider down").into_response();
    }
    let keys = shared
        .keys
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    axum::Json(serde_json::json!({ "keys": keys })).into_response()
}
