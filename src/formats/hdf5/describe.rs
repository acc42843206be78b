//! What a NetCDF-4/HDF5 file holds, as a Zarr view needs it: each root-group variable's name,
//! dimension names, shape, element type, chunk shape, filter pipeline, fill value, attributes,
//! and where each stored chunk lies. Nothing here reads data: chunks are described, not decoded.
//!
//! The structures are parsed by the `hdf5-reader` crate (object headers, datatypes, attributes
//! with their global-heap strings, B-tree v1/v2, fixed and extensible array indexes) from a
//! [`Storage`] the caller fills; the planning [`super::Walker`] fetches most of those bytes
//! first, in batched rounds, so what is parsed here rarely needs a read of its own. The walker
//! stays the planner's: it batches independent reads, which the crate's one-structure-at-a-time
//! reads cannot.
//!
//! NetCDF-4 conventions applied (as h5netcdf and netCDF-C read them): a dimension is a
//! dataset marked `CLASS=DIMENSION_SCALE`, named by its dataset; a variable's dimensions are
//! the scales whose `REFERENCE_LIST` names it (dimension scales of no netCDF variable are
//! dimensions only, not variables); the bookkeeping attributes (`CLASS`, `NAME`,
//! `REFERENCE_LIST`, `DIMENSION_LIST`, `_Netcdf4Dimid`, `_Netcdf4Coordinates`,
//! `_NCProperties`, `_nc3_strict`) are not shown. A variable that Zarr cannot hold (compound,
//! variable-length, reference or opaque types; filters numcodecs has no codec for; chunks
//! stored with a filter skipped) is listed in [`FileDesc::skipped`] with why; one whose
//! structures are broken (its object header, its chunk index) makes the whole description an
//! error, since a view without it would look complete.

use std::collections::HashMap;

use hdf5_reader::messages::HdfMessage;
use hdf5_reader::messages::layout::{ChunkIndexing, DataLayout};
use hdf5_reader::storage::{DynStorage, Storage};
use hdf5_reader::{Attribute, ByteOrder, Dataset, Datatype, Hdf5File, OpenOptions};
use serde_json::{Map, Value};

use crate::error::{Format, FormatError};

/// Attributes of NetCDF-4's own bookkeeping, which readers hide.
const HIDDEN_ATTRS: &[&str] = &[
    "CLASS",
    "NAME",
    "REFERENCE_LIST",
    "DIMENSION_LIST",
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_NCProperties",
    "_nc3_strict",
    "_FillValue",
];
/// The `NAME` netCDF-C gives a dimension scale that is no variable.
const NOT_A_VARIABLE: &str = "This is a netCDF dimension but not a netCDF variable";
/// At most this many bytes per structure read, and per object header.
const MAX_READ: usize = 64 << 20;
const MAX_HEADER: usize = 16 << 20;
/// At most this many chunks are described per file (each costs a few dozen bytes held).
const MAX_CHUNKS: usize = 4 << 20;

/// One step of a chunk's filter pipeline, in the order the writer applied them.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Deflate {
        level: u32,
    },
    Shuffle {
        element_size: u32,
    },
    Fletcher32,
    Zstd {
        level: i32,
    },
    Bzip2 {
        level: u32,
    },
    /// A Blosc frame (HDF5 filter 32001): self-describing.
    Blosc,
}

/// Where a variable's bytes are.
#[derive(Clone, Debug, PartialEq)]
pub enum Layout {
    /// Chunks of `shape` (the variable's chunk shape), each stored filtered at a file range:
    /// (chunk grid index, file offset, stored length). Chunks not listed were never written.
    Chunked { chunks: Vec<StoredChunk> },
    /// One unfiltered block in the file, in C order (absent: never written).
    Contiguous { at: Option<(u64, u64)> },
    /// Unfiltered bytes held in the object header.
    Compact { data: Vec<u8> },
}

/// One stored chunk: its index in the chunk grid and its file range.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    pub index: Vec<u64>,
    pub at: u64,
    pub len: u64,
}

