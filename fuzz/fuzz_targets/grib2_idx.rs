//! wgrib2-style `.idx` inventories and the message ranges they give an object.
//! Invariants: offsets never decrease; the ranges start at 0, are contiguous, and end at the
//! object's size.
#![no_main]

use geomount::formats::grib2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(lines) = grib2::parse_idx(text) else {
        return;
    };
    assert!(lines.windows(2).all(|w| w[0].offset <= w[1].offset));
    // An object size near the last offset, or far past it.
    let last = lines.last().map_or(0, |l| l.offset);
    let size = last.saturating_add(u64::from(n));
    if let Ok(ranges) = grib2::message_ranges(&lines, size) {
        let mut at = 0;
        for r in &ranges {
            assert!(r.start == at && r.start < r.end, "{r:?} after {at}");
            at = r.end;
        }
        assert_eq!(at, size);
        assert_eq!(grib2::messages_from_idx(text, size), Some(ranges));
    }
});
