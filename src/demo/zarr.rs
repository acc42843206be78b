//! CONUS404-like daily Zarr v2 store (synthetic values on the real CONUS404 grid geometry).
//!
//! Invariants of the store:
//! * dims `time, y, x`; `x`/`y` are float64 cell centres in metres on the CONUS404 Lambert
//!   conformal grid (4 km, centred on the projection origin), rows run south to north;
//! * 2-D float32 `lat`/`lon` are the exact spherical-LCC inverse of (x, y);
//! * every array has `.zarray` + `.zattrs` (with `_ARRAY_DIMENSIONS`), chunks are zlib
//!   (numcodecs `{"id":"zlib","level":5}`), C order, little endian, `.`-separated keys, and
//!   the root `.zmetadata` holds exactly the same JSON documents (consolidated metadata);
//! * every data variable carries `grid_mapping: "crs"` plus a GDAL `_CRS` WKT attribute.

use anyhow::{Result, ensure};
use serde_json::{Map, Value, json};

use super::{Lcc, Output, hash_noise, zlib_compress};

pub(crate) const NT: usize = 8;
pub(crate) const NY: usize = 120;
pub(crate) const NX: usize = 160;
/// Grid spacing of CONUS404 (metres).
pub(crate) const DX: f64 = 4000.0;
/// WRF's spherical earth.
pub(crate) const EARTH_RADIUS: f64 = 6_370_000.0;
const ZLIB_LEVEL: u32 = 5;
/// (time, y, x) chunking of the 3-D data variables; (y, x) of the 2-D ones.
const CHUNKS_3D: [usize; 3] = [4, 60, 80];
const CHUNKS_2D: [usize; 2] = [60, 80];

/// OGC WKT1 of the CONUS404 projection (for GDAL: `_CRS`, `crs_wkt`, `spatial_ref`).
pub(crate) const WKT: &str = concat!(
    r#"PROJCS["CONUS404 Lambert Conformal Conic (WRF sphere)","#,
    r#"GEOGCS["WRF sphere R=6370000",DATUM["WRF_sphere",SPHEROID["Sphere",6370000,0]],"#,
    r#"PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],"#,
    r#"PROJECTION["Lambert_Conformal_Conic_2SP"],"#,
    r#"PARAMETER["standard_parallel_1",30],PARAMETER["standard_parallel_2",50],"#,
    r#"PARAMETER["latitude_of_origin",39.1],PARAMETER["central_meridian",-97.9],"#,
    r#"PARAMETER["false_easting",0],PARAMETER["false_northing",0],"#,
    r#"UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]"#
);

/// The CONUS404 projection: standard parallels 30/50, origin 39.1 N / 97.9 W.
pub(crate) fn projection() -> Lcc {
    Lcc::new(30.0, 50.0, 39.1, -97.9, EARTH_RADIUS)
}

/// Cell-centre coordinate `k` of an axis with `n` cells of `DX`, symmetric about 0.
pub(crate) fn axis_coord(k: usize, n: usize) -> f64 {
    (k as f64 - (n - 1) as f64 / 2.0) * DX
}

/// All variables of the store, 2-D fields indexed `[j * NX + i]` with `j = 0` southmost,
/// 3-D fields `[(t * NY + j) * NX + i]`.
pub(crate) struct Conus404 {
    pub(crate) x: Vec<f64>,
    pub(crate) y: Vec<f64>,
    pub(crate) lat: Vec<f32>,
    pub(crate) lon: Vec<f32>,
    pub(crate) hgt: Vec<f32>,
    pub(crate) t2: Vec<f32>,
    pub(crate) prec: Vec<f32>,
}

