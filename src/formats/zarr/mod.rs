//! Zarr metadata, v2 (`.zarray`, `.zattrs`, consolidated `.zmetadata`) and v3 (`zarr.json`,
//! inline `consolidated_metadata`): each array's shape, chunk grid, chunk keys, data type, fill
//! value, codecs (as written), `sharding_indexed` layout ([`shard`]), dimension names and
//! attributes; and from a store's consolidated metadata, its groups, arrays and metadata
//! documents ([`StoreMeta`]), from which [`layout`] settles which names exist.
//!
//! Strictness: an array document is refused ([`ArrayMeta::from_v2`], [`ArrayMeta::from_v3`])
//! only when its chunk grid cannot be read: shape and chunk shape (regular grids only) of
//! non-negative integers, equal ranks, no zero-sized chunk. The data type, codecs and
//! sharding configuration are kept as written, or as why they cannot be read, for the
//! consumer to judge: a layout needs only the grid and keys, a conversion also needs the data
//! type and codecs.
//!
//! Hand-written over `serde_json` rather than taken from `zarrs_metadata` (0.7, MSRV 1.77, so
//! usable with edition 2024 / rust-version 1.85): that crate types single v2 and v3 array and
//! group documents well (fill values, v2 and v3 data type names, dimension names), but
//! - it does not model consolidated metadata: neither v2 `.zmetadata` nor v3
//!   `consolidated_metadata` (which it keeps as an untyped additional field), so walking a
//!   store's documents stays here anyway;
//! - codec configurations stay untyped JSON (`MetadataV3::configuration`); the
//!   `sharding_indexed` configuration is only in a second crate, `zarrs_metadata_ext`;
//! - it turns on `serde_json`'s `preserve_order` and `float_roundtrip` features, which by
//!   Cargo's feature unification change every `serde_json::Map` in geomount to insertion order:
//!   the JSON documents the GRIB2 -> Zarr views serve (`.zmetadata`, `.zarray`) would change
//!   their key order and bytes;
//! - it deserialises a document whole and strictly (`zarr_format` and every v2 key required),
//!   so a store with one document it cannot type would lose its whole layout, where only the
//!   grid is needed.
//!
//! What is read here: v2 and v3 regular chunk grids; v3 `default` and `v2` chunk key
//! encodings with either separator, v2 `dimension_separator`; v2 dtypes `<f4`, `>i2`, `|u1`
//! style and v3 `float32`/`int16`/`uint8` style ([`DataType`], floats of 4 and 8 bytes and
//! integers of 1-8); fill values numbers, `"NaN"`, `"Infinity"`, `"-Infinity"`; dimension
//! names from v3 `dimension_names`, else xarray's `_ARRAY_DIMENSIONS` attribute.

pub mod layout;
pub mod shard;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::{Format, FormatError};

pub use layout::{ZarrEntry, ZarrLayout};
pub use shard::{Shard, ShardingCodec};

type Result<T> = std::result::Result<T, FormatError>;

/// The Zarr metadata `what` (a document, a field) breaks a rule: `problem`.
fn bad(what: &str, problem: impl Into<String>) -> FormatError {
    FormatError::invalid(Format::Zarr, what, problem)
}

/// The metadata documents a reader may probe for, in either version.
pub const META_NAMES: [&str; 5] = [".zgroup", ".zarray", ".zattrs", ".zmetadata", "zarr.json"];

/// Element type: kind (`f`, `i`, `u`), size in bytes, little endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataType {
    pub kind: u8,
    pub size: usize,
    pub le: bool,
}

