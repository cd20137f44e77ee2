//! Anthropic's Messages API, both ways.
//!
//! Where it sits: an adapter crate above `portico-providers` (whose `Dialect` skeleton it
//! fills) and `portico-core`; the engine builds it and calls its `/v1/messages` translation.
//!
//! What this crate is:
//! - the **adapter** [`AnthropicProvider`], the translating skeleton
//!   ([`portico_providers::dialect::Translating`]) over the [`Anthropic`] dialect: an
//!   OpenAI-shaped chat request is translated into a Messages request ([`request`]), sent to
//!   `POST /v1/messages` with `x-api-key` and `anthropic-version`, and the answer translated
//!   back into a chat completion ([`response`]) or, streamed, into OpenAI's chunk sequence
//!   ([`stream`]); Anthropic's errors keep their type and message ([`error`]);
//! - the **pass-through** of native Messages requests ([`passthrough`]): the
//!   `send_anthropic_messages` hook sends the client's body as it is and returns Anthropic's
//!   answer as it is, reading its usage for the request log;
//! - the **inbound** translation ([`inbound`]) behind the gateway's `/v1/messages`, for
//!   providers that do not speak Anthropic's API.
//!
//! What it is not: HTTP serving, routing or auth. [`wire`] holds our own serde types for
//! Anthropic's shapes (no SDK crate).
//!
//! The mapping tables, and what Portico does where the two APIs differ, are in
//! `docs/providers/anthropic.md` and `docs/messages-api.md`.

pub mod error;
pub mod inbound;
pub mod passthrough;
mod provider;
pub mod request;
pub mod response;
pub mod stream;
pub mod wire;

pub use provider::{Anthropic, AnthropicProvider, DEFAULT_BASE_URL, DEFAULT_VERSION};
