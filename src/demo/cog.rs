//! Cloud Optimized GeoTIFF writer producing GDAL's exact COG layout (GDAL >= 3.1 `COG`
//! driver; what `gdalinfo` reports as `LAYOUT=COG` and `validate_cloud_optimized_geotiff.py`
//! accepts).
//!
//! File layout, in this order (classic TIFF, little endian):
//! 1. 8-byte header whose first-IFD offset points at the main IFD;
//! 2. the "ghost" structural metadata block (`GDAL_STRUCTURAL_METADATA_SIZE=…`), padded to an
//!    even offset;
//! 3. the full-resolution IFD, then one IFD per overview (`NewSubfileType` = 1), chained by
//!    their next-IFD pointers, largest to smallest;
//! 4. out-of-line tag values (GeoTIFF keys, metadata, …), then every `TileOffsets` /
//!    `TileByteCounts` array;
//! 5. tile data, smallest overview first, full resolution last, row-major within a level;
//!    each tile is preceded by its byte count as u32 LE and followed by a copy of its last
//!    4 bytes.
//!
//! Tiles are 256x256 float32, DEFLATE (zlib, Compression=8) with the floating-point
//! predictor (Predictor=3); edge tiles are padded with nodata. Overviews are 2x2 averages
//! ignoring nodata, made until both dimensions fit in one tile (GDAL's COG rule).

use anyhow::{Result, ensure};

use super::zarr::{Conus404, DX, NX, NY};
use super::{Output, zlib_compress};

/// Tile edge in pixels (GDAL COG default BLOCKSIZE).
pub(crate) const TILE: usize = 256;
/// GDAL_NODATA of the demo COG.
pub(crate) const NODATA: f32 = -9999.0;
/// zlib level for tiles (GDAL's default DEFLATE level).
const DEFLATE_LEVEL: u32 = 6;
/// The demo COG upsamples the 4 km grid by this factor (500 m pixels).
const UPSAMPLE: usize = 8;

/// The ghost block body; its length (140) goes into the 6-digit size field. The trailing
/// space is GDAL's: it lets `NO` be patched to `YES` in place.
const GHOST_BODY: &str = "LAYOUT=IFDS_BEFORE_DATA\n\
                          BLOCK_ORDER=ROW_MAJOR\n\
                          BLOCK_LEADER=SIZE_AS_UINT4\n\
                          BLOCK_TRAILER=LAST_4_BYTES_REPEATED\n\
                          KNOWN_INCOMPATIBLE_EDITION=NO\n ";

/// A single-band float32 raster, row-major with row 0 at the top (north).
#[derive(Clone, Debug)]
pub(crate) struct Raster {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) data: Vec<f32>,
}

/// North-up georeferencing: top-left corner (`west`, `north`) and square pixel size, metres.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GeoRef {
    pub(crate) west: f64,
    pub(crate) north: f64,
    pub(crate) pixel: f64,
}

/// Writes `cog/T2_1979-10-01.tif`: day 1 of the Zarr T2, flipped north-up and bilinearly
/// upsampled from 4 km to 500 m over exactly the Zarr grid's extent.
pub(crate) fn write_demo_cog(c: &Conus404, out: &mut Output, rel: &str) -> Result<()> {
    let full = upsample_bilinear(c, c.t2_day(0), UPSAMPLE);
    let pixel = DX / UPSAMPLE as f64;
    let geo = GeoRef {
        west: c.x[0] - DX / 2.0,
        north: c.y[NY - 1] + DX / 2.0,
        pixel,
    };
    let metadata = "<GDALMetadata>\n\
        \x20 <Item name=\"source\">geomount offline demo: synthetic CONUS404-like T2, 1979-10-01 (NOT real data)</Item>\n\
        \x20 <Item name=\"DESCRIPTION\" sample=\"0\" role=\"description\">T2</Item>\n\
        \x20 <Item name=\"UNITTYPE\" sample=\"0\" role=\"unittype\">K</Item>\n\
        \x20 <Item name=\"long_name\" sample=\"0\">Temperature at 2 m</Item>\n\
        </GDALMetadata>\n";
    let bytes = build_cog(full, &geo, NODATA, Some(metadata))?;
    if let Some((dir, _)) = rel.rsplit_once('/') {
        out.mkdir(dir)?;
    }
    out.write(rel, &bytes)
}

