//! The disk cache's entry files read back (header, length, identity, checksum) and the
//! attribute records they hold.
//! Input: 8 bytes of the identity expected, 1 byte choosing the length expected (given or
//! the header's), then the file.
//! Invariants: a valid entry's payload is the file after its 32-byte header, exactly the
//! length expected; a payload read as an attribute record never panics.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((ident, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&mode, file)) = rest.split_first() else {
        return;
    };
    let ident = u64::from_le_bytes(*ident);
    let len = (mode % 2 == 1).then(|| file.len().saturating_sub(32));
    if let Ok(payload) = geomount::fuzzing::disk_entry(file.to_vec(), ident, len) {
        assert_eq!(&payload[..], &file[32..]);
        assert!(len.is_none_or(|l| l == payload.len()));
    }
    // Attribute records are JSON payloads: read the file itself as one too.
    for max_age in [Duration::ZERO, Duration::from_secs(3600), Duration::MAX] {
        let _ = geomount::fuzzing::disk_attr("bucket/dir/key", file, max_age);
    }
});
