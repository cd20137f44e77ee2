//! Default replies in anthropic's dialect (filled in with the anthropic adapter).

use crate::{MockReply, RecordedRequest};

/// The default reply for a request on one of anthropic's paths; `None` for other paths.
pub(super) fn default_reply(_req: &RecordedRequest) -> Option<MockReply> {
    None
}
