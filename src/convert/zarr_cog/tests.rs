use super::*;
use serde_json::json;

fn meta(shape: &[usize], chunks: &[usize], compressor: Value) -> ArrayMeta {
    let zarray = json!({"shape": shape, "chunks": chunks, "dtype": "<f4", "order": "C",
        "filters": null, "compressor": compressor, "fill_value": "NaN", "zarr_format": 2});
    ArrayMeta::new(
        zarr::ArrayMeta::from_v2(
            &zarray,
            Some(&json!({"_ARRAY_DIMENSIONS": ["time", "y", "x"]})),
        )
        .unwrap(),
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
    let z = {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
        enc.write_all(&raw).unwrap();
        enc.finish().unwrap()
    };
    assert_eq!(m.decode_chunk(&z).unwrap(), vec![1.5, -2.0]);
    assert!(m.decode_chunk(&z[..z.len() / 2]).is_err());
    let zs = meta(&[1, 1, 2], &[1, 1, 2], json!({"id": "zstd", "level": 9}));
    let z = zstd::encode_all(&raw[..], 9).unwrap();
    assert_eq!(zs.decode_chunk(&z).unwrap(), vec![1.5, -2.0]);
    assert!(zs.decode_chunk(&z[..z.len() / 2]).is_err());
    let b = meta(&[1, 1, 2], &[1, 1, 2], json!({"id": "xyz"}));
    let e = b.decode_chunk(&raw).unwrap_err().to_string();
    assert!(e.contains("compressor `xyz` is not supported"), "{e}");
}

#[test]
fn big_endian_integers_decode() {
    let mut m = meta(&[1, 1, 2], &[1, 1, 2], Value::Null);
    m.dtype = zarr::parse_v2_dtype(">i2").unwrap();
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
    let views = CogViews::new("s.zarr", &store, &coords);
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

const FIXTURE_3D: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/zarr/dataset_3d.zarr"
);

/// xarray's default encoding with zarr-python 2 (blosc lz4, byte shuffle, f8, 8 split streams):
/// chunks of the dataset_3d fixture, edge chunks included, decode to zarr-python's values, which
/// tests/data/make.py wrote to dataset_3d.json (`zarr.open(FIXTURE_3D)["dataset"][t, y, x]`).
#[test]
fn blosc_chunks_of_the_xarray_fixture_decode() {
    let stem = FIXTURE_3D.strip_suffix(".zarr").unwrap();
    let text = std::fs::read_to_string(format!("{stem}.json")).unwrap();
    let want: Value = serde_json::from_str(&text).unwrap();
    let bits = |v: &Value| f64::from_bits(v.as_u64().unwrap());
    let zmeta = std::fs::read(format!("{FIXTURE_3D}/.zmetadata")).unwrap();
    let store = Store::from_zmetadata(&zmeta).unwrap();
    let a = &store.arrays["dataset"];
    let chunk = |key: &str| {
        let raw = std::fs::read(format!("{FIXTURE_3D}/dataset/{key}")).unwrap();
        a.decode_chunk(&raw).unwrap()
    };
    let cells: u64 = want["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .product();
    let samples = want["samples"].as_array().unwrap();
    assert!(samples.len() >= 8);
    for s in samples {
        let key = s["chunk"].as_str().unwrap();
        let c = chunk(key);
        assert_eq!(c.len() as u64, cells, "{key}");
        let i = s["index"].as_u64().unwrap() as usize;
        assert_eq!(
            c[i].to_bits(),
            bits(&s["bits"]).to_bits(),
            "{key}[{i}]: {}",
            c[i]
        );
    }
    // The 1-D coordinates (blosc too), and the COG view: geographic, y flipped north-up.
    let coords: BTreeMap<String, Vec<f64>> = store
        .coords_needed()
        .into_iter()
        .map(|p| {
            let m = &store.arrays[&p];
            let raw = std::fs::read(format!("{FIXTURE_3D}/{}", m.chunk_key(&p, &[0]))).unwrap();
            (p, m.decode_chunk(&raw).unwrap())
        })
        .collect();
    let raw = |k: &str| -> Vec<f64> {
        want["coords"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(bits)
            .collect()
    };
    assert_eq!(coords["time"], raw("time"));
    for k in ["y", "x"] {
        let c = &coords[k];
        assert_eq!(vec![c[0], c[c.len() - 1]], raw(k), "{k}");
    }
    let views = CogViews::new("s.zarr", &store, &coords);
    let files: Vec<String> = views.files.keys().cloned().collect();
    let mut expect: Vec<String> = want["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("dataset/{}.tif", l.as_str().unwrap()))
        .collect();
    expect.push("dataset/preview.png".into());
    assert_eq!(files, expect);
    assert!(views.steps[0].flip_y);
    let broken = a.decode_chunk(&[2, 1, 0x21, 8, 0, 0, 0, 0]).unwrap_err();
    assert!(format!("{broken:#}").contains("blosc"), "{broken:#}");
}

#[test]
fn v2_shuffle_and_delta_filters_decode() {
    let values = [3i32, 5, -2, 40];
    let mut deltas = vec![values[0]];
    deltas.extend(values.windows(2).map(|w| w[1] - w[0]));
    let raw: Vec<u8> = deltas.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut shuffled = vec![0u8; raw.len()];
    for i in 0..4 {
        for j in 0..4 {
            shuffled[j * 4 + i] = raw[i * 4 + j];
        }
    }
    let zarray = json!({"shape": [4], "chunks": [4], "dtype": "<i4", "order": "C",
        "filters": [{"id": "delta", "dtype": "<i4"}, {"id": "shuffle", "elementsize": 4}],
        "compressor": {"id": "zstd", "level": 1}, "fill_value": 0, "zarr_format": 2});
    let m = ArrayMeta::new(zarr::ArrayMeta::from_v2(&zarray, None).unwrap()).unwrap();
    let z = zstd::encode_all(&shuffled[..], 1).unwrap();
    assert_eq!(m.decode_chunk(&z).unwrap(), vec![3.0, 5.0, -2.0, 40.0]);
    let mut bad = zarray.clone();
    bad["filters"] = json!([{"id": "xyz", "scale": 10}]);
    let e = ArrayMeta::new(zarr::ArrayMeta::from_v2(&bad, None).unwrap())
        .unwrap()
        .decode_chunk(&z)
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("filter `xyz` is not supported"),
        "{e:#}"
    );
}

/// A v3 store as zarr-python 3 / xarray write it: consolidated metadata in the root
/// `zarr.json`, `dimension_names`, `c/`-prefixed keys, `bytes` + a compressor.
#[test]
fn v3_consolidated_metadata_gives_arrays_and_views() {
    let arr = |shape: Vec<usize>, chunks: Vec<usize>, dt: &str, dims: Value, codecs: Value| {
        json!({"zarr_format": 3, "node_type": "array", "shape": shape, "data_type": dt,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": "NaN", "codecs": codecs, "dimension_names": dims,
            "attributes": {}})
    };
    let le = json!([{"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 0, "checksum": false}}]);
    let mut t2 = arr(
        vec![2, 3, 4],
        vec![1, 2, 4],
        "float32",
        json!(["time", "y", "x"]),
        json!([{"name": "bytes", "configuration": {"endian": "big"}},
               {"name": "blosc", "configuration": {"cname": "lz4", "shuffle": "bitshuffle"}}]),
    );
    t2["attributes"] = json!({"grid_mapping": "crs"});
    let mut time = arr(vec![2], vec![2], "int64", json!(["time"]), le.clone());
    time["attributes"] = json!({"units": "days since 2001-02-03", "calendar": "standard"});
    let mut crs = arr(vec![], vec![], "int32", json!([]), le.clone());
    crs["attributes"] = json!({"grid_mapping_name": "latitude_longitude"});
    let sharded = arr(
        vec![4],
        vec![4],
        "float32",
        json!(["x"]),
        json!([{"name": "sharding_indexed", "configuration": {"chunk_shape": [2]}}]),
    );
    let root = json!({"zarr_format": 3, "node_type": "group", "attributes": {},
    "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": {
        "T2": t2, "time": time, "crs": crs, "S": sharded,
        "y": arr(vec![3], vec![3], "float64", json!(["y"]), le.clone()),
        "x": arr(vec![4], vec![4], "float64", json!(["x"]), le.clone()),
        "sub": {"zarr_format": 3, "node_type": "group", "attributes": {}},
    }}});
    let bytes = root.to_string().into_bytes();
    assert!(Store::is_consolidated_v3(&bytes));
    let store = Store::from_zarr_json(&bytes, &[]).unwrap();
    let t2 = &store.arrays["T2"];
    assert_eq!(t2.chunk_key("T2", &[1, 0, 0]), "T2/c/1/0/0");
    assert_eq!(store.arrays["crs"].chunk_key("crs", &[]), "crs/c");
    assert!(!t2.dtype.le);
    // A shard configuration without inner codecs is refused, naming the codec.
    let e = store.arrays["S"].decode_chunk(&[]).unwrap_err();
    assert!(format!("{e:#}").contains("sharding_indexed"), "{e:#}");
    // A big-endian chunk through zstd.
    let z = zstd::encode_all(&[0x3f, 0xc0, 0, 0, 0xc1, 0x20, 0, 0][..], 1).unwrap();
    let mut m = t2.clone();
    m.chunks = vec![1, 1, 2];
    m.codecs = Pipeline::from_v3(
        &json!([{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "zstd"},
                {"name": "crc32c"}]),
        &mut m.dtype,
    )
    .map_err(|e| e.to_string());
    let mut framed = z.clone();
    framed.extend_from_slice(&[0; 4]);
    assert_eq!(m.decode_chunk(&framed).unwrap(), vec![1.5, -10.0]);
    let coords: BTreeMap<String, Vec<f64>> = [
        ("time".to_string(), vec![0.0, 1.0]),
        ("y".to_string(), vec![10.0, 9.0, 8.0]),
        ("x".to_string(), vec![0.0, 1.0, 2.0, 3.0]),
    ]
    .into_iter()
    .collect();
    assert_eq!(store.coords_needed(), vec!["time", "x", "y"]);
    let views = CogViews::new("s.zarr", &store, &coords);
    let files: Vec<&str> = views.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        ["T2/2001-02-03.tif", "T2/2001-02-04.tif", "T2/preview.png"]
    );
    // Without consolidated metadata the arrays come from `extra` documents.
    let plain = br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#;
    assert!(!Store::is_consolidated_v3(plain));
    let store = Store::from_zarr_json(
        plain,
        &[(
            "T2".into(),
            root["consolidated_metadata"]["metadata"]["T2"].clone(),
        )],
    )
    .unwrap();
    assert_eq!(store.arrays.keys().collect::<Vec<_>>(), ["T2"]);
}

/// `sharding_indexed` as zarr-python 3 writes it: inner chunks located through the shard's
/// index (at its end, with a CRC32C), one inner chunk never written.
#[test]
fn v3_shards_locate_inner_chunks() {
    let meta = json!({"zarr_format": 3, "node_type": "array", "shape": [2, 6],
        "data_type": "float32", "fill_value": "NaN", "dimension_names": ["y", "x"],
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 4]}},
        "chunk_key_encoding": {"name": "default"},
        "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [1, 2],
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                       {"name": "zstd", "configuration": {"level": 1}}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "crc32c"}],
            "index_location": "end"}}]});
    let a = ArrayMeta::new(zarr::ArrayMeta::from_v3(&meta).unwrap()).unwrap();
    assert_eq!(a.chunks, vec![1, 2]);
    // Inner chunk (1, 3) is in shard (0, 1) at index position 1 * 2 + 1.
    let (key, inner) = a.chunk_location("v", &[1, 3]);
    assert_eq!(key, "v/c/0/1");
    let (sh, pos) = inner.unwrap();
    assert_eq!(pos, 3);
    assert_eq!(sh.count(), 4);
    // A shard: chunk 0 then chunk 3; 1 and 2 absent; index at the end.
    let c0 = zstd::encode_all(&[0u8, 0, 0x80, 0x3f, 0, 0, 0, 0x40][..], 1).unwrap();
    let c3 = zstd::encode_all(&[0u8, 0, 0x40, 0x40, 0, 0, 0x80, 0x40][..], 1).unwrap();
    let mut shard = c0.clone();
    shard.extend_from_slice(&c3);
    let entries = [
        (0, c0.len() as u64),
        (u64::MAX, u64::MAX),
        (u64::MAX, u64::MAX),
        (c0.len() as u64, c3.len() as u64),
    ];
    let mut index = Vec::new();
    for (o, l) in entries {
        index.extend_from_slice(&o.to_le_bytes());
        index.extend_from_slice(&l.to_le_bytes());
    }
    index.extend_from_slice(&[0; 4]);
    shard.extend_from_slice(&index);
    let size = shard.len() as u64;
    let r = sh.index_range(size).unwrap();
    let ranges = sh
        .inner_ranges(&shard[r.start as usize..r.end as usize], size)
        .unwrap();
    assert_eq!(ranges[1], None);
    let r3 = ranges[3].clone().unwrap();
    assert_eq!(
        a.decode_chunk(&shard[r3.start as usize..r3.end as usize])
            .unwrap(),
        vec![3.0, 4.0]
    );
    assert!(sh.inner_ranges(&index, 3).is_err(), "ranges past the shard");
    assert!(sh.index_range(10).is_err());
    // Nested sharding and unknown index codecs are refused by name.
    let mut nested = meta.clone();
    nested["codecs"][0]["configuration"]["codecs"] = meta["codecs"].clone();
    let e = ArrayMeta::new(zarr::ArrayMeta::from_v3(&nested).unwrap())
        .unwrap()
        .decode_chunk(&[])
        .unwrap_err();
    assert!(format!("{e:#}").contains("sharding_indexed"), "{e:#}");
}

