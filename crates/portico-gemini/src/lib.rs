//! The Google Gemini adapter: OpenAI-shaped chat completions and embeddings, translated to
//! Gemini's own API and back.
//!
//! Where it sits: an adapter crate above `portico-providers` (whose `Dialect` skeleton it
//! fills) and `portico-core`; the engine builds it.
//!
//! What this is: [`GeminiProvider`], the translating adapters' one skeleton
//! ([`portico_providers::dialect::Translating`]) over the [`Gemini`] dialect, built from a
//! catalog provider of kind `gemini`. It talks
//! to the Gemini API of AI Studio (`/v1beta/models/{model}:generateContent`, an API key in
//! `x-goog-api-key`) or, when the provider's settings name `vertex_project_id` and
//! `vertex_region`, to Vertex AI (`/v1/projects/.../publishers/google/models/...`, an OAuth
//! access token as bearer: the catalog's `api_key`, else one Portico gets from Google's
//! application default credentials, `adc`). Streams use `:streamGenerateContent?alt=sse`.
//!
//! What it is not: a Gemini SDK. Only what OpenAI's chat and embeddings APIs can express is
//! translated; `/v1/completions` is refused as unsupported.
//!
//! Layout, one concept per file:
//! - `wire`: Gemini's JSON shapes;
//! - `request`: OpenAI request → `generateContent` body (roles, images, tools, tool results
//!   named from earlier calls, JSON mode, thinking); `schema`: JSON Schemas made acceptable;
//! - `response`: answer → chat completion (finish reasons, tool calls, reasoning, usage);
//! - `stream`: SSE chunks → OpenAI's chunk sequence, with truncation detected;
//! - `ids`: synthesised tool call ids that carry Gemini's thought signatures;
//! - `media`: user content parts (images, audio, files);
//! - `embeddings`: `batchEmbedContents` / Vertex `predict`;
//! - `error`: Google's error bodies, and the requests Portico refuses itself;
//! - `provider`: the dialect: URLs, credentials, and the embeddings calls;
//! - `adc`: Vertex AI access tokens from a service account, `GOOGLE_APPLICATION_CREDENTIALS`
//!   or the metadata server, cached.
//!
//! docs/providers/gemini.md describes the behaviour users see.

mod adc;
mod embeddings;
mod error;
mod ids;
mod media;
mod provider;
mod request;
mod response;
mod schema;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use provider::{Gemini, GeminiProvider};
