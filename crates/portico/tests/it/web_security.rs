//! The browser-facing defences of the real binary (docs/security.md): bearer credentials only
//! (a cookie is no credential, no answer sets one), no CORS grant to another origin, the
//! security headers on every answer, input never reflected as HTML, and failed
//! authentications throttled per client address.

use std::net::{IpAddr, Ipv4Addr};

use portico_testkit::{MockReply, MockUpstream};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::support::{ADMIN_KEY, Gateway, SERVICE_KEY, chat, standard_catalog};

const EVIL_ORIGIN: &str = "https://evil.example";

/// Asserts the headers every answer of the listener carries, and none that a browser would
/// take as a grant (CORS) or a session (cookie).
fn assert_safe_headers(what: &str, resp: &Response) {
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}: {h:?}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}: {h:?}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}: {h:?}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert!(h.get("set-cookie").is_none(), "{what} sets a cookie: {h:?}");
    for cors in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
    ] {
        assert!(h.get(cors).is_none(), "{what} answers {cors}: {h:?}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_no_cors_grant_or_cookie() {
    let gw = Gateway::start().await;
    let http = &gw.http;
    let mut answers: Vec<(&str, Response)> = Vec::new();
    let admin = |method: Method, path: &str| {
        http.request(method, gw.url(path))
            .bearer_auth(ADMIN_KEY)
            .header("origin", EVIL_ORIGIN)
    };
    answers.push((
        "GET /admin/v1/providers",
        admin(Method::GET, "/admin/v1/providers")
            .send()
            .await
            .unwrap(),
    ));
    answers.push((
        "POST /admin/v1/keys (a new key)",
        admin(Method::POST, "/admin/v1/keys")
            .json(&serde_json::json!({"name": "web-security-key", "type": "service"}))
            .send()
            .await
            .unwrap(),
    ));
    // A CORS preflight for the admin API from another origin.
    answers.push((
        "OPTIONS /admin/v1/keys (preflight)",
        http.request(Method::OPTIONS, gw.url("/admin/v1/keys"))
            .header("origin", EVIL_ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap(),
    ));
    answers.push((
        "POST /v1/chat/completions",
        http.post(gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .header("origin", EVIL_ORIGIN)
            .json(&chat("@mock/echo", "hello"))
            .send()
            .await
            .unwrap(),
    ));
    answers.push((
        "GET /v1/models without a key",
        http.get(gw.url("/v1/models"))
            .header("origin", EVIL_ORIGIN)
            .send()
            .await
            .unwrap(),
    ));
    answers.push((
        "GET / (dashboard)",
        http.get(gw.url("/")).send().await.unwrap(),
    ));
    answers.push((
        "GET /healthz",
        http.get(gw.url("/healthz")).send().await.unwrap(),
    ));
    answers.push((
        "GET /nowhere",
        http.get(gw.url("/nowhere")).send().await.unwrap(),
    ));
    for (what, resp) in &answers {
        assert_safe_headers(what, resp);
    }
    let statuses: Vec<u16> = answers.iter().map(|(_, r)| r.status().as_u16()).collect();
    // The preflight is not granted (no route answers OPTIONS), the rest as usual.
    assert_eq!(
        statuses,
        [200, 201, 405, 200, 401, 200, 200, 404],
        "{answers:?}"
    );
    // The dashboard's page keeps its own policy (its own scripts), not the API's.
    let page_csp = answers[5].1.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(page_csp.contains("script-src 'self'"), "{page_csp}");
}

#[tokio::test]
async fn a_cookie_is_no_credential() {
    let gw = Gateway::start().await;
    let cookie = format!(
        "portico_admin_key={ADMIN_KEY}; session={ADMIN_KEY}; authorization=Bearer%20{ADMIN_KEY}"
    );
    for path in ["/admin/v1/providers", "/admin/v1/logs", "/v1/models"] {
        let resp = gw
            .http
            .get(gw.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_safe_headers(path, &resp);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "missing_api_key", "{path}: {body}");
    }
    // The same request with the key as a bearer works: the cookie was the only thing missing.
    let resp = gw
        .http
        .get(gw.url("/admin/v1/providers"))
        .header("cookie", &cookie)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_path_with_markup_is_answered_as_json_never_html() {
    let gw = Gateway::start().await;
    for path in [
        "/admin/v1/%3Cscript%3Ealert(1)%3C/script%3E",
        "/v1/%3Cscript%3Ealert(1)%3C/script%3E",
        "/%3Cimg%20src=x%20onerror=alert(1)%3E",
        "/assets/%3Cscript%3E/app.js",
    ] {
        let resp = gw
            .http
            .get(gw.url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_safe_headers(path, &resp);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("application/json") || content_type.starts_with("text/plain"),
            "{path}: {content_type}"
        );
        let text = resp.text().await.unwrap();
        if content_type.starts_with("application/json") {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert!(body["error"]["message"].is_string(), "{text}");
        }
    }
    // The admin API's own 404 for an unknown id quoting it: JSON too.
    let resp = gw
        .http
        .get(gw.url("/admin/v1/logs/%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_safe_headers("GET /admin/v1/logs/<script>", &resp);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// A client whose requests leave from `ip` (any address of 127.0.0.0/8 reaches a listener on
/// 127.0.0.1 on Linux).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

#[tokio::test]
async fn repeated_failed_authentications_are_throttled_for_that_address_only() {
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    let gw =
        Gateway::start_with_env(upstream, &catalog, &[("PORTICO_AUTH_FAILURE_LIMIT", "5")]).await;
    let prober = client_from(Ipv4Addr::new(127, 0, 0, 2));
    let other = client_from(Ipv4Addr::new(127, 0, 0, 3));
    // Five wrong keys, on the data plane and the admin API: 401 each.
    for i in 0..5 {
        let resp = if i % 2 == 0 {
            prober
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(format!("prt-guess-{i:020}"))
                .json(&chat("@mock/echo", "hi"))
                .send()
                .await
                .unwrap()
        } else {
            prober
                .get(gw.url("/admin/v1/providers"))
                .bearer_auth(format!("prt-guess-{i:020}"))
                .send()
                .await
                .unwrap()
        };
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The sixth request from that address is refused, even with the right key, on every plane.
    for (path, key) in [
        ("/admin/v1/providers", ADMIN_KEY),
        ("/v1/models", SERVICE_KEY),
        ("/v1/models", "prt-guess-again-000000000"),
    ] {
        let resp = prober
            .get(gw.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_safe_headers(path, &resp);
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("failed authentications"), "{message}");
    }
    // The moment the address was throttled is logged (the refused requests themselves never
    // reach the gateway's pipeline, so they have no request record). Stderr is read
    // asynchronously: wait for the line.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gw
        .portico
        .stderr_text()
        .contains("client address throttled: too many failed authentications")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            gw.portico.stderr_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Anthropic's shape on /v1/messages.
    let resp = prober
        .post(gw.url("/v1/messages"))
        .header("x-api-key", SERVICE_KEY)
        .json(&serde_json::json!({"model": "@mock/echo", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    // Another address is not affected.
    let resp = other
        .get(gw.url("/admin/v1/providers"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_upstreams_401_is_not_the_clients_failure() {
    let upstream = MockUpstream::start().await;
    let catalog = standard_catalog(&upstream);
    let gw =
        Gateway::start_with_env(upstream, &catalog, &[("PORTICO_AUTH_FAILURE_LIMIT", "2")]).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 4));
    for _ in 0..4 {
        gw.upstream
            .enqueue(MockReply::error(401, "Incorrect API key provided"));
        let resp = client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(SERVICE_KEY)
            .json(&chat("@openai-mock/gpt-4o-mini", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // A missing key is no guess either.
    for _ in 0..4 {
        let resp = client.get(gw.url("/v1/models")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = client
        .get(gw.url("/v1/models"))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