/// An array of `dtype` with these v2 filters and compressor.
fn v2(dtype: &str, filters: Value, compressor: Value) -> ArrayMeta {
    let zarray = json!({"shape": [1, 1, 4], "chunks": [1, 1, 4], "dtype": dtype, "order": "C",
        "filters": filters, "compressor": compressor, "fill_value": "NaN", "zarr_format": 2});
    ArrayMeta::new(zarr::ArrayMeta::from_v2(&zarray, None).unwrap()).unwrap()
}

fn f4_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// numcodecs `lzma` (xz and alone), `bz2` and `lz4` chunks decode; a stream claiming more than
/// the chunk is refused before it is decoded.
#[test]
fn lzma_bz2_lz4_chunks_decode() {
    use std::io::Write;
    let values = [1.5f32, -2.0, 3.25, 1e6];
    let raw = f4_bytes(&values);
    let want: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &raw[..], &mut xz).unwrap();
    let m = v2(
        "<f4",
        Value::Null,
        json!({"id": "lzma", "format": 1, "check": -1,
        "preset": null, "filters": null}),
    );
    assert_eq!(m.decode_chunk(&xz).unwrap(), want);
    assert!(m.decode_chunk(&xz[..xz.len() - 8]).is_err());
    assert_eq!(codecs::xz_unpacked_size(&xz).unwrap(), 16);
    // The same stream for a chunk of half the size: refused from the LZMA2 headers.
    let small = json!({"shape": [2], "chunks": [2], "dtype": "<f4", "order": "C",
        "filters": null, "compressor": {"id": "lzma"}, "fill_value": "NaN", "zarr_format": 2});
    let small = ArrayMeta::new(zarr::ArrayMeta::from_v2(&small, None).unwrap()).unwrap();
    let e = small.decode_chunk(&xz).unwrap_err().to_string();
    assert!(e.contains("more than a chunk"), "{e}");
    // liblzma's own streams (Python's `lzma.compress`, as numcodecs calls it) of those four
    // values repeated 64 times: xz with CRC64, and lzma-alone.
    let hex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    };
    let liblzma_xz = hex(concat!(
        "fd377a585a000004e6d6b4460200210116000000742fe5a3e003ff00195d000062fef1fe8840ef0cbd57",
        "d71e47e68a24c16849968a93720000000000f3482320e6689b2a0001358008000000bedab0e3b1c467fb",
        "020000000004595a"
    ));
    let liblzma_alone = hex(concat!(
        "5d00008000ffffffffffffffff000062fef1fe8840ef0cbd57d71e47e68a24c16849968b44a3b95fffa7",
        "f80000"
    ));
    let long = json!({"shape": [256], "chunks": [256], "dtype": "<f4", "order": "C",
        "filters": null, "compressor": {"id": "lzma"}, "fill_value": "NaN", "zarr_format": 2});
    let long = ArrayMeta::new(zarr::ArrayMeta::from_v2(&long, None).unwrap()).unwrap();
    let want_long: Vec<f64> = want.iter().cycle().take(256).copied().collect();
    assert_eq!(codecs::xz_unpacked_size(&liblzma_xz).unwrap(), 1024);
    assert_eq!(long.decode_chunk(&liblzma_xz).unwrap(), want_long);
    let mut long = long;
    long.codecs = Pipeline::from_v2(
        &json!("C"),
        &json!({"id": "lzma", "format": 2}),
        &Value::Null,
        long.dtype,
    )
    .map_err(|e| e.to_string());
    assert_eq!(long.decode_chunk(&liblzma_alone).unwrap(), want_long);
    let mut alone = Vec::new();
    lzma_rs::lzma_compress(&mut &raw[..], &mut alone).unwrap();
    let m = v2("<f4", Value::Null, json!({"id": "lzma", "format": 2}));
    assert_eq!(m.decode_chunk(&alone).unwrap(), want);
    assert!(small.decode_chunk(&alone).is_err());

    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(9));
    bz.write_all(&raw).unwrap();
    let bz = bz.finish().unwrap();
    let m = v2("<f4", Value::Null, json!({"id": "bz2", "level": 1}));
    assert_eq!(m.decode_chunk(&bz).unwrap(), want);
    assert!(m.decode_chunk(&bz[..bz.len() / 2]).is_err());

    let mut lz = (raw.len() as u32).to_le_bytes().to_vec();
    // One literal-only LZ4 sequence: token 15 (+1 in the next byte) literals.
    lz.extend([0xf0, 1]);
    lz.extend(&raw);
    let m = v2("<f4", Value::Null, json!({"id": "lz4", "acceleration": 1}));
    assert_eq!(m.decode_chunk(&lz).unwrap(), want);
    let mut huge = lz.clone();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = m.decode_chunk(&huge).unwrap_err().to_string();
    assert!(e.contains("more than a chunk"), "{e}");
    assert!(m.decode_chunk(&lz[..3]).is_err());
}

