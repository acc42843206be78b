use super::*;
use crate::convert::crs::Earth;
use crate::formats::tiff::field;
use std::io::Read;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

/// (tag, type, count, value bytes) of each entry of one IFD.
type IfdEntries = Vec<(u16, u16, u32, Vec<u8>)>;

/// Minimal classic-TIFF IFD reader; returns the entries and the next-IFD offset.
fn read_ifd(b: &[u8], off: usize) -> (IfdEntries, usize) {
    let n = usize::from(u16_at(b, off));
    let mut out = Vec::new();
    for k in 0..n {
        let e = off + 2 + 12 * k;
        let (tag, typ, count) = (u16_at(b, e), u16_at(b, e + 2), u32_at(b, e + 4));
        let size = match typ {
            field::BYTE | field::ASCII => 1,
            field::SHORT => 2,
            field::LONG => 4,
            field::DOUBLE => 8,
            other => panic!("unexpected type {other}"),
        } * count as usize;
        let data = if size <= 4 {
            b[e + 8..e + 8 + size].to_vec()
        } else {
            let vo = u32_at(b, e + 8) as usize;
            assert!(vo + size <= b.len(), "tag {tag} value out of bounds");
            assert!(vo % 2 == 0, "tag {tag} value not word aligned");
            b[vo..vo + size].to_vec()
        };
        out.push((tag, typ, count, data));
    }
    let next = u32_at(b, off + 2 + 12 * n) as usize;
    (out, next)
}