/// A variable of the root group.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub name: String,
    pub dims: Vec<String>,
    pub shape: Vec<u64>,
    /// The NumPy type string (`<f4`, `>i2`, `|S1`).
    pub dtype: String,
    /// Element size in bytes.
    pub item_size: usize,
    /// Chunk shape (the whole shape when not chunked).
    pub chunk_shape: Vec<u64>,
    pub filters: Vec<Filter>,
    /// The fill value's bytes (element size, the element's byte order), when defined.
    pub fill: Option<Vec<u8>>,
    /// The `_FillValue` attribute's bytes (one element, in the variable's type), when set.
    pub fill_attr: Option<Vec<u8>>,
    pub attrs: Map<String, Value>,
    pub layout: Layout,
    /// Per dimension: whether the dataspace may grow along it (an unlimited dimension).
    pub unlimited: Vec<bool>,
    /// The values, unfiltered, in the file's byte order and C order: read only for
    /// variables of at most [`SMALL_DIMS`] dimensions and at most the `small_values` bytes
    /// [`describe`] was given (coordinates).
    pub values: Option<Vec<u8>>,
}

/// Variables of at most this many dimensions may have their values read ([`Variable::values`]).
pub const SMALL_DIMS: usize = 2;

/// A file's root group: its attributes, its variables, and those left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileDesc {
    pub attrs: Map<String, Value>,
    pub variables: Vec<Variable>,
    /// (name, why): datasets and groups the view cannot show.
    pub skipped: Vec<(String, String)>,
}

fn bad(what: impl Into<String>, why: impl std::fmt::Display) -> FormatError {
    FormatError::invalid(Format::Hdf5, what, why.to_string())
}

/// Describes the file in `storage`, reading the values of the variables of at most
/// [`SMALL_DIMS`] dimensions and `small_values` bytes (0: none). An error when the file's root
/// group cannot be read; a variable that cannot be described is skipped, with why.
pub fn describe(storage: DynStorage, small_values: u64) -> Result<FileDesc, FormatError> {
    // Bounds on what a hostile length field may make the parser read or keep; it decodes no
    // chunk here, so its chunk cache stays empty.
    let options = OpenOptions {
        chunk_cache_bytes: 0,
        max_read_bytes: MAX_READ,
        max_object_header_bytes: MAX_HEADER,
        ..OpenOptions::default()
    };
    let size = storage.len();
    let file = Hdf5File::from_storage_with_options(storage, options).map_err(|e| bad("file", e))?;
    let root = file.root_group().map_err(|e| bad("root group", e))?;
    let (groups, datasets) = root.members().map_err(|e| bad("root group", e))?;
    let mut out = FileDesc {
        attrs: attributes(&root.attributes().map_err(|e| bad("root group", e))?),
        ..FileDesc::default()
    };
    for g in groups {
        out.skipped.push((
            format!("{}/", g.name()),
            "a group: the view shows the root group's variables".into(),
        ));
    }
    let dims = dimension_names(&file, &datasets);
    let mut chunks = 0usize;
    for d in &datasets {
        let attrs = d.attributes();
        if attr_text(&attrs, "NAME").is_some_and(|n| n.starts_with(NOT_A_VARIABLE)) {
            continue;
        }
        match variable(&file, size, d, &attrs, &dims) {
            Err(Refusal::Corrupt(why)) => return Err(bad(format!("variable '{}'", d.name()), why)),
            Err(Refusal::Unsupported(why)) => out.skipped.push((d.name().to_string(), why)),
            Ok(mut v) => {
                v.values = small(d, &v, small_values)?;
                if let Layout::Chunked { chunks: c } = &v.layout {
                    chunks += c.len();
                }
                if chunks > MAX_CHUNKS {
                    return Err(bad("file", "more chunks than a view describes"));
                }
                out.variables.push(v);
            }
        }
    }
    Ok(out)
}

