//! Zarr time steps as COGs: which arrays of a store get COGs, how their files are named, and
//! how one 2-D slice is assembled from decoded chunks. Nothing here does I/O;
//! [`super::backend`] fetches the chunks named here.
//!
//! Stores: v2 with a consolidated `.zmetadata`; v3 with a root `zarr.json` (its
//! `consolidated_metadata`, as zarr-python 3 and xarray write it, or the `zarr.json` of each
//! array the caller read), regular chunk grids, `default` (`c/0/0`) or `v2` chunk keys, and
//! `dimension_names` (else `_ARRAY_DIMENSIONS`). The metadata is read by
//! [`crate::formats::zarr`]; here an array is kept when its data type and codecs can be
//! decoded.
//!
//! An array gets COGs when its last two dimensions are `y`, `x` or it has a CF
//! `grid_mapping` attribute, and both of those dimensions have 1-D coordinate arrays. One COG
//! per index of the leading dimensions: `VAR/LABEL.tif`, the label the CF time (`1979-10-01`,
//! `1979-10-01T0300` when sub-daily) of a decodable leading time axis, the index otherwise
//! (leading dimensions joined by `_`); a 2-D array gives `VAR/VAR.tif`. The CRS comes from the
//! grid-mapping variable; with none, coordinates that are degrees (lat/lon dimension names, or
//! all values within ±90/±360) are taken as WGS 84 longitude/latitude.
//!
//! Chunk encodings: see [`codecs`] (zlib, gzip, zstd, bz2, lz4, lzma, blosc; shuffle, delta,
//! fixedscaleoffset, quantize, bitround, astype; v3 `bytes`/`crc32c`, sharding); dtypes
//! float32/64 and (u)int8..64 of either byte order. The view is decided when it is listed: an
//! array that would get COGs but whose data type or codecs (or those of its y/x coordinates)
//! cannot be decoded is left out, and a WARN line names the store, the array and why. A chunk
//! that does not decode is an error for the COGs reading it (EIO).
//! Hand-written because the `zarrs` crate needs its own store traits and about 40 more crates
//! (rayon, regex, C and C++ codec libraries); each codec here is a few lines over its crate.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use chrono::{Duration, NaiveDateTime, Timelike};
use serde_json::{Map, Value};

use super::cf_time::{TimeUnits, units_of};
use super::cog::{CogLayout, CogSpec, GeoRef, Raster};
use super::crs::{Crs, Earth, from_cf};
use crate::formats::zarr::{self, ChunkKeys, Codecs, DataType, Shard, StoreMeta};
use codecs::Pipeline;

pub(crate) mod codecs;

/// One array's metadata, as far as decoding its chunks needs it.
#[derive(Clone, Debug)]
pub struct ArrayMeta {
    shape: Vec<usize>,
    /// The chunk shape (for a sharded array, of its inner chunks).
    chunks: Vec<usize>,
    dtype: DataType,
    /// The decode steps, or why the chunks cannot be decoded.
    codecs: Result<Pipeline, String>,
    fill: f64,
    keys: ChunkKeys,
    /// v3 sharding: `chunks` are then the inner chunks.
    shard: Option<Shard>,
    dims: Vec<String>,
    attrs: Map<String, Value>,
}

/// The arrays of a store, by path (`T2`, `group/T2`).
#[derive(Debug, Default)]
pub struct Store {
    pub arrays: BTreeMap<String, ArrayMeta>,
    /// Arrays shaped like rasters (see [`looks_raster`]) whose data type cannot be decoded:
    /// their dimension names and shape, and why.
    refused: BTreeMap<String, (Vec<String>, Vec<usize>, String)>,
}

/// Whether an array with these dimension names and attributes would get COGs, its coordinates
/// permitting: two or more dimensions, the last two `y`, `x`, or a CF `grid_mapping`.
fn looks_raster(dims: &[String], attrs: &Map<String, Value>) -> bool {
    let n = dims.len();
    n >= 2 && ((dims[n - 2] == "y" && dims[n - 1] == "x") || attrs.contains_key("grid_mapping"))
}