/// A v2 dtype string (`<f4`, `>i2`, `|u1`).
pub fn parse_v2_dtype(s: &str) -> Result<DataType> {
    let b = s.as_bytes();
    if b.len() < 3 || !s.is_char_boundary(2) {
        return Err(bad("`dtype`", format!("dtype `{s}` is not supported")));
    }
    let size: usize = s[2..]
        .parse()
        .map_err(|e| FormatError::new(Format::Zarr, format!("`dtype` `{s}` size"), e))?;
    let le = b[0] != b'>';
    if !matches!((b[1], size), (b'f', 4 | 8) | (b'i' | b'u', 1 | 2 | 4 | 8)) {
        return Err(bad(
            "`dtype`",
            format!("dtype `{s}` is not supported (float32/64 and integers are)"),
        ));
    }
    Ok(DataType {
        kind: b[1],
        size,
        le,
    })
}

/// A v3 `data_type` name (`float32`, `int16`, `uint8`); its byte order comes from the
/// `bytes` codec (little endian until then).
pub fn parse_v3_dtype(name: &str) -> Result<DataType> {
    let (kind, bits) = if let Some(b) = name.strip_prefix("float") {
        (b'f', b)
    } else if let Some(b) = name.strip_prefix("uint") {
        (b'u', b)
    } else if let Some(b) = name.strip_prefix("int") {
        (b'i', b)
    } else {
        (0, "")
    };
    let size = bits.parse::<usize>().unwrap_or(0) / 8;
    if !matches!((kind, size), (b'f', 4 | 8) | (b'i' | b'u', 1 | 2 | 4 | 8)) {
        return Err(bad(
            "`data_type`",
            format!("data type `{name}` is not supported (float32/64 and integers are)"),
        ));
    }
    Ok(DataType {
        kind,
        size,
        le: true,
    })
}

/// How chunk keys are spelled below an array: `c/0/0` or `c.0.0` (v3 `default` encoding,
/// `prefix`), `0.0` or `0/0` (v2, and v3's `v2` encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkKeys {
    pub prefix: bool,
    pub sep: char,
}

impl ChunkKeys {
    /// The key of the chunk at grid coordinates `coord`, relative to the array (a 0-d array's
    /// one chunk is `c`, or `0` without the prefix).
    pub fn key(&self, coord: &[impl std::fmt::Display]) -> String {
        let mut parts: Vec<String> = coord.iter().map(ToString::to_string).collect();
        if self.prefix {
            parts.insert(0, "c".into());
        } else if parts.is_empty() {
            parts.push("0".into());
        }
        parts.join(&self.sep.to_string())
    }
}

/// An array's codecs as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Codecs {
    /// v2: the `.zarray`'s `order`, `compressor` and `filters`.
    V2 {
        order: Value,
        compressor: Value,
        filters: Value,
    },
    /// v3: the `codecs` list.
    V3(Value),
}

/// One array's metadata (a v2 `.zarray` with its `.zattrs`, or a v3 `zarr.json`).
#[derive(Clone, Debug)]
pub struct ArrayMeta {
    pub shape: Vec<u64>,
    /// The chunk grid's chunk shape: for a sharded array, the shard's.
    pub chunks: Vec<u64>,
    /// `dtype` (v2) or `data_type` (v3) as written, `None` when absent or not a string.
    pub data_type: Option<String>,
    pub fill_value: f64,
    pub keys: ChunkKeys,
    pub codecs: Codecs,
    /// Set when the v3 codecs hold `sharding_indexed` as their last (array-to-bytes) codec:
    /// its configuration, or why it cannot be read. Then each chunk object is a shard.
    pub sharding: Option<Result<ShardingCodec>>,
    /// Dimension names (an unnamed v3 dimension is `""`); empty when none are given.
    pub dims: Vec<String>,
    pub attrs: Map<String, Value>,
}

/// Non-negative integers from a JSON list.
fn ints(v: &Value, what: &str) -> Result<Vec<u64>> {
    let field = format!("`{what}`");
    v.as_array()
        .ok_or_else(|| bad(&field, "missing"))?
        .iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| bad(&field, format!("{v} is not an integer")))
        })
        .collect()
}

fn check_grid(shape: &[u64], chunks: &[u64]) -> Result<()> {
    if shape.len() != chunks.len() || chunks.contains(&0) {
        return Err(bad(
            "chunk grid",
            format!("shape {shape:?} and chunks {chunks:?} disagree"),
        ));
    }
    Ok(())
}

