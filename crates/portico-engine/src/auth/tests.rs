//! Authentication against a real snapshot and, for JWTs, the testkit's identity provider (a
//! JWKS server on loopback that counts its fetches). Time is the gateway's manual clock.

use std::sync::Arc;

use portico_config::JwtConfig;
use portico_core::{BudgetSpec, ErrorCode, KeyHash, ManualClock, Period};
use portico_store::{KeyRecord, KeyType, RecordSource};
use portico_testkit::idp::{MockIdp, TestKey};
use serde_json::{Value, json};

use super::*;
use crate::snapshot::{Credential, Snapshot};
use crate::{AccessLog, Gateway};

/// 2027-01-15T08:00:00Z.
const NOW_MS: i64 = 1_800_000_000_000;
const NOW: i64 = NOW_MS / 1000;
const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "portico";

fn key(name: &str, key_type: KeyType) -> KeyRecord {
    KeyRecord {
        id: format!("id-{name}"),
        name: name.to_owned(),
        key_type,
        user: (key_type == KeyType::User).then(|| format!("{name}@example.com")),
        hash: KeyHash::of(&secret(name)),
        hint: String::new(),
        allowed_models: None,
        log_payloads: true,
        config: None,
        source: RecordSource::Api,
        created_at_ms: 0,
        revoked_at_ms: None,
        limits: Default::default(),
        expires_at_ms: None,
    }
}

fn secret(name: &str) -> String {
    format!("prt-test-secret-of-{name}")
}

fn jwt_config(idp: &MockIdp) -> JwtConfig {
    JwtConfig {
        jwks_url: idp.jwks_url(),
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        user_claim: "sub".to_owned(),
        budget: Some(BudgetSpec {
            cost_usd: Some(20.0),
            tokens: None,
            period: Period::Month,
        }),
    }
}

fn gateway(keys: Vec<KeyRecord>, jwt: Option<JwtConfig>) -> (Gateway, Arc<ManualClock>) {
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let snapshot = Snapshot::build(Vec::new(), keys, Vec::new(), &client).unwrap();
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let mut gateway = Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
        .with_clock(Arc::clone(&clock) as Arc<dyn portico_core::Clock>);
    if let Some(config) = jwt {
        gateway = gateway.with_jwt(Some(JwtAuth::new(config)));
    }
    (gateway, clock)
}

/// Claims that pass every check, at the clock's start.
fn claims() -> Value {
    json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 600, "iat": NOW})
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().unwrap().remove(field);
    claims
}

/// A token with a header of our own making (an algorithm no key signs with).
fn unsigned(header: &Value, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(claims))
}

async fn refused(gateway: &Gateway, secret: &str) -> portico_core::ApiError {
    gateway.authenticate(Some(secret)).await.unwrap_err()
}

