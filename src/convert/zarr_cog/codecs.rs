//! How one Zarr chunk's bytes become values: the decode steps, from a v2 `.zarray`'s
//! `compressor` and `filters` or a v3 `codecs` list (as [`crate::formats::zarr`] reads them),
//! and the element type. Decoding runs the steps in order and then reads the elements as f64.
//!
//! Supported: compressors/codecs `zlib`, `gzip`, `zstd`, `blosc` (any shuffle; lz4, lz4hc,
//! zstd, zlib and blosclz inside, see [`crate::convert::blosc`]) or none; v2 filters `shuffle`
//! and `delta` (when `astype` is the array's dtype and it is the first filter); v3 `bytes`
//! (either endian) and `crc32c` (stripped, not verified); `sharding_indexed` as an array's one
//! codec, its index `bytes` (+ `crc32c`) at either end ([`crate::formats::zarr::Shard`]; the
//! inner codecs as above). Refused with an error naming the codec: order F, `transpose`, nested sharding,
//! other filters and codecs.

use std::io::Read;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::formats::zarr::{DataType, parse_v2_dtype};

/// One bytes-to-bytes decode step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Zlib,
    Gzip,
    Zstd,
    Blosc,
    /// Byte unshuffle with this element size (numcodecs `shuffle`).
    Unshuffle(usize),
    /// Drop the trailing CRC32C (v3 `crc32c`).
    StripCrc,
}

/// The decode steps of an array's chunks, in decode order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pipeline {
    steps: Vec<Step>,
    /// numcodecs `delta`: values are the running sum, done last.
    delta: bool,
}

fn compressor_step(id: &str, what: &str) -> Result<Step> {
    Ok(match id {
        "zlib" => Step::Zlib,
        "gzip" => Step::Gzip,
        "zstd" => Step::Zstd,
        "blosc" => Step::Blosc,
        other => bail!(
            "{what} `{other}` is not supported (zlib, gzip, zstd, blosc or none are); \
             rewrite the array with one of those"
        ),
    })
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
        let mut steps = Vec::new();
        if !comp.is_null() {
            let id = comp["id"].as_str().unwrap_or("?");
            steps.push(compressor_step(id, "compressor")?);
        }
        let filters: &[Value] = match filters {
            Value::Null => &[],
            Value::Array(f) => f,
            other => bail!("filters {other} are not a list"),
        };
        let mut delta = false;
        for (i, f) in filters.iter().enumerate().rev() {
            match f["id"].as_str().unwrap_or("?") {
                "shuffle" => {
                    let size = f["elementsize"].as_u64().unwrap_or(4) as usize;
                    ensure!(size > 0, "filter shuffle has element size 0");
                    steps.push(Step::Unshuffle(size));
                }
                "delta" => {
                    let same = |k: &str| {
                        f[k].as_str()
                            .is_none_or(|s| parse_v2_dtype(s).is_ok_and(|d| d == dtype))
                    };
                    ensure!(
                        i == 0 && same("dtype") && same("astype"),
                        "filter {f} is not supported (delta only as the first filter, with \
                         dtype and astype the array's)"
                    );
                    delta = true;
                }
                other => bail!(
                    "filter `{other}` is not supported (shuffle and delta are); rewrite the \
                     array without it"
                ),
            }
        }
        Ok(Self { steps, delta })
    }

    /// From a v3 `codecs` list; sets `dtype`'s byte order from the `bytes` codec.
    pub(crate) fn from_v3(codecs: &Value, dtype: &mut DataType) -> Result<Self> {
        let list = codecs.as_array().context("`codecs` is not a list")?;
        let mut steps = Vec::new();
        let mut seen_bytes = false;
        for c in list {
            let name = c["name"].as_str().unwrap_or("?");
            let conf = &c["configuration"];
            match name {
                "bytes" => {
                    dtype.le = conf["endian"].as_str() != Some("big");
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
                "crc32c" => steps.push(Step::StripCrc),
                "sharding_indexed" => {
                    bail!("codec `sharding_indexed` is supported only as the array's one codec")
                }
                other => steps.push(compressor_step(other, "codec")?),
            }
        }
        ensure!(seen_bytes, "no `bytes` codec in {codecs}");
        steps.reverse();
        Ok(Self {
            steps,
            delta: false,
        })
    }

    /// Decodes one chunk of `len` elements of `dtype` to f64 values, C order.
    pub(crate) fn decode(&self, raw: &[u8], dtype: DataType, len: usize) -> Result<Vec<f64>> {
        let want = len * dtype.size;
        // Room for a checksum; any step claiming more than this is refused.
        let max = want + 4 * self.steps.len();
        let mut bytes: std::borrow::Cow<[u8]> = raw.into();
        for step in &self.steps {
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
                Step::Blosc => crate::convert::blosc::decode(&bytes, max)?,
                Step::Unshuffle(size) => {
                    let mut out = vec![0u8; bytes.len()];
                    crate::convert::blosc::unshuffle(size, &bytes, &mut out);
                    out
                }
                Step::StripCrc => {
                    ensure!(bytes.len() >= 4, "crc32c: chunk shorter than its checksum");
                    bytes[..bytes.len() - 4].to_vec()
                }
            };
            bytes = next.into();
        }
        ensure!(
            bytes.len() == want,
            "chunk holds {} bytes, not {want}",
            bytes.len()
        );
        let mut values = to_f64(&bytes, dtype);
        if self.delta {
            undelta(&mut values, dtype);
        }
        Ok(values)
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
            let shift = 64 - 8 * size as u32;
            let mut acc = 0i64;
            for v in values {
                acc = acc.wrapping_add(*v as i64);
                let wrapped = if kind == b'u' {
                    ((acc as u64) << shift >> shift) as f64
                } else {
                    ((acc << shift) >> shift) as f64
                };
                *v = wrapped;
            }
        }
    }
}
