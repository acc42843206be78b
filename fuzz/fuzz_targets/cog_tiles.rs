//! The COG view's encoder fed with random fields: layout, pyramid, lazily made tiles and the
//! compact writer, for sizes up to 2x2 tiles (a narrow second row and column) and any values (NaN, infinities, nodata).
//! Input: width and height (2 bytes each), nodata (4), west/north/dx/dy (8 each), then the
//! values (f32, repeated to fill the raster).
//! Invariants: a read of the whole layout is exactly its size; our own TIFF parser finds every
//! tile of both files inside them, one per tile of the pyramid.
#![no_main]

use geomount::convert::cog::{CogLayout, CogSpec, GeoRef, Raster, TILE, pyramid, write_compact};
use geomount::convert::crs::{Crs, Earth};
use geomount::formats::tiff;
use libfuzzer_sys::fuzz_target;

fn f64_at(b: &[u8], i: usize) -> f64 {
    f64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 40 {
        return;
    }
    // Up to 2x2 tiles, the second row and column at most 16 pixels (enough for every edge
    // case of the layout; whole 2x2 tiles would only make each input slower).
    let width = 1 + usize::from(u16::from_le_bytes([data[0], data[1]])) % (TILE + 16);
    let height = 1 + usize::from(u16::from_le_bytes([data[2], data[3]])) % (TILE + 16);
    let nodata = f32::from_le_bytes(data[4..8].try_into().unwrap());
    let geo = GeoRef {
        west: f64_at(data, 8),
        north: f64_at(data, 16),
        dx: f64_at(data, 24),
        dy: f64_at(data, 32),
    };
    let values: Vec<f32> = data[40..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let fill = if values.is_empty() {
        vec![nodata]
    } else {
        values
    };
    let raster = Raster {
        width,
        height,
        data: fill.iter().copied().cycle().take(width * height).collect(),
    };
    let spec = CogSpec {
        width,
        height,
        geo,
        crs: Crs::Geographic {
            earth: Earth {
                a: 6_378_137.0,
                b: 6_356_752.314_245,
            },
        },
        nodata,
        gdal_metadata: None,
    };
    let levels = pyramid(raster, nodata);
    let tiles: usize = levels
        .iter()
        .map(|l| l.width.div_ceil(TILE) * l.height.div_ceil(TILE))
        .sum();
    let layout = CogLayout::new(&spec).expect("layout of a valid spec");
    let file = layout
        .read(0..layout.size(), |l, t| {
            layout.tile_bytes(&levels, l, t).map(bytes::Bytes::from)
        })
        .expect("read of the whole layout");
    assert_eq!(file.len() as u64, layout.size());
    check_tiles(&file, tiles);
    let compact = write_compact(&spec, &levels, 1).expect("compact COG");
    check_tiles(&compact, tiles);
});

fn check_tiles(file: &[u8], tiles: usize) {
    let ranges = tiff::tile_ranges(file).expect("our TIFF parses");
    assert_eq!(ranges.len(), tiles);
    for r in ranges {
        assert!(r.end <= file.len() as u64, "tile {r:?} past {}", file.len());
    }
}
