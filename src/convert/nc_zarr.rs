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
//! - Variables whose values the description holds (small coordinates) are served from them:
//!   one chunk, unfiltered.
//!
//! [`concat`] makes the store of a folder of files that differ along one record dimension
//! (`DIR.zarr/`): each array's chunks are the files' chunks, their grid indexes shifted along
//! that dimension by the files before, so every file but the last must hold whole chunks
//! along it; record coordinates are joined from their values.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde_json::{Map, Value, json};

use super::cf_time::{TimeUnits, units_of};
use crate::formats::hdf5::describe::{FileDesc, Filter, Layout, Variable};

/// Contiguous variables are cut into chunks of at most this many bytes.
pub const CONTIGUOUS_CHUNK: u64 = 4 << 20;
/// Adjacent chunks are read in units of at most this many bytes ([`group_units`]).
pub const UNIT_MAX: u64 = 1 << 20;
/// Chunks at most this many bytes apart are adjacent.
const UNIT_GAP: u64 = 64 << 10;

/// What a file of the view holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// JSON metadata.
    Json(String),
    /// The bytes of source file `file` (its index in the view's files) in `range`, read as
    /// part of `unit`: the run of the array's adjacent chunks in that file it belongs to.
    Source {
        file: usize,
        range: Range<u64>,
        unit: Range<u64>,
    },
    /// Bytes held in the view (a compact variable, or values read while describing).
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

/// An array of the view: the variable it shows (type, fill value, attributes), its shape,
/// chunk shape and filters, and its chunk files (key, content).
struct Array<'a> {
    var: &'a Variable,
    shape: Vec<u64>,
    chunks: Vec<u64>,
    filters: &'a [Filter],
    files: Vec<(String, Part)>,
}

/// The store for the file described by `desc` (its source file is file 0).
pub fn store(desc: &FileDesc) -> Tree {
    tree(&desc.attrs, desc.variables.iter().map(|v| one_file(v, 0)))
}

/// The store joining `files` (name, description; in order, the source file index is the
/// position here) along their record dimension, or why they cannot be joined. Global and
/// variable attributes come from the first file; variables without the record dimension too.
pub fn concat(files: &[(&str, &FileDesc)]) -> Result<Tree, String> {
    let (first_name, first) = *files.first().ok_or("no files")?;
    let names =
        |d: &FileDesc| -> BTreeSet<String> { d.variables.iter().map(|v| v.name.clone()).collect() };
    let want = names(first);
    for (name, d) in &files[1..] {
        let got = names(d);
        if let Some(v) = want.symmetric_difference(&got).next() {
            let (has, lacks) = if got.contains(v) {
                (name, &first_name)
            } else {
                (&first_name, name)
            };
            return Err(format!("'{v}' is a variable of {has} but not of {lacks}"));
        }
    }
    let record = record_dim(files)?;
    let mut arrays = Vec::new();
    for v in &first.variables {
        let vs: Vec<&Variable> = files
            .iter()
            .filter_map(|(_, d)| d.variables.iter().find(|w| w.name == v.name))
            .collect();
        let Some(axis) = v.dims.iter().position(|d| *d == record) else {
            if let Some((name, w)) = files.iter().zip(&vs).find(|(_, w)| w.shape != v.shape) {
                return Err(format!(
                    "'{}' has shape {:?} in {first_name} but {:?} in {}, and does not run \
                     along '{record}'",
                    v.name, v.shape, w.shape, name.0
                ));
            }
            arrays.push(one_file(v, 0));
            continue;
        };
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        arrays.push(along(&names, &vs, axis, &record)?);
    }
    Ok(tree(&first.attrs, arrays.into_iter()))
}

