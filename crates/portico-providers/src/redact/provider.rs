//! [`RedactingProvider`]: the decorator that puts a [`Redactor`] between an adapter and the
//! rest of the gateway.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use portico_core::{JsonBody, ProviderKind, Secret};

use super::{LiveSecrets, Redactor, RedactorError};
use crate::passthrough::{PassthroughAnswer, PassthroughRequest};
use crate::{Provider, ProviderError, UpstreamRequest, UpstreamResponse};

/// An adapter whose every answer, stream event and error passes through its provider's
/// [`Redactor`] (and that of the secrets it mints, [`LiveSecrets`]) before the gateway sees
/// it.
pub struct RedactingProvider {
    inner: Arc<dyn Provider>,
    redactor: Option<Arc<Redactor>>,
    live: Option<Arc<LiveSecrets>>,
}

impl std::fmt::Debug for RedactingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedactingProvider")
            .field("kind", &self.inner.kind())
            .finish_non_exhaustive()
    }
}

impl RedactingProvider {
    /// Wraps `inner`, redacting with `redactor`.
    pub fn new(inner: Arc<dyn Provider>, redactor: Redactor) -> RedactingProvider {
        let live = inner.live_secrets();
        RedactingProvider {
            inner,
            redactor: Some(Arc::new(redactor)),
            live,
        }
    }

    /// The live redactor, read now, so a token minted a moment ago is covered; `None` for
    /// an adapter that mints nothing (one branch, no atomic).
    fn live(&self) -> Option<Arc<Redactor>> {
        self.live.as_ref().and_then(|live| live.redactor())
    }

    fn answer(&self, answer: UpstreamResponse) -> UpstreamResponse {
        let answer = match &self.redactor {
            Some(r) => r.answer(answer),
            None => answer,
        };
        match self.live() {
            Some(r) => r.answer(answer),
            None => answer,
        }
    }

    fn error(&self, err: ProviderError) -> ProviderError {
        let err = match &self.redactor {
            Some(r) => r.error(err),
            None => err,
        };
        match self.live() {
            Some(r) => r.error(err),
            None => err,
        }
    }

    fn bytes(&self, bytes: Bytes) -> Bytes {
        let bytes = match &self.redactor {
            Some(r) => r.bytes(bytes),
            None => bytes,
        };
        match self.live() {
            Some(r) => r.bytes(bytes),
            None => bytes,
        }
    }
}

/// `adapter` wrapped in a [`RedactingProvider`] for `secrets` together with the adapter's own
/// [`Provider::extra_secrets`] and the secrets it mints ([`Provider::live_secrets`]); the
/// adapter itself, at no cost, when no secret is long enough to match (see
/// [`super::MIN_SECRET_LEN`]) and it mints none.
///
/// # Errors
///
/// When the redactor cannot be built: the provider must then not be used at all.
pub fn guard<'a>(
    adapter: Arc<dyn Provider>,
    secrets: impl IntoIterator<Item = &'a Secret>,
) -> Result<Arc<dyn Provider>, RedactorError> {
    let extra = adapter.extra_secrets();
    let mut all: Vec<&str> = secrets.into_iter().map(Secret::expose).collect();
    all.extend(extra.iter().map(Secret::expose));
    let redactor = Redactor::new(all)?.map(Arc::new);
    let live = adapter.live_secrets();
    if redactor.is_none() && live.is_none() {
        return Ok(adapter);
    }
    Ok(Arc::new(RedactingProvider {
        inner: adapter,
        redactor,
        live,
    }))
}

#[async_trait]
impl Provider for RedactingProvider {
    fn kind(&self) -> ProviderKind {
        self.inner.kind()
    }

    async fn send(&self, req: UpstreamRequest) -> Result<UpstreamResponse, ProviderError> {
        match self.inner.send(req).await {
            Ok(answer) => Ok(self.answer(answer)),
            Err(err) => Err(self.error(err)),
        }
    }

    fn extra_secrets(&self) -> Vec<Secret> {
        self.inner.extra_secrets()
    }

    fn speaks_responses(&self) -> bool {
        self.inner.speaks_responses()
    }

    fn live_secrets(&self) -> Option<Arc<LiveSecrets>> {
        self.live.clone()
    }

    async fn send_anthropic_messages(
        &self,
        body: JsonBody,
        stream: bool,
        client_beta: Option<&str>,
    ) -> Option<Result<UpstreamResponse, ProviderError>> {
        let result = self
            .inner
            .send_anthropic_messages(body, stream, client_beta)
            .await?;
        Some(match result {
            Ok(answer) => Ok(self.answer(answer)),
            Err(err) => Err(self.error(err)),
        })
    }

    async fn send_moderation(&self, body: JsonBody) -> Option<Result<Bytes, ProviderError>> {
        let result = self.inner.send_moderation(body).await?;
        Some(match result {
            Ok(answer) => Ok(self.bytes(answer)),
            Err(err) => Err(self.error(err)),
        })
    }

    async fn send_passthrough(
        &self,
        req: PassthroughRequest,
    ) -> Option<Result<PassthroughAnswer, ProviderError>> {
        let result = self.inner.send_passthrough(req).await?;
        Some(match result {
            // Audio is scanned too: one pass of the automaton, and a copy only on a match.
            Ok(mut answer) => {
                answer.body = self.bytes(answer.body);
                Ok(answer)
            }
            Err(err) => Err(self.error(err)),
        })
    }
}
