//! [`ControlPlane`]: a gateway's HTTP client to its control plane's `/gateway/v1` endpoints.
//!
//! Every call carries the token as `Authorization: Bearer`. Errors ([`SyncError`]) read as
//! the end of a sentence that starts with "the control plane at URL", so a gateway's log
//! line and its 503s can say exactly what is wrong ("... is unreachable: connection
//! refused", "... refused the gateway token (401): ...").

use std::time::Duration;

use portico_core::KeyHash;
use portico_logs::LogEntry;
use serde::Serialize;

use crate::at_rest::{Verified, VerifyError};
use crate::signing::SIGNATURE_HEADER;
use crate::wire::{
    LOGS_PATH, LONG_POLL, LogReceipt, SNAPSHOT_PATH, SPEND_PATH, SpendBatch, SpendReceipt,
};

/// Time allowed to connect to the control plane.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a log or spend delivery (a large log batch included).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past [`LONG_POLL`] a snapshot request may take (building and sending it).
const POLL_SLACK: Duration = Duration::from_secs(15);

/// Why a call to the control plane failed; reads after "the control plane at URL".
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No answer: connection refused, reset, timed out, DNS.
    #[error("is unreachable: {0}")]
    Unreachable(String),
    /// 401 or 403: the token is unknown, revoked, expired or not a gateway key.
    #[error("refused the gateway token ({status}): {message}")]
    Refused {
        /// The status.
        status: u16,
        /// The control plane's message.
        message: String,
    },
    /// Another error status.
    #[error("answered {status}: {message}")]
    Status {
        /// The status.
        status: u16,
        /// The control plane's message.
        message: String,
    },
    /// A snapshot that failed verification.
    #[error("answered a snapshot that was refused: {0}")]
    Verify(#[from] VerifyError),
    /// A body that is not what the endpoint answers.
    #[error("answered something that is not a gateway answer: {0}")]
    Malformed(String),
}

/// What a snapshot request brought.
#[derive(Debug)]
pub enum Poll {
    /// Nothing changed within the long poll.
    Unchanged,
    /// A new snapshot, verified.
    Changed(Box<Verified>),
}

/// The control plane of a gateway.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// Its address without a trailing slash, as given.
    base: String,
    token: String,
    signing_key: KeyHash,
    http: reqwest::Client,
}

impl ControlPlane {
    /// The control plane at `base` (`https://portico.internal:8787`), reached with `token`.
    pub fn new(base: &str, token: &str) -> Result<ControlPlane, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // A long poll is idle for up to LONG_POLL; keep the connection for the next one.
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| format!("cannot build the control plane's HTTP client: {e}"))?;
        Ok(ControlPlane {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            signing_key: KeyHash::of(token),
            http,
        })
    }

    /// The address, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Asks for the snapshot, waiting up to [`LONG_POLL`] for one newer than `version`
    /// (any, with `None`); `spend` is the fingerprint of the spend the gateway holds.
    pub async fn poll_snapshot(
        &self,
        version: Option<i64>,
        spend: Option<&str>,
    ) -> Result<Poll, SyncError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(version) = version {
            query.push(("version", version.to_string()));
        }
        if let Some(spend) = spend {
            query.push(("spend", spend.to_owned()));
        }
        let response = self
            .http
            .get(format!("{}{SNAPSHOT_PATH}", self.base))
            .bearer_auth(&self.token)
            .query(&query)
            .timeout(LONG_POLL + POLL_SLACK)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        if status == 304 {
            return Ok(Poll::Unchanged);
        }
        if status != 200 {
            return Err(refusal(status, response).await);
        }
        let signature = response
            .headers()
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(unreachable)?;
        let verified = Verified::check(&self.signing_key, body.to_vec(), signature.as_deref())?;
        Ok(Poll::Changed(Box::new(verified)))
    }

    /// Delivers log entries under the batch id `batch`; answers how many were new.
    pub async fn deliver_logs(
        &self,
        batch: &str,
        entries: &[LogEntry],
    ) -> Result<LogReceipt, SyncError> {
        #[derive(Serialize)]
        struct Body<'a> {
            batch: &'a str,
            entries: &'a [LogEntry],
        }
        self.post(LOGS_PATH, &Body { batch, entries }).await
    }

    /// Delivers a spend batch.
    pub async fn deliver_spend(&self, batch: &SpendBatch) -> Result<SpendReceipt, SyncError> {
        self.post(SPEND_PATH, batch).await
    }

    async fn post<B: Serialize + ?Sized, A: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<A, SyncError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .timeout(DELIVERY_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(refusal(status, response).await);
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&bytes).map_err(|e| SyncError::Malformed(e.to_string()))
    }
}

/// A transport error with its causes ("error sending request: connection refused").
fn unreachable(err: reqwest::Error) -> SyncError {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    // The address is in the sentence already ("the control plane at URL ...").
    let mut text = err.without_url().to_string();
    for cause in causes {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    SyncError::Unreachable(text)
}

/// An error status with the control plane's message (OpenAI's error shape).
async fn refusal(status: u16, response: reqwest::Response) -> SyncError {
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(300).collect());
    if status == 401 || status == 403 {
        SyncError::Refused { status, message }
    } else {
        SyncError::Status { status, message }
    }
}