impl Conus404 {
    /// Analytic smooth fields plus hash noise; a pure function (no state, no clock).
    pub(crate) fn compute() -> Self {
        let proj = projection();
        let x: Vec<f64> = (0..NX).map(|i| axis_coord(i, NX)).collect();
        let y: Vec<f64> = (0..NY).map(|j| axis_coord(j, NY)).collect();
        let mut lat64 = Vec::with_capacity(NY * NX);
        let mut lon64 = Vec::with_capacity(NY * NX);
        for &yj in &y {
            for &xi in &x {
                let (la, lo) = proj.inverse(xi, yj);
                lat64.push(la);
                lon64.push(lo);
            }
        }
        let hgt: Vec<f32> = lat64
            .iter()
            .zip(&lon64)
            .map(|(&la, &lo)| terrain(la, lo) as f32)
            .collect();

        let mut t2 = Vec::with_capacity(NT * NY * NX);
        let mut prec = Vec::with_capacity(NT * NY * NX);
        for t in 0..NT {
            for (j, &yj) in y.iter().enumerate() {
                for (i, &xi) in x.iter().enumerate() {
                    let k = j * NX + i;
                    let cell = (t as u64, j as u64, i as u64);
                    t2.push(temperature(
                        t as f64,
                        lat64[k],
                        lon64[k],
                        f64::from(hgt[k]),
                        cell,
                    ));
                    prec.push(precipitation(t as f64, xi, yj, cell));
                }
            }
        }
        Self {
            lat: lat64.iter().map(|&v| v as f32).collect(),
            lon: lon64.iter().map(|&v| v as f32).collect(),
            x,
            y,
            hgt,
            t2,
            prec,
        }
    }

    /// T2 of day `t` (rows south to north).
    pub(crate) fn t2_day(&self, t: usize) -> &[f32] {
        &self.t2[t * NY * NX..(t + 1) * NY * NX]
    }
}

/// Terrain height (m): Great Plains rising westward with gentle ridges, never negative.
fn terrain(lat: f64, lon: f64) -> f64 {
    let west = -94.0 - lon;
    let ridges = 180.0 * ((lat - 37.0) * 1.3).sin() * ((lon + 99.0) * 0.9).cos();
    let hills = 40.0 * (lat * 4.1).sin() * (lon * 3.7).cos();
    (420.0 + 115.0 * west + ridges + hills).max(0.0)
}

/// Daily-mean 2 m temperature (K) around 290 K in early October: meridional gradient,
/// lapse rate, an eastward-travelling wave, a southward-moving front, +-0.3 K noise.
fn temperature(t: f64, lat: f64, lon: f64, hgt: f64, (ct, cj, ci): (u64, u64, u64)) -> f32 {
    let wave = 3.2 * (0.55 * (lon + 97.9) - 0.9 * t + 0.35 * (lat - 39.1)).sin();
    let front = 2.0 * ((lat - 39.1 + 0.4 * (t - 3.5)) * 0.8).tanh();
    let noise = 0.6 * hash_noise(0x7432, ct, cj, ci);
    (291.5 - 0.85 * (lat - 39.1) - 0.0065 * (hgt - 600.0) - 0.35 * t + wave - front + noise) as f32
}

/// Daily precipitation (mm): two storm cells and a frontal band; exactly 0 outside them.
fn precipitation(t: f64, x: f64, y: f64, (ct, cj, ci): (u64, u64, u64)) -> f32 {
    let (xk, yk) = (x / 1000.0, y / 1000.0);
    let blob = |cx: f64, cy: f64, sigma: f64| {
        (-((xk - cx).powi(2) + (yk - cy).powi(2)) / (2.0 * sigma * sigma)).exp()
    };
    let cell1 = 22.0 * blob(-260.0 + 85.0 * t, 120.0 - 30.0 * t, 90.0);
    let cell2 = 14.0
        * (std::f64::consts::PI * t / 7.0).sin()
        * blob(150.0 - 40.0 * t, -150.0 + 20.0 * t, 60.0);
    let band = 6.0
        * (-((yk - (80.0 - 25.0 * t)) / 40.0).powi(2)).exp()
        * (0.5 + 0.5 * (xk / 70.0 + t).sin());
    let v = cell1 + cell2 + band - 2.5;
    if v <= 0.0 {
        0.0
    } else {
        (v * (1.0 + 0.5 * hash_noise(0x9ec, ct, cj, ci))) as f32
    }
}

/// A Zarr v2 element type: dtype string, fill value, little-endian encoding.
trait Element: Copy {
    const DTYPE: &'static str;
    /// Value used to pad partial edge chunks (matches `fill_json`, or 0 for `null`).
    fn fill() -> Self;
    fn fill_json() -> Value;
    fn put(self, out: &mut Vec<u8>);
}

