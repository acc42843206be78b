//! How one Zarr chunk's bytes become values: the decode steps, from a v2 `.zarray`'s
//! `compressor` and `filters` or a v3 `codecs` list (as [`crate::formats::zarr`] reads them),
//! and the element type. Decoding runs the byte steps in order, reads the elements as f64 (in
//! the type the innermost filter stored), then undoes the value filters.
//!
//! Supported, in v2 as compressor or filter ids and in v3 as codec names (the numcodecs ones
//! also as `numcodecs.ID`, zarr-python 3's names, with the v2 configuration):
//! - compressors: `zlib`, `gzip`, `zstd`, `bz2`, `lz4` (numcodecs' 4-byte size + LZ4 block),
//!   `lzma` (xz with no, CRC32 or CRC64 check, or lzma-alone; no custom filter chain), `blosc`
//!   (any shuffle; lz4, lz4hc, zstd, zlib and blosclz inside, see [`crate::convert::blosc`]);
//! - filters: `shuffle`; `delta`; `fixedscaleoffset`; `quantize`,
//!   `bitround` (lossy at write time: nothing to undo but the `astype`); `astype`;
//! - checksums `crc32`, `adler32`, `crc32c`, `fletcher32`, `jenkins_lookup3` (stripped, not
//!   verified);
//! - v3 `bytes` (either endian), `crc32c` (as above), an identity `transpose`;
//!   `sharding_indexed` as an array's one codec, its index `bytes` (+ `crc32c`) at either end
//!   ([`crate::formats::zarr::Shard`]; the inner codecs as above).
//!
//! Anything else (order F, other transposes, nested sharding, other codecs or configurations)
//! is refused when the pipeline is built, with an error naming the codec: the array is then
//! not listed. A chunk that breaks its pipeline's rules (corrupt, or decoding to more than the
//! chunk) is an error for that chunk; no step allocates more than the chunk's declared size
//! plus a checksum per step (the inner stream of stacked compressors: twice that plus 64 KiB).
//!
//! Crates: `flate2` (zlib, gzip), `zstd`, `lz4_flex` (safe decoder), `lzma-rs` (pure Rust, no
//! unsafe; its xz decoder buffers a whole block, so the block's LZMA2 chunk sizes are summed
//! and bounded first, see [`xz_unpacked_size`]), `bzip2` over the pure-Rust `libbz2-rs-sys`.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::formats::zarr::{DataType, parse_v2_dtype};

/// One bytes-to-bytes decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Zlib,
    Gzip,
    Zstd,
    Bz2,
    /// numcodecs `lz4`: a little-endian u32 decoded size, then one LZ4 block.
    Lz4,
    /// numcodecs `lzma` in xz format (`format` 1).
    Xz,
    /// numcodecs `lzma` in lzma-alone format (`format` 2).
    LzmaAlone,
    Blosc,
    /// Byte unshuffle with this element size (numcodecs `shuffle`).
    Unshuffle(usize),
    /// Drop a leading 4-byte checksum (numcodecs `crc32`, `adler32`).
    StripHead,
    /// Drop a trailing 4-byte checksum (v3 `crc32c`; numcodecs `crc32c`, `fletcher32`,
    /// `jenkins_lookup3`).
    StripTail,
}

/// One value filter's decoding, on f64 values read in the filter's stored type.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Filter {
    /// numcodecs `delta`: values are the running sum in `DataType` (the type the filter
    /// decodes to).
    Delta(DataType),
    /// numcodecs `fixedscaleoffset`: `v / scale + offset`, cast to the type.
    ScaleOffset {
        scale: f64,
        offset: f64,
        to: DataType,
    },
    /// A cast to the type (numcodecs `astype`, `quantize`, `bitround` decoding).
    Cast(DataType),
}

