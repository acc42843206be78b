//! The file trees of a GRIB2 file's views: `NAME.grib2.zarr/` (Zarr v2, consolidated) and
//! `NAME.grib2.cog/VAR.tif`. A projected grid has 1-D `x`/`y` (metres) and 2-D
//! `latitude`/`longitude`; a latitude/longitude grid has 1-D `longitude`/`latitude` as its
//! dimensions. Every file's size follows from the inventory alone; bytes are made
//! from decoded fields. Nothing here does I/O.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::cog::{CogLayout, CogSpec, GeoRef, Raster};
use super::grib::{Grid, Header, array_name, describe};
use crate::formats::grib2::IdxLine;

/// One message of the source file and the array it becomes.
#[derive(Clone, Debug)]
pub struct Message {
    /// Where the GRIB message holding the field lies in the source.
    pub offset: u64,
    pub len: u64,
    /// The field's place among its message's fields (0-based; sections 2-7 may repeat).
    pub field: usize,
    /// Its number as eccodes counts messages (1-based, each field one, GRIB1 messages too).
    pub number: usize,
    pub name: String,
    pub idx: Option<IdxLine>,
    pub header: Header,
}

/// What a view file holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// JSON metadata, made up front.
    Json(String),
    /// Float32 values of message `msg` (scan order), little endian.
    Field(usize),
    /// Float64 projection coordinates along x or y.
    Axis(Axis),
    /// 2-D latitude or longitude, float64.
    LatLon(Axis),
    /// The scalar `crs` variable (int32 0).
    CrsValue,
    /// The COG of message `msg`.
    Cog(usize),
    /// The quicklook PNG of message `msg`.
    Preview(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    X,
    Y,
}

/// A virtual file: its size and how to make it.
#[derive(Clone, Debug)]
pub struct VFile {
    pub size: u64,
    pub content: Content,
}

/// The two views of one GRIB2 file.
#[derive(Debug)]
pub struct Views {
    pub messages: Vec<Message>,
    /// Paths relative to the view root (`x.grib2.zarr/` or `x.grib2.cog/`), files only.
    pub zarr: BTreeMap<String, VFile>,
    pub cog: BTreeMap<String, VFile>,
    pub cogs: Vec<CogLayout>,
}

/// Names for messages: `VAR_LEVEL`, with the forecast appended where two would clash, and
/// the message number (as eccodes counts them) if they still do. Without an inventory, names come from the codes.
pub fn assign_names(messages: &mut [Message]) {
    let base: Vec<String> = messages
        .iter()
        .map(|m| match &m.idx {
            Some(l) => array_name(&[&l.var, &l.level]),
            None => format!(
                "var_d{}_c{}_n{}",
                m.header.discipline, m.header.category, m.header.number
            ),
        })
        .collect();
    let count = |v: &[String], s: &str| v.iter().filter(|x| *x == s).count();
    let with_fc: Vec<String> = messages
        .iter()
        .zip(&base)
        .map(|(m, b)| match (&m.idx, count(&base, b) > 1) {
            (Some(l), true) => array_name(&[b, &l.forecast]),
            _ => b.clone(),
        })
        .collect();
    for (k, m) in messages.iter_mut().enumerate() {
        m.name = if count(&with_fc, &with_fc[k]) > 1 {
            format!("{}_{}", with_fc[k], m.number)
        } else {
            with_fc[k].clone()
        };
    }
}

fn zarray(shape: &[usize], dtype: &str, fill: Value) -> String {
    json!({
        "zarr_format": 2,
        "shape": shape,
        "chunks": shape,
        "dtype": dtype,
        "compressor": null,
        "fill_value": fill,
        "order": "C",
        "filters": null,
        "dimension_separator": ".",
    })
    .to_string()
}

/// The chunk key of a single-chunk array of `ndim` dimensions.
fn chunk_key(ndim: usize) -> String {
    if ndim == 0 {
        "0".into()
    } else {
        vec!["0"; ndim].join(".")
    }
}