/// numcodecs `fixedscaleoffset` (f8 stored as u1), `quantize` (f8 stored as f4), `astype`
/// and `bitround`, with `delta` before a dtype-changing filter.
#[test]
fn value_filters_decode() {
    // fixedscaleoffset(offset=100, scale=10, dtype=<f8, astype=|u1): enc = round((v-100)*10).
    let m = v2(
        "<f8",
        json!([{"id": "fixedscaleoffset", "offset": 100, "scale": 10, "dtype": "<f8",
            "astype": "|u1"}]),
        json!({"id": "zlib", "level": 1}),
    );
    let enc = [0u8, 5, 17, 255];
    let z = {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
        e.write_all(&enc).unwrap();
        e.finish().unwrap()
    };
    assert_eq!(
        m.decode_chunk(&z).unwrap(),
        vec![100.0, 100.5, 101.7, 125.5]
    );
    // quantize(digits=2, dtype=<f8, astype=<f4): stored as f4, read back as f8.
    let stored = [0.25f32, 1.5, -3.0, 7.75];
    let m = v2(
        "<f8",
        json!([{"id": "quantize", "digits": 2, "dtype": "<f8", "astype": "<f4"}]),
        Value::Null,
    );
    let want: Vec<f64> = stored.iter().map(|&v| v as f64).collect();
    assert_eq!(m.decode_chunk(&f4_bytes(&stored)).unwrap(), want);
    let m = v2(
        "<f4",
        json!([{"id": "bitround", "keepbits": 3}]),
        Value::Null,
    );
    assert_eq!(m.decode_chunk(&f4_bytes(&stored)).unwrap(), want);
    // astype(encode_dtype=<i2, decode_dtype=<f8), after delta on the f8 values.
    let m = v2(
        "<f8",
        json!([{"id": "delta", "dtype": "<f8"},
            {"id": "astype", "encode_dtype": "<i2", "decode_dtype": "<f8"}]),
        Value::Null,
    );
    let raw: Vec<u8> = [3i16, 2, -10, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(m.decode_chunk(&raw).unwrap(), vec![3.0, 5.0, -5.0, -4.0]);
    // delta(dtype=<i4, astype=|i1) of [100, 300, 200, -5] (numcodecs): i1 differences, summed
    // in i4, as numpy's cumsum does.
    let m = v2(
        "<i4",
        json!([{"id": "delta", "dtype": "<i4", "astype": "|i1"}]),
        Value::Null,
    );
    let raw: Vec<u8> = [100i8, -56, -100, 51].iter().map(|&v| v as u8).collect();
    assert_eq!(
        m.decode_chunk(&raw).unwrap(),
        vec![100.0, 44.0, -56.0, -5.0]
    );
}

/// Configurations the decoders cannot honour are refused when the pipeline is built, naming
/// the codec.
#[test]
fn unsupported_configurations_are_refused_up_front() {
    let refused = |filters: Value, comp: Value| -> String {
        let zarray = json!({"shape": [4], "chunks": [4], "dtype": "<f8", "order": "C",
            "filters": filters, "compressor": comp, "fill_value": "NaN", "zarr_format": 2});
        let m = ArrayMeta::new(zarr::ArrayMeta::from_v2(&zarray, None).unwrap()).unwrap();
        m.codecs.unwrap_err()
    };
    for (f, c, want) in [
        (
            Value::Null,
            json!({"id": "lzma", "format": 3, "filters": [{"id": 33}]}),
            "lzma",
        ),
        (Value::Null, json!({"id": "lzma", "check": 10}), "check 10"),
        (Value::Null, json!({"id": "lzma", "format": "x"}), "format"),
        (
            Value::Null,
            json!({"id": "blosc", "cname": "snappy"}),
            "snappy",
        ),
        (
            Value::Null,
            json!({"id": "madeup"}),
            "compressor `madeup` is not supported",
        ),
        (
            Value::Null,
            json!({"id": "delta"}),
            "compressor `delta` is not supported",
        ),
        (
            json!([{"id": "shuffle", "elementsize": 0}]),
            Value::Null,
            "element size 0",
        ),
        (
            json!([{"id": "shuffle", "elementsize": 1e12}]),
            Value::Null,
            "elementsize",
        ),
        (
            json!([{"id": "fixedscaleoffset", "scale": 0}]),
            Value::Null,
            "scale is 0",
        ),
        (
            json!([{"id": "fixedscaleoffset", "scale": "x"}]),
            Value::Null,
            "scale",
        ),
        (
            json!([{"id": "fixedscaleoffset", "dtype": "<i4"}]),
            Value::Null,
            "data type",
        ),
        (
            json!([{"id": "delta", "dtype": "<i4"}]),
            Value::Null,
            "delta` `dtype`",
        ),
        (
            json!([{"id": "quantize", "astype": "<i2"}]),
            Value::Null,
            "non-float",
        ),
        (
            json!([{"id": "shuffle"}, {"id": "delta"}]),
            Value::Null,
            "after a bytes codec",
        ),
        (
            json!([{"id": "categorize"}]),
            Value::Null,
            "filter `categorize` is not supported",
        ),
    ] {
        let e = refused(f.clone(), c.clone());
        assert!(e.contains(want), "{f} {c}: {e}");
    }
}

/// v3 numcodecs codecs (zarr-python 3 names): array-to-array before `bytes`, bytes-to-bytes
/// after; the stored type takes the `bytes` byte order.
#[test]
fn v3_numcodecs_codecs() {
    let mut dt = zarr::parse_v3_dtype("float64").unwrap();
    let p = Pipeline::from_v3(
        &json!([{"name": "numcodecs.fixedscaleoffset", "configuration":
                {"offset": 0, "scale": 2, "dtype": "<f8", "astype": "<i2"}},
            {"name": "bytes", "configuration": {"endian": "big"}},
            {"name": "numcodecs.bz2", "configuration": {"level": 1}}]),
        &mut dt,
    )
    .unwrap();
    let raw: Vec<u8> = [1i16, -3].iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(1));
    std::io::Write::write_all(&mut bz, &raw).unwrap();
    assert_eq!(
        p.decode(&bz.finish().unwrap(), dt, 2).unwrap(),
        vec![0.5, -1.5]
    );
    let mut dt = zarr::parse_v3_dtype("float32").unwrap();
    let e = Pipeline::from_v3(
        &json!([{"name": "bytes"}, {"name": "numcodecs.delta", "configuration": {}}]),
        &mut dt,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("out of place"), "{e:#}");
}