/// The decode steps of an array's chunks, in decode order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pipeline {
    steps: Vec<Step>,
    /// The element type of the decoded bytes when a filter changed it (`None`: the array's).
    stored: Option<DataType>,
    /// Value filters, in decode order.
    filters: Vec<Filter>,
}

fn int(v: &Value, what: &str) -> Result<i64> {
    v.as_i64()
        .with_context(|| format!("{what} {v} is not an integer"))
}

/// A bytes-to-bytes codec by its numcodecs id (v3: its name, `numcodecs.` stripped) and
/// configuration; `Ok(None)` when `id` is no such codec.
fn byte_step(id: &str, conf: &Value) -> Result<Option<Step>> {
    Ok(Some(match id {
        "zlib" => Step::Zlib,
        "gzip" => Step::Gzip,
        "zstd" => Step::Zstd,
        "bz2" => Step::Bz2,
        "lz4" => Step::Lz4,
        "blosc" => {
            if let Some(c) = conf["cname"].as_str() {
                ensure!(
                    matches!(c, "lz4" | "lz4hc" | "zstd" | "zlib" | "blosclz"),
                    "codec `blosc` with cname `{c}` is not supported (lz4, lz4hc, zstd, zlib \
                     and blosclz are)"
                );
            }
            Step::Blosc
        }
        "lzma" => {
            // numcodecs: format 1 xz (the default), 2 alone, 3 raw; check -1 is the default.
            let format = match &conf["format"] {
                Value::Null => 1,
                f => int(f, "lzma format")?,
            };
            ensure!(
                conf["filters"].is_null(),
                "codec `lzma` with a filter chain is not supported (the default chain is)"
            );
            match format {
                1 => {
                    let check = match &conf["check"] {
                        Value::Null => -1,
                        c => int(c, "lzma check")?,
                    };
                    ensure!(
                        matches!(check, -1 | 0 | 1 | 4),
                        "codec `lzma` with check {check} is not supported (none, CRC32 and \
                         CRC64 are)"
                    );
                    Step::Xz
                }
                2 => Step::LzmaAlone,
                f => bail!("codec `lzma` format {f} is not supported (xz and alone are)"),
            }
        }
        // Checksums, stripped and not verified.
        "crc32" | "adler32" | "crc32c" => match conf["location"].as_str() {
            None if id == "crc32c" => Step::StripTail,
            None | Some("start") => Step::StripHead,
            Some("end") => Step::StripTail,
            Some(l) => bail!("codec `{id}` at location `{l}` is not supported"),
        },
        "fletcher32" | "jenkins_lookup3" => Step::StripTail,
        "shuffle" => {
            let size = match &conf["elementsize"] {
                Value::Null => 4,
                s => int(s, "shuffle elementsize")?,
            };
            ensure!(
                (1..=64).contains(&size),
                "codec `shuffle` with element size {size} is not supported (1 to 64 are)"
            );
            Step::Unshuffle(size as usize)
        }
        _ => return Ok(None),
    }))
}

/// A dtype field of a filter's configuration (`None` when absent).
fn dtype_field(conf: &Value, key: &str) -> Result<Option<DataType>> {
    match conf[key].as_str() {
        None => Ok(None),
        Some(s) => parse_v2_dtype(s)
            .map(Some)
            .with_context(|| format!("`{key}` `{s}`")),
    }
}