#[tokio::test]
async fn stored_keys_are_refused_saying_why() {
    let mut revoked = key("gone", KeyType::Service);
    revoked.revoked_at_ms = Some(NOW_MS - 3_600_000);
    let mut expiring = key("temp", KeyType::Service);
    expiring.expires_at_ms = Some(NOW_MS + 60_000);
    let mut dotted = key("dotted", KeyType::Service);
    dotted.hash = KeyHash::of("my.fixed.secret.with.dots");
    let (gw, clock) = gateway(
        vec![
            key("svc", KeyType::Service),
            key("alice", KeyType::User),
            key("edge", KeyType::Gateway),
            key("admin", KeyType::Admin),
            revoked,
            expiring,
            dotted,
        ],
        None,
    );

    let svc = gw.authenticate(Some(&secret("svc"))).await.unwrap();
    assert_eq!(
        (svc.name.as_str(), svc.credential),
        ("svc", Credential::Key)
    );
    let alice = gw.authenticate(Some(&secret("alice"))).await.unwrap();
    assert_eq!(alice.user.as_deref(), Some("alice@example.com"));
    assert!(
        gw.authenticate(Some("my.fixed.secret.with.dots"))
            .await
            .is_ok()
    );

    let err = refused(&gw, &secret("gone")).await;
    assert_eq!((err.status, err.code), (401, ErrorCode::InvalidApiKey));
    assert_eq!(
        err.message,
        "the key `gone` was revoked at 2027-01-15T07:00:00Z; ask an admin for a new key"
    );

    // A key expires by the clock, with no reload: usable until its expiry, refused from it.
    clock.set(NOW_MS + 59_999);
    assert!(gw.authenticate(Some(&secret("temp"))).await.is_ok());
    clock.set(NOW_MS + 60_000);
    let err = refused(&gw, &secret("temp")).await;
    assert_eq!(err.status, 401);
    assert!(
        err.message
            .starts_with("the key `temp` expired at 2027-01-15T08:01:00Z;"),
        "{}",
        err.message
    );
    assert!(gw.authenticate_key(Some(&secret("temp"))).is_err());

    // A gateway key: 403 on the data plane and the admin API, in force for its own use.
    let err = refused(&gw, &secret("edge")).await;
    assert_eq!((err.status, err.code), (403, ErrorCode::Forbidden));
    assert!(err.message.contains("of type gateway"), "{}", err.message);
    assert!(err.message.contains("the data plane"), "{}", err.message);
    let err = gw.authenticate_admin(Some(&secret("edge"))).unwrap_err();
    assert_eq!(err.status, 403);
    assert!(err.message.contains("the admin API"), "{}", err.message);
    assert_eq!(
        gw.authenticate_key(Some(&secret("edge"))).unwrap().key_type,
        KeyType::Gateway
    );

    assert!(gw.authenticate_admin(Some(&secret("admin"))).is_ok());
    assert_eq!(
        gw.authenticate_admin(Some(&secret("svc")))
            .unwrap_err()
            .status,
        403
    );
    let err = gw.authenticate_admin(Some(&secret("gone"))).unwrap_err();
    assert!(err.message.contains("was revoked"), "{}", err.message);

    let err = refused(&gw, "prt-never-issued-0000000").await;
    assert_eq!(err.status, 401);
    assert!(
        err.message.contains("no key has this secret"),
        "{}",
        err.message
    );
    let err = gw.authenticate(None).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::MissingApiKey);
    // Without auth.jwt, a JWT gets a message that says so.
    let err = refused(&gw, &TestKey::RsaA.sign(&claims())).await;
    assert_eq!(err.status, 401);
    assert!(
        err.message.contains("does not accept JWTs"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn revoked_keys_stay_out_of_the_active_keys() {
    let mut revoked = key("gone", KeyType::User);
    revoked.revoked_at_ms = Some(1);
    let (gw, _) = gateway(vec![key("svc", KeyType::Service), revoked], None);
    let snapshot = gw.snapshot();
    assert_eq!(snapshot.key_count(), 1);
    assert_eq!(
        snapshot.keys().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["svc"]
    );
    assert!(snapshot.key(&KeyHash::of(&secret("gone"))).is_some());
}

#[tokio::test]
async fn a_valid_jwt_is_a_user_with_the_default_budget() {
    let idp = MockIdp::start(&[TestKey::RsaA, TestKey::EcA]).await;
    let (gw, _) = gateway(Vec::new(), Some(jwt_config(&idp)));
    for signer in [TestKey::RsaA, TestKey::EcA] {
        let caller = gw
            .authenticate(Some(&signer.sign(&claims())))
            .await
            .unwrap_or_else(|e| panic!("{signer:?}: {}", e.message));
        assert_eq!(caller.name, JWT_KEY_NAME);
        assert_eq!(caller.credential, Credential::Jwt);
        assert_eq!(caller.key_type, KeyType::User);
        assert_eq!(caller.user.as_deref(), Some("alice"));
        assert_eq!(caller.allowed, None);
        let limits = caller.default_user_limits.unwrap();
        assert_eq!(limits.budget.unwrap().cost_usd, Some(20.0));
    }
    assert_eq!(idp.hits(), 1, "the key set is fetched once and kept");

    // Another claim may name the user; an audience list passes when it holds ours.
    let mut config = jwt_config(&idp);
    config.user_claim = "email".to_owned();
    let (gw, _) = gateway(Vec::new(), Some(config));
    let token = TestKey::RsaA.sign(&with(
        with(claims(), "email", json!("alice@example.com")),
        "aud",
        json!(["other", AUDIENCE]),
    ));
    let caller = gw.authenticate(Some(&token)).await.unwrap();
    assert_eq!(caller.user.as_deref(), Some("alice@example.com"));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason() {
    let idp = MockIdp::start(&[TestKey::RsaA, TestKey::EcA]).await;
    let (gw, _) = gateway(Vec::new(), Some(jwt_config(&idp)));
    let ok = |claims: Value| TestKey::RsaA.sign(&claims);
    // Within the 60 s of clock skew, still accepted.
    for token in [
        ok(with(claims(), "exp", json!(NOW - 59))),
        ok(with(claims(), "nbf", json!(NOW + 59))),
        ok(with(claims(), "exp", json!(NOW as f64 + 30.5))),
    ] {
        gw.authenticate(Some(&token)).await.unwrap();
    }
    let cases = [
        (
            ok(with(claims(), "exp", json!(NOW - 61))),
            "invalid JWT: it expired at 2027-01-15T07:58:59Z (exp; 60 s of clock skew allowed)",
        ),
        (
            ok(with(claims(), "nbf", json!(NOW + 61))),
            "invalid JWT: it is not valid before 2027-01-15T08:01:01Z",
        ),
        (
            ok(with(claims(), "iss", json!("https://evil.test/"))),
            "invalid JWT: wrong issuer: `https://evil.test/` is not the issuer",
        ),
        (
            ok(without(claims(), "iss")),
            "invalid JWT: wrong issuer: it has no `iss`",
        ),
        (
            ok(with(claims(), "aud", json!("someone-else"))),
            "invalid JWT: wrong audience: `someone-else` does not include",
        ),
        (
            ok(without(claims(), "aud")),
            "invalid JWT: wrong audience: it has no `aud`",
        ),
        (ok(without(claims(), "exp")), "invalid JWT: it has no `exp`"),
        (
            ok(without(claims(), "sub")),
            "invalid JWT: it has no `sub` claim naming the user",
        ),
        (
            TestKey::RsaRogue.sign_as(&claims(), Some("rsa-a")),
            "invalid JWT: bad signature",
        ),
        (
            TestKey::RsaA.sign_as(&claims(), Some("ec-a")),
            "invalid JWT: its signing key `ec-a` is a ES256 key, but the token is signed with RS256",
        ),
        (
            unsigned(&json!({"alg": "HS256", "kid": "rsa-a"}), &claims()),
            "invalid JWT: its algorithm `HS256` is not accepted",
        ),
        (
            unsigned(&json!({"alg": "none"}), &claims()),
            "invalid JWT: its algorithm `none` is not accepted",
        ),
    ];
    for (token, expected) in cases {
        let err = refused(&gw, &token).await;
        assert_eq!(
            (err.status, err.code),
            (401, ErrorCode::InvalidApiKey),
            "{expected}"
        );
        assert!(
            err.message.starts_with(expected),
            "{expected:?}\n got {:?}",
            err.message
        );
    }
    // A changed payload under the original signature.
    let token = ok(claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(with(claims(), "sub", json!("mallory")).to_string())
    };
    parts[1] = &forged;
    let err = refused(&gw, &parts.join(".")).await;
    assert!(
        err.message.starts_with("invalid JWT: bad signature"),
        "{}",
        err.message
    );
    assert_eq!(idp.hits(), 1, "no refusal above fetched the keys again");
}

#[tokio::test]
async fn a_new_kid_is_fetched_once_and_unknown_kids_at_most_once_per_interval() {
    let idp = MockIdp::start(&[TestKey::RsaA]).await;
    let (gw, clock) = gateway(Vec::new(), Some(jwt_config(&idp)));
    gw.authenticate(Some(&TestKey::RsaA.sign(&claims())))
        .await
        .unwrap();
    assert_eq!(idp.hits(), 1);

    // The identity provider rotates: a token of the new key brings one refetch.
    idp.publish(&[TestKey::RsaA, TestKey::RsaB]);
    let caller = gw
        .authenticate(Some(&TestKey::RsaB.sign(&claims())))
        .await
        .unwrap();
    assert_eq!(caller.user.as_deref(), Some("alice"));
    assert_eq!(idp.hits(), 2);

    // A flood of made-up key ids within the interval: no fetch at all.
    for i in 0..50 {
        let token = TestKey::RsaA.sign_as(&claims(), Some(&format!("made-up-{i}")));
        let err = refused(&gw, &token).await;
        assert!(
            err.message.contains("its signing key `made-up-"),
            "{}",
            err.message
        );
    }
    assert_eq!(idp.hits(), 2);
    // Once the interval has passed, one fetch, then none again.
    clock.advance(JWKS_REFETCH_INTERVAL_MS);
    for i in 0..20 {
        let token = TestKey::RsaA.sign_as(&claims(), Some(&format!("again-{i}")));
        refused(&gw, &token).await;
    }
    assert_eq!(idp.hits(), 3);
    // Known keys never wait for any of it.
    gw.authenticate(Some(&TestKey::RsaB.sign(&claims())))
        .await
        .unwrap();
    assert_eq!(idp.hits(), 3);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let idp = MockIdp::start(&[TestKey::RsaA]).await;
    let (gw, _) = gateway(Vec::new(), Some(jwt_config(&idp)));
    // The first load too is shared by the requests that need it.
    let first: Vec<_> = (0..10).map(|_| TestKey::RsaA.sign(&claims())).collect();
    let results = futures::future::join_all(first.iter().map(|t| gw.authenticate(Some(t)))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(idp.hits(), 1);
    let tokens: Vec<String> = (0..20)
        .map(|i| TestKey::RsaA.sign_as(&claims(), Some(&format!("new-{i}"))))
        .collect();
    let results = futures::future::join_all(tokens.iter().map(|t| gw.authenticate(Some(t)))).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(idp.hits(), 2, "twenty unknown kids at once: one refetch");
}

#[tokio::test]
async fn an_identity_provider_that_is_down_gets_503_and_is_not_hammered() {
    let idp = MockIdp::start(&[TestKey::RsaA]).await;
    idp.fail_with(Some(500));
    let (gw, clock) = gateway(Vec::new(), Some(jwt_config(&idp)));
    let token = TestKey::RsaA.sign(&with(claims(), "exp", json!(NOW + 3600)));
    for _ in 0..5 {
        let err = refused(&gw, &token).await;
        assert_eq!((err.status, err.code), (503, ErrorCode::Unavailable));
        assert!(
            err.message
                .contains("key set is not available (the JWKS URL answered HTTP 500)"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("127.0.0.1"), "{}", err.message);
    }
    assert_eq!(idp.hits(), 1);
    idp.fail_with(None);
    clock.advance(JWKS_REFETCH_INTERVAL_MS);
    gw.authenticate(Some(&token)).await.unwrap();
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn a_withdrawn_key_stops_working_once_the_set_is_refreshed() {
    let idp = MockIdp::start(&[TestKey::RsaA]).await;
    let (gw, clock) = gateway(Vec::new(), Some(jwt_config(&idp)));
    let token = |claims: Value| TestKey::RsaA.sign(&claims);
    gw.authenticate(Some(&token(claims()))).await.unwrap();
    idp.publish(&[TestKey::RsaB]);
    gw.authenticate(Some(&token(claims()))).await.unwrap();
    assert_eq!(idp.hits(), 1, "the kept set is used until its max age");
    clock.advance(JWKS_MAX_AGE_MS);
    let later = with(claims(), "exp", json!(NOW + 3600));
    let err = refused(&gw, &token(later.clone())).await;
    assert!(err.message.contains("`rsa-a`"), "{}", err.message);
    assert_eq!(
        idp.hits(),
        2,
        "refreshed once, and that fetch is not repeated"
    );
    // A refresh that fails keeps the set it had.
    idp.publish(&[TestKey::RsaA]);
    clock.advance(JWKS_MAX_AGE_MS);
    idp.fail_with(Some(503));
    refused(&gw, &token(with(later, "exp", json!(NOW + 7200)))).await;
    let b = TestKey::RsaB.sign(&with(claims(), "exp", json!(NOW + 7200)));
    gw.authenticate(Some(&b)).await.unwrap();
}

#[tokio::test]
async fn a_token_without_kid_uses_the_only_key_of_its_algorithm() {
    let idp = MockIdp::start(&[TestKey::RsaA, TestKey::EcA]).await;
    let (gw, clock) = gateway(Vec::new(), Some(jwt_config(&idp)));
    let token = TestKey::RsaA.sign_as(&claims(), None);
    gw.authenticate(Some(&token)).await.unwrap();
    idp.publish(&[TestKey::RsaA, TestKey::RsaB]);
    clock.advance(JWKS_MAX_AGE_MS);
    let token = TestKey::RsaA.sign_as(&with(claims(), "exp", json!(NOW + 3600)), None);
    let err = refused(&gw, &token).await;
    assert!(
        err.message.contains("names no signing key (`kid`)"),
        "{}",
        err.message
    );
}
