//! The v3 `sharding_indexed` codec: its configuration and the index at the end (or start) of
//! each shard.

use std::ops::Range;

use serde_json::Value;

use crate::error::{Format, FormatError};

type Result<T> = std::result::Result<T, FormatError>;

fn codec(problem: impl Into<String>) -> FormatError {
    FormatError::invalid(Format::Zarr, "codec `sharding_indexed`", problem)
}

fn bad_index(problem: impl Into<String>) -> FormatError {
    FormatError::invalid(Format::Zarr, "shard index", problem)
}

/// How a shard is laid out: `per` inner chunks along each dimension, indexed in C order by
/// 16-byte little-endian (offset, length) pairs (all ones for a chunk never written), then a
/// CRC32C when `index_crc`, at the end of the shard or (`index_at_end` false) its start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub per: Vec<usize>,
    pub index_at_end: bool,
    /// The index ends with a CRC32C (index codecs `bytes`, `crc32c`).
    pub index_crc: bool,
}

/// The `sharding_indexed` codec of an array: the shard layout, and what the inner chunks are.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardingCodec {
    pub shard: Shard,
    /// Shape of an inner chunk.
    pub chunk_shape: Vec<u64>,
    /// The inner chunks' codecs, as written.
    pub codecs: Value,
}

impl ShardingCodec {
    /// From the codec's configuration and the shard shape (the array's chunk grid).
    pub fn from_v3(conf: &Value, shard_shape: &[u64]) -> Result<Self> {
        let inner: Vec<u64> = conf["chunk_shape"]
            .as_array()
            .ok_or_else(|| codec("`chunk_shape` missing"))?
            .iter()
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| codec(format!("`chunk_shape` {v} is not an integer")))
            })
            .collect::<Result<_>>()?;
        let divides = inner.len() == shard_shape.len()
            && inner
                .iter()
                .zip(shard_shape)
                .all(|(&i, &s)| i > 0 && s % i == 0);
        if !divides {
            return Err(codec(format!(
                "inner chunks {inner:?} do not divide shards {shard_shape:?}"
            )));
        }
        let per = inner
            .iter()
            .zip(shard_shape)
            .map(|(i, s)| usize::try_from(s / i).map_err(|_| codec("too many chunks")))
            .collect::<Result<_>>()?;
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
            _ => {
                return Err(codec(format!(
                    "index codecs {} are not supported (bytes little endian, then crc32c, are)",
                    conf["index_codecs"]
                )));
            }
        };
        Ok(Self {
            shard: Shard {
                per,
                index_at_end: conf["index_location"].as_str() != Some("start"),
                index_crc,
            },
            chunk_shape: inner,
            codecs: conf["codecs"].clone(),
        })
    }
}

impl Shard {
    /// Inner chunks per shard.
    pub fn count(&self) -> usize {
        self.per.iter().product()
    }

    /// Bytes of the index.
    pub fn index_len(&self) -> u64 {
        self.count() as u64 * 16 + if self.index_crc { 4 } else { 0 }
    }

    /// The byte range of the index in a shard of `size` bytes.
    pub fn index_range(&self, size: u64) -> Result<Range<u64>> {
        let n = self.index_len();
        if size < n {
            return Err(bad_index(format!(
                "a shard of {size} bytes is shorter than its {n}-byte index"
            )));
        }
        Ok(if self.index_at_end {
            size - n..size
        } else {
            0..n
        })
    }

    /// The byte range of each inner chunk, by its position in the index (`None`: not
    /// written), checked against the shard's `size`.
    pub fn inner_ranges(&self, index: &[u8], size: u64) -> Result<Vec<Option<Range<u64>>>> {
        if index.len() as u64 != self.index_len() {
            return Err(bad_index(format!(
                "{} bytes where the index has {}",
                index.len(),
                self.index_len()
            )));
        }
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        index
            .chunks_exact(16)
            .take(self.count())
            .enumerate()
            .map(|(k, e)| {
                let (off, len) = (word(&e[..8]), word(&e[8..]));
                if off == u64::MAX && len == u64::MAX {
                    return Ok(None);
                }
                match off.checked_add(len) {
                    Some(end) if end <= size => Ok(Some(off..end)),
                    _ => Err(bad_index(format!(
                        "entry {k} ({len} bytes at {off}) lies past the shard's {size} bytes"
                    ))
                    .at(k as u64 * 16)),
                }
            })
            .collect()
    }

    /// The byte ranges of the inner chunks present, sorted by offset, or `None` if the index
    /// does not fit the shard (see [`Self::inner_ranges`]).
    pub fn chunk_ranges(&self, index: &[u8], size: u64) -> Option<Vec<Range<u64>>> {
        let mut out: Vec<Range<u64>> = self
            .inner_ranges(index, size)
            .ok()?
            .into_iter()
            .flatten()
            .collect();
        out.sort_by_key(|r| r.start);
        Some(out)
    }
}
