//! Dev-only test support for Portico's integration and end-to-end tests.
//!
//! Where it sits: apart, dev-only: test suites of other crates depend on it; nothing shipped
//! does.
//!
//! This is not shipped code: it may panic on misuse (a failed bind, a bad header in a script),
//! because in a test that is the clearest failure.
//!
//! - [`MockUpstream`]: a real HTTP server on `127.0.0.1:0` that simulates an
//!   OpenAI-compatible provider. It records every request ([`RecordedRequest`]), answers with
//!   deterministic OpenAI-shaped defaults, or plays scripted [`MockReply`]s (JSON, errors,
//!   [`SseScript`]s with exact chunking, delays, aborts, hangs), and counts client
//!   disconnects.
//! - [`RawUpstream`]: a bare TCP server playing [`RawScript`]s byte for byte, for the faults
//!   below HTTP: resets mid-body, sockets accepted and never read, a head and then silence.
//! - [`PorticoProcess`]: the real `portico` binary run with a cleared environment, its
//!   output captured and its listening address and printed keys parsed.
//! - [`sse`]: parse an SSE body into `data:` payloads and assemble an OpenAI chat stream.
//! - [`idp`]: a mock identity provider: a JWKS server that counts its fetches, and tokens
//!   signed with test keys (RS256, ES256), for `auth.jwt`.
//!
//! ```no_run
//! # async fn demo() {
//! use portico_testkit::{MockReply, MockUpstream};
//!
//! let upstream = MockUpstream::start().await;
//! upstream.enqueue(MockReply::error(429, "slow down").header("retry-after", "1"));
//! // Point the code under test at `upstream.base_url()`; the first call gets the 429,
//! // the next the default echo reply.
//! assert_eq!(upstream.hits(), 0);
//! # }
//! ```

mod defaults;
mod dialects;
pub mod idp;
mod process;
mod raw;
mod record;
mod script;
pub mod services;
pub mod sse;
pub mod token;
mod upstream;

pub use defaults::{DEFAULT_EMBEDDING_DIMENSIONS, MOCK_MODELS, mock_embedding};
pub use process::{OUTPUT_DIR_VAR, PorticoProcess, ProcessError, START_TIMEOUT};

/// The substring every provider secret of the end-to-end tests contains (any case), so that
/// scripts/grep-secrets.sh finds one wherever the suite's gateways printed it.
pub const TEST_SECRET_MARKER: &str = "ptsecret";
pub use raw::{RawEnd, RawScript, RawUpstream};
pub use record::RecordedRequest;
pub use script::{MockReply, SseEnd, SseScript, SseStep};
pub use services::{TestPostgres, TestRedis};
pub use upstream::MockUpstream;