impl Views {
    /// Builds both trees for `messages` (already named). `source` names the file for attributes.
    pub fn new(messages: Vec<Message>, source: &str) -> anyhow::Result<Self> {
        let mut meta: BTreeMap<String, Value> = BTreeMap::new();
        let mut zarr = BTreeMap::new();
        let mut cog = BTreeMap::new();
        let mut cogs = Vec::new();
        meta.insert(".zgroup".into(), json!({"zarr_format": 2}));
        meta.insert(
            ".zattrs".into(),
            json!({
                "Conventions": "CF-1.8",
                "source": source,
                "history": "converted from GRIB2 on read by geomount",
            }),
        );
        let mut add_array = |name: &str,
                             shape: &[usize],
                             dtype: &str,
                             fill: Value,
                             attrs: Value,
                             content: Content| {
            let zarray = zarray(shape, dtype, fill);
            let item = if dtype.ends_with('8') { 8 } else { 4 };
            let size = (shape.iter().product::<usize>() * item) as u64;
            meta.insert(
                format!("{name}/.zarray"),
                serde_json::from_str(&zarray).unwrap_or(Value::Null),
            );
            meta.insert(format!("{name}/.zattrs"), attrs);
            zarr.insert(
                format!("{name}/{}", chunk_key(shape.len())),
                VFile { size, content },
            );
        };
        if let Some(first) = messages.first() {
            let g = &first.header.grid;
            // A latitude/longitude grid's 1-D coordinates are named as their dimensions, as
            // cfgrib names them; a projected grid has x, y and 2-D latitude, longitude.
            let [(xn, xs, xl, xu), (yn, ys, yl, yu)] = if g.is_geographic() {
                [
                    ("longitude", "longitude", "longitude", "degrees_east"),
                    ("latitude", "latitude", "latitude", "degrees_north"),
                ]
            } else {
                [
                    (
                        "x",
                        "projection_x_coordinate",
                        "x coordinate of projection",
                        "m",
                    ),
                    (
                        "y",
                        "projection_y_coordinate",
                        "y coordinate of projection",
                        "m",
                    ),
                ]
            };
            for (name, len, std, long, units, axis) in [
                (xn, g.nx, xs, xl, xu, Axis::X),
                (yn, g.ny, ys, yl, yu, Axis::Y),
            ] {
                let attrs = json!({"_ARRAY_DIMENSIONS": [name], "standard_name": std,
                    "long_name": long, "units": units, "axis": format!("{axis:?}")});
                add_array(
                    name,
                    &[len],
                    "<f8",
                    json!("NaN"),
                    attrs,
                    Content::Axis(axis),
                );
            }
            if !g.is_geographic() {
                for (name, units, axis) in [
                    ("latitude", "degrees_north", Axis::Y),
                    ("longitude", "degrees_east", Axis::X),
                ] {
                    let attrs = json!({"_ARRAY_DIMENSIONS": ["y", "x"], "standard_name": name,
                        "long_name": name, "units": units});
                    add_array(
                        name,
                        &[g.ny, g.nx],
                        "<f8",
                        json!("NaN"),
                        attrs,
                        Content::LatLon(axis),
                    );
                }
            }
            let mut crs_attrs = g.crs.cf_attrs();
            crs_attrs.insert("_ARRAY_DIMENSIONS".into(), json!([]));
            add_array(
                "crs",
                &[],
                "<i4",
                json!(0),
                Value::Object(crs_attrs),
                Content::CrsValue,
            );
        }
        for (k, m) in messages.iter().enumerate() {
            let g = &m.header.grid;
            anyhow::ensure!(
                messages.first().is_some_and(|f| f.header.grid == *g),
                "message {} has a different grid from message 1; one Zarr group holds one grid",
                k + 1
            );
            let attrs = field_attrs(m);
            add_array(
                &m.name,
                &[g.ny, g.nx],
                "<f4",
                json!("NaN"),
                Value::Object(attrs.clone()),
                Content::Field(k),
            );
            let spec = cog_spec(g, &attrs);
            let layout = CogLayout::new(&spec)?;
            cog.insert(
                format!("{}.tif", m.name),
                VFile {
                    size: layout.size(),
                    content: Content::Cog(k),
                },
            );
            cogs.push(layout);
        }
        let consolidated = json!({"zarr_consolidated_format": 1, "metadata": meta});
        for (path, v) in &meta {
            let text = v.to_string();
            zarr.insert(
                path.clone(),
                VFile {
                    size: text.len() as u64,
                    content: Content::Json(text),
                },
            );
        }
        let text = consolidated.to_string();
        zarr.insert(
            ".zmetadata".into(),
            VFile {
                size: text.len() as u64,
                content: Content::Json(text),
            },
        );
        if let Some(m) = messages.first() {
            let (w, h) = super::cog::smallest_level(m.header.grid.nx, m.header.grid.ny);
            let preview = VFile {
                size: super::preview::size(w, h),
                content: Content::Preview(0),
            };
            zarr.insert("preview.png".into(), preview.clone());
            cog.insert("preview.png".into(), preview);
        }
        Ok(Self {
            messages,
            zarr,
            cog,
            cogs,
        })
    }
}

