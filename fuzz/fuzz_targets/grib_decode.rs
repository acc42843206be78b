//! The GRIB2 views' decoding of one message: georeferenced headers of each field, and every
//! value of a field (the `grib` crate's unpackers behind our constant-field rewrite).
//! Invariants: a grid has points; no hostile point count allocates past the RSS limit.
#![no_main]

use geomount::convert::grib;
use geomount::formats::grib2::Walked;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&field, msg)) = data.split_first() else {
        return;
    };
    let field = usize::from(field % 4);
    let Ok(Walked::Fields(headers)) = grib::parse_headers(msg, msg.len() as u64) else {
        return;
    };
    for h in headers.iter().flatten() {
        assert!(h.grid.nx > 0 && h.grid.ny > 0, "{:?}", h.grid);
        let _ = (h.grid.x(), h.grid.y());
        let _ = h.grid.latlon();
    }
    let _ = grib::decode(msg, field);
});
