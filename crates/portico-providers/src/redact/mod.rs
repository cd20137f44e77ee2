//! Keeping provider credentials out of everything an upstream answers.
//!
//! Upstreams echo what they were sent: a 401 that says "Incorrect API key provided: Bearer
//! sk-...", a proxy's 500 page listing the request headers, a debug field in a body. Whatever
//! an upstream answers flows to the client, the request log, the access log on stderr and the
//! dashboard, so a credential in it would leak to all of them.
//!
//! What this is: [`Redactor`], built once per provider from every secret the provider holds,
//! which replaces each occurrence of any of them by `[REDACTED]`; and [`RedactingProvider`],
//! the decorator the engine's registry puts around every adapter that has secrets, so the
//! answer bodies, stream events and error texts of both `send` and `send_anthropic_messages`
//! pass through the redactor before anything else sees them. One choke point: an adapter,
//! a new error path or a new endpoint cannot forget it. A provider without secrets (the
//! built-in mock) gets no decorator and pays nothing.
//!
//! What is matched: each secret as it is, JSON-escaped (with and without `\/`),
//! percent-encoded (upper- and lowercase hex) and base64-encoded (standard and URL-safe
//! alphabets, at each of the three byte alignments, so the secret is found inside a longer
//! encoded string such as a Basic `Authorization` header). Secrets shorter than
//! [`MIN_SECRET_LEN`] bytes are ignored: a placeholder like `none` or `ollama` would otherwise
//! blank out ordinary words of every answer, and such a value protects nothing.
//!
//! Secrets an adapter mints while it runs (cloud access tokens) are added to the provider's
//! [`LiveSecrets`] as they are minted; the decorator applies their redactor too.
//!
//! What it is not: a scanner for secrets it was not given (another provider's key, a key the
//! client put in its own prompt), and it sees each body and each event whole but not across
//! events: a secret an upstream split over two stream events would pass.
//!
//! Cut text: an adapter quotes at most 500 characters of an unparsed error page, and the cut
//! may fall inside a secret, leaving its beginning, which no whole-secret match finds. Every
//! cut ends in [`crate::error::CUT_MARK`] (the adapters quote through
//! [`crate::error::quote`]), and in error texts the beginning of a secret (at least
//! [`MIN_FRAGMENT_LEN`] bytes) right before that mark is redacted as well.

mod encodings;
mod live;
mod provider;

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::Bytes;
use futures::StreamExt as _;

use crate::error::{CUT_MARK, TransportFailure};
use crate::{ProviderError, SseEvent, UpstreamResponse};

pub use live::LiveSecrets;
pub use provider::{RedactingProvider, guard};

/// What each occurrence of a secret is replaced by.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this many bytes are not matched (see the module docs for why).
pub const MIN_SECRET_LEN: usize = 8;

/// The shortest beginning of a secret redacted before a cut mark: fewer bytes reveal nothing.
pub const MIN_FRAGMENT_LEN: usize = 4;

/// The secret redactor could not be built; the provider must then not be used at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not build the secret redactor: {0}")]
pub struct RedactorError(aho_corasick::BuildError);

/// Finds and replaces every known encoding of a provider's secrets, in one pass over the text
/// whatever the number of secrets (Aho-Corasick).
#[derive(Debug, Clone)]
pub struct Redactor {
    /// A SIMD (Teddy) search for any of the patterns, when the CPU and the number of patterns
    /// allow one: it tells a clean text (the common case) in a few nanoseconds, where the
    /// automaton's own scan takes up to a microsecond on a short JSON answer whose digits and
    /// dashes are frequent bytes of the encodings (the benchmark's 330-byte answer: 715 ns ->
    /// about 30 ns). The automaton still finds and replaces what it finds.
    quick: Option<aho_corasick::packed::Searcher>,
    matcher: AhoCorasick,
    /// The encodings matched, for the beginnings left before a cut mark.
    patterns: Vec<Vec<u8>>,
}

