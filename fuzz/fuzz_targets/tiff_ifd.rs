//! TIFF / BigTIFF IFD chains: the tile (strip) ranges of every IFD from a file's prefix.
//! Invariants: ranges are sorted by start, none empty, none wrapping.
#![no_main]

use geomount::formats::tiff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|prefix: &[u8]| {
    let _ = tiff::has_size_leaders(prefix);
    let Ok(ranges) = tiff::tile_ranges(prefix) else {
        return;
    };
    for r in &ranges {
        assert!(r.start < r.end, "empty or wrapped tile {r:?}");
    }
    assert!(
        ranges.windows(2).all(|w| w[0].start <= w[1].start),
        "unsorted"
    );
});