/// The dimension the files differ along: the one whose length differs between them; with
/// equal lengths, the one unlimited dimension, else the one CF time coordinate, else `time`.
fn record_dim(files: &[(&str, &FileDesc)]) -> Result<String, String> {
    let first = files[0].1;
    let len_of = |d: &FileDesc, dim: &str| {
        d.variables
            .iter()
            .find_map(|v| v.dims.iter().position(|x| x == dim).map(|i| v.shape[i]))
    };
    let dims: BTreeSet<&str> = first
        .variables
        .iter()
        .flat_map(|v| v.dims.iter().map(String::as_str))
        .collect();
    let differ: Vec<&str> = dims
        .iter()
        .copied()
        .filter(|dim| {
            files
                .iter()
                .any(|(_, d)| len_of(d, dim) != len_of(first, dim))
        })
        .collect();
    match differ.as_slice() {
        [one] => return Ok(one.to_string()),
        [] => {}
        many => {
            return Err(format!(
                "dimensions {} differ in length between the files (one record dimension only)",
                many.join(", ")
            ));
        }
    }
    let unlimited: BTreeSet<&str> = first
        .variables
        .iter()
        .flat_map(|v| v.dims.iter().zip(&v.unlimited))
        .filter(|(_, u)| **u)
        .map(|(d, _)| d.as_str())
        .collect();
    let timed: Vec<&str> = dims
        .iter()
        .copied()
        .filter(|dim| {
            first.variables.iter().any(|v| {
                v.name == *dim
                    && v.attrs
                        .get("units")
                        .and_then(Value::as_str)
                        .is_some_and(|u| u.contains(" since "))
            })
        })
        .collect();
    if let [one] = unlimited.iter().collect::<Vec<_>>().as_slice() {
        Ok(one.to_string())
    } else if let [one] = timed.as_slice() {
        Ok(one.to_string())
    } else if dims.contains("time") {
        Ok("time".into())
    } else {
        Err(
            "no record dimension: none differs in length between the files, and none is \
             the one unlimited dimension, a CF time coordinate or named 'time'"
                .into(),
        )
    }
}

/// Attributes that give stored values their meaning: a record variable joined as stored
/// needs the same in every file.
const MEANING: &[&str] = &["units", "calendar", "scale_factor", "add_offset"];

/// Variable `vs[i]` of each file `names[i]`, joined along dimension `axis` (`record`).
fn along<'a>(
    names: &[&str],
    vs: &[&'a Variable],
    axis: usize,
    record: &str,
) -> Result<Array<'a>, String> {
    let v0 = vs[0];
    let var = &v0.name;
    for (name, v) in names.iter().zip(vs).skip(1) {
        let why = if v.dims != v0.dims {
            format!("dimensions {:?} but {:?}", v.dims, v0.dims)
        } else if v.dtype != v0.dtype {
            format!("type {} but {}", v.dtype, v0.dtype)
        } else if let Some(i) = (0..v.shape.len()).find(|&i| i != axis && v.shape[i] != v0.shape[i])
        {
            format!("{} {} but {}", v.dims[i], v.shape[i], v0.shape[i])
        } else if let Some(a) = MEANING
            .iter()
            .filter(|a| **a != "units" || rebased(v, v0).is_none())
            .find(|a| v.attrs.get(**a) != v0.attrs.get(**a))
        {
            format!("another '{a}'")
        } else if v.fill_attr != v0.fill_attr {
            "another '_FillValue'".into()
        } else {
            continue;
        };
        return Err(format!("'{var}' has {why} in {name} than in {}", names[0]));
    }
    let lens: Vec<u64> = vs.iter().map(|v| v.shape[axis]).collect();
    let mut shape = v0.shape.clone();
    shape[axis] = lens.iter().sum();
    // C order: values joined along the first dimension are the files' values one after another.
    if axis == 0 && vs.iter().all(|v| v.values.is_some()) {
        let mut values = Vec::new();
        for (name, v) in names.iter().zip(vs) {
            let own = v.values.as_deref().unwrap_or_default();
            match rebased(v, v0) {
                Some((from, to)) if from != to => values.extend(
                    rebase(own, &v.dtype, &from, &to)
                        .map_err(|why| format!("'{var}' in {name}: {why}"))?,
                ),
                _ => values.extend_from_slice(own),
            }
        }
        return Ok(inline(v0, shape, values));
    }
    if let Some((name, _)) = names.iter().zip(vs).find(|(_, v)| v.filters != v0.filters) {
        return Err(format!(
            "'{var}' has other filters in {name} than in {}",
            names[0]
        ));
    }
    let mut files = Vec::new();
    let mut offset = 0;
    let last = vs.len() - 1;
    let chunks = match &v0.layout {
        Layout::Chunked { .. } => {
            let c = v0.chunk_shape[axis].max(1);
            for (i, (name, v)) in names.iter().zip(vs).enumerate() {
                let Layout::Chunked { chunks } = &v.layout else {
                    return Err(format!("'{var}' is not chunked in {name}"));
                };
                if v.chunk_shape != v0.chunk_shape {
                    return Err(format!(
                        "'{var}' has chunks {:?} in {name} but {:?} in {}",
                        v.chunk_shape, v0.chunk_shape, names[0]
                    ));
                }
                if i < last && lens[i] % c != 0 {
                    return Err(not_whole(var, name, lens[i], record, c));
                }
                for ch in chunks {
                    let mut index = ch.index.clone();
                    index[axis] += offset / c;
                    let range = ch.at..ch.at + ch.len;
                    files.push((chunk_key(&index), source(i, range)));
                }
                offset += lens[i];
            }
            v0.chunk_shape.iter().map(|&c| c.max(1)).collect()
        }
        Layout::Contiguous { .. } if axis == 0 => {
            let row: u64 = v0.shape[1..].iter().product::<u64>() * v0.item_size as u64;
            let rows = rows_per_chunk(lens.iter().copied().fold(0, gcd), row);
            for (i, (name, v)) in names.iter().zip(vs).enumerate() {
                let Layout::Contiguous { at } = &v.layout else {
                    return Err(format!("'{var}' is not contiguous in {name}"));
                };
                if let Some((a, len)) = *at
                    && len == lens[i] * row
                {
                    for k in 0..lens[i] / rows {
                        let mut index = vec![0; v0.shape.len()];
                        index[0] = offset / rows + k;
                        let start = a + k * rows * row;
                        let range = start..start + rows * row;
                        files.push((chunk_key(&index), source(i, range)));
                    }
                }
                offset += lens[i];
            }
            let mut chunks: Vec<u64> = v0.shape.iter().map(|&c| c.max(1)).collect();
            chunks[0] = rows;
            chunks
        }
        _ => {
            return Err(format!(
                "'{var}' is stored whole, not in chunks, and runs along '{record}' in its \
                 dimension {axis}: only chunks or a first dimension can be joined"
            ));
        }
    };
    Ok(Array {
        var: v0,
        shape,
        chunks,
        filters: &v0.filters,
        files,
    })
}

