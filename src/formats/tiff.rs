//! Layout of a tiled (or stripped) TIFF, classic or BigTIFF: where every tile of every IFD lies.
//! Parsed from a prefix of the file; a Cloud Optimized GeoTIFF keeps all IFDs and tile arrays
//! at the start, so one small read is enough. Also the tag numbers and field types every TIFF
//! reader and writer of geomount uses ([`tag`], [`field`]); the COG writer (`convert::cog`)
//! takes them from here.
//!
//! Hand-written rather than taken from the `tiff` crate (image-rs): its `Decoder` pulls bytes
//! through a blocking `Read + Seek`, so a prefix that ends too early surfaces as an
//! `UnexpectedEof` I/O error, not as "the first n bytes are needed" ([`TiffError::NeedPrefix`],
//! which lets a planner make exactly one more ranged read); and `Decoder::new` already
//! validates the first image's pixel format (photometric interpretation, sample format, bits
//! per sample) and refuses ones it cannot decode, while a plan needs only the tile tables of
//! every IFD, whatever their pixels. Its `Tag` enum also lacks GDAL's `GDAL_METADATA` (42112).

use std::ops::Range;

use crate::error::{Format, FormatError};

/// TIFF tag numbers (TIFF 6.0, GeoTIFF 1.1 and GDAL's private tags).
pub mod tag {
    pub const NEW_SUBFILE_TYPE: u16 = 254;
    pub const IMAGE_WIDTH: u16 = 256;
    pub const IMAGE_LENGTH: u16 = 257;
    pub const BITS_PER_SAMPLE: u16 = 258;
    pub const COMPRESSION: u16 = 259;
    pub const PHOTOMETRIC_INTERPRETATION: u16 = 262;
    pub const STRIP_OFFSETS: u16 = 273;
    pub const SAMPLES_PER_PIXEL: u16 = 277;
    pub const STRIP_BYTE_COUNTS: u16 = 279;
    pub const PLANAR_CONFIGURATION: u16 = 284;
    pub const PREDICTOR: u16 = 317;
    pub const TILE_WIDTH: u16 = 322;
    pub const TILE_LENGTH: u16 = 323;
    pub const TILE_OFFSETS: u16 = 324;
    pub const TILE_BYTE_COUNTS: u16 = 325;
    pub const SAMPLE_FORMAT: u16 = 339;
    pub const MODEL_PIXEL_SCALE: u16 = 33550;
    pub const MODEL_TIEPOINT: u16 = 33922;
    pub const GEO_KEY_DIRECTORY: u16 = 34735;
    pub const GEO_DOUBLE_PARAMS: u16 = 34736;
    pub const GEO_ASCII_PARAMS: u16 = 34737;
    pub const GDAL_METADATA: u16 = 42112;
    pub const GDAL_NODATA: u16 = 42113;
}

/// TIFF field types (TIFF 6.0 and BigTIFF).
pub mod field {
    pub const BYTE: u16 = 1;
    pub const ASCII: u16 = 2;
    pub const SHORT: u16 = 3;
    pub const LONG: u16 = 4;
    pub const DOUBLE: u16 = 12;
    pub const IFD: u16 = 13;
    pub const LONG8: u16 = 16;
    pub const SLONG8: u16 = 17;
}

/// Bound on IFDs followed (a loop in a corrupt file must end).
const MAX_IFDS: usize = 1000;

/// Whether the first bytes are a TIFF or BigTIFF header.
pub fn is_tiff(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some([b'I', b'I', 42 | 43, 0]) | Some([b'M', b'M', 0, 42 | 43])
    )
}

/// Whether GDAL's COG ghost header declares a 4-byte size leader before each tile.
pub fn has_size_leaders(prefix: &[u8]) -> bool {
    let head = &prefix[..prefix.len().min(1024)];
    head.windows(26).any(|w| w == b"BLOCK_LEADER=SIZE_AS_UINT4")
}