/// Each dataset's dimension names, by object header address, from the dimension scales'
/// `REFERENCE_LIST`s (a scale is its own first dimension).
fn dimension_names(file: &Hdf5File, datasets: &[Dataset]) -> HashMap<u64, Vec<Option<String>>> {
    let mut out: HashMap<u64, Vec<Option<String>>> = datasets
        .iter()
        .map(|d| (d.address(), vec![None; d.ndim()]))
        .collect();
    let offset_size = file.superblock().offset_size as usize;
    for scale in datasets {
        let attrs = scale.attributes();
        if attr_text(&attrs, "CLASS").as_deref() != Some("DIMENSION_SCALE") {
            continue;
        }
        let name = scale.name().to_string();
        if let Some(own) = out.get_mut(&scale.address())
            && let Some(first) = own.first_mut()
        {
            first.get_or_insert_with(|| name.clone());
        }
        let Some(refs) = attrs.iter().find(|a| a.name == "REFERENCE_LIST") else {
            continue;
        };
        for (at, dim) in reference_list(refs, offset_size) {
            if let Some(slot) = out.get_mut(&at).and_then(|v| v.get_mut(dim)) {
                *slot = Some(name.clone());
            }
        }
    }
    out
}

/// The (dataset address, dimension index) pairs of a `REFERENCE_LIST` attribute: a compound
/// of an object reference and an integer.
fn reference_list(a: &Attribute, offset_size: usize) -> Vec<(u64, usize)> {
    let Datatype::Compound { size, fields } = &a.datatype else {
        return Vec::new();
    };
    let size = *size as usize;
    let field = |pick: fn(&Datatype) -> bool| {
        fields
            .iter()
            .find(|f| pick(&f.datatype))
            .map(|f| f.byte_offset as usize)
    };
    let (Some(r), Some(i)) = (
        field(|t| matches!(t, Datatype::Reference { .. })),
        field(|t| matches!(t, Datatype::FixedPoint { .. })),
    ) else {
        return Vec::new();
    };
    if size == 0 {
        return Vec::new();
    }
    a.raw_data
        .chunks_exact(size)
        .filter_map(|e| {
            let at = le_uint(e.get(r..r + offset_size)?);
            let dim = le_uint(e.get(i..i + 4)?) as usize;
            Some((at, dim))
        })
        .collect()
}

fn le_uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |a, &x| (a << 8) | x as u64)
}

/// Why a dataset is not in the view: Zarr cannot hold it (the rest of the view can be shown),
/// or its structures are broken (the view cannot be trusted).
enum Refusal {
    Unsupported(String),
    Corrupt(String),
}

fn unsupported(why: impl Into<String>) -> Refusal {
    Refusal::Unsupported(why.into())
}