/// The CF time units of `v` and of `v0` when `v`'s values can be given in `v0`'s units
/// (both are time coordinates with values, in Gregorian calendars).
fn rebased(v: &Variable, v0: &Variable) -> Option<(TimeUnits, TimeUnits)> {
    if v.values.is_none() || v.attrs.get("calendar") != v0.attrs.get("calendar") {
        return None;
    }
    Some((units_of(&v.attrs)?, units_of(&v0.attrs)?))
}

/// Time values `raw` (elements of `dtype`) in units `from`, given in units `to`; integers
/// must stay whole.
fn rebase(raw: &[u8], dtype: &str, from: &TimeUnits, to: &TimeUnits) -> Result<Vec<u8>, String> {
    let big = dtype.starts_with('>');
    let mut out = Vec::with_capacity(raw.len());
    let kind = &dtype[1.min(dtype.len())..];
    let step = match kind {
        "f8" | "i8" => 8,
        "f4" | "i4" => 4,
        _ => {
            return Err(format!(
                "its type {dtype} is not a time type that can be rebased"
            ));
        }
    };
    if raw.len() % step != 0 {
        return Err("its values are not whole elements".into());
    }
    for e in raw.chunks_exact(step) {
        let mut b = [0u8; 8];
        b[..step].copy_from_slice(e);
        if big {
            b[..step].reverse();
        }
        let v = match kind {
            "f8" => f64::from_le_bytes(b),
            "f4" => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            "i8" => i64::from_le_bytes(b) as f64,
            _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        };
        let r = from.rebase(v, to);
        let mut le: Vec<u8> = match kind {
            "f8" => r.to_le_bytes().to_vec(),
            "f4" => (r as f32).to_le_bytes().to_vec(),
            _ if (r - r.round()).abs() > 1e-9 => {
                return Err(format!(
                    "{v} in its units is {r} in the first file's: not a whole number for {dtype}"
                ));
            }
            "i8" => (r.round() as i64).to_le_bytes().to_vec(),
            _ => (r.round() as i32).to_le_bytes().to_vec(),
        };
        if big {
            le.reverse();
        }
        out.extend_from_slice(&le);
    }
    Ok(out)
}

/// Chunk bytes `range` of source `file`, as its own unit until [`group_units`] joins it.
fn source(file: usize, range: Range<u64>) -> Part {
    Part::Source {
        file,
        unit: range.clone(),
        range,
    }
}

