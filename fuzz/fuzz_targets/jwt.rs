//! The JWT check (portico-engine `auth::JwtAuth::check`): a bearer credential checked
//! against a fixed JWKS (the testkit's public keys: RSA and EC, by `kid`) at a fixed time.
//! The JWKS is served once by a loopback HTTP server of this process and then kept (the
//! clock does not move, so it is never refetched; an unknown `kid` is refetched once).
//! Properties: no panic; every refusal is 401 (the key set is always available); a token
//! is accepted only with the issuer and audience configured and a user.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico_config::JwtConfig;
use portico_core::ErrorCode;
use portico_engine::auth::JwtAuth;

/// The testkit's public keys by kid (`crates/portico-testkit/fixtures/jwt`).
const KEYS: &str = include_str!("../../crates/portico-testkit/fixtures/jwt/public-jwks.json");

/// The published key set: every testkit key but `rsa-rogue` (whose tokens must fail).
fn jwks() -> String {
    let keys: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(KEYS).expect("the testkit's keys are JSON");
    let published: Vec<_> = keys
        .into_iter()
        .filter(|(kid, _)| kid != "rsa-rogue")
        .map(|(_, key)| key)
        .collect();
    serde_json::json!({ "keys": published }).to_string()
}

/// The gateway's clock during the run: 2027-01-15, inside the seed tokens' validity.
const NOW_MS: i64 = 1_800_000_000_000;

struct Fixture {
    auth: JwtAuth,
    runtime: tokio::runtime::Runtime,
}

/// Serves the JWKS to every connection, forever, on a thread of its own.
fn serve_jwks() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!(
        "http://{}/jwks.json",
        listener.local_addr().expect("an address")
    );
    let body = jwks();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // The request head, then the answer; then wait for the client to close.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.shutdown(std::net::Shutdown::Write);
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    url
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        auth: JwtAuth::new(JwtConfig {
            jwks_url: serve_jwks(),
            issuer: "https://idp.example".to_owned(),
            audience: "portico".to_owned(),
            user_claim: "sub".to_owned(),
            budget: None,
        }),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    let client = portico_fuzz::client();
    let outcome = f
        .runtime
        .block_on(f.auth.check(token.trim(), NOW_MS, client));
    if std::env::var_os("FUZZ_JWT_VERBOSE").is_some() {
        eprintln!("{outcome:?}");
    }
    match outcome {
        Ok(user) => assert!(!user.trim().is_empty()),
        Err(e) => assert_eq!(e.code, ErrorCode::InvalidApiKey, "{e:?}"),
    }
});
