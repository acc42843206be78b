//! Layout of a Zarr store from its consolidated metadata (v2 `.zmetadata`, v3 `zarr.json` with
//! `consolidated_metadata`): which paths are groups and arrays, which metadata documents exist,
//! and which names can be chunks of which array. It reads layout only; what to fetch is decided
//! by the namespace.
//!
//! Invariant: a path is classified `Absent` only when the metadata settles it (a metadata
//! document name the consolidated metadata does not list); anything the metadata does not
//! describe is `Unknown` and is looked up on the server as usual.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// The metadata documents a reader may probe for, in either version.
const META_NAMES: [&str; 5] = [".zgroup", ".zarray", ".zattrs", ".zmetadata", "zarr.json"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZarrEntry {
    /// A group, an array, or an intermediate directory of `/`-separated chunk keys.
    Dir,
    /// A metadata document the store has.
    Meta,
    /// A name on an array's chunk grid: the object exists unless the chunk was never written.
    /// `whole`: readers read it whole (false for a shard, read by its index).
    Chunk { whole: bool },
    /// Settled by the metadata: no such object.
    Absent,
    /// Not described by the metadata.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyStyle {
    /// `i.j.k` or `i/j/k` (v2, and v3's `v2` encoding).
    Plain(char),
    /// `c/i/j/k` or `c.i.j.k` (v3 `default` encoding).
    Prefixed(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Array {
    /// Number of chunks along each dimension.
    grid: Vec<u64>,
    style: KeyStyle,
    /// Set for v3 arrays with the `sharding_indexed` codec: each chunk object is a shard.
    shard: Option<Shard>,
}

/// How a v3 shard is laid out: `chunks` inner chunks, indexed by 16-byte (offset, length)
/// entries plus a 4-byte CRC32C, at the end (default) or the start of the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub chunks: u64,
    pub index_at_end: bool,
}

impl Shard {
    /// Bytes of the index (with its CRC32C; other index codecs are not planned).
    pub fn index_len(&self) -> u64 {
        self.chunks * 16 + 4
    }

    /// The byte ranges of the inner chunks present, from the index bytes (little endian
    /// offset/length pairs, all ones for an absent chunk), or `None` if they do not fit `size`.
    pub fn chunk_ranges(&self, index: &[u8], size: u64) -> Option<Vec<std::ops::Range<u64>>> {
        if index.len() as u64 != self.index_len() {
            return None;
        }
        let mut out = Vec::new();
        for e in index[..index.len() - 4].chunks_exact(16) {
            let off = u64::from_le_bytes(e[..8].try_into().ok()?);
            let len = u64::from_le_bytes(e[8..].try_into().ok()?);
            if off == u64::MAX && len == u64::MAX {
                continue;
            }
            let end = off.checked_add(len)?;
            if end > size {
                return None;
            }
            out.push(off..end);
        }
        out.sort_by_key(|r| r.start);
        Some(out)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZarrLayout {
    /// Groups and arrays, relative to the store root (`""` is the root group).
    nodes: HashSet<String>,
    arrays: HashMap<String, Array>,
    /// Metadata documents present, relative to the store root.
    meta: HashSet<String>,
}

fn parent_and_name(p: &str) -> (&str, &str) {
    p.rsplit_once('/').unwrap_or(("", p))
}

fn grid(shape: &[Value], chunks: &[Value]) -> Option<Vec<u64>> {
    if shape.len() != chunks.len() {
        return None;
    }
    shape
        .iter()
        .zip(chunks)
        .map(|(s, c)| {
            let (s, c) = (s.as_u64()?, c.as_u64()?);
            (c > 0).then(|| s.div_ceil(c))
        })
        .collect()
}

impl ZarrLayout {
    /// From a v2 `.zmetadata` document.
    pub fn from_v2(zmetadata: &[u8]) -> Option<Self> {
        let doc: Value = serde_json::from_slice(zmetadata).ok()?;
        let metadata = doc.get("metadata")?.as_object()?;
        let mut l = ZarrLayout::default();
        l.nodes.insert(String::new());
        l.meta.insert(".zmetadata".into());
        for (key, value) in metadata {
            let (node, name) = parent_and_name(key);
            if !META_NAMES.contains(&name) {
                continue;
            }
            l.meta.insert(key.clone());
            l.add_node(node);
            if name == ".zarray" {
                let sep = match value.get("dimension_separator").and_then(Value::as_str) {
                    Some("/") => '/',
                    _ => '.',
                };
                let g = grid(
                    value.get("shape")?.as_array()?,
                    value.get("chunks")?.as_array()?,
                )?;
                l.arrays.insert(
                    node.to_string(),
                    Array {
                        grid: g,
                        style: KeyStyle::Plain(sep),
                        shard: None,
                    },
                );
            }
        }
        Some(l)
    }

    /// From a v3 root `zarr.json` with inline consolidated metadata.
    pub fn from_v3(zarr_json: &[u8]) -> Option<Self> {
        let doc: Value = serde_json::from_slice(zarr_json).ok()?;
        if doc.get("zarr_format")?.as_u64()? != 3 {
            return None;
        }
        let metadata = doc
            .get("consolidated_metadata")?
            .get("metadata")?
            .as_object()?;
        let mut l = ZarrLayout::default();
        l.nodes.insert(String::new());
        l.meta.insert("zarr.json".into());
        if doc.get("node_type").and_then(Value::as_str) == Some("array") {
            l.add_v3_array("", &doc)?;
        }
        for (path, value) in metadata {
            let path = path.trim_matches('/');
            l.add_node(path);
            l.meta.insert(format!("{path}/zarr.json"));
            if value.get("node_type").and_then(Value::as_str) == Some("array") {
                l.add_v3_array(path, value)?;
            }
        }
        Some(l)
    }

    fn add_v3_array(&mut self, path: &str, meta: &Value) -> Option<()> {
        let shape = meta.get("shape")?.as_array()?;
        let chunk_shape = meta
            .get("chunk_grid")?
            .get("configuration")?
            .get("chunk_shape")?
            .as_array()?;
        let enc = meta.get("chunk_key_encoding");
        let name = enc
            .and_then(|e| e.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let sep = enc
            .and_then(|e| e.get("configuration"))
            .and_then(|c| c.get("separator"))
            .and_then(Value::as_str);
        let style = match (name, sep) {
            ("v2", Some("/")) => KeyStyle::Plain('/'),
            ("v2", _) => KeyStyle::Plain('.'),
            (_, Some(".")) => KeyStyle::Prefixed('.'),
            _ => KeyStyle::Prefixed('/'),
        };
        let sharding = meta
            .get("codecs")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some("sharding_indexed"))
            })
            .and_then(|c| c.get("configuration"));
        let shard = match sharding {
            None => None,
            Some(conf) => {
                let inner = conf.get("chunk_shape").and_then(Value::as_array);
                // Inner chunks per shard; 0 (unknown) means the shard is read unplanned.
                let chunks = inner
                    .and_then(|inner| grid(chunk_shape, inner))
                    .map_or(0, |g| g.iter().product());
                let index_at_end =
                    conf.get("index_location").and_then(Value::as_str) != Some("start");
                Some(Shard {
                    chunks,
                    index_at_end,
                })
            }
        };
        self.arrays.insert(
            path.to_string(),
            Array {
                grid: grid(shape, chunk_shape)?,
                style,
                shard,
            },
        );
        Some(())
    }

    /// Records a node and every group above it.
    fn add_node(&mut self, node: &str) {
        let mut p = node;
        loop {
            self.nodes.insert(p.to_string());
            if p.is_empty() {
                break;
            }
            p = parent_and_name(p).0;
        }
    }

    /// The shard layout of `rel`, when it is a shard of a sharded array.
    pub fn shard_of(&self, rel: &str) -> Option<Shard> {
        let (parent, _) = parent_and_name(rel);
        let mut p = parent;
        loop {
            if let Some(a) = self.arrays.get(p) {
                return a.shard.filter(|s| s.chunks > 0);
            }
            if p.is_empty() {
                return None;
            }
            p = parent_and_name(p).0;
        }
    }

    /// What `rel` (relative to the store root, no leading `/`) is.
    pub fn classify(&self, rel: &str) -> ZarrEntry {
        if self.nodes.contains(rel) {
            return ZarrEntry::Dir;
        }
        if self.meta.contains(rel) {
            return ZarrEntry::Meta;
        }
        let (parent, name) = parent_and_name(rel);
        if self.nodes.contains(parent) && META_NAMES.contains(&name) {
            return ZarrEntry::Absent;
        }
        // The longest array path that is a prefix of `rel`.
        let mut p = parent;
        loop {
            if let Some(a) = self.arrays.get(p) {
                let rest = if p.is_empty() {
                    rel
                } else {
                    &rel[p.len() + 1..]
                };
                return a.classify(rest);
            }
            if p.is_empty() {
                return ZarrEntry::Unknown;
            }
            p = parent_and_name(p).0;
        }
    }
}

impl Array {
    /// `rest`: the path below the array directory.
    fn classify(&self, rest: &str) -> ZarrEntry {
        let (sep, body) = match self.style {
            KeyStyle::Plain(sep) => (sep, Some(rest)),
            KeyStyle::Prefixed(sep) => {
                if rest == "c" {
                    // 0-d array's only chunk, or the directory of `/`-separated keys.
                    return if self.grid.is_empty() {
                        self.chunk()
                    } else if sep == '/' {
                        ZarrEntry::Dir
                    } else {
                        ZarrEntry::Unknown
                    };
                }
                (sep, rest.strip_prefix(&format!("c{sep}")))
            }
        };
        let Some(body) = body else {
            return ZarrEntry::Unknown;
        };
        let parts: Vec<&str> = body.split(sep).collect();
        let n = self.grid.len().max(1);
        let grid = if self.grid.is_empty() {
            vec![1]
        } else {
            self.grid.clone()
        };
        let valid = parts.len() <= n
            && parts.iter().zip(&grid).all(|(s, &g)| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s.len() == 1 || !s.starts_with('0'))
                    && s.parse::<u64>().is_ok_and(|i| i < g)
            });
        if !valid {
            ZarrEntry::Unknown
        } else if parts.len() == n {
            self.chunk()
        } else if sep == '/' {
            ZarrEntry::Dir
        } else {
            ZarrEntry::Unknown
        }
    }

    fn chunk(&self) -> ZarrEntry {
        ZarrEntry::Chunk {
            whole: self.shard.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2() -> ZarrLayout {
        let doc = json!({
            "zarr_consolidated_format": 1,
            "metadata": {
                ".zgroup": {"zarr_format": 2},
                ".zattrs": {},
                "T2/.zarray": {"shape": [8, 120, 160], "chunks": [4, 60, 80], "zarr_format": 2},
                "T2/.zattrs": {"_ARRAY_DIMENSIONS": ["time", "y", "x"]},
                "sub/deep/.zgroup": {"zarr_format": 2},
                "sub/deep/v/.zarray": {"shape": [10], "chunks": [3], "dimension_separator": "/"},
                "crs/.zarray": {"shape": [], "chunks": []}
            }
        });
        ZarrLayout::from_v2(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    #[test]
    fn v2_names_are_settled_by_the_metadata() {
        use ZarrEntry::*;
        let l = v2();
        let whole = Chunk { whole: true };
        for (p, want) in [
            ("", Dir),
            ("T2", Dir),
            ("sub", Dir),
            ("sub/deep/v", Dir),
            (".zmetadata", Meta),
            ("T2/.zarray", Meta),
            ("T2/.zattrs", Meta),
            ("T2/.zgroup", Absent),
            ("zarr.json", Absent),
            ("sub/.zattrs", Absent),
            ("T2/0.0.0", whole.clone()),
            ("T2/1.1.1", whole.clone()),
            ("T2/2.0.0", Unknown),
            ("T2/0.0", Unknown),
            ("T2/00.0.0", Unknown),
            ("T2/0/0/0", Unknown),
            ("sub/deep/v/3", whole.clone()),
            ("sub/deep/v/4", Unknown),
            ("crs/0", whole),
            ("other", Unknown),
        ] {
            assert_eq!(l.classify(p), want, "{p}");
        }
    }

    #[test]
    fn v3_default_keys_and_shards() {
        use ZarrEntry::*;
        let doc = json!({
            "zarr_format": 3, "node_type": "group",
            "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": {
                "a": {"zarr_format": 3, "node_type": "array", "shape": [10, 10],
                      "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5, 5]}},
                      "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                      "codecs": [{"name": "bytes"}]},
                "g": {"zarr_format": 3, "node_type": "group"},
                "g/s": {"zarr_format": 3, "node_type": "array", "shape": [100],
                      "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [50]}},
                      "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [10]}}]}
            }}
        });
        let l = ZarrLayout::from_v3(&serde_json::to_vec(&doc).unwrap()).unwrap();
        for (p, want) in [
            ("a", Dir),
            ("g", Dir),
            ("a/zarr.json", Meta),
            ("g/zarr.json", Meta),
            ("a/.zarray", Absent),
            ("a/c", Dir),
            ("a/c/1", Dir),
            ("a/c/1/1", Chunk { whole: true }),
            ("a/c/2/0", Unknown),
            ("g/s/c/1", Chunk { whole: false }),
        ] {
            assert_eq!(l.classify(p), want, "{p}");
        }
        let shard = l.shard_of("g/s/c/1").unwrap();
        assert_eq!(
            shard,
            Shard {
                chunks: 5,
                index_at_end: true
            }
        );
        assert_eq!(l.shard_of("a/c/1/1"), None);
        let mut index = Vec::new();
        for (off, len) in [
            (0u64, 10u64),
            (u64::MAX, u64::MAX),
            (30, 5),
            (10, 20),
            (35, 1),
        ] {
            index.extend_from_slice(&off.to_le_bytes());
            index.extend_from_slice(&len.to_le_bytes());
        }
        index.extend_from_slice(&[0; 4]);
        assert_eq!(
            shard.chunk_ranges(&index, 200),
            Some(vec![0..10, 10..30, 30..35, 35..36])
        );
        assert_eq!(shard.chunk_ranges(&index, 30), None);
        assert_eq!(shard.chunk_ranges(&index[1..], 200), None);
        assert!(ZarrLayout::from_v3(br#"{"zarr_format": 3, "node_type": "group"}"#).is_none());
        assert!(ZarrLayout::from_v2(b"not json").is_none());
    }
}