/// The arrays that get COGs, with the paths of their y and x coordinate arrays, and the
/// arrays shaped like rasters that cannot be made, with why.
type Candidates<'a> = (
    Vec<(&'a String, &'a ArrayMeta, String, String)>,
    Vec<(String, String)>,
);

fn usizes(v: &[u64]) -> Vec<usize> {
    v.iter().map(|&x| x as usize).collect()
}

impl ArrayMeta {
    /// An array whose data type can be decoded; its codecs may still be refused (then it gets
    /// no COGs, see [`Store::candidates`], and reading a chunk is an error naming the codec).
    fn new(m: zarr::ArrayMeta) -> Result<Self> {
        let mut dtype = m.data_type()?;
        let mut chunks = usizes(&m.chunks);
        let mut shard = None;
        let codecs = match &m.codecs {
            Codecs::V2 {
                order,
                compressor,
                filters,
            } => Pipeline::from_v2(order, compressor, filters, dtype).map_err(|e| format!("{e:#}")),
            // Sharding is decoded when it is the array's one codec.
            Codecs::V3(list) => match (&m.sharding, list.as_array().map(Vec::len)) {
                (Some(Ok(sh)), Some(1)) => {
                    shard = Some(sh.shard.clone());
                    chunks = usizes(&sh.chunk_shape);
                    Pipeline::from_v3(&sh.codecs, &mut dtype)
                        .map_err(|e| format!("sharding_indexed: inner codecs: {e:#}"))
                }
                (Some(Err(e)), Some(1)) => Err(e.to_string()),
                _ => Pipeline::from_v3(list, &mut dtype).map_err(|e| format!("{e:#}")),
            },
        };
        Ok(Self {
            shape: usizes(&m.shape),
            chunks,
            dtype,
            codecs,
            fill: m.fill_value,
            keys: m.keys,
            shard,
            dims: m.dims,
            attrs: m.attrs,
        })
    }
}

impl Store {
    /// The arrays that can be decoded; the others are left out (logged).
    fn from_meta(parsed: StoreMeta) -> Self {
        let mut arrays = BTreeMap::new();
        let mut refused = BTreeMap::new();
        for (path, a) in parsed.arrays {
            let raster = match &a {
                Ok(a) if looks_raster(&a.dims, &a.attrs) => {
                    Some((a.dims.clone(), usizes(&a.shape)))
                }
                _ => None,
            };
            match a.map_err(anyhow::Error::from).and_then(ArrayMeta::new) {
                Ok(a) => {
                    arrays.insert(path, a);
                }
                Err(e) if raster.is_some() => {
                    let (dims, shape) = raster.unwrap_or_default();
                    refused.insert(path, (dims, shape, format!("{e:#}")));
                }
                Err(e) => tracing::debug!("zarr array {path} not converted: {e:#}"),
            }
        }
        Self { arrays, refused }
    }

    /// The arrays listed in a v2 `.zmetadata`; an array whose `.zarray` cannot be read is
    /// left out (it cannot be converted), the rest stay.
    pub fn from_zmetadata(bytes: &[u8]) -> Result<Self> {
        Ok(Self::from_meta(StoreMeta::from_zmetadata(bytes)?))
    }

    /// The arrays of a v3 store: from the `consolidated_metadata` of its root `zarr.json`
    /// (as zarr-python 3 and xarray write it), plus `extra` (path, `zarr.json`) pairs read
    /// one by one when the root has none. An array that cannot be read is left out.
    pub fn from_zarr_json(root: &[u8], extra: &[(String, Value)]) -> Result<Self> {
        Ok(Self::from_meta(StoreMeta::from_zarr_json(root, extra)?))
    }

    /// Whether a root `zarr.json` lists its arrays (consolidated metadata).
    pub fn is_consolidated_v3(root: &[u8]) -> bool {
        zarr::is_consolidated_v3(root)
    }

