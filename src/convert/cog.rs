//! Cloud Optimized GeoTIFF writer producing GDAL's COG layout (what `gdalinfo` reports as
//! `LAYOUT=COG` and `validate_cloud_optimized_geotiff.py --full-check` accepts), with the file's
//! size and header known from the raster's shape alone and tiles made only when read.
//!
//! File layout, in this order (classic TIFF, little endian):
//! 1. 8-byte header whose first-IFD offset points at the main IFD;
//! 2. the "ghost" structural metadata block (`GDAL_STRUCTURAL_METADATA_SIZE=...`);
//! 3. the full-resolution IFD, then one IFD per overview (`NewSubfileType` = 1), largest to
//!    smallest, chained by their next-IFD pointers;
//! 4. out-of-line tag values (GeoKeys, metadata, ...), then every `TileOffsets` /
//!    `TileByteCounts` array;
//! 5. tile data, smallest overview first, full resolution last, row-major within a level; each
//!    tile is preceded by its byte count as u32 LE and followed by a copy of its last 4 bytes.
//!
//! Tiles are 512x512 float32 (edge tiles padded with nodata), floating-point predictor
//! (Predictor = 3), DEFLATE (Compression = 8). Every tile's zlib stream is exactly
//! [`deflate::slot_len`] bytes (padded inside the stream, see [`super::deflate`]), so all
//! offsets and byte counts follow from the raster's shape: `getattr` and the header need no
//! pixels, and a tile is compressed when a read reaches it. Files written whole use
//! [`write_compact`] instead: same layout, each byte count the stream's own length. Overviews are 2x2 means ignoring
//! nodata, made until both dimensions fit in one tile (GDAL's rule).

use std::ops::Range;

use anyhow::{Result, ensure};

use super::crs::Crs;
use super::deflate;
use super::tiff::{Entry, IfdLayout};
use crate::formats::tiff::tag;

/// Tile edge in pixels.
pub const TILE: usize = 512;
/// zlib level of tiles: the slot is fixed, so a fast level serves as well as a slow one.
const DEFLATE_LEVEL: u32 = 1;

/// The ghost block body; its length (140) goes into the 6-digit size field. The trailing
/// space is GDAL's: it lets `NO` be patched to `YES` in place.
const GHOST_BODY: &str = "LAYOUT=IFDS_BEFORE_DATA\n\
                          BLOCK_ORDER=ROW_MAJOR\n\
                          BLOCK_LEADER=SIZE_AS_UINT4\n\
                          BLOCK_TRAILER=LAST_4_BYTES_REPEATED\n\
                          KNOWN_INCOMPATIBLE_EDITION=NO\n ";

/// A single-band float32 raster, row-major with row 0 at the top (north).
#[derive(Clone, Debug, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// North-up georeferencing: top-left corner of the top-left pixel and pixel size (positive),
/// in CRS units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoRef {
    pub west: f64,
    pub north: f64,
    pub dx: f64,
    pub dy: f64,
}

/// Everything but the pixels.
#[derive(Clone, Debug)]
pub struct CogSpec {
    pub width: usize,
    pub height: usize,
    pub geo: GeoRef,
    pub crs: Crs,
    /// NaN is allowed (written as `nan`).
    pub nodata: f32,
    /// A `<GDALMetadata>` document, if any.
    pub gdal_metadata: Option<String>,
}

/// One pyramid level's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Level {
    width: usize,
    height: usize,
}

impl Level {
    fn tiles_x(&self) -> usize {
        self.width.div_ceil(TILE)
    }
    fn tiles(&self) -> usize {
        self.tiles_x() * self.height.div_ceil(TILE)
    }
}

/// Shapes of full resolution and its overviews, halving until one tile holds a level.
fn level_shapes(width: usize, height: usize) -> Vec<Level> {
    let mut levels = vec![Level { width, height }];
    while let Some(l) = levels.last().filter(|l| l.width > TILE || l.height > TILE) {
        let next = Level {
            width: l.width.div_ceil(2),
            height: l.height.div_ceil(2),
        };
        levels.push(next);
    }
    levels
}

/// Width and height of the smallest overview of a `width` x `height` raster (the last level
/// [`pyramid`] makes).
pub fn smallest_level(width: usize, height: usize) -> (usize, usize) {
    let l = level_shapes(width, height)
        .pop()
        .unwrap_or(Level { width, height });
    (l.width, l.height)
}

/// The byte layout of one COG: its header bytes and where each tile goes.
#[derive(Debug)]
pub struct CogLayout {
    levels: Vec<Level>,
    /// Everything before the first tile's leader.
    header: Vec<u8>,
    /// Per level, per tile: offset of the leader and length of the zlib stream.
    tiles: Vec<Vec<(u64, u32)>>,
    size: u64,
    nodata: f32,
}

