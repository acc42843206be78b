//! The file tree of a NetCDF-4/HDF5 file's Zarr view, `NAME.nc.zarr/`: a consolidated Zarr v2
//! store with one array per root-group variable, whose chunks are the file's own stored chunks
//! ([`crate::formats::hdf5::describe`]). A chunk's bytes are the source's bytes at its range,
//! served as stored: the HDF5 filter pipeline becomes the array's numcodecs `filters` (in the
//! order the writer applied them; no `compressor`, so the Fletcher-32 checksum, applied last,
//! is undone first), so nothing is decompressed or recompressed. Nothing here does I/O.
//!
//! - Contiguous variables are cut along their first dimension into chunks of whole rows of at
//!   most [`CONTIGUOUS_CHUNK`] bytes (the largest divisor of the first dimension that fits), so
//!   each chunk is one range of the file and a read of a few rows fetches only those.
//! - Chunks the index does not list were never written: they are absent from the store, and
//!   Zarr gives the fill value, as HDF5 does.
//! - `fill_value` is the `_FillValue` attribute when there is one (xarray takes a Zarr v2
//!   array's `fill_value` as its `_FillValue`); with none, it is null unless chunks are
//!   missing, then HDF5's own fill value, which readers of the file also see there.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::{Map, Value, json};

use crate::formats::hdf5::describe::{FileDesc, Filter, Layout, Variable};

/// Contiguous variables are cut into chunks of at most this many bytes.
pub const CONTIGUOUS_CHUNK: u64 = 4 << 20;

/// What a file of the view holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// JSON metadata.
    Json(String),
    /// The source's bytes in this range.
    Source(Range<u64>),
    /// Bytes held in the source's metadata (a compact variable).
    Inline(Vec<u8>),
}

/// A file of the view: its size and content.
#[derive(Clone, Debug, PartialEq)]
pub struct NcFile {
    pub size: u64,
    pub part: Part,
}

/// The view's files by path inside the store (`.zmetadata`, `tas/.zarray`, `tas/0.1.0`).
pub type Tree = BTreeMap<String, NcFile>;

/// The store for the file described by `desc`.
pub fn store(desc: &FileDesc) -> Tree {
    let mut tree = Tree::new();
    let mut meta = Map::new();
    meta.insert(".zgroup".into(), json!({"zarr_format": 2}));
    meta.insert(".zattrs".into(), Value::Object(desc.attrs.clone()));
    for v in &desc.variables {
        let (chunks, files) = chunk_files(v);
        let mut attrs = v.attrs.clone();
        attrs.insert("_ARRAY_DIMENSIONS".into(), json!(v.dims));
        meta.insert(format!("{}/.zarray", v.name), zarray(v, &chunks, &files));
        meta.insert(format!("{}/.zattrs", v.name), Value::Object(attrs));
        for (key, part) in files {
            let size = match &part {
                Part::Source(r) => r.end - r.start,
                Part::Inline(b) => b.len() as u64,
                Part::Json(s) => s.len() as u64,
            };
            tree.insert(format!("{}/{key}", v.name), NcFile { size, part });
        }
    }
    for (path, value) in &meta {
        tree.insert(path.clone(), json_file(value));
    }
    let consolidated = json!({"zarr_consolidated_format": 1, "metadata": meta});
    tree.insert(".zmetadata".into(), json_file(&consolidated));
    tree
}

fn json_file(v: &Value) -> NcFile {
    let text = v.to_string();
    NcFile {
        size: text.len() as u64,
        part: Part::Json(text),
    }
}

