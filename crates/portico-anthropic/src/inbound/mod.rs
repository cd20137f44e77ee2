//! `/v1/messages` inbound: Anthropic's Messages format from the client, any provider behind.
//!
//! When the routed provider speaks Anthropic natively the gateway passes the request through
//! untouched (see [`crate::AnthropicProvider`]); otherwise these translations run:
//! [`to_chat_request`] turns the Messages request into a chat request, and the answer comes
//! back through [`from_chat_body`] (whole) or [`to_messages_events`] (streamed, in
//! Anthropic's exact event order).

mod request;
mod response;
mod stream;

pub use request::to_chat_request;
pub use response::{from_chat_body, message_id, to_messages_response, tool_input, wire_usage};
pub use stream::{MessagesStreamWriter, to_messages_events};
