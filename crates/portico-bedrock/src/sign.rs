//! How requests to Bedrock authenticate: AWS SigV4 (service `bedrock`) over the exact bytes
//! sent, or a Bedrock API key as a bearer token.
//!
//! Signing uses AWS's own signer (`aws-sigv4`) with its default settings, which are what the
//! AWS SDKs use for Bedrock: the path is URI-encoded a second time in the canonical request,
//! the session token (for temporary credentials) is signed, and the payload hash is not sent
//! as a header. The secret key never leaves this module: the signed headers carry only the
//! access key id, the date, the scope and the signature.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use portico_core::Secret;
use portico_providers::redact::LiveSecrets;
use portico_providers::token::TokenCache;

/// The SigV4 service name of the Bedrock runtime.
pub(crate) const SERVICE: &str = "bedrock";

/// AWS credentials: an access key pair, with a session token when they are temporary.
#[derive(Clone)]
pub(crate) struct AwsCredentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Secret,
    pub(crate) session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How a provider authenticates.
#[derive(Clone)]
pub(crate) enum Auth {
    /// Sign every request with SigV4.
    SigV4(AwsCredentials),
    /// Send a Bedrock API key as `Authorization: Bearer`.
    Bearer(Secret),
    /// Sign with credentials from AWS's default chain, fetched and cached at run time.
    Chain {
        /// The cached credentials.
        tokens: TokenCache<AwsCredentials>,
        /// What the chain handed out, for the redactor.
        live: Arc<LiveSecrets>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::SigV4(creds) => f.debug_tuple("SigV4").field(creds).finish(),
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Chain { .. } => f.write_str("Chain"),
        }
    }
}

/// The headers that authenticate a request: `authorization`, plus `x-amz-date` and
/// `x-amz-security-token` when signing. `auth` is resolved: never [`Auth::Chain`], whose
/// credentials the caller fetched (see `Bedrock::post`).
///
/// `url` must be the exact, already percent-encoded URL sent; `headers` the other headers
/// sent that should be signed (the host is taken from the URL); `body` the exact body bytes.
pub(crate) fn auth_headers(
    auth: &Auth,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    match auth {
        Auth::Bearer(key) => Ok(vec![(
            "authorization".to_owned(),
            format!("Bearer {}", key.expose()),
        )]),
        Auth::SigV4(creds) => {
            sigv4_headers(creds, region, SERVICE, method, url, headers, body, time)
        }
        Auth::Chain { .. } => Err("the AWS credentials were not fetched before signing".into()),
    }
}

/// SigV4-signs one request; see [`auth_headers`].
#[expect(
    clippy::too_many_arguments,
    reason = "each argument is one part of what SigV4 signs"
)]
pub(crate) fn sigv4_headers(
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_owned(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "portico-catalog",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("the SigV4 signing parameters are incomplete: {e}"))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("the request to Bedrock could not be prepared for signing: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| format!("the request to Bedrock could not be signed: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::time::Duration;

    /// HMAC-SHA256, written out from RFC 2104 so the check does not trust the signer's own.
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let mut h = Sha256::new();
        h.update(&inner);
        h.update(data);
        let inner_hash = h.finalize();
        let mut h = Sha256::new();
        h.update(&outer);
        h.update(inner_hash);
        h.finalize().to_vec()
    }

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    /// 2024-01-02T03:04:05Z.
    fn time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645)
    }

    #[test]
    fn signature_matches_an_independent_derivation() {
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
        let headers = [("content-type", "application/json")];
        let out = sigv4_headers(
            &creds(None),
            "us-east-1",
            SERVICE,
            "POST",
            url,
            &headers,
            body,
            time(),
        )
        .unwrap();
        let get = |name: &str| {
            out.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("x-amz-date").as_deref(), Some("20240102T030405Z"));
        assert_eq!(get("x-amz-security-token"), None);

        // The canonical request as the SigV4 documentation describes it: every path
        // segment encoded twice (so `%3A` becomes `%253A`), headers sorted and lowercase.
        let canonical = format!(
            "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n\n\
             content-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20240102T030405Z\n\n\
             content-type;host;x-amz-date\n{}",
            sha256_hex(body)
        );
        let scope = "20240102/us-east-1/bedrock/aws4_request";
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n20240102T030405Z\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20240102");
        for part in ["us-east-1", "bedrock", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        assert_eq!(
            get("authorization").unwrap(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
            )
        );
    }

    #[test]
    fn session_tokens_are_sent_and_signed() {
        let out = sigv4_headers(
            &creds(Some("session-token-value")),
            "eu-west-3",
            SERVICE,
            "POST",
            "http://127.0.0.1:4000/model/m/converse",
            &[],
            b"{}",
            time(),
        )
        .unwrap();
        let auth = &out.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(
            auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-3/bedrock/aws4_request"), "{auth}");
        assert!(
            out.iter()
                .any(|(n, v)| n == "x-amz-security-token" && v == "session-token-value")
        );
        assert!(!auth.contains("EXAMPLEKEY"), "the secret is never sent");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!("{:?}", Auth::SigV4(creds(Some("tok"))));
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(
            !shown.contains("EXAMPLEKEY") && !shown.contains("tok\""),
            "{shown}"
        );
        let bearer = format!("{:?}", Auth::Bearer(Secret::new("bedrock-api-key-123")));
        assert!(!bearer.contains("123"), "{bearer}");
    }
}
