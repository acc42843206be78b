use super::*;
use serde_json::json;

fn meta(shape: &[usize], chunks: &[usize], compressor: Value) -> ArrayMeta {
    let zarray = json!({"shape": shape, "chunks": chunks, "dtype": "<f4", "order": "C",
        "filters": null, "compressor": compressor, "fill_value": "NaN", "zarr_format": 2});
    parse_array(
        &zarray,
        Some(&json!({"_ARRAY_DIMENSIONS": ["time", "y", "x"]})),
    )
    .unwrap()
}

#[test]
fn slab_is_assembled_from_edge_chunks() {
    // shape (3, 3, 5), chunks (2, 2, 3): time step 1 lies in time chunk 0 at offset 1.
    let m = meta(&[3, 3, 5], &[2, 2, 3], Value::Null);
    let coords = m.slab_chunks(&[1], 2);
    assert_eq!(
        coords,
        vec![vec![0, 0, 0], vec![0, 0, 1], vec![0, 1, 0], vec![0, 1, 1]]
    );
    assert_eq!(m.chunk_key("T2", &coords[1]), "T2/0.0.1");
    let value = |t: usize, y: usize, x: usize| (t * 100 + y * 10 + x) as f64;
    let chunks: Vec<Option<Vec<f64>>> = coords
        .iter()
        .map(|c| {
            let mut v = Vec::new();
            for t in 0..2 {
                for y in 0..2 {
                    for x in 0..3 {
                        v.push(value(c[0] * 2 + t, c[1] * 2 + y, c[2] * 3 + x));
                    }
                }
            }
            // The last chunk was never written.
            (c != &vec![0, 1, 1]).then_some(v)
        })
        .collect();
    let slab = m.assemble(&[1], 2, &chunks);
    for y in 0..3 {
        for x in 0..5 {
            let got = slab[y * 5 + x];
            if y == 2 && x >= 3 {
                assert!(got.is_nan());
            } else {
                assert_eq!(got, value(1, y, x));
            }
        }
    }
}

#[test]
fn chunks_decode_zlib_and_zstd_and_refuse_unknown_codecs() {
    let m = meta(&[1, 1, 2], &[1, 1, 2], json!({"id": "zlib", "level": 1}));
    let raw: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let z = crate::demo::zlib_compress(&raw, 1).unwrap();
    assert_eq!(m.decode_chunk(&z).unwrap(), vec![1.5, -2.0]);
    assert!(m.decode_chunk(&z[..z.len() / 2]).is_err());
    let zs = meta(&[1, 1, 2], &[1, 1, 2], json!({"id": "zstd", "level": 9}));
    let z = zstd::encode_all(&raw[..], 9).unwrap();
    assert_eq!(zs.decode_chunk(&z).unwrap(), vec![1.5, -2.0]);
    assert!(zs.decode_chunk(&z[..z.len() / 2]).is_err());
    let b = meta(&[1, 1, 2], &[1, 1, 2], json!({"id": "blosc"}));
    let e = b.decode_chunk(&raw).unwrap_err().to_string();
    assert!(e.contains("blosc") && e.contains("not supported"), "{e}");
}

#[test]
fn big_endian_integers_decode() {
    let mut m = meta(&[1, 1, 2], &[1, 1, 2], Value::Null);
    m.dtype = parse_dtype(">i2").unwrap();
    assert_eq!(
        m.decode_chunk(&[0xff, 0xfe, 0x01, 0x00]).unwrap(),
        vec![-2.0, 256.0]
    );
}

#[test]
fn cf_time_labels() {
    let attrs = |u: &str| json!({"units": u, "calendar": "proleptic_gregorian"});
    let a = attrs("days since 1979-10-01");
    assert_eq!(
        time_labels(&[0.0, 1.0], a.as_object().unwrap()).unwrap(),
        vec!["1979-10-01", "1979-10-02"]
    );
    let a = attrs("hours since 1979-10-01 00:00:00");
    assert_eq!(
        time_labels(&[0.0, 3.0], a.as_object().unwrap()).unwrap(),
        vec!["1979-10-01T0000", "1979-10-01T0300"]
    );
    let a = json!({"units": "days since 1979-10-01", "calendar": "noleap"});
    assert!(time_labels(&[0.0], a.as_object().unwrap()).is_none());
    let a = json!({"units": "metres"});
    assert!(time_labels(&[0.0], a.as_object().unwrap()).is_none());
}

