//! Layout of a Zarr store from its consolidated metadata (v2 `.zmetadata`, v3 `zarr.json` with
//! `consolidated_metadata`): which paths are groups and arrays, which metadata documents exist,
//! and which names can be chunks of which array. It reads layout only; what to fetch is decided
//! by the namespace.
//!
//! Invariant: a path is classified `Absent` only when the metadata settles it (a metadata
//! document name the consolidated metadata does not list); anything the metadata does not
//! describe is `Unknown` and is looked up on the server as usual. A store with an array whose
//! chunk grid cannot be read gets no layout at all.

use std::collections::{HashMap, HashSet};

use super::{ArrayMeta, ChunkKeys, META_NAMES, Shard, StoreMeta};

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
struct Array {
    /// Number of chunks along each dimension.
    grid: Vec<u64>,
    keys: ChunkKeys,
    /// Each chunk object is a shard (the `sharding_indexed` codec).
    sharded: bool,
    /// The shard layout, when its configuration could be read.
    shard: Option<Shard>,
}

impl Array {
    fn new(meta: &ArrayMeta) -> Self {
        Array {
            grid: meta.grid(),
            keys: meta.keys,
            sharded: meta.sharding.is_some(),
            shard: meta
                .sharding
                .as_ref()
                .and_then(|s| s.as_ref().ok())
                .map(|s| s.shard.clone()),
        }
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

pub(super) fn parent_and_name(p: &str) -> (&str, &str) {
    p.rsplit_once('/').unwrap_or(("", p))
}

impl ZarrLayout {
    /// From a v2 `.zmetadata` document.
    pub fn from_v2(zmetadata: &[u8]) -> Option<Self> {
        Self::from_store(&StoreMeta::from_zmetadata(zmetadata).ok()?)
    }

    /// From a v3 root `zarr.json` with inline consolidated metadata.
    pub fn from_v3(zarr_json: &[u8]) -> Option<Self> {
        let store = StoreMeta::from_zarr_json(zarr_json, &[]).ok()?;
        if !store.consolidated {
            return None;
        }
        Self::from_store(&store)
    }

    fn from_store(store: &StoreMeta) -> Option<Self> {
        let mut l = ZarrLayout::default();
        for node in &store.nodes {
            l.add_node(node);
        }
        l.meta.extend(store.documents.iter().cloned());
        let root = store.root_array.as_ref().map(|a| ("", a));
        for (path, array) in store
            .arrays
            .iter()
            .map(|(p, a)| (p.as_str(), a))
            .chain(root)
        {
            l.arrays
                .insert(path.to_string(), Array::new(array.as_ref().ok()?));
        }
        Some(l)
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
                return a.shard.clone();
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
        let sep = self.keys.sep;
        let body = if !self.keys.prefix {
            Some(rest)
        } else if rest == "c" {
            // 0-d array's only chunk, or the directory of `/`-separated keys.
            return if self.grid.is_empty() {
                self.chunk()
            } else if sep == '/' {
                ZarrEntry::Dir
            } else {
                ZarrEntry::Unknown
            };
        } else {
            rest.strip_prefix(&format!("c{sep}"))
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
            whole: !self.sharded,
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
        assert_eq!((shard.count(), shard.index_at_end), (5, true));
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

    /// The index of a shard is as long as its index codecs say (no CRC32C with `bytes` alone),
    /// a shard read whole when `sharding_indexed` is not the last codec, and an array whose
    /// grid cannot be read leaves the store without a layout.
    #[test]
    fn shard_index_codecs_and_unreadable_grids() {
        let array = |codecs: serde_json::Value| {
            json!({"zarr_format": 3, "node_type": "array", "shape": [8],
                   "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4]}},
                   "codecs": codecs})
        };
        let root = |arrays: serde_json::Value| {
            let doc = json!({"zarr_format": 3, "node_type": "group",
                "consolidated_metadata": {"kind": "inline", "must_understand": false,
                                          "metadata": arrays}});
            ZarrLayout::from_v3(&serde_json::to_vec(&doc).unwrap())
        };
        let sharded = json!({"name": "sharding_indexed", "configuration": {
            "chunk_shape": [2], "index_codecs": [{"name": "bytes"}], "index_location": "start"}});
        let l = root(json!({
            "plain": array(json!([sharded.clone()])),
            "wrapped": array(json!([sharded, {"name": "zstd"}])),
        }))
        .unwrap();
        let shard = l.shard_of("plain/c/1").unwrap();
        assert_eq!((shard.count(), shard.index_len()), (2, 32));
        assert!(!shard.index_at_end && !shard.index_crc);
        assert_eq!(l.classify("plain/c/1"), ZarrEntry::Chunk { whole: false });
        assert_eq!(l.shard_of("wrapped/c/1"), None);
        assert_eq!(l.classify("wrapped/c/1"), ZarrEntry::Chunk { whole: true });
        let mut bad = array(json!([]));
        bad["chunk_grid"]["configuration"]["chunk_shape"] = json!([0]);
        assert!(root(json!({"bad": bad})).is_none());
    }
}