impl Element for f32 {
    const DTYPE: &'static str = "<f4";
    fn fill() -> Self {
        f32::NAN
    }
    fn fill_json() -> Value {
        json!("NaN")
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Element for f64 {
    const DTYPE: &'static str = "<f8";
    fn fill() -> Self {
        f64::NAN
    }
    fn fill_json() -> Value {
        json!("NaN")
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Element for i32 {
    const DTYPE: &'static str = "<i4";
    fn fill() -> Self {
        0
    }
    fn fill_json() -> Value {
        Value::Null
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Element for i64 {
    const DTYPE: &'static str = "<i8";
    fn fill() -> Self {
        0
    }
    fn fill_json() -> Value {
        Value::Null
    }
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Writes arrays under one group prefix and accumulates the consolidated metadata.
struct Store<'a> {
    out: &'a mut Output,
    prefix: String,
    consolidated: Map<String, Value>,
}

impl Store<'_> {
    fn put_json(&mut self, key: &str, doc: Value) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&doc)?;
        self.out.write(&format!("{}/{key}", self.prefix), &bytes)?;
        self.consolidated.insert(key.to_string(), doc);
        Ok(())
    }

    /// Writes `.zarray`, `.zattrs` and every chunk of a C-order array `data` of `shape`.
    /// Chunk keys are `i.j.k` (`0` for a 0-d array); partial edge chunks are padded with
    /// the fill value, as Zarr v2 requires.
    fn array<T: Element>(
        &mut self,
        name: &str,
        dims: &[&str],
        chunks: &[usize],
        shape: &[usize],
        attrs: Value,
        data: &[T],
    ) -> Result<()> {
        ensure!(
            dims.len() == shape.len() && chunks.len() == shape.len(),
            "{name}: rank mismatch"
        );
        ensure!(
            data.len() == shape.iter().product::<usize>(),
            "{name}: data length"
        );
        self.out.mkdir(&format!("{}/{name}", self.prefix))?;
        let zarray = json!({
            "chunks": chunks,
            "compressor": {"id": "zlib", "level": ZLIB_LEVEL},
            "dimension_separator": ".",
            "dtype": T::DTYPE,
            "fill_value": T::fill_json(),
            "filters": null,
            "order": "C",
            "shape": shape,
            "zarr_format": 2,
        });
        let mut attrs = match attrs {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        attrs.insert("_ARRAY_DIMENSIONS".into(), json!(dims));
        self.put_json(&format!("{name}/.zarray"), zarray)?;
        self.put_json(&format!("{name}/.zattrs"), Value::Object(attrs))?;

        let nd = shape.len();
        let grid: Vec<usize> = shape
            .iter()
            .zip(chunks)
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        let chunk_len: usize = chunks.iter().product();
        let mut raw = Vec::with_capacity(chunk_len * std::mem::size_of::<T>());
        for flat in 0..grid.iter().product::<usize>() {
            // Chunk grid index, C order (last dimension fastest).
            let mut cidx = vec![0usize; nd];
            let mut rem = flat;
            for d in (0..nd).rev() {
                cidx[d] = rem % grid[d];
                rem /= grid[d];
            }
            raw.clear();
            for e in 0..chunk_len {
                let (mut rem, mut global, mut stride, mut inside) = (e, 0usize, 1usize, true);
                for d in (0..nd).rev() {
                    let g = cidx[d] * chunks[d] + rem % chunks[d];
                    rem /= chunks[d];
                    inside &= g < shape[d];
                    global += g * stride;
                    stride *= shape[d];
                }
                let v = if inside { data[global] } else { T::fill() };
                v.put(&mut raw);
            }
            let key = if nd == 0 {
                "0".to_string()
            } else {
                cidx.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(".")
            };
            let compressed = zlib_compress(&raw, ZLIB_LEVEL)?;
            self.out
                .write(&format!("{}/{name}/{key}", self.prefix), &compressed)?;
        }
        Ok(())
    }
}

/// Attributes shared by the data variables: CF grid mapping, GDAL CRS, 2-D coordinates.
fn data_var_attrs(long_name: &str, units: &str, extra: Value) -> Value {
    let mut attrs = json!({
        "_CRS": {"wkt": WKT},
        "coordinates": "lat lon",
        "grid_mapping": "crs",
        "long_name": long_name,
        "units": units,
    });
    if let (Value::Object(a), Value::Object(e)) = (&mut attrs, extra) {
        a.extend(e);
    }
    attrs
}

/// Writes the whole store under `rel` (a directory path inside `out`).
pub(crate) fn write_store(c: &Conus404, out: &mut Output, rel: &str) -> Result<()> {
    out.mkdir(rel)?;
    let mut store = Store {
        out,
        prefix: rel.to_string(),
        consolidated: Map::new(),
    };
    store.put_json(".zgroup", json!({"zarr_format": 2}))?;
    store.put_json(
        ".zattrs",
        json!({
            "Conventions": "CF-1.8",
            "comment": "Shaped like s3://hytest/conus404/conus404_daily.zarr (WRF names, \
                        4 km Lambert conformal grid) but values are analytic fields plus noise.",
            "source": "geomount offline demo generator",
            "title": "geomount demo: synthetic CONUS404-like daily subset (NOT real data)",
        }),
    )?;

    let time: Vec<i64> = (0..NT as i64).collect();
    store.array(
        "time",
        &["time"],
        &[NT],
        &[NT],
        json!({
            "axis": "T",
            "calendar": "standard",
            "long_name": "time",
            "standard_name": "time",
            "units": "days since 1979-10-01 00:00:00",
        }),
        &time,
    )?;
    for (name, n, axis, data) in [("x", NX, "X", &c.x), ("y", NY, "Y", &c.y)] {
        store.array(
            name,
            &[name],
            &[n],
            &[n],
            json!({
                "axis": axis,
                "long_name": format!("{name} coordinate of projection"),
                "standard_name": format!("projection_{name}_coordinate"),
                "units": "m",
            }),
            data,
        )?;
    }
    for (name, units, long, std_name, data) in [
        ("lat", "degrees_north", "latitude", "latitude", &c.lat),
        ("lon", "degrees_east", "longitude", "longitude", &c.lon),
    ] {
        store.array(
            name,
            &["y", "x"],
            &CHUNKS_2D,
            &[NY, NX],
            json!({"long_name": long, "standard_name": std_name, "units": units}),
            data,
        )?;
    }
    store.array(
        "crs",
        &[],
        &[],
        &[],
        json!({
            "crs_wkt": WKT,
            "earth_radius": EARTH_RADIUS,
            "false_easting": 0.0,
            "false_northing": 0.0,
            "grid_mapping_name": "lambert_conformal_conic",
            "latitude_of_projection_origin": 39.1,
            "long_name": "CRS definition",
            "longitude_of_central_meridian": -97.9,
            "spatial_ref": WKT,
            "standard_parallel": [30.0, 50.0],
        }),
        &[0i32],
    )?;
    store.array(
        "HGT",
        &["y", "x"],
        &CHUNKS_2D,
        &[NY, NX],
        data_var_attrs(
            "Terrain Height",
            "m",
            json!({"standard_name": "surface_altitude"}),
        ),
        &c.hgt,
    )?;
    store.array(
        "T2",
        &["time", "y", "x"],
        &CHUNKS_3D,
        &[NT, NY, NX],
        data_var_attrs(
            "Temperature at 2 m",
            "K",
            json!({"description": "TEMP at 2 M (daily mean)", "standard_name": "air_temperature"}),
        ),
        &c.t2,
    )?;
    store.array(
        "PREC_ACC_NC",
        &["time", "y", "x"],
        &CHUNKS_3D,
        &[NT, NY, NX],
        data_var_attrs(
            "Accumulated grid scale precipitation",
            "mm",
            json!({"description": "daily accumulated grid scale precipitation"}),
        ),
        &c.prec,
    )?;

    let zmetadata = json!({
        "metadata": Value::Object(std::mem::take(&mut store.consolidated)),
        "zarr_consolidated_format": 1,
    });
    let bytes = serde_json::to_vec_pretty(&zmetadata)?;
    store.out.write(&format!("{rel}/.zmetadata"), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Read;
    use std::path::Path;

    fn inflate(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid zlib stream");
        out
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).expect("read")).expect("valid JSON")
    }

    #[test]
    fn store_metadata_is_consistent_and_chunks_decode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut out = Output::new(tmp.path().to_path_buf());
        let c = Conus404::compute();
        write_store(&c, &mut out, "s.zarr").expect("write");
        let root = tmp.path().join("s.zarr");

        assert_eq!(read_json(&root.join(".zgroup")), json!({"zarr_format": 2}));
        let zmeta = read_json(&root.join(".zmetadata"));
        assert_eq!(zmeta["zarr_consolidated_format"], 1);
        let meta = zmeta["metadata"].as_object().expect("metadata object");
        // Every consolidated entry equals the file on disk, and vice versa.
        for (key, doc) in meta {
            assert_eq!(&read_json(&root.join(key)), doc, "{key}");
        }
        let arrays = [
            "time",
            "x",
            "y",
            "lat",
            "lon",
            "crs",
            "HGT",
            "T2",
            "PREC_ACC_NC",
        ];
        assert_eq!(meta.len(), 2 + 2 * arrays.len());

        for name in arrays {
            let za = &meta[&format!("{name}/.zarray")];
            let attrs = &meta[&format!("{name}/.zattrs")];
            assert_eq!(za["zarr_format"], 2);
            assert_eq!(za["compressor"], json!({"id": "zlib", "level": 5}));
            let shape: Vec<usize> = serde_json::from_value(za["shape"].clone()).expect("shape");
            let chunks: Vec<usize> = serde_json::from_value(za["chunks"].clone()).expect("chunks");
            let dims = attrs["_ARRAY_DIMENSIONS"].as_array().expect("dims");
            assert_eq!(dims.len(), shape.len(), "{name}");
            let itemsize: usize = za["dtype"].as_str().expect("dtype")[2..]
                .parse()
                .expect("size");
            let nchunks: usize = shape
                .iter()
                .zip(&chunks)
                .map(|(s, c)| s.div_ceil(*c))
                .product();
            let files = fs::read_dir(root.join(name))
                .expect("array dir")
                .filter(|e| {
                    !e.as_ref()
                        .expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count();
            assert_eq!(files, nchunks, "{name}: chunk files");
            let first = if shape.is_empty() {
                "0".to_string()
            } else {
                vec!["0"; shape.len()].join(".")
            };
            let raw = inflate(&fs::read(root.join(name).join(first)).expect("chunk"));
            assert_eq!(
                raw.len(),
                chunks.iter().product::<usize>() * itemsize,
                "{name}"
            );
            if ["HGT", "T2", "PREC_ACC_NC"].contains(&name) {
                assert_eq!(attrs["grid_mapping"], "crs", "{name}");
                assert_eq!(attrs["_CRS"]["wkt"], WKT, "{name}");
            }
        }

        // Chunk T2/1.1.0 holds days 4..8, rows 60..120, columns 0..80 in C order.
        let raw = inflate(&fs::read(root.join("T2/1.1.0")).expect("chunk"));
        let (t, j, i) = (5, 61, 7);
        let local = ((t - 4) * 60 + (j - 60)) * 80 + i;
        let got = f32::from_le_bytes(raw[local * 4..local * 4 + 4].try_into().expect("4 bytes"));
        assert_eq!(got, c.t2[(t * NY + j) * NX + i]);
    }

    #[test]
    fn fields_are_plausible() {
        let c = Conus404::compute();
        let (tmin, tmax) =
            c.t2.iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(tmin > 270.0 && tmax < 310.0, "T2 range {tmin}..{tmax}");
        assert!(c.prec.iter().all(|p| (0.0..60.0).contains(p)));
        let wet = c.prec.iter().filter(|&&p| p > 0.0).count();
        assert!(
            wet > c.prec.len() / 20 && wet < c.prec.len() / 2,
            "wet cells {wet}"
        );
        assert!(c.hgt.iter().all(|&h| (0.0..3000.0).contains(&h)));
        // Rows run south to north: latitude increases with j at the central column.
        assert!(c.lat[(NY - 1) * NX + NX / 2] > c.lat[NX / 2] + 3.0);
        // The grid centre is the projection origin.
        let (la, lo) = projection().inverse(0.0, 0.0);
        assert!((la - 39.1).abs() < 1e-9 && (lo + 97.9).abs() < 1e-9);
        assert_eq!(c.x[0], -318_000.0);
        assert_eq!(c.y[NY - 1], 238_000.0);
    }
}
