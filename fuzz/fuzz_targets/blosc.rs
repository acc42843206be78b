//! Blosc1 frames (blosclz, lz4, zlib, zstd inside; byte and bit shuffle).
//! Input: 4 bytes of the caller's bound `max` (little endian, at most 1 MiB), then the frame.
//! Invariants: the output never exceeds `max`, and is exactly the frame's claimed size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((max, frame)) = data.split_first_chunk::<4>() else {
        return;
    };
    let max = (u32::from_le_bytes(*max) as usize) % (1 << 20);
    if let Ok(out) = geomount::fuzzing::blosc_decode(frame, max) {
        assert!(out.len() <= max, "{} bytes past the {max} bound", out.len());
        let nbytes = u32::from_le_bytes(frame[4..8].try_into().unwrap()) as usize;
        assert_eq!(out.len(), nbytes, "frame says {nbytes}");
    }
});