/// Why a prefix could not be parsed: more bytes are needed, or the bytes are not a TIFF the
/// layout can be read from. Either is a [`FormatError`] to a caller that cannot read more.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TiffError {
    /// The layout needs the first `n` bytes (more than the prefix holds).
    #[error("the IFDs and tile tables need the first {0} bytes")]
    NeedPrefix(u64),
    /// Not a TIFF, or a malformed one.
    #[error(transparent)]
    Invalid(FormatError),
}

impl From<TiffError> for FormatError {
    fn from(e: TiffError) -> Self {
        match e {
            TiffError::NeedPrefix(n) => {
                FormatError::new(Format::Tiff, "prefix", TiffError::NeedPrefix(n))
            }
            TiffError::Invalid(e) => e,
        }
    }
}

/// The TIFF structure `what` at byte `at` breaks a rule: `problem`.
fn invalid(what: &str, at: u64, problem: &str) -> TiffError {
    TiffError::Invalid(FormatError::invalid(Format::Tiff, what, problem).at(at))
}

struct Prefix<'a> {
    data: &'a [u8],
    big_endian: bool,
    big_tiff: bool,
}

impl Prefix<'_> {
    fn bytes(&self, at: u64, n: u64) -> Result<&[u8], TiffError> {
        let end = at
            .checked_add(n)
            .ok_or_else(|| invalid("offset", at, "offset overflow"))?;
        if end > self.data.len() as u64 {
            return Err(TiffError::NeedPrefix(end));
        }
        Ok(&self.data[at as usize..end as usize])
    }

    fn uint(&self, at: u64, n: u64) -> Result<u64, TiffError> {
        let b = self.bytes(at, n)?;
        let mut v = 0u64;
        for i in 0..n as usize {
            let byte = if self.big_endian {
                b[i]
            } else {
                b[n as usize - 1 - i]
            };
            v = (v << 8) | byte as u64;
        }
        Ok(v)
    }

    /// The values of an IFD entry of integer type at `entry`.
    fn values(&self, entry: u64) -> Result<Vec<u64>, TiffError> {
        let typ = self.uint(entry + 2, 2)?;
        let size = match typ as u16 {
            field::SHORT => 2,
            field::LONG | field::IFD => 4,
            field::LONG8 | field::SLONG8 => 8,
            _ => {
                return Err(invalid(
                    "IFD entry",
                    entry,
                    "offsets of a type that is not an integer",
                ));
            }
        };
        let (count, inline_at, slot) = if self.big_tiff {
            (self.uint(entry + 4, 8)?, entry + 12, 8)
        } else {
            (self.uint(entry + 4, 4)?, entry + 8, 4)
        };
        let total = count
            .checked_mul(size)
            .ok_or_else(|| invalid("IFD entry", entry, "entry too large"))?;
        let at = if total <= slot {
            inline_at
        } else {
            self.uint(inline_at, slot)?
        };
        self.bytes(at, total)?;
        (0..count).map(|i| self.uint(at + i * size, size)).collect()
    }
}

