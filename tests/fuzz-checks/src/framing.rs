//! The HTTP/1 framing guard: any byte stream, read in any pieces, is followed without a
//! panic, and the verdicts do not depend on where the reads split it (an attacker
//! controls the segmentation; a guard whose answer changes with it can be steered).

use std::sync::Arc;

use portcullis::listener::framing::{FramingGuard, FramingVerdicts};

const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 100;

fn verdicts(pieces: &[&[u8]]) -> Vec<bool> {
    let verdicts = Arc::new(FramingVerdicts::default());
    let mut guard = FramingGuard::new(MAX_HEAD, MAX_HEADERS, Arc::clone(&verdicts));
    for piece in pieces {
        guard.feed(piece);
    }
    verdicts.pending()
}

/// The first byte chooses the read size; the rest is the stream.
pub fn check(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = verdicts(&[stream]);
    let size = usize::from(seed % 16) + 1;
    let pieces: Vec<&[u8]> = stream.chunks(size).collect();
    assert_eq!(
        verdicts(&pieces),
        whole,
        "verdicts changed with reads of {size} bytes"
    );
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(
        verdicts(&bytes),
        whole,
        "verdicts changed with 1-byte reads"
    );
}