/// An array whose codecs cannot be decoded, or whose y/x coordinate's cannot, is not listed;
/// the others are, and a leading coordinate that cannot be decoded gives index labels.
#[test]
fn arrays_that_cannot_be_made_are_not_listed() {
    let arr = |comp: Value, filters: Value, shape: Value, dims: Value| {
        (
            json!({"shape": shape.clone(), "chunks": shape, "dtype": "<f4", "order": "C",
                "filters": filters, "compressor": comp, "fill_value": "NaN", "zarr_format": 2}),
            json!({"_ARRAY_DIMENSIONS": dims}),
        )
    };
    let grid = json!([2, 3, 4]);
    let tyx = json!(["time", "y", "x"]);
    let mut meta = serde_json::Map::new();
    let mut put = |name: &str, (a, z): (Value, Value)| {
        meta.insert(format!("{name}/.zarray"), a);
        meta.insert(format!("{name}/.zattrs"), z);
    };
    put(
        "ok",
        arr(
            json!({"id": "lzma"}),
            Value::Null,
            grid.clone(),
            tyx.clone(),
        ),
    );
    put(
        "raw",
        arr(
            json!({"id": "lzma", "format": 3}),
            Value::Null,
            grid.clone(),
            tyx.clone(),
        ),
    );
    put(
        "odd",
        arr(
            Value::Null,
            json!([{"id": "xyz"}]),
            grid.clone(),
            tyx.clone(),
        ),
    );
    put("y", arr(Value::Null, Value::Null, json!([3]), json!(["y"])));
    put("x", arr(Value::Null, Value::Null, json!([4]), json!(["x"])));
    put(
        "time",
        arr(
            json!({"id": "xyz"}),
            Value::Null,
            json!([2]),
            json!(["time"]),
        ),
    );
    put(
        "g/a",
        arr(Value::Null, Value::Null, grid.clone(), tyx.clone()),
    );
    put(
        "g/y",
        arr(Value::Null, Value::Null, json!([3]), json!(["y"])),
    );
    put(
        "g/x",
        arr(json!({"id": "xyz"}), Value::Null, json!([4]), json!(["x"])),
    );
    // A raster-shaped array whose data type cannot be decoded.
    let (mut a, z) = arr(Value::Null, Value::Null, grid.clone(), tyx.clone());
    a["dtype"] = json!("<c8");
    put("cplx", (a, z));
    // One with no coordinates: it would get no COGs anyway, and is not named.
    let (mut a, _) = arr(Value::Null, Value::Null, grid.clone(), tyx.clone());
    a["dtype"] = json!("<c8");
    put(
        "nocoords",
        (
            a,
            json!({"_ARRAY_DIMENSIONS": ["time", "south_north", "x"],
        "grid_mapping": "crs"}),
        ),
    );
    let doc = json!({"zarr_consolidated_format": 1, "metadata": meta});
    let store = Store::from_zmetadata(doc.to_string().as_bytes()).unwrap();
    let (ok, refused) = store.candidates();
    let ok: Vec<&str> = ok.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ok, ["ok"]);
    let refused: BTreeMap<String, String> = refused.into_iter().collect();
    let names: Vec<&str> = refused.keys().map(String::as_str).collect();
    assert_eq!(names, ["cplx", "g/a", "odd", "raw"]);
    assert!(refused["raw"].contains("lzma` format 3"), "{refused:?}");
    assert!(refused["odd"].contains("filter `xyz` is not supported"));
    assert!(refused["g/a"].contains("coordinate `g/x`: compressor `xyz`"));
    assert!(refused["cplx"].contains("c8"), "{refused:?}");
    assert_eq!(store.coords_needed(), ["x", "y"]);
    let coords: BTreeMap<String, Vec<f64>> = [
        ("y".to_string(), vec![50.0, 49.0, 48.0]),
        ("x".to_string(), vec![0.0, 1.0, 2.0, 3.0]),
    ]
    .into_iter()
    .collect();
    let views = CogViews::new("s.zarr", &store, &coords);
    let files: Vec<&str> = views.files.keys().map(String::as_str).collect();
    assert_eq!(files, ["ok/0.tif", "ok/1.tif", "ok/preview.png"]);
}