/// Bilinear interpolation of a south-to-north (NY, NX) grid onto a north-up grid `factor`
/// times finer covering the same extent; outside the outer cell centres values are clamped.
fn upsample_bilinear(c: &Conus404, field: &[f32], factor: usize) -> Raster {
    let (width, height) = (NX * factor, NY * factor);
    let pixel = DX / factor as f64;
    let (west, north) = (c.x[0] - DX / 2.0, c.y[NY - 1] + DX / 2.0);
    // Fractional grid index of a coordinate -> (lower index, weight of the upper one).
    let locate = |coord: f64, origin: f64, n: usize| {
        let f = ((coord - origin) / DX).clamp(0.0, (n - 1) as f64);
        let k = (f.floor() as usize).min(n - 2);
        (k, f - k as f64)
    };
    let cols: Vec<(usize, f64)> = (0..width)
        .map(|q| locate(west + (q as f64 + 0.5) * pixel, c.x[0], NX))
        .collect();
    let mut data = Vec::with_capacity(width * height);
    for r in 0..height {
        let (j, wy) = locate(north - (r as f64 + 0.5) * pixel, c.y[0], NY);
        let (s, n) = (
            &field[j * NX..(j + 1) * NX],
            &field[(j + 1) * NX..(j + 2) * NX],
        );
        for &(i, wx) in &cols {
            let south = f64::from(s[i]) * (1.0 - wx) + f64::from(s[i + 1]) * wx;
            let northv = f64::from(n[i]) * (1.0 - wx) + f64::from(n[i + 1]) * wx;
            data.push((south * (1.0 - wy) + northv * wy) as f32);
        }
    }
    Raster {
        width,
        height,
        data,
    }
}

/// 2x2 mean ignoring `nodata` (GDAL `AVERAGE` resampling); output size rounds up.
fn downsample_average(r: &Raster, nodata: f32) -> Raster {
    let (width, height) = (r.width.div_ceil(2), r.height.div_ceil(2));
    let mut data = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (mut sum, mut n) = (0.0f64, 0u32);
            for (sy, sx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (yy, xx) = (2 * y + sy, 2 * x + sx);
                if yy < r.height && xx < r.width {
                    let v = r.data[yy * r.width + xx];
                    if v != nodata && !v.is_nan() {
                        sum += f64::from(v);
                        n += 1;
                    }
                }
            }
            data.push(if n == 0 {
                nodata
            } else {
                (sum / f64::from(n)) as f32
            });
        }
    }
    Raster {
        width,
        height,
        data,
    }
}

/// Full resolution plus overviews halving until the level fits in one tile.
fn pyramid(full: Raster, nodata: f32) -> Vec<Raster> {
    let mut levels = vec![full];
    while let Some(last) = levels.last().filter(|l| l.width > TILE || l.height > TILE) {
        let next = downsample_average(last, nodata);
        levels.push(next);
    }
    levels
}

/// Compresses tile (`tx`, `ty`) of `r`: pad with nodata, apply the TIFF floating-point
/// predictor per row (bytes split into planes, most significant first, then byte-wise
/// horizontal differencing across the whole row), then zlib.
fn encode_tile(r: &Raster, tx: usize, ty: usize, nodata: f32) -> Result<Vec<u8>> {
    let row_bytes = TILE * 4;
    let mut buf = vec![0u8; TILE * row_bytes];
    for (row, line) in buf.chunks_exact_mut(row_bytes).enumerate() {
        let y = ty * TILE + row;
        for col in 0..TILE {
            let x = tx * TILE + col;
            let v = if x < r.width && y < r.height {
                r.data[y * r.width + x]
            } else {
                nodata
            };
            for (plane, byte) in v.to_be_bytes().into_iter().enumerate() {
                line[plane * TILE + col] = byte;
            }
        }
        for k in (1..row_bytes).rev() {
            line[k] = line[k].wrapping_sub(line[k - 1]);
        }
    }
    let z = zlib_compress(&buf, DEFLATE_LEVEL)?;
    // Invariant needed by the 4-byte trailer: a zlib stream is never shorter than 6 bytes.
    ensure!(z.len() >= 4, "compressed tile too short");
    Ok(z)
}

// TIFF field types.
const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const DOUBLE: u16 = 12;

const TAG_TILE_OFFSETS: u16 = 324;
const TAG_TILE_BYTE_COUNTS: u16 = 325;

