//! Reading an OAuth token endpoint's answer: Entra ID, Azure's managed identity endpoints,
//! Google's token endpoint and metadata server all answer `access_token` with a lifetime,
//! and an OAuth error (`error`, `error_description`) when they refuse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_core::Secret;
use serde_json::Value;

use super::MintError;
use crate::error::quote;
use crate::openai::read_capped;

/// The most bytes of a token endpoint's answer read: a token answer is a few kilobytes.
const MAX_ANSWER: usize = 64 * 1024;

/// How long a token request may take in all: token endpoints answer in milliseconds, and an
/// unreachable metadata address (off the cloud) must fail fast rather than hold requests.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

/// An access token and how long it lives.
#[derive(Debug, Clone)]
pub struct TokenAnswer {
    /// The token.
    pub access_token: Secret,
    /// Its lifetime from now, when the endpoint said.
    pub expires_in: Option<Duration>,
}

/// Sends `request` to the token endpoint `source` names (for messages, like `Entra ID`) and
/// reads the token from its answer.
///
/// # Errors
///
/// [`MintError`] saying that `source` could not be reached, refused (its OAuth `error` and
/// `error_description` quoted), or answered no token. It holds no secret the request sent; the
/// endpoint's own words pass the provider's redactor anyway.
pub async fn request_token(
    request: reqwest::RequestBuilder,
    source: &str,
) -> Result<TokenAnswer, MintError> {
    let response = request.timeout(TOKEN_TIMEOUT).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "did not answer in time"
        } else if e.is_connect() {
            "could not be reached"
        } else {
            "failed"
        };
        MintError::new(format!("{source} {why}"), format!("{source} {why}: {e}"))
    })?;
    let status = response.status();
    let body = read_capped(response, MAX_ANSWER).await;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        let said = json
            .as_ref()
            .map(oauth_error)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| quote(&String::from_utf8_lossy(&body)));
        return Err(MintError::from(format!(
            "{source} refused with {}: {said}",
            status.as_u16()
        )));
    }
    let json = json.ok_or_else(|| MintError::from(format!("{source} answered no JSON")))?;
    let access_token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| MintError::from(format!("{source} answered no access_token")))?;
    Ok(TokenAnswer {
        access_token: Secret::new(access_token),
        expires_in: lifetime(&json),
    })
}

/// `error: error_description` of an OAuth error answer (Google's metadata server and a few
/// others put a plain `error` object or text instead; what there is, is quoted).
fn oauth_error(json: &Value) -> String {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let parts: Vec<String> = [text(json.get("error")), text(json.get("error_description"))]
        .into_iter()
        .flatten()
        .collect();
    quote(&parts.join(": "))
}

/// The token's lifetime: `expires_in` (seconds, a number or, from Azure's endpoints, a
/// string), else `expires_on` (a Unix time) from now.
fn lifetime(json: &Value) -> Option<Duration> {
    let seconds = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    if let Some(secs) = json.get("expires_in").and_then(seconds) {
        return Some(Duration::from_secs(secs));
    }
    let on = json.get("expires_on").and_then(seconds)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(on.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes_from_seconds_or_a_time() {
        assert_eq!(
            lifetime(&json!({"expires_in": 3599})),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(
            lifetime(&json!({"expires_in": "86399"})),
            Some(Duration::from_secs(86399))
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let in_an_hour = lifetime(&json!({"expires_on": (now + 3600).to_string()})).unwrap();
        assert!(in_an_hour.as_secs() > 3590 && in_an_hour.as_secs() <= 3600);
        assert_eq!(lifetime(&json!({})), None);
    }

    #[test]
    fn oauth_errors_are_quoted() {
        assert_eq!(
            oauth_error(
                &json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
            ),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            oauth_error(&json!({"error": {"message": "no identity"}})),
            "no identity"
        );
    }
}