/// Dataset `d` of `file` (`size` bytes) as a variable: every range it describes lies in the
/// file.
fn variable(
    file: &Hdf5File,
    size: u64,
    d: &Dataset,
    attrs: &[Attribute],
    dims: &HashMap<u64, Vec<Option<String>>>,
) -> Result<Variable, Refusal> {
    let (dtype, item_size) = numpy_type(d.dtype()).map_err(Refusal::Unsupported)?;
    let shape = d.shape().to_vec();
    let ndim = shape.len();
    let header = file
        .get_or_parse_header(d.address())
        .map_err(|e| Refusal::Corrupt(format!("its object header: {e}")))?;
    let mut layout = None;
    let mut pipeline = Vec::new();
    for m in &header.messages {
        match m {
            HdfMessage::DataLayout(l) => layout = Some(l.layout.clone()),
            HdfMessage::FilterPipeline(p) => pipeline = p.filters.clone(),
            _ => {}
        }
    }
    let filters = pipeline
        .iter()
        .map(|f| filter(f.id, &f.client_data, f.name.as_deref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Refusal::Unsupported)?;
    // HDF5's shuffle leaves a remainder of bytes in place; numcodecs' refuses a buffer that is
    // not whole elements, which a checksum applied before it makes (netCDF-C's order).
    if let Some(f) = filters.iter().position(|f| *f == Filter::Fletcher32)
        && filters[f..]
            .iter()
            .any(|s| matches!(s, Filter::Shuffle { element_size } if *element_size > 1))
    {
        return Err(unsupported(
            "its Fletcher-32 checksum is shuffled with its values, which numcodecs' shuffle \
             cannot undo",
        ));
    }
    let names = dims.get(&d.address()).cloned().unwrap_or_default();
    let dim_names = (0..shape.len())
        .map(|i| {
            names
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| format!("phony_dim_{i}"))
        })
        .collect();
    let sb = file.superblock();
    let base = sb.base_address;
    let layout = layout.ok_or_else(|| Refusal::Corrupt("no data layout message".into()))?;
    let (chunk_shape, layout) = match layout {
        DataLayout::Compact { data } => (shape.clone(), Layout::Compact { data }),
        DataLayout::Contiguous { address, size: len } => {
            let at = if is_undefined(address) {
                None
            } else {
                let at = base.checked_add(address);
                if at
                    .and_then(|a| a.checked_add(len))
                    .is_none_or(|end| end > size)
                {
                    return Err(Refusal::Corrupt(
                        "contiguous storage past the end of the file".into(),
                    ));
                }
                at.map(|a| (a, len))
            };
            (shape.clone(), Layout::Contiguous { at })
        }
        DataLayout::Chunked {
            address,
            dims: cdims,
            chunk_indexing,
            ..
        } => {
            let cshape: Vec<u64> = cdims.iter().take(shape.len()).map(|&c| c as u64).collect();
            if cshape.len() != shape.len() || cshape.contains(&0) {
                return Err(Refusal::Corrupt(
                    "a chunk shape that does not match its dataspace".into(),
                ));
            }
            let entries = if is_undefined(address) {
                Vec::new()
            } else {
                chunk_entries(file, d, address, &cdims[..shape.len()], chunk_indexing)
                    .map_err(Refusal::Corrupt)?
            };
            let chunk_bytes = cshape.iter().product::<u64>() * item_size as u64;
            let mut chunks = Vec::with_capacity(entries.len());
            for e in entries {
                if e.filter_mask != 0 {
                    return Err(unsupported(
                        "a chunk stored with a filter skipped (Zarr applies one pipeline to \
                         every chunk)",
                    ));
                }
                if e.offsets.len() != shape.len()
                    || e.offsets.iter().zip(&shape).any(|(o, s)| o >= s)
                {
                    continue;
                }
                if e.offsets.iter().zip(&cshape).any(|(o, c)| o % c != 0) {
                    return Err(Refusal::Corrupt("a chunk off its chunk grid".into()));
                }
                let index = e.offsets.iter().zip(&cshape).map(|(o, c)| o / c).collect();
                let len = if e.size == 0 { chunk_bytes } else { e.size };
                let at = base.checked_add(e.address);
                if at
                    .and_then(|a| a.checked_add(len))
                    .is_none_or(|end| end > size)
                {
                    return Err(Refusal::Corrupt("a chunk past the end of the file".into()));
                }
                chunks.push(StoredChunk {
                    index,
                    at: at.unwrap_or_default(),
                    len,
                });
            }
            (cshape, Layout::Chunked { chunks })
        }
    };
    let fill = d
        .fill_value()
        .and_then(|f| f.value.clone())
        .filter(|v| v.len() == item_size);
    let fill_attr = attrs
        .iter()
        .find(|a| a.name == "_FillValue" && a.raw_data.len() == item_size)
        .map(|a| a.raw_data.clone());
    Ok(Variable {
        name: d.name().to_string(),
        dims: dim_names,
        shape,
        dtype,
        item_size,
        chunk_shape,
        filters,
        fill,
        fill_attr,
        attrs: attributes(attrs),
        unlimited: (0..ndim)
            .map(|i| {
                d.max_dims()
                    .and_then(|m| m.get(i))
                    .is_some_and(|&m| m == u64::MAX)
            })
            .collect(),
        layout,
        values: None,
    })
}

/// The values of `v` (dataset `d`) when it is small enough (see [`Variable::values`]), with
/// the fill value where chunks were never written. A read that fails is an error: the chunks
/// it reads are the ones the view would serve.
fn small(d: &Dataset, v: &Variable, limit: u64) -> Result<Option<Vec<u8>>, FormatError> {
    let bytes = v.shape.iter().product::<u64>() * v.item_size as u64;
    if v.shape.len() > SMALL_DIMS || bytes > limit || bytes == 0 {
        return Ok(None);
    }
    let raw = d
        .read_raw_bytes()
        .map_err(|e| bad(format!("variable '{}'", v.name), e))?;
    Ok((raw.len() as u64 == bytes).then_some(raw))
}