/// The array's chunk shape in the view and its chunk files (key, content).
fn chunk_files(v: &Variable) -> (Vec<u64>, Vec<(String, Part)>) {
    let key = |index: &[u64]| {
        if index.is_empty() {
            "0".to_string()
        } else {
            index
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(".")
        }
    };
    let grid_shape: Vec<u64> = v.chunk_shape.iter().map(|&c| c.max(1)).collect();
    match &v.layout {
        Layout::Chunked { chunks } => {
            let files = chunks
                .iter()
                .map(|c| (key(&c.index), Part::Source(c.at..c.at + c.len)))
                .collect();
            (grid_shape, files)
        }
        Layout::Compact { data } => {
            let want = v.shape.iter().product::<u64>() * v.item_size as u64;
            let files = if data.len() as u64 == want && want > 0 {
                vec![(key(&vec![0; v.shape.len()]), Part::Inline(data.clone()))]
            } else {
                Vec::new()
            };
            (grid_shape, files)
        }
        Layout::Contiguous { at } => {
            let Some(&first) = v.shape.first() else {
                // A scalar: one chunk of one element.
                let files = at
                    .map(|(a, len)| vec![(key(&[]), Part::Source(a..a + len))])
                    .unwrap_or_default();
                return (Vec::new(), files);
            };
            let row: u64 = v.shape[1..].iter().product::<u64>() * v.item_size as u64;
            let rows = rows_per_chunk(first, row);
            let mut shape = v.shape.clone();
            shape[0] = rows;
            let shape: Vec<u64> = shape.iter().map(|&c| c.max(1)).collect();
            let mut files = Vec::new();
            if let Some((a, len)) = *at
                && len == first * row
                && row > 0
            {
                for i in 0..first / rows {
                    let mut index = vec![0; v.shape.len()];
                    index[0] = i;
                    let start = a + i * rows * row;
                    files.push((key(&index), Part::Source(start..start + rows * row)));
                }
            }
            (shape, files)
        }
    }
}

/// The largest divisor of `n` rows (each `row` bytes) whose rows fit in
/// [`CONTIGUOUS_CHUNK`]; at least 1.
fn rows_per_chunk(n: u64, row: u64) -> u64 {
    if n == 0 {
        return 1;
    }
    let most = (CONTIGUOUS_CHUNK / row.max(1)).clamp(1, n);
    (1..=most).rev().find(|d| n % d == 0).unwrap_or(1)
}