impl CogLayout {
    /// The layout of a COG whose tiles are made lazily: every tile stream fills a fixed slot.
    pub fn new(spec: &CogSpec) -> Result<Self> {
        let levels = level_shapes(spec.width, spec.height);
        let slot = deflate::slot_len(TILE * TILE * 4) as u32;
        let lens = levels.iter().map(|l| vec![slot; l.tiles()]).collect();
        Self::with_lengths(spec, levels, lens)
    }

    /// The layout for tile streams of the given lengths (per level, per tile).
    fn with_lengths(spec: &CogSpec, levels: Vec<Level>, lens: Vec<Vec<u32>>) -> Result<Self> {
        ensure!(
            spec.width > 0 && spec.height > 0,
            "cannot write an empty raster as a COG"
        );
        ensure!(
            (spec.width as u64) * (spec.height as u64) < 1 << 30,
            "a {}x{} raster is too large for a classic TIFF COG",
            spec.width,
            spec.height
        );
        let nodata_text = if spec.nodata.is_nan() {
            "nan".to_string()
        } else {
            format!("{}", spec.nodata)
        };
        let mut ifds: Vec<Vec<Entry>> = Vec::with_capacity(levels.len());
        for (l, r) in levels.iter().enumerate() {
            let mut e = vec![
                // 1 = reduced-resolution image
                Entry::longs(tag::NEW_SUBFILE_TYPE, &[u32::from(l > 0)]),
                Entry::longs(tag::IMAGE_WIDTH, &[r.width as u32]),
                Entry::longs(tag::IMAGE_LENGTH, &[r.height as u32]),
                Entry::shorts(tag::BITS_PER_SAMPLE, &[32]),
                Entry::shorts(tag::COMPRESSION, &[8]), // Deflate (zlib)
                Entry::shorts(tag::PHOTOMETRIC_INTERPRETATION, &[1]), // MinIsBlack
                Entry::shorts(tag::SAMPLES_PER_PIXEL, &[1]),
                Entry::shorts(tag::PLANAR_CONFIGURATION, &[1]), // contiguous
                Entry::shorts(tag::PREDICTOR, &[3]),            // floating point
                Entry::shorts(tag::TILE_WIDTH, &[TILE as u16]),
                Entry::shorts(tag::TILE_LENGTH, &[TILE as u16]),
                Entry::longs(tag::TILE_OFFSETS, &vec![0; r.tiles()]),
                Entry::longs(tag::TILE_BYTE_COUNTS, &lens[l]),
                Entry::shorts(tag::SAMPLE_FORMAT, &[3]), // IEEE float
                Entry::ascii(tag::GDAL_NODATA, &nodata_text),
            ];
            if l == 0 {
                let g = spec.geo;
                e.push(Entry::doubles(tag::MODEL_PIXEL_SCALE, &[g.dx, g.dy, 0.0]));
                e.push(Entry::doubles(
                    tag::MODEL_TIEPOINT,
                    &[0.0, 0.0, 0.0, g.west, g.north, 0.0],
                ));
                e.extend(spec.crs.geokey_entries());
                if let Some(md) = &spec.gdal_metadata {
                    e.push(Entry::ascii(tag::GDAL_METADATA, md));
                }
            }
            e.sort_by_key(|x| x.tag);
            ifds.push(e);
        }
        let ghost = format!(
            "GDAL_STRUCTURAL_METADATA_SIZE={:06} bytes\n{GHOST_BODY}",
            GHOST_BODY.len()
        );
        let plan = IfdLayout::plan(&ifds, 8 + ghost.len());
        // Tiles: smallest overview first; each is leader (4), stream, trailer (4).
        let mut tiles: Vec<Vec<(u64, u32)>> = vec![Vec::new(); levels.len()];
        let mut pos = plan.end as u64;
        for l in (0..levels.len()).rev() {
            for &len in &lens[l] {
                tiles[l].push((pos, len));
                pos += 4 + u64::from(len) + 4;
            }
        }
        let size = pos;
        ensure!(
            u32::try_from(size).is_ok(),
            "a {}x{} COG exceeds the classic TIFF 4 GiB limit",
            spec.width,
            spec.height
        );
        for (l, e) in ifds.iter_mut().enumerate() {
            if let Some(entry) = e.iter_mut().find(|x| x.tag == tag::TILE_OFFSETS) {
                let offsets: Vec<u32> = tiles[l].iter().map(|&(o, _)| (o + 4) as u32).collect();
                *entry = Entry::longs(tag::TILE_OFFSETS, &offsets);
            }
        }
        let mut header = Vec::with_capacity(plan.end);
        header.extend_from_slice(b"II");
        header.extend_from_slice(&42u16.to_le_bytes());
        header.extend_from_slice(&(plan.ifd_offsets[0] as u32).to_le_bytes());
        header.extend_from_slice(ghost.as_bytes());
        plan.write(&ifds, &mut header);
        Ok(Self {
            levels,
            header,
            tiles,
            size,
            nodata: spec.nodata,
        })
    }