/// A value filter by its numcodecs id and configuration, given `cur`, the type of the values
/// it encodes: the filter's decoding and the type it stores. `Ok(None)`: no such filter.
fn value_filter(id: &str, conf: &Value, cur: DataType) -> Result<Option<(Filter, DataType)>> {
    let same = |key: &str| -> Result<()> {
        if let Some(d) = dtype_field(conf, key)? {
            ensure!(
                d.kind == cur.kind && d.size == cur.size,
                "filter `{id}` `{key}` is not the array's data type"
            );
        }
        Ok(())
    };
    let float = |d: DataType| -> Result<DataType> {
        ensure!(d.kind == b'f', "filter `{id}` stores a non-float type");
        Ok(d)
    };
    Ok(Some(match id {
        // numpy's `cumsum(enc, out=dec)`: the stored differences summed in the array's type.
        "delta" => {
            same("dtype")?;
            let stored = dtype_field(conf, "astype")?.unwrap_or(cur);
            (Filter::Delta(cur), stored)
        }
        "fixedscaleoffset" => {
            same("dtype")?;
            let num = |k: &str, default: f64| -> Result<f64> {
                match &conf[k] {
                    Value::Null => Ok(default),
                    v => v
                        .as_f64()
                        .filter(|f| f.is_finite())
                        .with_context(|| format!("fixedscaleoffset {k} {v} is not a number")),
                }
            };
            let (scale, offset) = (num("scale", 1.0)?, num("offset", 0.0)?);
            ensure!(scale != 0.0, "fixedscaleoffset scale is 0");
            let stored = dtype_field(conf, "astype")?.unwrap_or(cur);
            (
                Filter::ScaleOffset {
                    scale,
                    offset,
                    to: cur,
                },
                stored,
            )
        }
        "quantize" => {
            same("dtype")?;
            let stored = float(dtype_field(conf, "astype")?.unwrap_or(cur))?;
            (Filter::Cast(cur), stored)
        }
        "bitround" => {
            float(cur)?;
            (Filter::Cast(cur), cur)
        }
        "astype" => {
            same("decode_dtype")?;
            let stored = dtype_field(conf, "encode_dtype")?.unwrap_or(cur);
            (Filter::Cast(cur), stored)
        }
        _ => return Ok(None),
    }))
}

/// The pipeline's parts built from filters and codecs in encode order.
#[derive(Default)]
struct Builder {
    /// Bytes-to-bytes steps, encode order.
    steps: Vec<Step>,
    /// Value filters, encode order.
    filters: Vec<Filter>,
    stored: Option<DataType>,
}

impl Builder {
    /// Adds one filter or codec (`id`, its configuration) for an array of `dtype`.
    fn add(&mut self, id: &str, conf: &Value, dtype: DataType, what: &str) -> Result<()> {
        let id = id.strip_prefix("numcodecs.").unwrap_or(id);
        if let Some(step) = byte_step(id, conf)? {
            self.steps.push(step);
            return Ok(());
        }
        let cur = self.stored.unwrap_or(dtype);
        match value_filter(id, conf, cur)? {
            Some((f, stored)) => {
                ensure!(
                    self.steps.is_empty(),
                    "{what} `{id}` after a bytes codec is not supported"
                );
                self.filters.push(f);
                if stored != dtype || self.stored.is_some() {
                    self.stored = Some(stored);
                }
                Ok(())
            }
            None => bail!("{what} `{id}` is not supported"),
        }
    }

    fn finish(mut self) -> Pipeline {
        self.steps.reverse();
        self.filters.reverse();
        Pipeline {
            steps: self.steps,
            stored: self.stored,
            filters: self.filters,
        }
    }
}

impl Pipeline {
    /// From a v2 `.zarray`'s `order`, `compressor` and `filters`; `dtype` is the array's.
    pub(crate) fn from_v2(
        order: &Value,
        comp: &Value,
        filters: &Value,
        dtype: DataType,
    ) -> Result<Self> {
        ensure!(
            order.as_str() == Some("C"),
            "order {order} is not supported (C is)"
        );
        let filters: &[Value] = match filters {
            Value::Null => &[],
            Value::Array(f) => f,
            other => bail!("filters {other} are not a list"),
        };
        let mut b = Builder::default();
        for f in filters {
            b.add(f["id"].as_str().unwrap_or("?"), f, dtype, "filter")?;
        }
        if !comp.is_null() {
            let id = comp["id"].as_str().unwrap_or("?");
            let before = b.steps.len();
            b.add(id, comp, dtype, "compressor")?;
            ensure!(b.steps.len() > before, "compressor `{id}` is not supported");
        }
        Ok(b.finish())
    }