/// The `.zarray` document.
fn zarray(v: &Variable, chunks: &[u64], files: &[(String, Part)]) -> Value {
    let filters: Vec<Value> = v.filters.iter().map(codec).collect();
    let grid: u64 = v
        .shape
        .iter()
        .zip(chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .product();
    let missing = (files.len() as u64) < grid;
    let fill = match (&v.fill_attr, &v.fill) {
        (Some(b), _) => element(&v.dtype, b),
        (None, Some(b)) if missing => element(&v.dtype, b),
        _ => Value::Null,
    };
    json!({
        "zarr_format": 2,
        "shape": v.shape,
        "chunks": chunks,
        "dtype": v.dtype,
        "compressor": null,
        "fill_value": fill,
        "order": "C",
        "filters": if filters.is_empty() { Value::Null } else { Value::Array(filters) },
        "dimension_separator": ".",
    })
}

/// The numcodecs configuration of one filter.
fn codec(f: &Filter) -> Value {
    match f {
        Filter::Deflate { level } => json!({"id": "zlib", "level": level}),
        Filter::Shuffle { element_size } => json!({"id": "shuffle", "elementsize": element_size}),
        Filter::Fletcher32 => json!({"id": "fletcher32"}),
        Filter::Zstd { level } => json!({"id": "zstd", "level": level}),
        Filter::Bzip2 { level } => json!({"id": "bz2", "level": level}),
        Filter::Blosc => json!({"id": "blosc"}),
    }
}

/// One element of type `dtype` (a NumPy type string) from its bytes, as Zarr v2 writes a
/// fill value: a number, or "NaN"/"Infinity"/"-Infinity"; null for other types.
fn element(dtype: &str, b: &[u8]) -> Value {
    let (order, kind, size) = {
        let mut c = dtype.chars();
        let order = c.next().unwrap_or('<');
        let kind = c.next().unwrap_or('?');
        (order, kind, c.as_str().parse::<usize>().unwrap_or(0))
    };
    if b.len() != size || size == 0 || size > 8 {
        return Value::Null;
    }
    let mut le = b.to_vec();
    if order == '>' {
        le.reverse();
    }
    let u = le.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64);
    let bits = 8 * size as u32;
    match kind {
        'u' => json!(u),
        'i' => {
            let v = if bits < 64 && u >> (bits - 1) == 1 {
                u as i64 - (1i64 << bits)
            } else {
                u as i64
            };
            json!(v)
        }
        'f' => {
            let f = match size {
                4 => f32::from_bits(u as u32) as f64,
                8 => f64::from_bits(u),
                _ => return Value::Null,
            };
            if f.is_nan() {
                json!("NaN")
            } else if f.is_infinite() {
                json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
            } else {
                json!(f)
            }
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::hdf5::describe::StoredChunk;

    fn var(layout: Layout, shape: &[u64], chunk: &[u64]) -> Variable {
        Variable {
            name: "v".into(),
            dims: (0..shape.len()).map(|i| format!("d{i}")).collect(),
            shape: shape.to_vec(),
            dtype: "<f4".into(),
            item_size: 4,
            chunk_shape: chunk.to_vec(),
            filters: vec![
                Filter::Shuffle { element_size: 4 },
                Filter::Deflate { level: 4 },
            ],
            fill: Some(9.96921e36f32.to_le_bytes().to_vec()),
            fill_attr: None,
            attrs: Map::new(),
            layout,
        }
    }

    fn meta(tree: &Tree, path: &str) -> Value {
        match &tree[path].part {
            Part::Json(s) => serde_json::from_str(s).unwrap(),
            other => panic!("{path} is {other:?}"),
        }
    }

    #[test]
    fn chunks_are_the_files_ranges_and_filters_keep_their_order() {
        let chunks = vec![
            StoredChunk {
                index: vec![0, 0],
                at: 1000,
                len: 300,
            },
            StoredChunk {
                index: vec![1, 0],
                at: 1300,
                len: 200,
            },
        ];
        let desc = FileDesc {
            variables: vec![var(Layout::Chunked { chunks }, &[2, 10], &[1, 10])],
            ..FileDesc::default()
        };
        let tree = store(&desc);
        assert_eq!(tree["v/1.0"].part, Part::Source(1300..1500));
        assert_eq!(tree["v/1.0"].size, 200);
        let z = meta(&tree, "v/.zarray");
        assert_eq!(z["chunks"], json!([1, 10]));
        assert_eq!(z["filters"][0]["id"], "shuffle");
        assert_eq!(z["filters"][1], json!({"id": "zlib", "level": 4}));
        assert_eq!(z["compressor"], Value::Null);
        // Every chunk is stored: no fill value is shown without a `_FillValue`.
        assert_eq!(z["fill_value"], Value::Null);
        let all = meta(&tree, ".zmetadata");
        assert_eq!(
            all["metadata"]["v/.zattrs"]["_ARRAY_DIMENSIONS"],
            json!(["d0", "d1"])
        );
    }

    #[test]
    fn missing_chunks_show_the_hdf5_fill_and_a_fill_attribute_wins() {
        let chunks = vec![StoredChunk {
            index: vec![0],
            at: 0,
            len: 4,
        }];
        let mut v = var(Layout::Chunked { chunks }, &[2], &[1]);
        let tree = store(&FileDesc {
            variables: vec![v.clone()],
            ..FileDesc::default()
        });
        let fill = meta(&tree, "v/.zarray")["fill_value"].as_f64().unwrap();
        assert!((fill - 9.96921e36).abs() < 1e30);
        v.fill_attr = Some(f32::NAN.to_le_bytes().to_vec());
        let tree = store(&FileDesc {
            variables: vec![v],
            ..FileDesc::default()
        });
        assert_eq!(meta(&tree, "v/.zarray")["fill_value"], "NaN");
    }

    #[test]
    fn contiguous_variables_are_cut_into_rows_of_one_range_each() {
        // 6 rows of 1 MiB: 4 rows would fit in 4 MiB, but 4 does not divide 6; 3 does.
        let row = 1 << 20;
        let mut v = var(
            Layout::Contiguous {
                at: Some((100, 6 * row)),
            },
            &[6, row / 4],
            &[6, row / 4],
        );
        v.filters.clear();
        let tree = store(&FileDesc {
            variables: vec![v],
            ..FileDesc::default()
        });
        assert_eq!(meta(&tree, "v/.zarray")["chunks"], json!([3, row / 4]));
        assert_eq!(
            tree["v/1.0"].part,
            Part::Source(100 + 3 * row..100 + 6 * row)
        );
        assert!(!tree.contains_key("v/2.0"));
    }

    #[test]
    fn fill_values_of_each_type_are_written_as_zarr_writes_them() {
        assert_eq!(element("<i2", &(-999i16).to_le_bytes()), json!(-999));
        assert_eq!(element(">i4", &(-5i32).to_be_bytes()), json!(-5));
        assert_eq!(element("|u1", &[200]), json!(200));
        assert_eq!(
            element("<f8", &f64::INFINITY.to_le_bytes()),
            json!("Infinity")
        );
        assert_eq!(element("<f4", &[0, 0]), Value::Null);
    }
}
