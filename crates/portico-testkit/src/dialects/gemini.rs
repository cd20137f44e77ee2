//! Default replies in gemini's dialect (filled in with the gemini adapter).

use crate::{MockReply, RecordedRequest};

/// The default reply for a request on one of gemini's paths; `None` for other paths.
pub(super) fn default_reply(_req: &RecordedRequest) -> Option<MockReply> {
    None
}
