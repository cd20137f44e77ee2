//! The SSE decoder (portico-providers): an upstream's `text/event-stream` bytes, fed whole
//! and in small chunks. Properties: no panic; the events do not depend on where the chunks
//! split (the shorter run is a prefix of the longer: only the size limit may stop one run
//! earlier); every event reads back from its own encoding as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_fuzz::{check_chunk_events, chunk_size, sse_events};

fuzz_target!(|data: &[u8]| {
    let (whole, whole_failed) = sse_events(data, data.len());
    let (chunked, chunked_failed) = sse_events(data, chunk_size(data));
    let (bytewise, _) = sse_events(data, 1);
    if !whole_failed && !chunked_failed {
        assert_eq!(whole, chunked, "the events depend on the chunking");
        assert_eq!(whole, bytewise, "the events depend on the chunking");
    } else {
        let n = whole.len().min(chunked.len());
        assert_eq!(
            whole[..n],
            chunked[..n],
            "the events depend on the chunking"
        );
    }
    for event in &whole {
        // Only the round trip, not JSON: upstream data is anything.
        let encoded = event.encode();
        let (back, failed) = sse_events(&encoded, encoded.len());
        assert!(!failed);
        assert_eq!(back.as_slice(), std::slice::from_ref(event));
    }
    let _ = check_chunk_events;
});