    /// From a v3 `codecs` list; sets `dtype`'s byte order from the `bytes` codec (and the
    /// stored type's, when an array-to-array codec changed it).
    pub(crate) fn from_v3(codecs: &Value, dtype: &mut DataType) -> Result<Self> {
        let list = codecs.as_array().context("`codecs` is not a list")?;
        let mut b = Builder::default();
        let mut seen_bytes = false;
        let mut le = true;
        for c in list {
            let name = c["name"].as_str().unwrap_or("?");
            let conf = &c["configuration"];
            match name {
                "bytes" => {
                    ensure!(!seen_bytes, "two `bytes` codecs in {codecs}");
                    le = conf["endian"].as_str() != Some("big");
                    seen_bytes = true;
                }
                "transpose" => {
                    let order = conf["order"].as_array();
                    let identity = order.is_some_and(|o| {
                        o.iter()
                            .enumerate()
                            .all(|(i, v)| v.as_u64() == Some(i as u64))
                    });
                    ensure!(identity, "codec `transpose` {conf} is not supported");
                }
                "crc32c" => b.steps.push(Step::StripTail),
                "sharding_indexed" => {
                    bail!("codec `sharding_indexed` is supported only as the array's one codec")
                }
                other => {
                    let before = b.steps.len();
                    b.add(other, conf, *dtype, "codec")?;
                    // Bytes-to-bytes codecs come after `bytes`, array-to-array ones before.
                    ensure!(
                        (b.steps.len() > before) == seen_bytes,
                        "codec `{other}` is out of place in {codecs}"
                    );
                }
            }
        }
        ensure!(seen_bytes, "no `bytes` codec in {codecs}");
        dtype.le = le;
        if let Some(s) = &mut b.stored {
            s.le = le;
        }
        Ok(b.finish())
    }

    /// Decodes one chunk of `len` elements of `dtype` (the array's) to f64 values, C order.
    pub(crate) fn decode(&self, raw: &[u8], dtype: DataType, len: usize) -> Result<Vec<f64>> {
        let stored = self.stored.unwrap_or(dtype);
        let want = len
            .checked_mul(stored.size)
            .context("chunk size overflows")?;
        // Room for a checksum per step. The last step may give no more than this; an earlier
        // one gives the next one's stream, which may be a little larger than what it encodes
        // (bz2, lzma and lz4 expand incompressible data by at most a few percent plus a
        // header): twice the chunk plus 64 KiB. A step claiming more is refused.
        let last_max = want + 4 * self.steps.len();
        let mut bytes: std::borrow::Cow<[u8]> = raw.into();
        for (i, step) in self.steps.iter().enumerate() {
            let max = if i + 1 == self.steps.len() {
                last_max
            } else {
                2 * last_max + (1 << 16)
            };
            let inflate = |r: &mut dyn Read, what: &str| -> Result<Vec<u8>> {
                let mut out = Vec::with_capacity(want);
                r.take(max as u64 + 1)
                    .read_to_end(&mut out)
                    .with_context(|| format!("{what} stream"))?;
                ensure!(out.len() <= max, "{what} stream holds more than a chunk");
                Ok(out)
            };
            let next = match *step {
                Step::Zlib => inflate(&mut flate2::read::ZlibDecoder::new(&bytes[..]), "zlib")?,
                Step::Gzip => inflate(&mut flate2::read::GzDecoder::new(&bytes[..]), "gzip")?,
                Step::Zstd => inflate(
                    &mut zstd::stream::read::Decoder::new(&bytes[..]).context("zstd stream")?,
                    "zstd",
                )?,
                Step::Bz2 => inflate(&mut bzip2::read::BzDecoder::new(&bytes[..]), "bz2")?,
                Step::Lz4 => lz4(&bytes, max)?,
                Step::Xz => {
                    let n = xz_unpacked_size(&bytes)?;
                    ensure!(n <= max as u64, "xz stream holds more than a chunk");
                    let mut out = Bounded::new(max);
                    lzma_rs::xz_decompress(&mut &bytes[..], &mut out).context("xz stream")?;
                    out.buf
                }
                Step::LzmaAlone => {
                    let mut out = Bounded::new(max);
                    let opts = lzma_rs::decompress::Options {
                        memlimit: Some(max),
                        ..Default::default()
                    };
                    lzma_rs::lzma_decompress_with_options(&mut &bytes[..], &mut out, &opts)
                        .context("lzma stream")?;
                    out.buf
                }
                Step::Blosc => crate::convert::blosc::decode(&bytes, max)?,
                Step::Unshuffle(size) => {
                    let mut out = vec![0u8; bytes.len()];
                    crate::convert::blosc::unshuffle(size, &bytes, &mut out);
                    out
                }
                Step::StripHead | Step::StripTail => {
                    ensure!(bytes.len() >= 4, "chunk shorter than its checksum");
                    let n = bytes.len() - 4;
                    match step {
                        Step::StripHead => bytes[4..].to_vec(),
                        _ => bytes[..n].to_vec(),
                    }
                }
            };
            bytes = next.into();
        }
        ensure!(
            bytes.len() == want,
            "chunk holds {} bytes, not {want}",
            bytes.len()
        );
        let mut values = to_f64(&bytes, stored);
        for f in &self.filters {
            match *f {
                Filter::Delta(d) => undelta(&mut values, d),
                Filter::ScaleOffset { scale, offset, to } => {
                    values
                        .iter_mut()
                        .for_each(|v| *v = cast(*v / scale + offset, to));
                }
                Filter::Cast(to) => values.iter_mut().for_each(|v| *v = cast(*v, to)),
            }
        }
        Ok(values)
    }
}