fn is_undefined(address: u64) -> bool {
    address == u64::MAX
}

/// The stored chunks of a chunked dataset, from its index.
fn chunk_entries(
    file: &Hdf5File,
    d: &Dataset,
    address: u64,
    cdims: &[u32],
    indexing: Option<ChunkIndexing>,
) -> Result<Vec<hdf5_reader::chunk_index::ChunkEntry>, String> {
    let sb = file.superblock();
    let (o, l) = (sb.offset_size, sb.length_size);
    let storage: &dyn Storage = file.storage();
    let shape = d.shape();
    let ndim = shape.len();
    let got = match indexing {
        None => hdf5_reader::btree_v1::collect_btree_v1_leaves_storage(
            storage,
            address,
            o,
            l,
            Some(ndim as u32),
            cdims,
            None,
        )
        .map(|leaves| {
            leaves
                .into_iter()
                .filter_map(|(k, at)| match k {
                    hdf5_reader::btree_v1::BTreeV1Key::RawData {
                        chunk_size,
                        filter_mask,
                        offsets,
                    } => Some(hdf5_reader::chunk_index::ChunkEntry {
                        address: at,
                        size: chunk_size as u64,
                        filter_mask,
                        offsets: offsets.into_iter().take(ndim).collect(),
                    }),
                    _ => None,
                })
                .collect()
        }),
        Some(ChunkIndexing::SingleChunk {
            filtered_size,
            filters,
        }) => Ok(vec![hdf5_reader::chunk_index::single_chunk_entry(
            address,
            filtered_size,
            filters,
            ndim,
        )]),
        Some(ChunkIndexing::Implicit) => {
            let elem = d.raw_element_size().map_err(|e| e.to_string())?;
            hdf5_reader::chunk_index::collect_implicit_chunk_entries(
                address,
                shape,
                cdims,
                elem,
                None,
                storage.len(),
            )
        }
        Some(ChunkIndexing::FixedArray { .. }) => {
            hdf5_reader::fixed_array::collect_fixed_array_chunk_entries_storage(
                storage, address, o, l, shape, cdims, None,
            )
        }
        Some(ChunkIndexing::ExtensibleArray { .. }) => {
            hdf5_reader::extensible_array::collect_extensible_array_chunk_entries_storage(
                storage,
                address,
                o,
                l,
                shape,
                d.max_dims(),
                cdims,
                None,
            )
        }
        Some(ChunkIndexing::BTreeV2) => hdf5_reader::chunk_index::collect_v2_chunk_entries_storage(
            storage,
            address,
            o,
            l,
            ndim as u32,
            cdims,
            None,
        ),
    };
    got.map_err(|e| format!("its chunk index: {e}"))
}

/// The NumPy type string and element size of a datatype Zarr can hold.
fn numpy_type(t: &Datatype) -> Result<(String, usize), String> {
    let order = |size: u8, bo: &ByteOrder| match (size, bo) {
        (1, _) => '|',
        (_, ByteOrder::LittleEndian) => '<',
        (_, ByteOrder::BigEndian) => '>',
    };
    match t {
        Datatype::FixedPoint {
            size,
            signed,
            byte_order,
        } if [1, 2, 4, 8].contains(size) => Ok((
            format!(
                "{}{}{size}",
                order(*size, byte_order),
                if *signed { 'i' } else { 'u' }
            ),
            *size as usize,
        )),
        Datatype::FloatingPoint { size, byte_order } if [2, 4, 8].contains(size) => Ok((
            format!("{}f{size}", order(*size, byte_order)),
            *size as usize,
        )),
        Datatype::String {
            size: hdf5_reader::messages::datatype::StringSize::Fixed(n),
            ..
        } if *n > 0 => Ok((format!("|S{n}"), *n as usize)),
        other => Err(format!(
            "its type ({}) has no Zarr equivalent",
            type_name(other)
        )),
    }
}