    /// The file's exact size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tiles (level, index) whose bytes overlap `range`, in file order.
    pub fn tiles_in(&self, range: Range<u64>) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for l in (0..self.levels.len()).rev() {
            for (t, &(off, len)) in self.tiles[l].iter().enumerate() {
                if off < range.end && range.start < off + u64::from(len) + 8 {
                    out.push((l, t));
                }
            }
        }
        out
    }

    /// Bytes `range` of the file; `tile(level, index)` gives a tile's bytes as made by
    /// [`Self::tile_bytes`] (so the caller may cache them).
    pub fn read(
        &self,
        range: Range<u64>,
        mut tile: impl FnMut(usize, usize) -> Result<bytes::Bytes>,
    ) -> Result<Vec<u8>> {
        let end = range.end.min(self.size);
        let start = range.start.min(end);
        let mut out = Vec::with_capacity((end - start) as usize);
        let header_len = self.header.len() as u64;
        if start < header_len {
            out.extend_from_slice(&self.header[start as usize..end.min(header_len) as usize]);
        }
        for (l, t) in self.tiles_in(start..end) {
            let (tile_start, len) = self.tiles[l][t];
            let stride = u64::from(len) + 8;
            let bytes = tile(l, t)?;
            ensure!(bytes.len() as u64 == stride, "tile of the wrong size");
            let a = start.max(tile_start) - tile_start;
            let b = end.min(tile_start + stride) - tile_start;
            out.extend_from_slice(&bytes[a as usize..b as usize]);
        }
        ensure!(out.len() as u64 == end - start, "COG read layout mismatch");
        Ok(out)
    }

    /// Leader, zlib stream (filling its slot) and trailer of tile `index` of `level`.
    pub fn tile_bytes(&self, pyramid: &[Raster], level: usize, index: usize) -> Result<Vec<u8>> {
        let r = pyramid
            .get(level)
            .filter(|r| {
                r.width == self.levels[level].width && r.height == self.levels[level].height
            })
            .ok_or_else(|| anyhow::anyhow!("pyramid does not match the COG layout"))?;
        let tiles_x = self.levels[level].tiles_x();
        let z = deflate::zlib_exact(
            &predicted_tile(r, index % tiles_x, index / tiles_x, self.nodata),
            DEFLATE_LEVEL,
        );
        ensure!(
            z.len() == self.tiles[level][index].1 as usize,
            "tile stream of the wrong size"
        );
        Ok(framed(&z))
    }
}

/// A tile stream with its 4-byte size leader and last-4-bytes trailer.
fn framed(z: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(z.len() + 8);
    out.extend_from_slice(&(z.len() as u32).to_le_bytes());
    out.extend_from_slice(z);
    out.extend_from_slice(&z[z.len().saturating_sub(4)..]);
    out
}

/// A whole COG written at once (e.g. the demo's) with every tile compressed at `level` and no
/// slack: each byte count is the stream's own length.
pub fn write_compact(spec: &CogSpec, pyramid: &[Raster], level: u32) -> Result<Vec<u8>> {
    let levels = level_shapes(spec.width, spec.height);
    let mut streams: Vec<Vec<Vec<u8>>> = Vec::with_capacity(levels.len());
    for (l, shape) in levels.iter().enumerate() {
        let r = pyramid
            .get(l)
            .filter(|r| r.width == shape.width && r.height == shape.height)
            .ok_or_else(|| anyhow::anyhow!("pyramid does not match the COG layout"))?;
        let tiles_x = shape.tiles_x();
        let mut level_streams = Vec::with_capacity(shape.tiles());
        for t in 0..shape.tiles() {
            let raw = predicted_tile(r, t % tiles_x, t / tiles_x, spec.nodata);
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
            std::io::Write::write_all(&mut enc, &raw)?;
            level_streams.push(enc.finish()?);
        }
        streams.push(level_streams);
    }
    let lens = streams
        .iter()
        .map(|l| l.iter().map(|z| z.len() as u32).collect())
        .collect();
    let layout = CogLayout::with_lengths(spec, levels, lens)?;
    layout.read(0..layout.size, |l, t| {
        Ok(bytes::Bytes::from(framed(&streams[l][t])))
    })
}

/// Full resolution plus overviews (2x2 means ignoring nodata and NaN) down to one tile.
pub fn pyramid(full: Raster, nodata: f32) -> Vec<Raster> {
    let mut levels = vec![full];
    while let Some(last) = levels.last().filter(|l| l.width > TILE || l.height > TILE) {
        let next = downsample_average(last, nodata);
        levels.push(next);
    }
    levels
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

/// Tile (`tx`, `ty`) of `r` ready to compress: padded with nodata, then the TIFF
/// floating-point predictor per row (bytes split into planes, most significant first, then
/// byte-wise horizontal differencing across the whole row).
fn predicted_tile(r: &Raster, tx: usize, ty: usize, nodata: f32) -> Vec<u8> {
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
    buf
}

#[cfg(test)]
mod tests;