/// A `Write` sink that refuses more than `max` bytes.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
        }
    }
}

impl Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            return Err(std::io::Error::other("stream holds more than a chunk"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// numcodecs `lz4`: the u32 decoded size, checked against `max` before anything is allocated.
fn lz4(src: &[u8], max: usize) -> Result<Vec<u8>> {
    ensure!(src.len() >= 4, "lz4 chunk shorter than its size header");
    let n = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
    ensure!(
        n <= max,
        "lz4 chunk decodes to {n} bytes, more than a chunk"
    );
    let mut out = vec![0u8; n];
    let got = lz4_flex::block::decompress_into(&src[4..], &mut out).context("lz4 block")?;
    ensure!(got == n, "lz4 block holds {got} bytes, not {n}");
    Ok(out)
}

/// The bytes an xz stream decodes to, summed over the LZMA2 chunk headers of its blocks (what
/// `lzma-rs` would buffer), without decoding. Multi-stream files and padding are refused.
pub(super) fn xz_unpacked_size(s: &[u8]) -> Result<u64> {
    let at = |i: usize| -> Result<u8> { s.get(i).copied().context("xz stream is cut short") };
    ensure!(
        s.len() >= 12 && s[..6] == *b"\xfd7zXZ\0",
        "not an xz stream"
    );
    let check = match s[7] & 0x0f {
        0 => 0,
        1 => 4,
        4 => 8,
        0x0a => 32,
        c => bail!("xz check {c} is unknown"),
    };
    let vli = |i: &mut usize| -> Result<u64> {
        let mut v = 0u64;
        for k in 0..9 {
            let b = at(*i)?;
            *i += 1;
            v |= u64::from(b & 0x7f) << (7 * k);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("xz integer is too long")
    };
    let mut i = 12;
    let mut total = 0u64;
    loop {
        let hsize = at(i)? as usize;
        if hsize == 0 {
            // The index: the stream's blocks are all counted.
            return Ok(total);
        }
        let start = i;
        let header_end = start + (hsize + 1) * 4;
        let flags = at(i + 1)?;
        i += 2;
        ensure!(
            flags & 0x03 == 0,
            "xz block with a filter chain is not supported"
        );
        if flags & 0x40 != 0 {
            vli(&mut i)?;
        }
        if flags & 0x80 != 0 {
            vli(&mut i)?;
        }
        ensure!(vli(&mut i)? == 0x21, "xz block filter is not LZMA2");
        ensure!(i < header_end, "xz block header is cut short");
        i = header_end;
        // LZMA2 chunks up to the end marker.
        loop {
            let ctrl = at(i)?;
            i += 1;
            match ctrl {
                0 => break,
                1 | 2 => {
                    let n = u16::from_be_bytes([at(i)?, at(i + 1)?]) as u64 + 1;
                    total += n;
                    i += 2 + n as usize;
                }
                0x80..=0xff => {
                    let u = ((u64::from(ctrl & 0x1f)) << 16)
                        + u64::from(u16::from_be_bytes([at(i)?, at(i + 1)?]))
                        + 1;
                    let p = u16::from_be_bytes([at(i + 2)?, at(i + 3)?]) as usize + 1;
                    total += u;
                    i += 4 + usize::from(ctrl >= 0xc0) + p;
                }
                c => bail!("LZMA2 control byte {c:#x} is invalid"),
            }
        }
        // Block padding to a multiple of four, then the check.
        i += (4 - (i - start) % 4) % 4 + check;
    }
}

/// `v` as the type `to` holds it: f32 rounding, integer truncation and wrap-around.
fn cast(v: f64, to: DataType) -> f64 {
    match (to.kind, to.size) {
        (b'f', 4) => v as f32 as f64,
        (b'f', _) => v,
        (kind, size) => {
            let t = v.trunc();
            if !t.is_finite() {
                return 0.0;
            }
            let i = if t >= 0.0 { t as u64 as i64 } else { t as i64 };
            wrap(i, kind, size)
        }
    }
}

/// An integer as `size` bytes of `kind` hold it.
fn wrap(i: i64, kind: u8, size: usize) -> f64 {
    let shift = 64 - 8 * size as u32;
    if kind == b'u' {
        (((i as u64) << shift) >> shift) as f64
    } else {
        ((i << shift) >> shift) as f64
    }
}

fn to_f64(bytes: &[u8], dtype: DataType) -> Vec<f64> {
    let DataType { kind, size, le } = dtype;
    bytes
        .chunks_exact(size)
        .map(|b| {
            let mut a = [0u8; 8];
            if le {
                a[..size].copy_from_slice(b);
            } else {
                a[..size]
                    .iter_mut()
                    .zip(b.iter().rev())
                    .for_each(|(d, s)| *d = *s);
            }
            match (kind, size) {
                (b'f', 4) => f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
                (b'f', _) => f64::from_le_bytes(a),
                (b'u', _) => u64::from_le_bytes(a) as f64,
                _ => {
                    let shift = 64 - 8 * size as u32;
                    ((i64::from_le_bytes(a) << shift) >> shift) as f64
                }
            }
        })
        .collect()
}

/// numcodecs `delta` decoding: the running sum in the array's own type (f32 rounding,
/// integer wrap-around).
fn undelta(values: &mut [f64], dtype: DataType) {
    match (dtype.kind, dtype.size) {
        (b'f', 4) => {
            let mut acc = 0f32;
            for v in values {
                acc += *v as f32;
                *v = acc as f64;
            }
        }
        (b'f', _) => {
            let mut acc = 0f64;
            for v in values {
                acc += *v;
                *v = acc;
            }
        }
        (kind, size) => {
            let mut acc = 0i64;
            for v in values {
                acc = acc.wrapping_add(*v as i64);
                *v = wrap(acc, kind, size);
            }
        }
    }
}
