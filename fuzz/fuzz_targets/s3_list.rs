//! S3 ListObjectsV2 answer bodies (and the error body of a failed request), as the lister
//! reads them for one prefix.
//! Input: a prefix line, then the XML body.
//! Invariants: every listed name is the part of a key below the prefix, never empty for a file;
//! a continuation token is never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (prefix, body) = text.split_once('\n').unwrap_or(("", text));
    let (page, _error) = geomount::fuzzing::s3_list_bodies(body.as_bytes(), prefix);
    if let Some((listing, token)) = page {
        assert!(listing.files.iter().all(|f| !f.name.is_empty()));
        assert!(token.is_none_or(|t| !t.is_empty()));
    }
});