/// Dimension names from a JSON list (an unnamed v3 dimension is `""`).
fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A fill value as a number: `null` and other strings are NaN.
fn fill_value(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        _ => f64::NAN,
    }
}

impl ArrayMeta {
    /// From a v2 `.zarray` and its `.zattrs`, if any.
    pub fn from_v2(zarray: &Value, zattrs: Option<&Value>) -> Result<Self> {
        let shape = ints(&zarray["shape"], "shape")?;
        let chunks = ints(&zarray["chunks"], "chunks")?;
        check_grid(&shape, &chunks)?;
        let sep = if zarray["dimension_separator"].as_str() == Some("/") {
            '/'
        } else {
            '.'
        };
        let attrs = zattrs
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            shape,
            chunks,
            data_type: zarray["dtype"].as_str().map(str::to_string),
            fill_value: fill_value(&zarray["fill_value"]),
            keys: ChunkKeys { prefix: false, sep },
            codecs: Codecs::V2 {
                order: zarray["order"].clone(),
                compressor: zarray["compressor"].clone(),
                filters: zarray["filters"].clone(),
            },
            sharding: None,
            dims: names(attrs.get("_ARRAY_DIMENSIONS")),
            attrs,
        })
    }

    /// From a v3 array `zarr.json`.
    pub fn from_v3(meta: &Value) -> Result<Self> {
        let shape = ints(&meta["shape"], "shape")?;
        let grid = &meta["chunk_grid"];
        if grid["name"].as_str() != Some("regular") {
            return Err(bad(
                "`chunk_grid`",
                format!("chunk grid {} is not supported (regular is)", grid["name"]),
            ));
        }
        let chunks = ints(&grid["configuration"]["chunk_shape"], "chunk_shape")?;
        check_grid(&shape, &chunks)?;
        let enc = &meta["chunk_key_encoding"];
        let v2_keys = enc["name"].as_str() == Some("v2");
        let sep = match enc["configuration"]["separator"].as_str() {
            Some(".") => '.',
            Some("/") => '/',
            _ if v2_keys => '.',
            _ => '/',
        };
        let codecs = &meta["codecs"];
        let sharding = codecs
            .as_array()
            .and_then(|l| l.last())
            .filter(|c| c["name"].as_str() == Some("sharding_indexed"))
            .map(|c| ShardingCodec::from_v3(&c["configuration"], &chunks));
        let attrs = meta["attributes"].as_object().cloned().unwrap_or_default();
        let dims = match &meta["dimension_names"] {
            d @ Value::Array(_) => names(Some(d)),
            _ => names(attrs.get("_ARRAY_DIMENSIONS")),
        };
        Ok(Self {
            shape,
            chunks,
            data_type: meta["data_type"].as_str().map(str::to_string),
            fill_value: fill_value(&meta["fill_value"]),
            keys: ChunkKeys {
                prefix: !v2_keys,
                sep,
            },
            codecs: Codecs::V3(codecs.clone()),
            sharding,
            dims,
            attrs,
        })
    }

    /// The element type; a v3 type's byte order is the `bytes` codec's, not settled here.
    pub fn data_type(&self) -> Result<DataType> {
        match (&self.codecs, self.data_type.as_deref()) {
            (Codecs::V2 { .. }, Some(s)) => parse_v2_dtype(s),
            (Codecs::V2 { .. }, None) => Err(bad("`dtype`", "missing")),
            (Codecs::V3(_), Some(s)) => parse_v3_dtype(s),
            (Codecs::V3(_), None) => Err(bad("`data_type`", "missing")),
        }
    }

    /// Number of chunks (shards, for a sharded array) along each dimension.
    pub fn grid(&self) -> Vec<u64> {
        self.shape
            .iter()
            .zip(&self.chunks)
            .map(|(s, c)| s.div_ceil(*c))
            .collect()
    }
}

