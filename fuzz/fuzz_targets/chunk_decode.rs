//! The Zarr-COG view's chunk decoders: zlib, gzip, zstd and blosc streams, with and without a
//! shuffle filter, to a chunk of a given element type and count.
//! Input: one byte choosing compressor (bits 0-2), dtype (bits 3-5) and shuffle (bits 6-7:
//! none, the element's size, 1, 3); two bytes of element count; the compressed chunk.
//! Invariants: a decoded chunk has exactly the count of values asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;

const COMPRESSORS: [Option<&str>; 5] = [
    None,
    Some("zlib"),
    Some("gzip"),
    Some("zstd"),
    Some("blosc"),
];
const DTYPES: [(&str, u64); 8] = [
    ("<f4", 4),
    (">f4", 4),
    ("<f8", 8),
    ("<i2", 2),
    (">u2", 2),
    ("|u1", 1),
    ("<i8", 8),
    (">f8", 8),
];

fuzz_target!(|data: &[u8]| {
    let Some(([pick, n0, n1], raw)) = data.split_first_chunk::<3>() else {
        return;
    };
    let comp = COMPRESSORS[usize::from(pick & 7) % 5];
    let (dtype, size) = DTYPES[usize::from((pick >> 3) & 7)];
    let shuffle = [None, Some(size), Some(1), Some(3)][usize::from(pick >> 6)];
    let len = usize::from(u16::from_le_bytes([*n0, *n1]));
    if let Ok(values) = geomount::fuzzing::zarr_chunk_decode(comp, shuffle, dtype, raw, len) {
        assert_eq!(values.len(), len);
    }
});