    /// The coordinate array of dimension `dim` for array `var` (a sibling in its group).
    fn coord_path(var: &str, dim: &str) -> String {
        match var.rsplit_once('/') {
            Some((group, _)) => format!("{group}/{dim}"),
            None => dim.to_string(),
        }
    }

    /// Arrays that get COGs, with the paths of their y and x coordinate arrays; and those
    /// shaped like rasters whose chunks or coordinates cannot be decoded, with why.
    fn candidates(&self) -> Candidates<'_> {
        // The paths of the y and x coordinate arrays, when both are 1-D of the right length.
        let coords = |path: &str, dims: &[String], shape: &[usize]| -> Option<(String, String)> {
            let n = dims.len();
            let (yp, xp) = (
                Self::coord_path(path, &dims[n - 2]),
                Self::coord_path(path, &dims[n - 1]),
            );
            let is_1d = |p: &str, len: usize| {
                self.arrays
                    .get(p)
                    .is_some_and(|c| c.shape.len() == 1 && c.shape[0] == len)
            };
            (n == shape.len() && is_1d(&yp, shape[n - 2]) && is_1d(&xp, shape[n - 1]))
                .then_some((yp, xp))
        };
        let mut out = Vec::new();
        let mut refused: Vec<(String, String)> = self
            .refused
            .iter()
            .filter(|(p, (dims, shape, _))| coords(p, dims, shape).is_some())
            .map(|(p, (_, _, e))| (p.clone(), e.clone()))
            .collect();
        for (path, a) in &self.arrays {
            if !looks_raster(&a.dims, &a.attrs) {
                continue;
            }
            let Some((yp, xp)) = coords(path, &a.dims, &a.shape) else {
                continue;
            };
            let why = [
                (path, a),
                (&yp, &self.arrays[&yp]),
                (&xp, &self.arrays[&xp]),
            ]
            .into_iter()
            .find_map(|(p, m)| {
                let e = m.codecs.as_ref().err()?;
                Some(if p == path {
                    e.clone()
                } else {
                    format!("coordinate `{p}`: {e}")
                })
            });
            match why {
                Some(e) => refused.push((path.clone(), e)),
                None => out.push((path, a, yp, xp)),
            }
        }
        (out, refused)
    }

    /// The 1-D arrays whose values naming and georeferencing need: coordinates of the y/x
    /// and leading dimensions of every candidate.
    pub fn coords_needed(&self) -> Vec<String> {
        let mut need = std::collections::BTreeSet::new();
        for (path, a, yp, xp) in self.candidates().0 {
            need.insert(yp);
            need.insert(xp);
            for d in &a.dims[..a.dims.len() - 2] {
                let p = Self::coord_path(path, d);
                // A leading coordinate that cannot be decoded gives index labels.
                if self
                    .arrays
                    .get(&p)
                    .is_some_and(|c| c.shape.len() == 1 && c.codecs.is_ok())
                {
                    need.insert(p);
                }
            }
        }
        need.into_iter().collect()
    }

    /// The CRS of an array: its `grid_mapping` variable, else a sibling `crs` variable, else
    /// geographic WGS 84 when its dimensions are latitude/longitude or (with no grid mapping
    /// named) its `y`/`x` coordinates all lie within ±90/±360, as degrees do.
    fn crs_of(&self, path: &str, a: &ArrayMeta, y: &[f64], x: &[f64]) -> Result<Crs> {
        let gm = a.attrs.get("grid_mapping").and_then(Value::as_str);
        let gm_path = Self::coord_path(path, gm.unwrap_or("crs"));
        if let Some(c) = self.arrays.get(&gm_path) {
            return from_cf(&c.attrs).with_context(|| format!("grid mapping `{gm_path}`"));
        }
        let n = a.dims.len();
        let named = a.dims[n - 2].starts_with("lat") && a.dims[n - 1].starts_with("lon");
        let degrees = y.iter().all(|v| v.abs() <= 90.0) && x.iter().all(|v| v.abs() <= 360.0);
        ensure!(
            gm.is_none() && (named || degrees),
            "no grid mapping variable `{gm_path}`, and the y/x coordinates are not degrees"
        );
        Ok(Crs::Geographic {
            earth: Earth {
                a: 6_378_137.0,
                b: 6_356_752.314_245_179,
            },
        })
    }
}

