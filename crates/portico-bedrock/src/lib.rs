//! The AWS Bedrock adapter: OpenAI's chat completions and embeddings, translated to
//! Bedrock's Converse, ConverseStream and InvokeModel APIs.
//!
//! Where it sits: an adapter crate above `portico-providers` (whose `Dialect` skeleton it
//! fills) and `portico-core`; the engine builds it. Its AWS dependencies stay here.
//!
//! What this is: [`BedrockProvider`], the translating adapters' one skeleton
//! ([`portico_providers::dialect::Translating`]) over the [`Bedrock`] dialect, built from a
//! catalog provider of kind `bedrock`. It finds its region and credentials as the AWS SDKs
//! do (`credentials`), caching temporary ones; signs every request with SigV4 (or sends a Bedrock API key as a bearer token);
//! translates the request; and turns the answer, including the binary event stream of a
//! streamed answer, back into OpenAI's shapes with usage.
//!
//! What it is not: routing, retries or logging (the engine's). It knows no model catalog: the
//! model id of the request (a model name, an inference profile such as
//! `us.anthropic.claude-sonnet-4-5-20250929-v1:0`, or an ARN) goes into the URL as it is.
//!
//! The layout follows the request path:
//! - `provider`: the dialect: region, credentials, URLs, signed calls, embeddings calls.
//! - `credentials`: where the region and credentials come from (the catalog, the
//!   environment, AWS's default chain through `aws-config`).
//! - `sign`: SigV4 and bearer authentication.
//! - `request`: OpenAI chat request → Converse request (pure); `media`: inline images and
//!   documents.
//! - `response`: Converse answer → chat completion (pure).
//! - [`eventstream`]: the binary frame format, read and written.
//! - `stream`: ConverseStream events → OpenAI chunks.
//! - `embeddings`: Titan and Cohere embeddings through InvokeModel.
//! - `wire`: Bedrock's JSON shapes; `error`: Bedrock's errors.
//!
//! `docs/providers/bedrock.md` lists what is supported and what Portico does where Bedrock
//! cannot do what a request asks.

mod credentials;
mod embeddings;
mod error;
pub mod eventstream;
mod media;
mod provider;
mod request;
mod response;
mod sign;
mod stream;
#[cfg(test)]
mod tests;
mod wire;

pub use provider::{Bedrock, BedrockProvider, EVENT_STREAM_CONTENT_TYPE, with_env};