/// What a store's consolidated metadata (or, for v3, its root and other `zarr.json` documents
/// read one by one) says: paths relative to the store root, `""` the root.
#[derive(Clone, Debug, Default)]
pub struct StoreMeta {
    /// Groups and arrays the documents name (not their parent groups).
    pub nodes: BTreeSet<String>,
    /// Metadata documents present, the consolidated document included.
    pub documents: BTreeSet<String>,
    /// Arrays, each read or why not. A v3 root array is [`Self::root_array`] instead.
    pub arrays: BTreeMap<String, Result<ArrayMeta>>,
    /// A v3 root `zarr.json` that is itself an array.
    pub root_array: Option<Result<ArrayMeta>>,
    /// Whether the documents came from consolidated metadata (always for v2).
    pub consolidated: bool,
}

impl StoreMeta {
    /// From a v2 `.zmetadata` document.
    pub fn from_zmetadata(bytes: &[u8]) -> Result<Self> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
            let at = json_offset(bytes, &e);
            FormatError::new(Format::Zarr, "`.zmetadata`", e).at(at)
        })?;
        let meta = doc["metadata"]
            .as_object()
            .ok_or_else(|| bad("`.zmetadata`", "no `metadata` object"))?;
        let mut out = StoreMeta {
            consolidated: true,
            ..Default::default()
        };
        out.nodes.insert(String::new());
        out.documents.insert(".zmetadata".into());
        for (key, value) in meta {
            let (node, name) = layout::parent_and_name(key);
            if !META_NAMES.contains(&name) {
                continue;
            }
            out.documents.insert(key.clone());
            out.nodes.insert(node.to_string());
            if name == ".zarray" {
                let zattrs = if node.is_empty() {
                    meta.get(".zattrs")
                } else {
                    meta.get(&format!("{node}/.zattrs"))
                };
                let array = ArrayMeta::from_v2(value, zattrs).map_err(|e| e.of(key));
                out.arrays.insert(node.to_string(), array);
            }
        }
        Ok(out)
    }

    /// From a v3 root `zarr.json`: its `consolidated_metadata` (as zarr-python 3 and xarray
    /// write it), then `extra` (path, `zarr.json`) documents read one by one (an array among
    /// them replaces the consolidated one of that path).
    pub fn from_zarr_json(root: &[u8], extra: &[(String, Value)]) -> Result<Self> {
        let doc: Value = serde_json::from_slice(root).map_err(|e| {
            let at = json_offset(root, &e);
            FormatError::new(Format::Zarr, "`zarr.json`", e).at(at)
        })?;
        if doc["zarr_format"].as_u64() != Some(3) {
            return Err(bad("`zarr.json`", "not Zarr v3 (`zarr_format` is not 3)"));
        }
        let mut out = StoreMeta::default();
        out.nodes.insert(String::new());
        out.documents.insert("zarr.json".into());
        if doc["node_type"].as_str() == Some("array") {
            out.root_array = Some(ArrayMeta::from_v3(&doc).map_err(|e| e.of("zarr.json")));
        }
        let consolidated = doc["consolidated_metadata"]["metadata"].as_object();
        out.consolidated = consolidated.is_some();
        let docs = consolidated
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.trim_matches('/'), v))
            .chain(extra.iter().map(|(k, v)| (k.as_str(), v)));
        for (path, value) in docs {
            out.nodes.insert(path.to_string());
            out.documents.insert(format!("{path}/zarr.json"));
            if value["node_type"].as_str() == Some("array") {
                let array =
                    ArrayMeta::from_v3(value).map_err(|e| e.of(format!("{path}/zarr.json")));
                out.arrays.insert(path.to_string(), array);
            }
        }
        Ok(out)
    }
}