/// Each file's chunks of one array are read in units of adjacent chunks (gaps of at most
/// [`UNIT_GAP`] bytes between them, read too) of at most [`UNIT_MAX`] bytes: a reader of
/// consecutive chunks (a point's series) then makes one GET per unit, as a plain reader of the
/// file does per block, not one per chunk; a chunk of [`UNIT_MAX`] or more is a unit alone.
fn group_units(files: &mut [(String, Part)]) {
    let mut order: Vec<usize> = (0..files.len())
        .filter(|&i| matches!(files[i].1, Part::Source { .. }))
        .collect();
    let at = |p: &Part| match p {
        Part::Source { file, range, .. } => (*file, range.clone()),
        _ => (0, 0..0),
    };
    order.sort_by_key(|&i| {
        let (f, r) = at(&files[i].1);
        (f, r.start)
    });
    let mut k = 0;
    while k < order.len() {
        let (file, first) = at(&files[order[k]].1);
        let mut end = first.end;
        let mut j = k + 1;
        while j < order.len() {
            let (f, r) = at(&files[order[j]].1);
            if f != file
                || r.start < end
                || r.start - end > UNIT_GAP
                || r.end - first.start > UNIT_MAX
            {
                break;
            }
            end = r.end;
            j += 1;
        }
        for &i in &order[k..j] {
            if let Part::Source { unit, .. } = &mut files[i].1 {
                *unit = first.start..end;
            }
        }
        k = j;
    }
}

