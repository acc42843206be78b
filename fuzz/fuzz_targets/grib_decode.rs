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
        // Coordinates are one per point of the declared grid (at most 2^30 points, by design):
        // computed only for grids the RSS limit holds.
        if h.grid.nx * h.grid.ny <= 1 << 20 {
            assert_eq!((h.grid.x().len(), h.grid.y().len()), (h.grid.nx, h.grid.ny));
            if let Ok((lat, lon)) = h.grid.latlon() {
                assert!(lat.len() == h.grid.nx * h.grid.ny && lon.len() == lat.len());
            }
        }
    }
    let _ = grib::decode(msg, field);
});