#[test]
fn ascending_y_is_flipped() {
    let (geo, flip_y, flip_x) = georef(&[0.0, 4000.0, 8000.0], &[-10.0, -6.0]).unwrap();
    assert!(flip_y && !flip_x);
    assert_eq!(
        (geo.west, geo.north, geo.dx, geo.dy),
        (-12.0, 10000.0, 4.0, 4000.0)
    );
    assert!(georef(&[0.0, 1.0, 5.0], &[0.0, 1.0]).is_err());
}

#[test]
fn lambert_grid_mapping_is_read() {
    let a = json!({"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": [30.0, 50.0],
        "latitude_of_projection_origin": 39.1, "longitude_of_central_meridian": -97.9,
        "earth_radius": 6370000.0});
    let crs = from_cf(a.as_object().unwrap()).unwrap();
    assert_eq!(
        crs,
        Crs::LambertConformal {
            earth: Earth {
                a: 6370000.0,
                b: 6370000.0
            },
            lat1: 30.0,
            lat2: 50.0,
            lat0: 39.1,
            lon0: -97.9
        }
    );
}

#[test]
fn views_name_steps_by_time_and_share_one_layout() {
    let zmeta = json!({"zarr_consolidated_format": 1, "metadata": {
        ".zgroup": {"zarr_format": 2},
        "T2/.zarray": {"shape": [2, 3, 4], "chunks": [1, 3, 4], "dtype": "<f4", "order": "C",
            "filters": null, "compressor": null, "fill_value": "NaN", "zarr_format": 2},
        "T2/.zattrs": {"_ARRAY_DIMENSIONS": ["time", "y", "x"], "grid_mapping": "crs"},
        "crs/.zarray": {"shape": [], "chunks": [], "dtype": "<i4", "order": "C",
            "filters": null, "compressor": null, "fill_value": 0, "zarr_format": 2},
        "crs/.zattrs": {"_ARRAY_DIMENSIONS": [], "grid_mapping_name": "latitude_longitude"},
        "lat2d/.zarray": {"shape": [3, 4], "chunks": [3, 4], "dtype": "<f8", "order": "C",
            "filters": null, "compressor": null, "fill_value": "NaN", "zarr_format": 2},
        "lat2d/.zattrs": {"_ARRAY_DIMENSIONS": ["south_north", "west_east"]},
    }});
    let mut doc = zmeta;
    for (name, len) in [("time", 2), ("y", 3), ("x", 4)] {
        doc["metadata"][format!("{name}/.zarray")] = json!({"shape": [len], "chunks": [len],
            "dtype": "<i8", "order": "C", "filters": null, "compressor": null,
            "fill_value": null, "zarr_format": 2});
        doc["metadata"][format!("{name}/.zattrs")] = json!({"_ARRAY_DIMENSIONS": [name]});
    }
    doc["metadata"]["time/.zattrs"]["units"] = json!("hours since 2000-01-01");
    let store = Store::from_zmetadata(doc.to_string().as_bytes()).unwrap();
    assert_eq!(store.coords_needed(), vec!["time", "x", "y"]);
    let coords: BTreeMap<String, Vec<f64>> = [
        ("time".to_string(), vec![0.0, 6.0]),
        ("y".to_string(), vec![50.0, 49.0, 48.0]),
        ("x".to_string(), vec![0.0, 1.0, 2.0, 3.0]),
    ]
    .into_iter()
    .collect();
    let views = CogViews::new(&store, &coords);
    let files: Vec<&str> = views.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "T2/2000-01-01T0000.tif",
            "T2/2000-01-01T0600.tif",
            "T2/preview.png"
        ]
    );
    assert_eq!(views.layouts.len(), 1);
    assert_eq!(views.steps[1].lead, vec![1]);
    assert!(!views.steps[1].flip_y, "y already descends");
}