/// One IFD entry with its value already encoded little endian.
struct Entry {
    tag: u16,
    typ: u16,
    count: u32,
    data: Vec<u8>,
}

impl Entry {
    fn shorts(tag: u16, v: &[u16]) -> Self {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self {
            tag,
            typ: SHORT,
            count: v.len() as u32,
            data,
        }
    }
    fn longs(tag: u16, v: &[u32]) -> Self {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self {
            tag,
            typ: LONG,
            count: v.len() as u32,
            data,
        }
    }
    fn doubles(tag: u16, v: &[f64]) -> Self {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self {
            tag,
            typ: DOUBLE,
            count: v.len() as u32,
            data,
        }
    }
    /// NUL-terminated ASCII; the count includes the NUL.
    fn ascii(tag: u16, s: &str) -> Self {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        Self {
            tag,
            typ: ASCII,
            count: data.len() as u32,
            data,
        }
    }
    /// Values of at most 4 bytes live in the entry itself.
    fn inline(&self) -> bool {
        self.data.len() <= 4
    }
}

const GEO_KEY_DIRECTORY: u16 = 34735;
const GEO_DOUBLE_PARAMS: u16 = 34736;
const GEO_ASCII_PARAMS: u16 = 34737;

/// Accumulates GeoKeys; each key is (id, location tag, count, value or index).
#[derive(Default)]
struct GeoKeys {
    keys: Vec<[u16; 4]>,
    doubles: Vec<f64>,
    ascii: String,
}

impl GeoKeys {
    fn short(&mut self, id: u16, v: u16) {
        self.keys.push([id, 0, 1, v]);
    }
    fn double(&mut self, id: u16, v: f64) {
        self.keys
            .push([id, GEO_DOUBLE_PARAMS, 1, self.doubles.len() as u16]);
        self.doubles.push(v);
    }
    /// ASCII values are '|'-terminated in GeoAsciiParams; the count includes the '|'.
    fn text(&mut self, id: u16, s: &str) {
        self.keys.push([
            id,
            GEO_ASCII_PARAMS,
            (s.len() + 1) as u16,
            self.ascii.len() as u16,
        ]);
        self.ascii.push_str(s);
        self.ascii.push('|');
    }
    /// The three GeoTIFF tags; header = KeyDirectoryVersion 1, KeyRevision 1.0, key count,
    /// then the keys sorted by id.
    fn into_entries(mut self) -> Vec<Entry> {
        self.keys.sort_by_key(|k| k[0]);
        let mut dir: Vec<u16> = vec![1, 1, 0, self.keys.len() as u16];
        dir.extend(self.keys.iter().flatten());
        vec![
            Entry::shorts(GEO_KEY_DIRECTORY, &dir),
            Entry::doubles(GEO_DOUBLE_PARAMS, &self.doubles),
            Entry::ascii(GEO_ASCII_PARAMS, &self.ascii),
        ]
    }
}

/// GeoTIFF keys for the CONUS404 projection: user-defined Lambert conformal conic 2SP
/// (CT_LambertConfConic_2SP = 8) on the WRF sphere R = 6,370,000 m, metres.
fn geokey_entries() -> Vec<Entry> {
    const USER_DEFINED: u16 = 32767;
    const NAME: &str = "CONUS404 Lambert Conformal Conic (WRF sphere)";
    let mut g = GeoKeys::default();
    g.short(1024, 1); // GTModelType = projected
    g.short(1025, 1); // GTRasterType = PixelIsArea
    g.text(1026, NAME); // GTCitation
    g.short(2048, USER_DEFINED); // GeographicType
    g.text(2049, "WRF sphere R=6370000"); // GeogCitation
    g.short(2050, USER_DEFINED); // GeogGeodeticDatum
    g.short(2051, 8901); // GeogPrimeMeridian = Greenwich
    g.short(2054, 9102); // GeogAngularUnits = degree
    g.short(2056, USER_DEFINED); // GeogEllipsoid
    g.double(2057, 6_370_000.0); // GeogSemiMajorAxis
    g.double(2058, 6_370_000.0); // GeogSemiMinorAxis
    g.short(3072, USER_DEFINED); // ProjectedCSType
    g.text(3073, NAME); // PCSCitation
    g.short(3074, USER_DEFINED); // Projection
    g.short(3075, 8); // ProjCoordTrans = CT_LambertConfConic_2SP
    g.short(3076, 9001); // ProjLinearUnits = metre
    g.double(3078, 30.0); // ProjStdParallel1
    g.double(3079, 50.0); // ProjStdParallel2
    g.double(3084, -97.9); // ProjFalseOriginLong
    g.double(3085, 39.1); // ProjFalseOriginLat
    g.double(3086, 0.0); // ProjFalseOriginEasting
    g.double(3087, 0.0); // ProjFalseOriginNorthing
    g.into_entries()
}