/// One COG: an array and the index of its leading dimensions.
#[derive(Clone, Debug)]
pub struct Step {
    pub var: String,
    pub lead: Vec<usize>,
    /// Index into [`CogViews::layouts`].
    pub layout: usize,
    flip_y: bool,
    flip_x: bool,
}

/// A file of the view: a step's COG, or the preview of a step (an array's first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZFile {
    Cog(usize),
    Preview(usize),
}

/// The COG view of one store.
#[derive(Debug, Default)]
pub struct CogViews {
    /// Paths relative to `STORE.zarr.cog/` (files only).
    pub files: BTreeMap<String, ZFile>,
    pub steps: Vec<Step>,
    /// One layout per array: all steps of an array share it (a store may have many steps).
    pub layouts: Vec<CogLayout>,
}

impl CogViews {
    /// The views of `store` (named `name` in the log), given the values of the arrays
    /// [`Store::coords_needed`] names. An array that cannot be decoded or georeferenced is
    /// left out, with a WARN line naming it and why, not an error.
    pub fn new(name: &str, store: &Store, coords: &BTreeMap<String, Vec<f64>>) -> Self {
        let mut views = Self::default();
        let (cands, refused) = store.candidates();
        for (path, why) in refused {
            tracing::warn!("zarr store {name}: array {path} not listed as COGs: {why}");
        }
        for (path, a, yp, xp) in cands {
            if let Err(e) = views.add(store, path, a, &coords[&yp], &coords[&xp], coords) {
                tracing::warn!("zarr store {name}: array {path} not listed as COGs: {e:#}");
            }
        }
        views
    }

    fn add(
        &mut self,
        store: &Store,
        path: &str,
        a: &ArrayMeta,
        y: &[f64],
        x: &[f64],
        coords: &BTreeMap<String, Vec<f64>>,
    ) -> Result<()> {
        let crs = store.crs_of(path, a, y, x)?;
        let (geo, flip_y, flip_x) = georef(y, x)?;
        let n = a.shape.len();
        let spec = CogSpec {
            width: a.shape[n - 1],
            height: a.shape[n - 2],
            geo,
            crs,
            nodata: f32::NAN,
            gdal_metadata: None,
        };
        let lead_shape = &a.shape[..n - 2];
        let count: usize = lead_shape.iter().product();
        if count == 0 {
            return Ok(());
        }
        // Per leading dimension: decoded time labels, or indices.
        let labels: Vec<Vec<String>> = a.dims[..n - 2]
            .iter()
            .zip(lead_shape)
            .map(|(d, &len)| {
                let p = Store::coord_path(path, d);
                store
                    .arrays
                    .get(&p)
                    .zip(coords.get(&p))
                    .and_then(|(c, v)| time_labels(v, &c.attrs))
                    .filter(|l| l.len() == len)
                    .unwrap_or_else(|| (0..len).map(|i| i.to_string()).collect())
            })
            .collect();
        let name = path.rsplit('/').next().unwrap_or(path);
        let layout = self.layouts.len();
        self.layouts.push(CogLayout::new(&spec)?);
        for flat in 0..count {
            let mut lead = vec![0; lead_shape.len()];
            let mut rem = flat;
            for d in (0..lead_shape.len()).rev() {
                lead[d] = rem % lead_shape[d];
                rem /= lead_shape[d];
            }
            let label = if lead.is_empty() {
                name.to_string()
            } else {
                let parts: Vec<&str> = lead
                    .iter()
                    .enumerate()
                    .map(|(d, &i)| labels[d][i].as_str())
                    .collect();
                parts.join("_")
            };
            if flat == 0 {
                self.files.insert(
                    format!("{path}/preview.png"),
                    ZFile::Preview(self.steps.len()),
                );
            }
            self.files
                .insert(format!("{path}/{label}.tif"), ZFile::Cog(self.steps.len()));
            self.steps.push(Step {
                var: path.to_string(),
                lead,
                layout,
                flip_y,
                flip_x,
            });
        }
        Ok(())
    }

