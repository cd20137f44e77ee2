//! OpenAI's Responses API (`POST /v1/responses`) answered by any provider.
//!
//! Where it sits: beside `portico-anthropic`'s inbound translation, above
//! `portico-providers` (whose chat-completions types are the interlingua). The engine passes a
//! Responses request untouched to a provider that speaks the API (OpenAI) and calls this crate
//! for every other one:
//! - [`request`]: a Responses request (its `instructions`, `input` items and the items of the
//!   response it continues) → a chat-completions request, or a 400 naming what has no
//!   chat-completions equivalent;
//! - [`response`]: a chat completion → a Response object;
//! - [`stream`]: a chat-completions chunk stream → the Responses API's typed events, in
//!   OpenAI's order (`response.created` first, `response.completed` with usage last);
//! - [`observe`]: usage and the final Response object read from a Responses event stream,
//!   whoever wrote it, for the request log and the gateway's store of responses;
//! - [`turn`]: what a response echoes from its request, its ids, and the conversation items a
//!   stored response hands on to the next turn (`previous_response_id`).
//!
//! What it is not: HTTP, routing or storage. `docs/responses-api.md` has the mapping tables.

pub mod observe;
pub mod request;
pub mod response;
pub mod stream;
pub mod turn;

pub use observe::ResponsesObserver;
pub use request::{ResponsesRequest, input_items, to_chat_request};
pub use response::from_chat_body;
pub use stream::{ResponsesStreamWriter, to_response_events};
pub use turn::{StoredResponse, Turn, conversation_of};
