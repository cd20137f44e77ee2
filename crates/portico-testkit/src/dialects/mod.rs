//! Default replies in the native dialects of the providers Portico translates to: what the
//! mock upstream answers on their paths when a test scripted nothing.
//!
//! Each dialect mirrors the OpenAI-shaped defaults of [`crate::defaults`], so one test can run
//! against any provider kind: a chat answers `echo: <last user text>`; with tools offered and
//! a user message last, the first tool (or the forced one) is called with arguments `{}`;
//! after a tool result, the answer is `tool result: <content>`; streams carry the same text
//! split over several events, and usage.

use crate::{MockReply, RecordedRequest};

mod anthropic;
mod azure;
mod bedrock;
mod gemini;
mod responses;

/// The native default reply for this request's path, if a dialect claims the path.
pub(crate) fn default_reply(req: &RecordedRequest) -> Option<MockReply> {
    anthropic::default_reply(req)
        .or_else(|| gemini::default_reply(req))
        .or_else(|| bedrock::default_reply(req))
        .or_else(|| azure::default_reply(req))
        .or_else(|| responses::default_reply(req))
}