fn field_attrs(m: &Message) -> Map<String, Value> {
    let h = &m.header;
    let mut a = Map::new();
    if h.grid.is_geographic() {
        a.insert("_ARRAY_DIMENSIONS".into(), json!(["latitude", "longitude"]));
    } else {
        a.insert("_ARRAY_DIMENSIONS".into(), json!(["y", "x"]));
    }
    if let Some(l) = &m.idx {
        if let Some((units, long)) = describe(&l.var) {
            a.insert("units".into(), json!(units));
            a.insert("long_name".into(), json!(long));
        } else {
            a.insert("long_name".into(), json!(l.var));
        }
        a.insert("GRIB_shortName".into(), json!(l.var));
        a.insert("GRIB_level".into(), json!(l.level));
        a.insert("GRIB_forecast".into(), json!(l.forecast));
    }
    a.insert("GRIB_discipline".into(), json!(h.discipline));
    a.insert("GRIB_parameterCategory".into(), json!(h.category));
    a.insert("GRIB_parameterNumber".into(), json!(h.number));
    a.insert("GRIB_message".into(), json!(m.number));
    a.insert("reference_time".into(), json!(h.reference_time));
    if let Some(v) = &h.valid_time {
        a.insert("valid_time".into(), json!(v));
    }
    a.insert("grid_mapping".into(), json!("crs"));
    if !h.grid.is_geographic() {
        a.insert("coordinates".into(), json!("latitude longitude"));
    }
    a.insert("_CRS".into(), json!({"wkt": h.grid.crs.wkt()}));
    a
}

/// North-up georeferencing of a grid's COG: pixel edges half a cell beyond the centres.
pub fn cog_geo(g: &Grid) -> GeoRef {
    let (x, y) = (g.x(), g.y());
    let west = x.iter().cloned().fold(f64::INFINITY, f64::min);
    let north = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    GeoRef {
        west: west - g.dx.abs() / 2.0,
        north: north + g.dy.abs() / 2.0,
        dx: g.dx.abs(),
        dy: g.dy.abs(),
    }
}

fn cog_spec(g: &Grid, attrs: &Map<String, Value>) -> CogSpec {
    let mut md = String::from("<GDALMetadata>\n");
    for (k, v) in attrs {
        if k.starts_with('_') {
            continue;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        md.push_str(&format!(
            "  <Item name=\"{}\">{}</Item>\n",
            xml_escape(k),
            xml_escape(&text)
        ));
    }
    md.push_str("</GDALMetadata>\n");
    CogSpec {
        width: g.nx,
        height: g.ny,
        geo: cog_geo(g),
        crs: g.crs,
        nodata: f32::NAN,
        gdal_metadata: Some(md),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A field in scan order as a north-up raster (rows flipped where the grid runs south to
/// north, columns where it runs east to west).
pub fn north_up(g: &Grid, values: &[f32]) -> Raster {
    let mut data = Vec::with_capacity(values.len());
    for r in 0..g.ny {
        let j = if g.dy > 0.0 { g.ny - 1 - r } else { r };
        let row = &values[j * g.nx..(j + 1) * g.nx];
        if g.dx > 0.0 {
            data.extend_from_slice(row);
        } else {
            data.extend(row.iter().rev());
        }
    }
    Raster {
        width: g.nx,
        height: g.ny,
        data,
    }
}