fn not_whole(var: &str, file: &str, len: u64, record: &str, chunk: u64) -> String {
    format!(
        "'{var}' has {len} steps along '{record}' in {file}, not a multiple of its chunk \
         ({chunk}): chunks of the files after it would not fall on the chunk grid"
    )
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn tree<'a>(attrs: &Map<String, Value>, arrays: impl Iterator<Item = Array<'a>>) -> Tree {
    let mut tree = Tree::new();
    let mut meta = Map::new();
    meta.insert(".zgroup".into(), json!({"zarr_format": 2}));
    meta.insert(".zattrs".into(), Value::Object(attrs.clone()));
    for mut a in arrays {
        group_units(&mut a.files);
        let v = a.var;
        let mut attrs = v.attrs.clone();
        attrs.insert("_ARRAY_DIMENSIONS".into(), json!(v.dims));
        meta.insert(format!("{}/.zarray", v.name), zarray(&a));
        meta.insert(format!("{}/.zattrs", v.name), Value::Object(attrs));
        for (key, part) in a.files {
            let size = match &part {
                Part::Source { range, .. } => range.end - range.start,
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

/// A chunk's key: its grid index joined by dots (`0` for a scalar).
fn chunk_key(index: &[u64]) -> String {
    if index.is_empty() {
        return "0".to_string();
    }
    index
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// An array of one chunk holding `values` (unfiltered) in `shape`.
fn inline(v: &Variable, shape: Vec<u64>, values: Vec<u8>) -> Array<'_> {
    let key = chunk_key(&vec![0; shape.len()]);
    Array {
        var: v,
        chunks: shape.iter().map(|&c| c.max(1)).collect(),
        shape,
        filters: &[],
        files: vec![(key, Part::Inline(values))],
    }
}

/// Variable `v` of source file `file` as an array.
fn one_file(v: &Variable, file: usize) -> Array<'_> {
    if let Some(values) = &v.values {
        return inline(v, v.shape.clone(), values.clone());
    }
    let (chunks, files) = chunk_files(v, file);
    Array {
        var: v,
        shape: v.shape.clone(),
        chunks,
        filters: &v.filters,
        files,
    }
}

/// The array's chunk shape in the view and its chunk files (key, content) in source `file`.
fn chunk_files(v: &Variable, file: usize) -> (Vec<u64>, Vec<(String, Part)>) {
    let source = |range: Range<u64>| source(file, range);
    let grid_shape: Vec<u64> = v.chunk_shape.iter().map(|&c| c.max(1)).collect();
    match &v.layout {
        Layout::Chunked { chunks } => {
            let files = chunks
                .iter()
                .map(|c| (chunk_key(&c.index), source(c.at..c.at + c.len)))
                .collect();
            (grid_shape, files)
        }
        Layout::Compact { data } => {
            let want = v.shape.iter().product::<u64>() * v.item_size as u64;
            let files = if data.len() as u64 == want && want > 0 {
                vec![(
                    chunk_key(&vec![0; v.shape.len()]),
                    Part::Inline(data.clone()),
                )]
            } else {
                Vec::new()
            };
            (grid_shape, files)
        }
        Layout::Contiguous { at } => {
            let Some(&first) = v.shape.first() else {
                // A scalar: one chunk of one element.
                let files = at
                    .map(|(a, len)| vec![(chunk_key(&[]), source(a..a + len))])
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
                    files.push((chunk_key(&index), source(start..start + rows * row)));
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
fn zarray(a: &Array) -> Value {
    let v = a.var;
    let filters: Vec<Value> = a.filters.iter().map(codec).collect();
    let grid: u64 = a
        .shape
        .iter()
        .zip(&a.chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .product();
    let missing = (a.files.len() as u64) < grid;
    let fill = match (&v.fill_attr, &v.fill) {
        (Some(b), _) => element(&v.dtype, b),
        (None, Some(b)) if missing => element(&v.dtype, b),
        _ => Value::Null,
    };
    json!({
        "zarr_format": 2,
        "shape": a.shape,
        "chunks": a.chunks,
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
            unlimited: vec![false; shape.len()],
            values: None,
        }
    }

    /// The source file and range of a chunk.
    fn source_of(tree: &Tree, path: &str) -> (usize, Range<u64>) {
        match &tree[path].part {
            Part::Source { file, range, .. } => (*file, range.clone()),
            other => panic!("{path} is {other:?}"),
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
        assert_eq!(source_of(&tree, "v/1.0"), (0, 1300..1500));
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
        assert_eq!(source_of(&tree, "v/1.0"), (0, 100 + 3 * row..100 + 6 * row));
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

    /// A (time, x) variable of `steps` steps in chunks of `chunk` steps, stored at `at`.., and
    /// a time coordinate with values `first..first+steps`.
    fn yearly(steps: u64, chunk: u64, at: u64, first: u64) -> FileDesc {
        let chunks = (0..steps.div_ceil(chunk))
            .map(|i| StoredChunk {
                index: vec![i, 0],
                at: at + 100 * i,
                len: 100,
            })
            .collect();
        let mut tas = var(Layout::Chunked { chunks }, &[steps, 10], &[chunk, 10]);
        tas.name = "tas".into();
        tas.dims = vec!["time".into(), "x".into()];
        tas.unlimited = vec![true, false];
        let mut time = var(
            Layout::Contiguous {
                at: Some((0, 8 * steps)),
            },
            &[steps],
            &[steps],
        );
        time.name = "time".into();
        time.dims = vec!["time".into()];
        time.dtype = "<i8".into();
        time.item_size = 8;
        time.filters.clear();
        time.attrs
            .insert("units".into(), json!("days since 2000-01-01"));
        time.values = Some(
            (first..first + steps)
                .flat_map(|t| (t as i64).to_le_bytes())
                .collect(),
        );
        let mut x = var(
            Layout::Contiguous {
                at: Some((5000, 40)),
            },
            &[10],
            &[10],
        );
        x.name = "x".into();
        x.dims = vec!["x".into()];
        x.filters.clear();
        FileDesc {
            variables: vec![time, tas, x],
            ..FileDesc::default()
        }
    }

    #[test]
    fn files_are_joined_chunk_for_chunk_along_the_record_dimension() {
        let (a, b, c) = (
            yearly(4, 2, 1000, 0),
            yearly(6, 2, 2000, 4),
            yearly(3, 2, 3000, 10),
        );
        let tree = concat(&[("a.nc", &a), ("b.nc", &b), ("c.nc", &c)]).unwrap();
        let z = meta(&tree, "tas/.zarray");
        assert_eq!(z["shape"], json!([13, 10]));
        assert_eq!(z["chunks"], json!([2, 10]));
        // b's first chunk follows a's two; c's last (partial) chunk is the view's last.
        assert_eq!(source_of(&tree, "tas/2.0"), (1, 2000..2100));
        assert_eq!(source_of(&tree, "tas/6.0"), (2, 3100..3200));
        assert!(!tree.contains_key("tas/7.0"));
        // The record coordinate is the files' values joined, one chunk, unfiltered.
        let Part::Inline(t) = &tree["time/0"].part else {
            panic!("time is not inline");
        };
        let days: Vec<i64> = t
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(days, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(meta(&tree, "time/.zarray")["filters"], Value::Null);
        // A variable without the record dimension comes from the first file.
        assert_eq!(source_of(&tree, "x/0"), (0, 5000..5040));
    }

    #[test]
    fn files_whose_chunks_do_not_line_up_are_not_joined_and_say_why() {
        // a holds 3 steps in chunks of 2: b's chunks would start mid-chunk.
        let (a, b) = (yearly(3, 2, 1000, 0), yearly(4, 2, 2000, 3));
        let why = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap_err();
        assert!(
            why.contains("'tas' has 3 steps along 'time' in a.nc"),
            "{why}"
        );
        let (a, b) = (yearly(4, 2, 1000, 0), yearly(4, 4, 2000, 4));
        let why = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap_err();
        assert!(why.contains("chunks [4, 10] in b.nc"), "{why}");
        let mut b = yearly(4, 2, 2000, 4);
        b.variables.pop();
        let why = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap_err();
        assert_eq!(why, "'x' is a variable of a.nc but not of b.nc");
        let mut b = yearly(4, 2, 2000, 4);
        b.variables[0].attrs.insert("units".into(), json!("K"));
        let why = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap_err();
        assert!(why.contains("another 'units'"), "{why}");
        b.variables[0]
            .attrs
            .insert("units".into(), json!("days since 2000-01-01 12:00"));
        let why = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap_err();
        assert!(why.contains("not a whole number for <i8"), "{why}");
    }

    #[test]
    fn with_equal_lengths_the_record_dimension_is_the_unlimited_one() {
        let (a, b) = (yearly(4, 2, 1000, 0), yearly(4, 2, 2000, 4));
        let tree = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap();
        assert_eq!(meta(&tree, "tas/.zarray")["shape"], json!([8, 10]));
        let mut a = a;
        let mut b = b;
        for d in [&mut a, &mut b] {
            for v in &mut d.variables {
                v.unlimited.iter_mut().for_each(|u| *u = false);
                if v.name == "time" {
                    v.name = "t".into();
                }
                for dim in &mut v.dims {
                    if dim == "time" {
                        *dim = "t".into();
                    }
                }
            }
        }
        // `t` is still a CF time coordinate.
        assert!(concat(&[("a.nc", &a), ("b.nc", &b)]).is_ok());
        for d in [&mut a, &mut b] {
            d.variables[0].attrs.remove("units");
        }
        let why = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap_err();
        assert!(why.starts_with("no record dimension"), "{why}");
    }

    #[test]
    fn time_values_with_another_reference_date_are_given_in_the_first_files_units() {
        let a = yearly(4, 2, 1000, 0);
        let mut b = yearly(4, 2, 2000, 0);
        // b's days 0..4 since 2000-01-05 are a's days 4..8.
        b.variables[0]
            .attrs
            .insert("units".into(), json!("days since 2000-01-05"));
        let tree = concat(&[("a.nc", &a), ("b.nc", &b)]).unwrap();
        let Part::Inline(t) = &tree["time/0"].part else {
            panic!("time is not inline");
        };
        let days: Vec<i64> = t
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(days, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            meta(&tree, "time/.zattrs")["units"],
            "days since 2000-01-01"
        );
    }

    #[test]
    fn adjacent_chunks_of_an_array_in_a_file_are_read_in_units_of_at_most_a_mib() {
        // 40 chunks of 100 KiB, one after another, then one 64 KiB + 1 byte further on.
        let k = 100 << 10;
        let mut chunks: Vec<StoredChunk> = (0..40)
            .map(|i| StoredChunk {
                index: vec![i, 0],
                at: 1000 + i * k,
                len: k,
            })
            .collect();
        chunks.push(StoredChunk {
            index: vec![40, 0],
            at: 1000 + 40 * k + UNIT_GAP + 1,
            len: k,
        });
        let v = var(Layout::Chunked { chunks }, &[41, 10], &[1, 10]);
        let tree = store(&FileDesc {
            variables: vec![v],
            ..FileDesc::default()
        });
        let unit = |key: &str| match &tree[key].part {
            Part::Source { unit, .. } => unit.clone(),
            other => panic!("{other:?}"),
        };
        // 10 chunks fit in 1 MiB: chunks 0-9 share a unit, 10 starts the next.
        assert_eq!(unit("v/0.0"), 1000..1000 + 10 * k);
        assert_eq!(unit("v/9.0"), 1000..1000 + 10 * k);
        assert_eq!(unit("v/10.0"), 1000 + 10 * k..1000 + 20 * k);
        // A chunk beyond the gap is a unit of its own.
        let far = 1000 + 40 * k + UNIT_GAP + 1;
        assert_eq!(unit("v/40.0"), far..far + k);
        assert_eq!(source_of(&tree, "v/40.0"), (0, far..far + k));
    }
}
