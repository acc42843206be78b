//! How one Zarr chunk's bytes become values: the element type and the decode steps, from a v2
//! `.zarray` (`compressor` and `filters`) or a v3 `codecs` list. Decoding runs the steps in
//! order and then reads the elements as f64.
//!
//! Supported: compressors/codecs `zlib`, `gzip`, `zstd`, `blosc` (any shuffle; lz4, lz4hc,
//! zstd, zlib and blosclz inside, see [`crate::convert::blosc`]) or none; v2 filters `shuffle`
//! and `delta` (when `astype` is the array's dtype and it is the first filter); v3 `bytes`
//! (either endian) and `crc32c` (stripped, not verified); `sharding_indexed` as an array's one
//! codec, its index `bytes` (+ `crc32c`) at either end ([`Sharding`]; the inner codecs as
//! above). Refused with an error naming the codec: order F, `transpose`, nested sharding,
//! other filters and codecs.

use std::io::Read;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// Element type: kind (`f`, `i`, `u`), size in bytes, little endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dtype {
    pub kind: u8,
    pub size: usize,
    pub le: bool,
}

/// A v2 dtype string (`<f4`, `>i2`, `|u1`).
pub(super) fn parse_dtype(s: &str) -> Result<Dtype> {
    let b = s.as_bytes();
    ensure!(b.len() >= 3, "dtype `{s}` is not supported");
    let size: usize = s[2..].parse().ok().context("bad dtype size")?;
    let le = b[0] != b'>';
    ensure!(
        matches!((b[1], size), (b'f', 4 | 8) | (b'i' | b'u', 1 | 2 | 4 | 8)),
        "dtype `{s}` is not supported (float32/64 and integers are)"
    );
    Ok(Dtype {
        kind: b[1],
        size,
        le,
    })
}

/// A v3 `data_type` name (`float32`, `int16`, `uint8`); its byte order comes from the
/// `bytes` codec.
pub(super) fn parse_v3_dtype(name: &str) -> Result<Dtype> {
    let (kind, bits) = if let Some(b) = name.strip_prefix("float") {
        (b'f', b)
    } else if let Some(b) = name.strip_prefix("uint") {
        (b'u', b)
    } else if let Some(b) = name.strip_prefix("int") {
        (b'i', b)
    } else {
        bail!("data type `{name}` is not supported (float32/64 and integers are)")
    };
    let size = bits.parse::<usize>().unwrap_or(0) / 8;
    ensure!(
        matches!((kind, size), (b'f', 4 | 8) | (b'i' | b'u', 1 | 2 | 4 | 8)),
        "data type `{name}` is not supported (float32/64 and integers are)"
    );
    Ok(Dtype {
        kind,
        size,
        le: true,
    })
}

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
pub(super) struct Pipeline {
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
    /// From a v2 `.zarray`; `dtype` is the array's.
    pub(super) fn from_v2(zarray: &Value, dtype: Dtype) -> Result<Self> {
        ensure!(
            zarray["order"].as_str() == Some("C"),
            "order {} is not supported (C is)",
            zarray["order"]
        );
        let mut steps = Vec::new();
        let comp = &zarray["compressor"];
        if !comp.is_null() {
            let id = comp["id"].as_str().unwrap_or("?");
            steps.push(compressor_step(id, "compressor")?);
        }
        let filters: &[Value] = match &zarray["filters"] {
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
                            .is_none_or(|s| parse_dtype(s).is_ok_and(|d| d == dtype))
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
    pub(super) fn from_v3(codecs: &Value, dtype: &mut Dtype) -> Result<Self> {
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
    pub(super) fn decode(&self, raw: &[u8], dtype: Dtype, len: usize) -> Result<Vec<f64>> {
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

fn to_f64(bytes: &[u8], dtype: Dtype) -> Vec<f64> {
    let Dtype { kind, size, le } = dtype;
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
fn undelta(values: &mut [f64], dtype: Dtype) {
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

/// A v3 `sharding_indexed` layout: each chunk object is a shard of `per` inner chunks per
/// dimension, with an index of (offset, length) pairs, little endian, at its end or start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharding {
    pub per: Vec<usize>,
    pub index_at_end: bool,
    /// The index ends with a CRC32C (index codecs `bytes`, `crc32c`).
    pub index_crc: bool,
}

impl Sharding {
    /// From the codec's configuration and the shard shape; the inner chunk shape and codecs.
    pub(super) fn from_v3<'a>(
        conf: &'a Value,
        shard_shape: &[usize],
    ) -> Result<(Self, Vec<usize>, &'a Value)> {
        let inner: Vec<usize> = conf["chunk_shape"]
            .as_array()
            .context("sharding_indexed: `chunk_shape` missing")?
            .iter()
            .map(|v| v.as_u64().map(|v| v as usize).context("not an integer"))
            .collect::<Result<_>>()?;
        ensure!(
            inner.len() == shard_shape.len()
                && inner
                    .iter()
                    .zip(shard_shape)
                    .all(|(&i, &s)| i > 0 && s % i == 0),
            "sharding_indexed: inner chunks {inner:?} do not divide shards {shard_shape:?}"
        );
        let per = inner.iter().zip(shard_shape).map(|(i, s)| s / i).collect();
        let names: Vec<&str> = conf["index_codecs"]
            .as_array()
            .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_else(|| vec!["bytes", "crc32c"]);
        let little = conf["index_codecs"]
            .as_array()
            .and_then(|l| l.first())
            .is_none_or(|c| c["configuration"]["endian"].as_str() != Some("big"));
        let index_crc = match names.as_slice() {
            ["bytes"] if little => false,
            ["bytes", "crc32c"] if little => true,
            _ => bail!(
                "sharding_indexed: index codecs {} are not supported (bytes little endian, \
                 then crc32c, are)",
                conf["index_codecs"]
            ),
        };
        Ok((
            Self {
                per,
                index_at_end: conf["index_location"].as_str() != Some("start"),
                index_crc,
            },
            inner,
            &conf["codecs"],
        ))
    }

    /// Inner chunks per shard.
    pub(super) fn count(&self) -> usize {
        self.per.iter().product()
    }

    /// Bytes of the index.
    pub fn index_len(&self) -> u64 {
        self.count() as u64 * 16 + if self.index_crc { 4 } else { 0 }
    }

    /// The byte range of the index in a shard of `size` bytes.
    pub fn index_range(&self, size: u64) -> Result<std::ops::Range<u64>> {
        let n = self.index_len();
        ensure!(size >= n, "shard of {size} bytes is shorter than its index");
        Ok(if self.index_at_end {
            size - n..size
        } else {
            0..n
        })
    }

    /// The byte range of each inner chunk (`None`: not written), checked against `size`.
    pub fn chunk_ranges(
        &self,
        index: &[u8],
        size: u64,
    ) -> Result<Vec<Option<std::ops::Range<u64>>>> {
        ensure!(
            index.len() as u64 == self.index_len(),
            "shard index holds {} bytes, not {}",
            index.len(),
            self.index_len()
        );
        index
            .chunks_exact(16)
            .take(self.count())
            .map(|e| {
                let off = u64::from_le_bytes(e[..8].try_into()?);
                let len = u64::from_le_bytes(e[8..].try_into()?);
                if off == u64::MAX && len == u64::MAX {
                    return Ok(None);
                }
                let end = off.checked_add(len).context("shard index overflows")?;
                ensure!(
                    end <= size,
                    "shard index points past the shard's {size} bytes"
                );
                Ok(Some(off..end))
            })
            .collect()
    }
}