/// The byte offset of a JSON syntax error in `doc` (serde_json counts lines and columns).
fn json_offset(doc: &[u8], e: &serde_json::Error) -> u64 {
    let line_start: usize = doc
        .split_inclusive(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    (line_start + e.column().saturating_sub(1)) as u64
}

/// Whether a root `zarr.json` lists its arrays (consolidated metadata).
pub fn is_consolidated_v3(root: &[u8]) -> bool {
    serde_json::from_slice::<Value>(root)
        .is_ok_and(|d| d["consolidated_metadata"]["metadata"].is_object())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The same array in both versions reads to the same grid, keys, type, fill value and
    /// dimension names; what cannot be read is said, not guessed.
    #[test]
    fn v2_and_v3_documents_read_alike() {
        let v2 = ArrayMeta::from_v2(
            &json!({"shape": [5, 4], "chunks": [2, 4], "dtype": ">i2", "fill_value": "-Infinity",
                    "order": "C", "compressor": null, "filters": null, "zarr_format": 2,
                    "dimension_separator": "/"}),
            Some(&json!({"_ARRAY_DIMENSIONS": ["y", "x"], "units": "K"})),
        )
        .unwrap();
        let v3 = ArrayMeta::from_v3(&json!({"zarr_format": 3, "node_type": "array",
            "shape": [5, 4], "data_type": "int16", "fill_value": "-Infinity",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 4]}},
            "chunk_key_encoding": {"name": "v2", "configuration": {"separator": "/"}},
            "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}],
            "dimension_names": ["y", "x"], "attributes": {"units": "K"}}))
        .unwrap();
        for a in [&v2, &v3] {
            assert_eq!(
                (a.grid(), a.keys.key(&[2, 0])),
                (vec![3, 1], "2/0".to_string())
            );
            assert_eq!(a.fill_value, f64::NEG_INFINITY);
            assert_eq!(
                (a.dims.clone(), a.attrs["units"].clone()),
                (vec!["y".into(), "x".into()], json!("K"))
            );
            assert_eq!(
                (a.data_type().unwrap().kind, a.data_type().unwrap().size),
                (b'i', 2)
            );
        }
        // Byte order: v2 says it in the dtype, v3 in the `bytes` codec (read by the decoder).
        assert!(!v2.data_type().unwrap().le && v3.data_type().unwrap().le);
        let keys = ChunkKeys {
            prefix: true,
            sep: '.',
        };
        assert_eq!(
            (keys.key(&[1, 2]), keys.key(&[] as &[u64])),
            ("c.1.2".into(), "c".into())
        );
        // Unreadable grids are refused; unsupported types are kept, as errors to judge.
        assert!(ArrayMeta::from_v2(&json!({"shape": [4], "chunks": [0]}), None).is_err());
        assert!(ArrayMeta::from_v2(&json!({"shape": [4, 4], "chunks": [2]}), None).is_err());
        let rect = json!({"shape": [4], "chunk_grid": {"name": "rectilinear"}});
        assert!(ArrayMeta::from_v3(&rect).is_err());
        let odd = ArrayMeta::from_v2(
            &json!({"shape": [4], "chunks": [2], "dtype": "<M8[ns]"}),
            None,
        )
        .unwrap();
        assert!(odd.data_type().is_err());
        assert!(
            ArrayMeta::from_v2(&json!({"shape": [4], "chunks": [2]}), None)
                .unwrap()
                .data_type()
                .is_err()
        );
        // A v2 store: documents, nodes, and each array read or refused on its own.
        let store = StoreMeta::from_zmetadata(
            json!({"metadata": {".zgroup": {}, "a/.zarray": {"shape": [2], "chunks": [1]},
                   "b/.zarray": {"shape": [2]}, "notes.txt": {}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            store.documents.iter().collect::<Vec<_>>(),
            [".zgroup", ".zmetadata", "a/.zarray", "b/.zarray"]
        );
        assert!(store.arrays["a"].is_ok() && store.arrays["b"].is_err());
        assert!(StoreMeta::from_zmetadata(b"{}").is_err());
        assert!(StoreMeta::from_zarr_json(br#"{"zarr_format": 2}"#, &[]).is_err());
    }
}