/// Encodes a whole COG (see the module docs for the layout).
pub(crate) fn build_cog(
    full: Raster,
    geo: &GeoRef,
    nodata: f32,
    gdal_metadata: Option<&str>,
) -> Result<Vec<u8>> {
    ensure!(
        full.width > 0 && full.height > 0 && full.data.len() == full.width * full.height,
        "bad raster dimensions"
    );
    let levels = pyramid(full, nodata);

    // Tiles per level, row-major.
    let mut tiles: Vec<Vec<Vec<u8>>> = Vec::with_capacity(levels.len());
    for r in &levels {
        let (nx, ny) = (r.width.div_ceil(TILE), r.height.div_ceil(TILE));
        let mut level = Vec::with_capacity(nx * ny);
        for ty in 0..ny {
            for tx in 0..nx {
                level.push(encode_tile(r, tx, ty, nodata)?);
            }
        }
        tiles.push(level);
    }

    // IFD entries per level; strile arrays hold placeholders until the layout is known.
    let nodata_text = format!("{nodata}");
    let mut ifds: Vec<Vec<Entry>> = Vec::with_capacity(levels.len());
    for (l, r) in levels.iter().enumerate() {
        let n = tiles[l].len();
        let mut e = vec![
            Entry::longs(254, &[u32::from(l > 0)]), // NewSubfileType: 1 = reduced image
            Entry::longs(256, &[r.width as u32]),
            Entry::longs(257, &[r.height as u32]),
            Entry::shorts(258, &[32]), // BitsPerSample
            Entry::shorts(259, &[8]),  // Compression = Deflate (zlib)
            Entry::shorts(262, &[1]),  // Photometric = MinIsBlack
            Entry::shorts(277, &[1]),  // SamplesPerPixel
            Entry::shorts(284, &[1]),  // PlanarConfiguration = contiguous
            Entry::shorts(317, &[3]),  // Predictor = floating point
            Entry::shorts(322, &[TILE as u16]),
            Entry::shorts(323, &[TILE as u16]),
            Entry::longs(TAG_TILE_OFFSETS, &vec![0; n]),
            Entry::longs(TAG_TILE_BYTE_COUNTS, &vec![0; n]),
            Entry::shorts(339, &[3]),          // SampleFormat = IEEE float
            Entry::ascii(42113, &nodata_text), // GDAL_NODATA
        ];
        if l == 0 {
            e.push(Entry::doubles(33550, &[geo.pixel, geo.pixel, 0.0])); // ModelPixelScale
            e.push(Entry::doubles(
                33922,
                &[0.0, 0.0, 0.0, geo.west, geo.north, 0.0],
            )); // ModelTiepoint
            e.extend(geokey_entries());
            if let Some(md) = gdal_metadata {
                e.push(Entry::ascii(42112, md)); // GDAL_METADATA
            }
        }
        e.sort_by_key(|x| x.tag);
        ifds.push(e);
    }

    // Layout pass 1: header + ghost, then the IFDs back to back.
    let ghost = format!(
        "GDAL_STRUCTURAL_METADATA_SIZE={:06} bytes\n{GHOST_BODY}",
        GHOST_BODY.len()
    );
    let mut pos = (8 + ghost.len()).next_multiple_of(2);
    let mut ifd_offsets = Vec::with_capacity(ifds.len());
    for e in &ifds {
        ifd_offsets.push(pos);
        pos += 2 + 12 * e.len() + 4;
    }
    // Pass 2: out-of-line values; other tags first, then all strile arrays.
    let mut value_offsets: Vec<Vec<Option<usize>>> =
        ifds.iter().map(|e| vec![None; e.len()]).collect();
    for strile_pass in [false, true] {
        for (l, e) in ifds.iter().enumerate() {
            for (k, entry) in e.iter().enumerate() {
                let is_strile = matches!(entry.tag, TAG_TILE_OFFSETS | TAG_TILE_BYTE_COUNTS);
                if !entry.inline() && is_strile == strile_pass {
                    pos = pos.next_multiple_of(2); // TIFF word alignment
                    value_offsets[l][k] = Some(pos);
                    pos += entry.data.len();
                }
            }
        }
    }
    // Pass 3: tile data, smallest overview first; offsets point past the 4-byte leader.
    let mut tile_offsets: Vec<Vec<u32>> = vec![Vec::new(); levels.len()];
    for l in (0..levels.len()).rev() {
        for t in &tiles[l] {
            pos += 4;
            tile_offsets[l].push(u32::try_from(pos)?);
            pos += t.len() + 4;
        }
    }
    ensure!(
        u32::try_from(pos).is_ok(),
        "COG exceeds classic TIFF 4 GiB limit"
    );
    let total = pos;
    for (l, e) in ifds.iter_mut().enumerate() {
        for entry in e.iter_mut() {
            if entry.tag == TAG_TILE_OFFSETS {
                *entry = Entry::longs(TAG_TILE_OFFSETS, &tile_offsets[l]);
            } else if entry.tag == TAG_TILE_BYTE_COUNTS {
                let counts: Vec<u32> = tiles[l].iter().map(|t| t.len() as u32).collect();
                *entry = Entry::longs(TAG_TILE_BYTE_COUNTS, &counts);
            }
        }
    }

    // Serialisation, asserting that every piece lands where the layout put it.
    let mut buf = Vec::with_capacity(total);
    buf.extend_from_slice(b"II");
    buf.extend_from_slice(&42u16.to_le_bytes());
    buf.extend_from_slice(&(ifd_offsets[0] as u32).to_le_bytes());
    buf.extend_from_slice(ghost.as_bytes());
    for (l, e) in ifds.iter().enumerate() {
        buf.resize(ifd_offsets[l], 0);
        buf.extend_from_slice(&(e.len() as u16).to_le_bytes());
        for (k, entry) in e.iter().enumerate() {
            buf.extend_from_slice(&entry.tag.to_le_bytes());
            buf.extend_from_slice(&entry.typ.to_le_bytes());
            buf.extend_from_slice(&entry.count.to_le_bytes());
            let mut field = [0u8; 4];
            match value_offsets[l][k] {
                Some(off) => field = (off as u32).to_le_bytes(),
                None => field[..entry.data.len()].copy_from_slice(&entry.data),
            }
            buf.extend_from_slice(&field);
        }
        let next = ifd_offsets.get(l + 1).copied().unwrap_or(0) as u32;
        buf.extend_from_slice(&next.to_le_bytes());
    }
    let mut values: Vec<(usize, &[u8])> = Vec::new();
    for (l, e) in ifds.iter().enumerate() {
        for (k, entry) in e.iter().enumerate() {
            if let Some(off) = value_offsets[l][k] {
                values.push((off, &entry.data));
            }
        }
    }
    values.sort_by_key(|v| v.0);
    for (off, data) in values {
        ensure!(buf.len() <= off, "overlapping TIFF values");
        buf.resize(off, 0);
        buf.extend_from_slice(data);
    }
    for l in (0..levels.len()).rev() {
        for (t, &off) in tiles[l].iter().zip(&tile_offsets[l]) {
            ensure!(buf.len() + 4 == off as usize, "tile layout mismatch");
            buf.extend_from_slice(&(t.len() as u32).to_le_bytes());
            buf.extend_from_slice(t);
            buf.extend_from_slice(&t[t.len() - 4..]);
        }
    }
    ensure!(buf.len() == total, "COG size mismatch");
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
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
                1 | 2 => 1,
                3 => 2,
                4 => 4,
                12 => 8,
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
        match typ {
            3 => data
                .chunks(2)
                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            4 => data
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

    #[test]
    fn demo_cog_has_gdal_layout_and_round_trips() {
        let c = Conus404::compute();
        let full = upsample_bilinear(&c, c.t2_day(0), UPSAMPLE);
        let levels = pyramid(full.clone(), NODATA);
        let dims: Vec<(usize, usize)> = levels.iter().map(|l| (l.width, l.height)).collect();
        assert_eq!(dims, vec![(1280, 960), (640, 480), (320, 240), (160, 120)]);
        let geo = GeoRef {
            west: -320_000.0,
            north: 240_000.0,
            pixel: 500.0,
        };
        let b = build_cog(
            full.clone(),
            &geo,
            NODATA,
            Some("<GDALMetadata></GDALMetadata>"),
        )
        .expect("build");

        // Header and ghost block, byte for byte as GDAL writes them.
        assert_eq!(&b[..4], b"II*\0");
        let ghost = format!("GDAL_STRUCTURAL_METADATA_SIZE=000140 bytes\n{GHOST_BODY}");
        assert_eq!(GHOST_BODY.len(), 140);
        assert_eq!(&b[8..8 + ghost.len()], ghost.as_bytes());
        let first_ifd = u32_at(&b, 4) as usize;
        assert_eq!(first_ifd, (8 + ghost.len()).next_multiple_of(2));

        // Walk the IFD chain.
        let mut ifds = Vec::new();
        let mut off = first_ifd;
        while off != 0 {
            assert!(off + 2 <= b.len());
            let (entries, next) = read_ifd(&b, off);
            let tags: Vec<u16> = entries.iter().map(|e| e.0).collect();
            assert!(tags.windows(2).all(|w| w[0] < w[1]), "tags not sorted");
            ifds.push((off, entries));
            assert!(next == 0 || next > off, "IFDs must be in increasing order");
            off = next;
        }
        assert_eq!(ifds.len(), 4);

        let mut first_data_by_level = Vec::new();
        let mut last_header_byte = 0;
        for (l, (ifd_off, e)) in ifds.iter().enumerate() {
            last_header_byte = last_header_byte.max(*ifd_off);
            assert_eq!(longs(e, 254), vec![u32::from(l > 0)]);
            assert_eq!(longs(e, 256)[0] as usize, dims[l].0);
            assert_eq!(longs(e, 257)[0] as usize, dims[l].1);
            assert_eq!(longs(e, 259), vec![8]);
            assert_eq!(longs(e, 317), vec![3]);
            assert_eq!(longs(e, 339), vec![3]);
            let offsets = longs(e, 324);
            let counts = longs(e, 325);
            assert_eq!(
                offsets.len(),
                dims[l].0.div_ceil(TILE) * dims[l].1.div_ceil(TILE)
            );
            // Row-major, leader = size, trailer = last 4 bytes repeated, all in bounds.
            assert!(offsets.windows(2).all(|w| w[0] < w[1]));
            for (tile, (&o, &n)) in offsets.iter().zip(&counts).enumerate() {
                let (o, n) = (o as usize, n as usize);
                assert!(o >= 4 && o + n + 4 <= b.len(), "tile out of bounds");
                assert_eq!(u32_at(&b, o - 4) as usize, n, "leader");
                assert_eq!(b[o + n - 4..o + n], b[o + n..o + n + 4], "trailer");
                // Tile content equals the level's pixels, padding included.
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
        // Smallest overview's data first, full resolution last; all IFDs before any data.
        assert!(first_data_by_level.windows(2).all(|w| w[0] > w[1]));
        assert!(first_data_by_level[3] > last_header_byte);
        // The file ends with the last full-resolution tile's trailer.
        let (o, n) = (
            *longs(&ifds[0].1, 324).last().expect("tiles") as usize,
            *longs(&ifds[0].1, 325).last().expect("tiles") as usize,
        );
        assert_eq!(o + n + 4, b.len());

        // Georeferencing and GeoKeys on the main IFD only.
        let main = &ifds[0].1;
        let scale = &main.iter().find(|e| e.0 == 33550).expect("pixel scale").3;
        assert_eq!(f64::from_le_bytes(scale[..8].try_into().expect("8")), 500.0);
        let keys = longs(main, 34735);
        assert_eq!(&keys[..3], &[1, 1, 0]);
        let key = |id: u32| keys[4..].chunks(4).find(|k| k[0] == id).map(|k| k[3]);
        assert_eq!(key(3075), Some(8), "CT_LambertConfConic_2SP");
        assert_eq!(key(3072), Some(32767));
        assert!(ifds[1].1.iter().all(|e| e.0 != 34735));
        let nodata = &main.iter().find(|e| e.0 == 42113).expect("nodata").3;
        assert_eq!(nodata.as_slice(), b"-9999\0");
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
}