/// The byte ranges of every tile (or strip) of every IFD, sorted by offset, empty ones left out.
pub fn tile_ranges(prefix: &[u8]) -> Result<Vec<Range<u64>>, TiffError> {
    if !is_tiff(prefix) {
        return Err(invalid("header", 0, "not a TIFF header"));
    }
    let big_endian = prefix[0] == b'M';
    let mut p = Prefix {
        data: prefix,
        big_endian,
        big_tiff: false,
    };
    p.big_tiff = p.uint(2, 2)? == 43;
    let mut ifd = if p.big_tiff {
        p.uint(8, 8)?
    } else {
        p.uint(4, 4)?
    };
    let (count_size, entry_size, next_size) = if p.big_tiff { (8, 20, 8) } else { (2, 12, 4) };
    let mut out = Vec::new();
    let mut seen = 0;
    while ifd != 0 {
        seen += 1;
        if seen > MAX_IFDS {
            return Err(invalid("IFD", ifd, "too many IFDs"));
        }
        let n = p.uint(ifd, count_size)?;
        let first = ifd + count_size;
        let (mut offsets, mut counts) = (None, None);
        for i in 0..n {
            let e = first + i * entry_size;
            match p.uint(e, 2)? as u16 {
                tag::TILE_OFFSETS | tag::STRIP_OFFSETS => offsets = Some(p.values(e)?),
                tag::TILE_BYTE_COUNTS | tag::STRIP_BYTE_COUNTS => counts = Some(p.values(e)?),
                _ => {}
            }
        }
        match (offsets, counts) {
            (Some(o), Some(c)) if o.len() == c.len() => out.extend(
                o.into_iter()
                    .zip(c)
                    .filter(|&(_, c)| c > 0)
                    .map(|(o, c)| o..o.saturating_add(c)),
            ),
            _ => {
                return Err(invalid(
                    "IFD",
                    ifd,
                    "an IFD without matching offsets and counts",
                ));
            }
        }
        ifd = p.uint(first + n * entry_size, next_size)?;
    }
    out.sort_by_key(|r| r.start);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{touched, units};

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/cog")
            .join(name);
        std::fs::read(p).unwrap()
    }

    #[test]
    fn fixture_cogs_parse_from_a_small_prefix() {
        for name in ["cog_ovr.tif", "cog_gradient.tif", "cog_nodata.tif"] {
            let file = fixture(name);
            let tiles = match tile_ranges(&file[..file.len().min(16 << 10)]) {
                Ok(t) => t,
                Err(TiffError::NeedPrefix(n)) => tile_ranges(&file[..n as usize]).unwrap(),
                Err(e) => panic!("{name}: {e:?}"),
            };
            assert!(!tiles.is_empty(), "{name}");
            assert!(tiles.iter().all(|t| t.end <= file.len() as u64), "{name}");
            // GDAL's COG layout, when declared: every tile has a 4-byte leader with its size.
            let leader = if has_size_leaders(&file) { 4 } else { 0 };
            for t in tiles.iter().filter(|_| leader == 4) {
                let at = t.start as usize - 4;
                let size = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
                assert_eq!(size as u64, t.end - t.start, "{name}");
            }
            let u = units(&tiles, leader, file.len() as u64);
            // Each tile lies in exactly one unit.
            for t in &tiles {
                let i = touched(&u, t.clone());
                assert_eq!(i.len(), 1, "{name}: tile {t:?}");
            }
            assert_eq!(u[0].start, 0);
            assert!(u.windows(2).all(|w| w[0].end == w[1].start));
            assert_eq!(u.last().unwrap().end, file.len() as u64);
        }
    }

    #[test]
    fn bad_input_is_refused_and_a_short_prefix_asks_for_more() {
        let Err(TiffError::Invalid(e)) = tile_ranges(b"GIF89a") else {
            panic!("not refused");
        };
        assert_eq!(
            e.to_string(),
            "unreadable TIFF header at byte 0: not a TIFF header"
        );
        let file = fixture("cog_ovr.tif");
        assert!(matches!(
            tile_ranges(&file[..10]),
            Err(TiffError::NeedPrefix(_))
        ));
        // An IFD pointing to itself ends instead of looping.
        let mut looped = b"II*\0\x08\0\0\0\x00\0".to_vec();
        looped.extend_from_slice(&8u32.to_le_bytes());
        let e = FormatError::from(tile_ranges(&looped).unwrap_err());
        assert_eq!((e.format(), e.offset()), (Format::Tiff, Some(8)));
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for n in 0..2000 {
            let mut b = vec![0u8; 8 + n % 300];
            rng.fill(&mut b[..]);
            let header: &[u8] = match n % 4 {
                0 => b"II*\0",
                1 => b"MM\0*",
                2 => b"II+\0",
                _ => b"MM\0+",
            };
            b[..4].copy_from_slice(header);
            if n % 2 == 0 {
                // A first IFD inside the buffer, so entries get parsed.
                b[4..8].copy_from_slice(&8u32.to_le_bytes());
            }
            let _ = tile_ranges(&b);
        }
    }
}