impl Redactor {
    /// A redactor for `secrets`; `Ok(None)` when none is at least [`MIN_SECRET_LEN`] bytes
    /// long, so there is nothing to redact.
    ///
    /// # Errors
    ///
    /// [`RedactorError`] when the matcher cannot be built (only past resource limits that a
    /// provider's handful of secrets cannot reach). The caller must not go on without it.
    pub fn new<I, S>(secrets: I) -> Result<Option<Redactor>, RedactorError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref().trim();
            if secret.len() < MIN_SECRET_LEN {
                continue;
            }
            for pattern in encodings::encodings(secret) {
                if !patterns.contains(&pattern) {
                    patterns.push(pattern);
                }
            }
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        let matcher = AhoCorasick::builder()
            // Of overlapping encodings (a secret and a longer one containing it), the longest
            // is replaced, so no fragment of the longer one is left behind.
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(RedactorError)?;
        let quick = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(&patterns)
            .build();
        Ok(Some(Redactor {
            quick,
            matcher,
            patterns,
        }))
    }

    /// `text` with every secret replaced, or `None` when it holds none (nothing is copied).
    fn redacted(&self, text: &[u8]) -> Option<Vec<u8>> {
        if !self.finds(text) {
            return None;
        }
        let mut matches = self.matcher.find_iter(text).peekable();
        matches.peek()?;
        let mut out = Vec::with_capacity(text.len());
        let mut last = 0;
        for found in matches {
            out.extend_from_slice(&text[last..found.start()]);
            out.extend_from_slice(REDACTED.as_bytes());
            last = found.end();
        }
        out.extend_from_slice(&text[last..]);
        Some(out)
    }

    /// Whether `text` holds any of the secrets.
    pub fn finds(&self, text: &[u8]) -> bool {
        match &self.quick {
            Some(quick) => quick.find(text).is_some(),
            None => self.matcher.is_match(text),
        }
    }

    /// `bytes` with every secret replaced; the same buffer, uncopied, when there is none.
    pub fn bytes(&self, bytes: Bytes) -> Bytes {
        match self.redacted(&bytes) {
            Some(clean) => Bytes::from(clean),
            None => bytes,
        }
    }

    /// `text` with every secret replaced; the same string when there is none.
    pub fn string(&self, text: String) -> String {
        match self.redacted(text.as_bytes()) {
            // The patterns are whole UTF-8 strings, so a match never splits a character and
            // the result is UTF-8; the lossy path is never taken.
            Some(clean) => String::from_utf8(clean)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            None => text,
        }
    }

    /// `text` with every secret replaced, and the beginning of a secret that a cut left right
    /// before a [`CUT_MARK`] too.
    fn error_text(&self, text: String) -> String {
        let text = self.string(text);
        if !text.contains(CUT_MARK) {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(CUT_MARK) {
            let before = &rest[..at];
            let fragment = self
                .patterns
                .iter()
                .filter_map(|p| {
                    (MIN_FRAGMENT_LEN..p.len())
                        .rev()
                        .find(|&len| before.as_bytes().ends_with(&p[..len]))
                })
                .max()
                .unwrap_or(0);
            // A pattern's beginning may end inside a character of `before`; then the bytes
            // did not match a whole character and the text is left as it is.
            match before.get(..before.len() - fragment) {
                Some(kept) if fragment > 0 => {
                    out.push_str(kept);
                    out.push_str(REDACTED);
                }
                _ => out.push_str(before),
            }
            out.push_str(CUT_MARK);
            rest = &rest[at + CUT_MARK.len()..];
        }
        out.push_str(rest);
        out
    }

    /// The error with every text it carries redacted: messages, types, codes and params an
    /// upstream sent, and transport details.
    pub fn error(&self, err: ProviderError) -> ProviderError {
        let text = |s: String| self.error_text(s);
        match err {
            ProviderError::Unreachable(TransportFailure { reason, detail }) => {
                ProviderError::Unreachable(TransportFailure {
                    reason: text(reason),
                    detail: detail.map(text),
                })
            }
            ProviderError::Status {
                status,
                message,
                error_type,
                code,
                param,
                retry_after,
            } => ProviderError::Status {
                status,
                message: text(message),
                error_type: error_type.map(text),
                code: code.map(text),
                param: param.map(text),
                retry_after,
            },
            ProviderError::Malformed(detail) => ProviderError::Malformed(text(detail)),
            ProviderError::StreamBroken(detail) => ProviderError::StreamBroken(text(detail)),
            // No text from the upstream in these.
            ProviderError::Timeout(after) => ProviderError::Timeout(after),
            ProviderError::Unsupported { kind, endpoint } => {
                ProviderError::Unsupported { kind, endpoint }
            }
            // The gateway's own words, but they quote the request, which may hold a secret.
            ProviderError::Rejected { message, param } => ProviderError::Rejected {
                message: text(message),
                param: param.map(text),
            },
        }
    }

    /// The event with its name and data redacted.
    pub fn event(&self, event: SseEvent) -> SseEvent {
        SseEvent {
            event: event.event.map(|name| self.string(name)),
            data: self.bytes(event.data),
        }
    }

    /// The answer with its body, or each of its events and a stream's error, redacted.
    pub fn answer(self: &Arc<Self>, answer: UpstreamResponse) -> UpstreamResponse {
        match answer {
            UpstreamResponse::Complete {
                status,
                body,
                usage,
            } => UpstreamResponse::Complete {
                status,
                body: self.bytes(body),
                usage,
            },
            UpstreamResponse::Stream { status, events } => {
                let redactor = Arc::clone(self);
                UpstreamResponse::Stream {
                    status,
                    events: Box::pin(events.map(move |item| match item {
                        Ok(event) => Ok(redactor.event(event)),
                        Err(err) => Err(redactor.error(err)),
                    })),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