fn longs(v: &[(u16, u16, u32, Vec<u8>)], tag: u16) -> Vec<u32> {
    let (_, typ, _, data) = v.iter().find(|e| e.0 == tag).expect("tag present");
    match *typ {
        field::SHORT => data
            .chunks(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        field::LONG => data
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect(),
        _ => panic!("not integer"),
    }
}

/// Inverse of `encode_tile` for one tile.
fn decode_tile(z: &[u8]) -> Vec<f32> {
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(z)
        .read_to_end(&mut raw)
        .expect("inflate");
    assert_eq!(raw.len(), TILE * TILE * 4);
    let mut out = Vec::with_capacity(TILE * TILE);
    for line in raw.chunks_exact_mut(TILE * 4) {
        for k in 1..line.len() {
            line[k] = line[k].wrapping_add(line[k - 1]);
        }
        for col in 0..TILE {
            let be = [
                line[col],
                line[TILE + col],
                line[2 * TILE + col],
                line[3 * TILE + col],
            ];
            out.push(f32::from_be_bytes(be));
        }
    }
    out
}

const NODATA: f32 = -9999.0;

fn spec(width: usize, height: usize) -> CogSpec {
    CogSpec {
        width,
        height,
        geo: GeoRef {
            west: -320_000.0,
            north: 240_000.0,
            dx: 500.0,
            dy: 500.0,
        },
        crs: Crs::LambertConformal {
            earth: Earth {
                a: 6_370_000.0,
                b: 6_370_000.0,
            },
            lat1: 30.0,
            lat2: 50.0,
            lat0: 39.1,
            lon0: -97.9,
        },
        nodata: NODATA,
        gdal_metadata: Some("<GDALMetadata></GDALMetadata>".into()),
    }
}

#[test]
fn cog_has_gdal_layout_and_round_trips() {
    let (w, h) = (1300, 700);
    let data = (0..w * h)
        .map(|k| ((k % w) as f32 * 0.01).sin() * 20.0 + (k / w) as f32 * 0.1)
        .collect();
    let full = Raster {
        width: w,
        height: h,
        data,
    };
    let levels = pyramid(full, NODATA);
    let dims: Vec<(usize, usize)> = levels.iter().map(|l| (l.width, l.height)).collect();
    assert_eq!(dims, vec![(1300, 700), (650, 350), (325, 175)]);
    let layout = CogLayout::new(&spec(w, h)).expect("layout");
    let b = layout
        .read(0..layout.size(), |l, t| {
            layout.tile_bytes(&levels, l, t).map(bytes::Bytes::from)
        })
        .expect("build");
    assert_eq!(b.len() as u64, layout.size());
    let compact = write_compact(&spec(w, h), &levels, 6).expect("compact");
    assert!(
        compact.len() < b.len() / 2,
        "compact COG is {} bytes",
        compact.len()
    );
    check_structure(&compact, &levels, &dims);
    let first_data = check_structure(&b, &levels, &dims);

    // Any window read equals the same bytes of the whole file, and only needs its tiles.
    for (a, z) in [
        (0u64, 16_384u64),
        (5000, 3_000_000),
        (b.len() as u64 - 10, b.len() as u64 + 5),
    ] {
        let mut asked = Vec::new();
        let part = layout
            .read(a..z, |l, t| {
                asked.push((l, t));
                layout.tile_bytes(&levels, l, t).map(bytes::Bytes::from)
            })
            .expect("read");
        let z = z.min(b.len() as u64);
        assert_eq!(part, b[a as usize..z as usize]);
        assert_eq!(asked, layout.tiles_in(a..z));
    }
    // The header alone needs no tile.
    assert!(layout.tiles_in(0..first_data - 4).is_empty());
}

/// Checks GDAL's COG layout and that every tile decodes to the pyramid's pixels; returns the
/// offset of the first tile's data.
fn check_structure(b: &[u8], levels: &[Raster], dims: &[(usize, usize)]) -> u64 {
    // Header and ghost block, byte for byte as GDAL writes them.
    assert_eq!(&b[..4], b"II*\0");
    let ghost = format!("GDAL_STRUCTURAL_METADATA_SIZE=000140 bytes\n{GHOST_BODY}");
    assert_eq!(GHOST_BODY.len(), 140);
    assert_eq!(&b[8..8 + ghost.len()], ghost.as_bytes());
    let first_ifd = u32_at(b, 4) as usize;
    assert_eq!(first_ifd, (8 + ghost.len()).next_multiple_of(2));

    let mut ifds = Vec::new();
    let mut off = first_ifd;
    while off != 0 {
        let (entries, next) = read_ifd(b, off);
        let tags: Vec<u16> = entries.iter().map(|e| e.0).collect();
        assert!(tags.windows(2).all(|w| w[0] < w[1]), "tags not sorted");
        ifds.push((off, entries));
        assert!(next == 0 || next > off, "IFDs must be in increasing order");
        off = next;
    }
    assert_eq!(ifds.len(), 3);

    let mut first_data_by_level = Vec::new();
    let mut last_header_byte = 0;
    for (l, (ifd_off, e)) in ifds.iter().enumerate() {
        last_header_byte = last_header_byte.max(*ifd_off);
        assert_eq!(longs(e, tag::NEW_SUBFILE_TYPE), vec![u32::from(l > 0)]);
        assert_eq!(longs(e, tag::IMAGE_WIDTH)[0] as usize, dims[l].0);
        assert_eq!(longs(e, tag::IMAGE_LENGTH)[0] as usize, dims[l].1);
        assert_eq!(longs(e, tag::COMPRESSION), vec![8]);
        assert_eq!(longs(e, tag::PREDICTOR), vec![3]);
        assert_eq!(longs(e, tag::TILE_WIDTH), vec![512]);
        let offsets = longs(e, tag::TILE_OFFSETS);
        let counts = longs(e, tag::TILE_BYTE_COUNTS);
        assert_eq!(
            offsets.len(),
            dims[l].0.div_ceil(TILE) * dims[l].1.div_ceil(TILE)
        );
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        for (tile, (&o, &n)) in offsets.iter().zip(&counts).enumerate() {
            let (o, n) = (o as usize, n as usize);
            assert!(o >= 4 && o + n + 4 <= b.len(), "tile out of bounds");
            assert_eq!(u32_at(b, o - 4) as usize, n, "leader");
            assert_eq!(b[o + n - 4..o + n], b[o + n..o + n + 4], "trailer");
            let px = decode_tile(&b[o..o + n]);
            let r = &levels[l];
            let (tx, ty) = (tile % r.width.div_ceil(TILE), tile / r.width.div_ceil(TILE));
            for (k, v) in px.iter().enumerate() {
                let (x, y) = (tx * TILE + k % TILE, ty * TILE + k / TILE);
                let want = if x < r.width && y < r.height {
                    r.data[y * r.width + x]
                } else {
                    NODATA
                };
                assert_eq!(v.to_bits(), want.to_bits());
            }
        }
        first_data_by_level.push(offsets[0] as usize);
    }
    assert!(first_data_by_level.windows(2).all(|w| w[0] > w[1]));
    assert!(first_data_by_level[2] > last_header_byte);

    let main = &ifds[0].1;
    let keys = longs(main, tag::GEO_KEY_DIRECTORY);
    let key = |id: u32| keys[4..].chunks(4).find(|k| k[0] == id).map(|k| k[3]);
    assert_eq!(key(3075), Some(8), "CT_LambertConfConic_2SP");
    assert!(ifds[1].1.iter().all(|e| e.0 != tag::GEO_KEY_DIRECTORY));
    let nodata = &main
        .iter()
        .find(|e| e.0 == tag::GDAL_NODATA)
        .expect("nodata")
        .3;
    assert_eq!(nodata.as_slice(), b"-9999\0");

    first_data_by_level[2] as u64
}

#[test]
fn overviews_average_and_skip_nodata() {
    let r = Raster {
        width: 3,
        height: 2,
        data: vec![1.0, 3.0, 5.0, NODATA, 7.0, NODATA],
    };
    let d = downsample_average(&r, NODATA);
    assert_eq!((d.width, d.height), (2, 1));
    assert_eq!(d.data, vec![11.0 / 3.0, 5.0]);
}
