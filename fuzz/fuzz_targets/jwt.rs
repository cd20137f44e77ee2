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

/// The testkit's public key set (`crates/portico-testkit/fixtures/jwt`).
const JWKS: &str = include_str!("../../crates/portico-testkit/fixtures/jwt/public-jwks.json");

/// The gateway's clock during the run: 2027-01-15, inside the seed tokens' validity.
const NOW_MS: i64 = 1_800_000_000_000;

struct Fixture {
    auth: JwtAuth,
    runtime: tokio::runtime::Runtime,
}

/// Serves the JWKS to every connection, forever, on a thread of its own.
fn serve_jwks() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("an address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{JWKS}",
                JWKS.len()
            );
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
    match f.runtime.block_on(f.auth.check(token.trim(), NOW_MS, client)) {
        Ok(user) => assert!(!user.trim().is_empty()),
        Err(e) => assert_eq!(e.code, ErrorCode::InvalidApiKey, "{e:?}"),
    }
});
