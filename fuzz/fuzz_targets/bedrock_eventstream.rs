//! Bedrock's binary event-stream decoder (portico-bedrock `eventstream::FrameReader`): AWS
//! `application/vnd.amazon.eventstream` frames (lengths, CRCs, typed headers), fed whole and
//! in small chunks. Properties: no panic; no allocation beyond the frame limit (a frame that
//! announces more is refused before it is buffered); the frames do not depend on the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_bedrock::eventstream::{Frame, FrameReader};
use portico_fuzz::chunk_size;

/// The frame limit of the run: small, so the refusal path is reached.
const MAX_FRAME: usize = 64 * 1024;

fn frames(data: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let mut reader = FrameReader::with_max_frame_bytes(MAX_FRAME);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let (whole, whole_failed) = frames(data, data.len());
    let (chunked, chunked_failed) = frames(data, chunk_size(data));
    assert_eq!(whole, chunked, "the frames depend on the chunking");
    assert_eq!(
        whole_failed, chunked_failed,
        "the failure depends on the chunking"
    );
});