/// A chunk zarr-python 3.1 wrote with `numcodecs.fixedscaleoffset` (f4 as u2),
/// `numcodecs.delta` (u2), `bytes`, then `numcodecs.lzma`, `numcodecs.bz2`, `numcodecs.lz4`
/// (empty configurations: the defaults), and the f32 values zarr-python reads from it.
#[test]
fn v3_numcodecs_chunk_of_zarr_python_decodes() {
    let codecs = json!([
        {"name": "numcodecs.fixedscaleoffset", "configuration":
            {"offset": 1, "scale": 10, "dtype": "<f4", "astype": "<u2"}},
        {"name": "numcodecs.delta", "configuration": {"dtype": "<u2"}},
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "numcodecs.lzma", "configuration": {}},
        {"name": "numcodecs.bz2", "configuration": {}},
        {"name": "numcodecs.lz4", "configuration": {}}]);
    let hex = concat!(
        "79000000f06a425a6831314159265359c9609665000021fe9ff40c0140b40080880100007004120b00050100",
        "08214007008902a00054634641a1a01a311a0c7a8229fa84d000d0d0d3d20068012c3024a306124168268280",
        "ceb46008ae95dc2b753a0dd9ec37ce7f783a7f90fdc12ec1f98021190bb9229c284864b04b3280"
    );
    let raw: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let mut dt = zarr::parse_v3_dtype("float32").unwrap();
    let p = Pipeline::from_v3(&codecs, &mut dt).unwrap();
    let want: Vec<f64> = [
        1171049677u32,
        1171049882,
        1171050086,
        1171050906,
        1171051110,
        1171051315,
    ]
    .iter()
    .map(|&b| f32::from_bits(b) as f64)
    .collect();
    assert_eq!(p.decode(&raw, dt, 6).unwrap(), want);
}

