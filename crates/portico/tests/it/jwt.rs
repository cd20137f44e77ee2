//! `auth.jwt` on the real binary, against the testkit's identity provider (a JWKS server on
//! loopback that counts its fetches): valid RS256 and ES256 tokens are served and logged as
//! their user, bad ones get 401 with the reason, a rotated signing key is fetched once, and a
//! flood of unknown key ids does not reach the identity provider.

use portico_testkit::MockUpstream;
use portico_testkit::idp::{MockIdp, TestKey};
use serde_json::{Value, json};

use crate::support::{Gateway, SERVICE_KEY, chat, standard_catalog, wait_for_logs};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "portico";
const MODEL: &str = "@openai-mock/gpt-4o-mini";

/// The standard catalog with `auth.jwt` pointed at `idp`.
async fn start(idp: &MockIdp) -> Gateway {
    start_with_env(idp, &[]).await
}

async fn start_with_env(idp: &MockIdp, env: &[(&str, &str)]) -> Gateway {
    let upstream = MockUpstream::start().await;
    let catalog = format!(
        "{}auth:\n  jwt:\n    jwks_url: {}\n    issuer: {ISSUER}\n    audience: {AUDIENCE}\n    \
         budget: {{ cost_usd: 20, period: month }}\n",
        standard_catalog(&upstream),
        idp.jwks_url()
    );
    Gateway::start_with_env(upstream, &catalog, env).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims that pass every check.
fn claims(user: &str) -> Value {
    json!({"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600})
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

/// A chat request with `token`, under `trace`: its status and body.
async fn chat_with(gw: &Gateway, token: &str, trace: &str) -> (u16, Value) {
    let response = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(token)
        .header("x-portkey-trace-id", trace)
        .header("x-portkey-metadata", r#"{"_user":"mallory"}"#)
        .json(&chat(MODEL, "hello"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn jwt_callers_are_served_and_logged_as_their_user() {
    let idp = MockIdp::start(&[TestKey::RsaA, TestKey::EcA]).await;
    let gw = start(&idp).await;
    for (signer, user, trace) in [
        (TestKey::RsaA, "alice", "jwt-rs256"),
        (TestKey::EcA, "bob", "jwt-es256"),
    ] {
        let token = signer.sign(&claims(user));
        let (status, body) = chat_with(&gw, &token, trace).await;
        assert_eq!(status, 200, "{signer:?}: {body}");
        let logged = wait_for_logs(&gw.portico, &format!("trace_id={trace}"), 1).await;
        assert_eq!(logged[0]["key_name"], "jwt", "{}", logged[0]);
        // The token's user, not the `_user` the client sent.
        assert_eq!(logged[0]["user"], user, "{}", logged[0]);
    }
    assert_eq!(idp.hits(), 1, "the key set is fetched once and kept");

    // `GET /v1/models` takes a JWT too; the admin API does not.
    let token = TestKey::RsaA.sign(&claims("alice"));
    let models = gw
        .http
        .get(gw.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let admin = gw
        .http
        .get(gw.url("/admin/v1/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 401);
    let body: Value = admin.json().await.unwrap();
    assert!(message(&body).contains("this is a JWT"), "{body}");
    // Gateway keys still work beside JWTs.
    let (status, _) = chat_with(&gw, SERVICE_KEY, "jwt-key-too").await;
    assert_eq!(status, 200);
    // On /v1/messages, a refusal comes in Anthropic's shape.
    let expired = TestKey::RsaA.sign(&with(claims("alice"), "exp", json!(now() - 3600)));
    let response = gw
        .http
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &expired)
        .json(&json!({"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JWT: it expired at"),
        "{body}"
    );
}

#[tokio::test]
async fn bad_tokens_get_401_with_the_reason() {
    let idp = MockIdp::start(&[TestKey::RsaA]).await;
    let gw = start(&idp).await;
    let cases = [
        (
            TestKey::RsaA.sign(&with(claims("a"), "exp", json!(now() - 3600))),
            "invalid JWT: it expired at",
        ),
        (
            TestKey::RsaA.sign(&with(claims("a"), "nbf", json!(now() + 3600))),
            "invalid JWT: it is not valid before",
        ),
        (
            TestKey::RsaA.sign(&with(claims("a"), "iss", json!("https://elsewhere.test/"))),
            "invalid JWT: wrong issuer",
        ),
        (
            TestKey::RsaA.sign(&with(claims("a"), "aud", json!("another-app"))),
            "invalid JWT: wrong audience",
        ),
        (
            TestKey::RsaRogue.sign_as(&claims("a"), Some("rsa-a")),
            "invalid JWT: bad signature",
        ),
        (
            TestKey::RsaRogue.sign(&claims("a")),
            "invalid JWT: its signing key `rsa-rogue` (kid) is unknown",
        ),
    ];
    for (i, (token, reason)) in cases.iter().enumerate() {
        let (status, body) = chat_with(&gw, token, &format!("bad-{i}")).await;
        assert_eq!(status, 401, "{reason}: {body}");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert!(message(&body).starts_with(reason), "{reason}: {body}");
    }
    // The unknown key id cost one refetch, no more.
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_a_flood_of_unknown_kids_is_not() {
    let idp = MockIdp::start(&[TestKey::RsaA]).await;
    // The flood below is fifty refused tokens from one address: the failed-authentication
    // throttle (web_security.rs) is off, so this test sees what the JWKS cache does.
    let gw = start_with_env(&idp, &[("PORTICO_AUTH_FAILURE_LIMIT", "0")]).await;
    let (status, _) = chat_with(&gw, &TestKey::RsaA.sign(&claims("alice")), "before").await;
    assert_eq!(status, 200);
    assert_eq!(idp.hits(), 1);

    // The identity provider starts signing with a new key: one refetch, then served.
    idp.publish(&[TestKey::RsaA, TestKey::RsaB]);
    let (status, body) = chat_with(&gw, &TestKey::RsaB.sign(&claims("alice")), "after").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.hits(), 2);

    // Fifty tokens with made-up key ids, some at once: refused, and within the refetch
    // interval (30 s) none of them reaches the identity provider.
    let tokens: Vec<String> = (0..50)
        .map(|i| TestKey::RsaA.sign_as(&claims("mallory"), Some(&format!("forged-{i}"))))
        .collect();
    let answers = futures::future::join_all(
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| chat_with(&gw, t, if i % 2 == 0 { "flood-a" } else { "flood-b" })),
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 401, "{body}");
        assert!(
            message(body).contains("is unknown: the identity provider's key set"),
            "{body}"
        );
    }
    assert_eq!(idp.hits(), 2);
    // Both keys keep working, from the kept set.
    for key in [TestKey::RsaA, TestKey::RsaB] {
        let (status, _) = chat_with(&gw, &key.sign(&claims("alice")), "kept").await;
        assert_eq!(status, 200);
    }
    assert_eq!(idp.hits(), 2);
}