    pub fn size(&self, store: &Store, file: ZFile) -> u64 {
        match file {
            ZFile::Cog(k) => self.layouts[self.steps[k].layout].size(),
            ZFile::Preview(k) => {
                let (w, h) = store.plane(&self.steps[k].var).unwrap_or((1, 1));
                let (w, h) = super::cog::smallest_level(w, h);
                super::preview::size(w, h)
            }
        }
    }
}

/// North-up georeferencing from pixel-centre coordinates (evenly spaced), and whether rows
/// (columns) must be flipped to run north to south (west to east).
fn georef(y: &[f64], x: &[f64]) -> Result<(GeoRef, bool, bool)> {
    let step = |v: &[f64], what: &str| -> Result<f64> {
        let d = if v.len() > 1 { v[1] - v[0] } else { 1.0 };
        ensure!(
            d.is_finite() && d != 0.0,
            "{what} coordinates are not spaced"
        );
        let span = v[v.len() - 1] - v[0];
        let expect = d * (v.len() - 1) as f64;
        ensure!(
            (span - expect).abs() <= d.abs() * 1e-3,
            "{what} coordinates are not evenly spaced"
        );
        Ok(d)
    };
    let (dy, dx) = (step(y, "y")?, step(x, "x")?);
    let north = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let west = x.iter().cloned().fold(f64::INFINITY, f64::min);
    Ok((
        GeoRef {
            west: west - dx.abs() / 2.0,
            north: north + dy.abs() / 2.0,
            dx: dx.abs(),
            dy: dy.abs(),
        },
        dy > 0.0,
        dx < 0.0,
    ))
}

/// Labels of a CF time coordinate (`<unit> since <date>`, standard/gregorian/proleptic
/// calendars), `None` when it does not decode. Dates alone when all are at midnight.
fn time_labels(values: &[f64], attrs: &Map<String, Value>) -> Option<Vec<String>> {
    let TimeUnits {
        seconds: secs,
        origin,
    } = units_of(attrs)?;
    let times: Vec<NaiveDateTime> = values
        .iter()
        .map(|&v| {
            let s = v * secs;
            (s.is_finite() && s.abs() < 1e13)
                .then(|| origin.checked_add_signed(Duration::seconds(s.round() as i64)))
                .flatten()
        })
        .collect::<Option<_>>()?;
    let daily = times.iter().all(|t| t.num_seconds_from_midnight() == 0);
    let fmt = if daily { "%Y-%m-%d" } else { "%Y-%m-%dT%H%M" };
    let labels: Vec<String> = times.iter().map(|t| t.format(fmt).to_string()).collect();
    let unique: std::collections::HashSet<&String> = labels.iter().collect();
    (unique.len() == labels.len()).then_some(labels)
}

impl ArrayMeta {
    /// Chunk grid coordinates holding the slab at `lead` (indices of all but the last `k`
    /// dimensions) with its last `k` dimensions whole.
    pub fn slab_chunks(&self, lead: &[usize], k: usize) -> Vec<Vec<usize>> {
        let n = self.shape.len();
        let mut out = vec![lead.iter().zip(&self.chunks).map(|(i, c)| i / c).collect()];
        for d in n - k..n {
            let count = self.shape[d].div_ceil(self.chunks[d]);
            out = out
                .into_iter()
                .flat_map(|base: Vec<usize>| {
                    (0..count).map(move |c| {
                        let mut v = base.clone();
                        v.push(c);
                        v
                    })
                })
                .collect();
        }
        out
    }