/// numcodecs checksum codecs: crc32 and adler32 lead the chunk (or end it, `location` `end`);
/// crc32c, fletcher32 and jenkins_lookup3 end it. Stripped, not verified.
#[test]
fn checksum_codecs_are_stripped() {
    let values = [1.5f32, -2.0, 3.25, 1e6];
    let raw = f4_bytes(&values);
    let want: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    let head = [[9u8, 9, 9, 9].as_slice(), &raw].concat();
    let tail = [raw.as_slice(), &[9u8, 9, 9, 9]].concat();
    for (filters, chunk) in [
        (json!([{"id": "crc32"}]), &head),
        (json!([{"id": "adler32", "location": "start"}]), &head),
        (json!([{"id": "crc32", "location": "end"}]), &tail),
        (json!([{"id": "crc32c"}]), &tail),
        (json!([{"id": "fletcher32"}]), &tail),
        (
            json!([{"id": "jenkins_lookup3", "initval": 0, "prefix": null}]),
            &tail,
        ),
    ] {
        let m = v2("<f4", filters.clone(), Value::Null);
        assert_eq!(m.decode_chunk(chunk).unwrap(), want, "{filters}");
        assert!(m.decode_chunk(&raw[..3]).is_err());
    }
    let zarray = json!({"shape": [4], "chunks": [4], "dtype": "<f4", "order": "C",
        "filters": [{"id": "crc32", "location": "middle"}], "compressor": null,
        "fill_value": "NaN", "zarr_format": 2});
    let m = ArrayMeta::new(zarr::ArrayMeta::from_v2(&zarray, None).unwrap()).unwrap();
    assert!(m.codecs.unwrap_err().contains("location `middle`"));
}
