//! Default replies in azure's dialect (filled in with the azure adapter).

use crate::{MockReply, RecordedRequest};

/// The default reply for a request on one of azure's paths; `None` for other paths.
pub(super) fn default_reply(_req: &RecordedRequest) -> Option<MockReply> {
    None
}