    /// Where a chunk is: its object's key and, for a sharded array, the shard layout and the
    /// chunk's position in the shard's index.
    pub fn chunk_location(&self, var: &str, coord: &[usize]) -> (String, Option<(&Shard, usize)>) {
        match &self.shard {
            None => (self.chunk_key(var, coord), None),
            Some(sh) => {
                let outer: Vec<usize> = coord.iter().zip(&sh.per).map(|(c, p)| c / p).collect();
                let pos = coord
                    .iter()
                    .zip(&sh.per)
                    .fold(0, |acc, (c, p)| acc * p + c % p);
                (self.chunk_key(var, &outer), Some((sh, pos)))
            }
        }
    }

    /// The key of a chunk object (a shard, for a sharded array), relative to the store.
    pub fn chunk_key(&self, var: &str, coord: &[usize]) -> String {
        format!("{var}/{}", self.keys.key(coord))
    }

    /// Elements in one chunk.
    fn chunk_len(&self) -> usize {
        self.chunks.iter().product()
    }

    /// A chunk's elements as f64, C order: decoded by the array's codecs, byte-swapped.
    pub fn decode_chunk(&self, raw: &[u8]) -> Result<Vec<f64>> {
        let pipeline = self.codecs.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        pipeline.decode(raw, self.dtype, self.chunk_len())
    }

    /// The slab at `lead` with its last `k` (1 or 2) dimensions whole, from its chunks
    /// (`None`: never written, the fill value), row-major.
    pub fn assemble(&self, lead: &[usize], k: usize, chunks: &[Option<Vec<f64>>]) -> Vec<f64> {
        let n = self.shape.len();
        let (rows, ch_rows) = if k == 2 {
            (self.shape[n - 2], self.chunks[n - 2])
        } else {
            (1, 1)
        };
        let (cols, ch_cols) = (self.shape[n - 1], self.chunks[n - 1]);
        // Offset of `lead` within its chunk, in elements of the chunk's C order.
        let mut lead_off = 0;
        for (d, &i) in lead.iter().enumerate() {
            lead_off = lead_off * self.chunks[d] + i % self.chunks[d];
        }
        let plane = ch_rows * ch_cols;
        let mut out = vec![self.fill; rows * cols];
        let per_row = cols.div_ceil(ch_cols);
        for (ci, chunk) in chunks.iter().enumerate() {
            let Some(values) = chunk else { continue };
            let (cr, cc) = (ci / per_row, ci % per_row);
            for r in 0..ch_rows {
                let gr = cr * ch_rows + r;
                if gr >= rows {
                    break;
                }
                let start = lead_off * plane + r * ch_cols;
                let width = ch_cols.min(cols - cc * ch_cols);
                let dst = gr * cols + cc * ch_cols;
                out[dst..dst + width].copy_from_slice(&values[start..start + width]);
            }
        }
        out
    }
}

/// A step's slab (rows of `x` values, in the store's order) as a north-up raster.
pub fn step_raster(step: &Step, width: usize, height: usize, slab: &[f64]) -> Raster {
    let mut data = Vec::with_capacity(width * height);
    for r in 0..height {
        let j = if step.flip_y { height - 1 - r } else { r };
        let row = &slab[j * width..(j + 1) * width];
        if step.flip_x {
            data.extend(row.iter().rev().map(|&v| v as f32));
        } else {
            data.extend(row.iter().map(|&v| v as f32));
        }
    }
    Raster {
        width,
        height,
        data,
    }
}

impl Store {
    /// Shape (width, height) of an array's last two dimensions.
    pub fn plane(&self, var: &str) -> Option<(usize, usize)> {
        let a = self.arrays.get(var)?;
        let n = a.shape.len();
        (n >= 2).then(|| (a.shape[n - 1], a.shape[n - 2]))
    }
}

#[cfg(test)]
mod tests;