fn type_name(t: &Datatype) -> &'static str {
    match t {
        Datatype::FixedPoint { .. } => "an unusual integer",
        Datatype::FloatingPoint { .. } => "an unusual float",
        Datatype::String { .. } => "variable-length string",
        Datatype::Compound { .. } => "compound",
        Datatype::Array { .. } => "array",
        Datatype::Enum { .. } => "enum",
        Datatype::VarLen { .. } => "variable-length",
        Datatype::Opaque { .. } => "opaque",
        Datatype::Reference { .. } => "reference",
        Datatype::Bitfield { .. } => "bitfield",
    }
}

/// The numcodecs equivalent of an HDF5 filter, or why there is none.
fn filter(id: u16, cd: &[u32], name: Option<&str>) -> Result<Filter, String> {
    let first = cd.first().copied();
    match id {
        1 => Ok(Filter::Deflate {
            level: first.unwrap_or(6).min(9),
        }),
        2 => Ok(Filter::Shuffle {
            element_size: first.unwrap_or(1).max(1),
        }),
        3 => Ok(Filter::Fletcher32),
        32015 => Ok(Filter::Zstd {
            level: first.map_or(3, |l| l as i32),
        }),
        307 => Ok(Filter::Bzip2 {
            level: first.unwrap_or(9).clamp(1, 9),
        }),
        32001 => Ok(Filter::Blosc),
        _ => Err(format!(
            "its filter {id}{} has no numcodecs codec here",
            name.map(|n| format!(" ({n})")).unwrap_or_default()
        )),
    }
}

/// The attributes readers show, as JSON values (one-element arrays as scalars).
fn attributes(attrs: &[Attribute]) -> Map<String, Value> {
    attrs
        .iter()
        .filter(|a| !HIDDEN_ATTRS.contains(&a.name.as_str()))
        .filter_map(|a| {
            let v = match attr_value(a) {
                Value::Array(mut v) if v.len() == 1 => v.pop()?,
                Value::Null => return None,
                v => v,
            };
            Some((a.name.clone(), v))
        })
        .collect()
}

fn attr_text(attrs: &[Attribute], name: &str) -> Option<String> {
    let a = attrs.iter().find(|a| a.name == name)?;
    match attr_value(a) {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// An attribute's value: text, numbers (a list when it has several), or null when its type
/// has no JSON form.
fn attr_value(a: &Attribute) -> Value {
    if let Some(s) = &a.decoded_strings {
        return match s.as_slice() {
            [one] => Value::String(one.clone()),
            many => Value::Array(many.iter().cloned().map(Value::String).collect()),
        };
    }
    match &a.datatype {
        Datatype::String { .. } => a
            .read_strings()
            .map(|s| match s.as_slice() {
                [one] => Value::String(one.clone()),
                many => Value::Array(many.iter().cloned().map(Value::String).collect()),
            })
            .unwrap_or(Value::Null),
        Datatype::FixedPoint {
            size,
            signed,
            byte_order,
        } => numbers(&a.raw_data, *size as usize, byte_order, |b| {
            let u = uint(b);
            let bits = 8 * b.len() as u32;
            if *signed && bits < 64 && u >> (bits - 1) == 1 {
                Value::from(u as i64 - (1i64 << bits))
            } else if *signed {
                Value::from(u as i64)
            } else {
                Value::from(u)
            }
        }),
        Datatype::FloatingPoint { size, byte_order } => {
            numbers(&a.raw_data, *size as usize, byte_order, |b| {
                let f = match b.len() {
                    4 => f32::from_bits(uint(b) as u32) as f64,
                    8 => f64::from_bits(uint(b)),
                    _ => f64::NAN,
                };
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            })
        }
        _ => Value::Null,
    }
}

/// Little-endian bytes as an unsigned integer.
fn uint(b: &[u8]) -> u64 {
    le_uint(b)
}

/// The elements of `raw` (each `size` bytes in `order`) as JSON values.
fn numbers(raw: &[u8], size: usize, order: &ByteOrder, each: impl Fn(&[u8]) -> Value) -> Value {
    if size == 0 || size > 8 {
        return Value::Null;
    }
    Value::Array(
        raw.chunks_exact(size)
            .map(|c| {
                let mut b = c.to_vec();
                if matches!(order, ByteOrder::BigEndian) {
                    b.reverse();
                }
                each(&b)
            })
            .collect(),
    )
}
