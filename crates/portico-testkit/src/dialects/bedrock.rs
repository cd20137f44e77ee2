//! Default replies in bedrock's dialect (filled in with the bedrock adapter).

use crate::{MockReply, RecordedRequest};

/// The default reply for a request on one of bedrock's paths; `None` for other paths.
pub(super) fn default_reply(_req: &RecordedRequest) -> Option<MockReply> {
    None
}
