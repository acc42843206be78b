//! Converted views through a real FUSE mount of Garage, checked with real clients: eccodes and
//! xarray (lab venv), GDAL (Debian python3-gdal: Zarr driver, GRIB driver, COG validator).
#![cfg(feature = "lab-tests")]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Mount, Server, assert_valid_cog, fixtures, python, stdout_of, unique_prefix};

const GRIB: &str = common::HRRR;
const NAME: &str = "hrrr.t00z.wrfsfcf12.grib2";

fn script(name: &str) -> PathBuf {
    common::project_root().join("tests/convert").join(name)
}

/// The HRRR sample's views: Zarr values equal eccodes, xarray and GDAL open the Zarr, the COGs
/// are valid COGs georeferenced as GDAL reads the GRIB2, with the Zarr's values.
#[test]
fn grib_views_of_hrrr_match_eccodes_and_gdal() {
    let server = Server::garage();
    let prefix = unique_prefix("convert-hrrr");
    let src = fixtures().join(GRIB);
    server.put(&format!("{prefix}/{NAME}"), std::fs::read(&src).unwrap());
    server.put(
        &format!("{prefix}/{NAME}.idx"),
        std::fs::read(src.with_extension("grib2.idx")).unwrap(),
    );
    let m = Mount::s3(&server, &prefix, &[]);
    let zarr = m.join(&format!("{NAME}.zarr"));
    let cogdir = m.join(&format!("{NAME}.cog"));
    let mut names: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            NAME.to_string(),
            format!("{NAME}.cog"),
            format!("{NAME}.idx"),
            format!("{NAME}.zarr")
        ]
    );

    // eccodes vs the Zarr view through xarray (consolidated), also dumps arrays for GDAL.
    let tmp = tempfile::tempdir().unwrap();
    let out = stdout_of(
        python()
            .arg(script("zarr_vs_eccodes.py"))
            .arg(&zarr)
            .arg(&src)
            .arg(tmp.path()),
    );
    eprintln!("{out}");
    assert!(out.contains("arrays 2"), "{out}");

    for var in [
        "APCP_surface_0_12_hour_acc_fcst",
        "APCP_surface_11_12_hour_acc_fcst",
    ] {
        let tif = cogdir.join(format!("{var}.tif"));
        let info = assert_valid_cog(&tif);
        assert!(info.contains("COMPRESSION=DEFLATE"), "{info}");
        // GDAL's reading of the COG against its reading of the GRIB2 and against the Zarr dump.
        let out = stdout_of(
            Command::new("/usr/bin/python3")
                .arg(script("cog_vs_grib_gdal.py"))
                .arg(&tif)
                .arg(&src)
                .arg(tmp.path().join(format!("{var}.npy")))
                .arg(var),
        );
        eprintln!("{out}");
        assert!(out.contains("ok"), "{out}");
    }

    // The quicklooks of the first message: its 450x265 overview above the legend.
    for dir in [&cogdir, &zarr] {
        let info = stdout_of(Command::new("gdalinfo").arg(dir.join("preview.png")));
        assert!(info.contains("Driver: PNG/"), "{info}");
        assert!(info.contains("Size is 450, 297"), "{info}");
    }

    // GDAL's Zarr driver opens the view with the Lambert conformal CRS.
    let zinfo = stdout_of(Command::new("gdalinfo").arg(format!(
        "ZARR:\"{}\":/APCP_surface_0_12_hour_acc_fcst",
        zarr.display()
    )));
    assert!(zinfo.contains("Lambert Conic Conformal (2SP)"), "{zinfo}");
    assert!(zinfo.contains("6371229"), "HRRR's sphere: {zinfo}");
    assert!(zinfo.contains("Size is 1799, 1059"), "{zinfo}");
}

/// A damaged message gives EIO for its own views only; the mount keeps serving.
#[test]
fn grib_corrupt_message_gives_eio_for_that_view_only() {
    let server = Server::garage();
    let prefix = unique_prefix("convert-bad");
    let mut bad = std::fs::read(fixtures().join(GRIB)).unwrap();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(b"XXXX"); // message 2 loses its 7777 end marker
    server.put(&format!("{prefix}/bad.grib2"), bad);
    let m = Mount::s3(&server, &prefix, &[]);
    let zarr = m.join("bad.grib2.zarr");
    let good = std::fs::read(zarr.join("var_d0_c1_n8_1/0.0")).unwrap();
    assert_eq!(good.len(), 1799 * 1059 * 4);
    let err = std::fs::read(zarr.join("var_d0_c1_n8_2/0.0")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = std::fs::read(m.join("bad.grib2.cog/var_d0_c1_n8_2.tif")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(std::fs::read(zarr.join(".zmetadata")).is_ok());
    assert!(std::fs::read(m.join("bad.grib2")).is_ok());
}

/// The COG writer's GeoKeys for each supported grid read back in GDAL as the intended CRS.
#[test]
fn grib_cog_writer_geokeys_read_back_in_gdal() {
    use geomount::convert::cog::{CogSpec, GeoRef, Raster, pyramid, write_compact};
    use geomount::convert::crs::{Crs, Earth};
    let sphere = Earth {
        a: 6_371_229.0,
        b: 6_371_229.0,
    };
    let wgs84 = Earth {
        a: 6_378_137.0,
        b: 6_356_752.314_245,
    };
    let cases = [
        (
            Crs::Geographic { earth: wgs84 },
            vec!["+proj=longlat", "+ellps=WGS84"],
        ),
        (
            Crs::LambertConformal {
                earth: sphere,
                lat1: 38.5,
                lat2: 38.5,
                lat0: 38.5,
                lon0: -97.5,
            },
            vec![
                "+proj=lcc",
                "+lat_1=38.5",
                "+lat_0=38.5",
                "+lon_0=-97.5",
                "+R=6371229",
            ],
        ),
        (
            Crs::PolarStereographic {
                earth: sphere,
                lat_ts: 60.0,
                lon0: -105.0,
            },
            vec!["+proj=stere", "+lat_0=90", "+lat_ts=60", "+lon_0=-105"],
        ),
        (
            Crs::Mercator {
                earth: sphere,
                lat_ts: 20.0,
                lon0: -60.0,
            },
            vec!["+proj=merc", "+lat_ts=20", "+lon_0=-60"],
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let (w, h) = (700, 300);
    let full = Raster {
        width: w,
        height: h,
        data: (0..w * h).map(|k| (k % 97) as f32).collect(),
    };
    for (k, (crs, want)) in cases.iter().enumerate() {
        let spec = CogSpec {
            width: w,
            height: h,
            geo: GeoRef {
                west: -100.0,
                north: 50.0,
                dx: 0.1,
                dy: 0.1,
            },
            crs: *crs,
            nodata: -9999.0,
            gdal_metadata: None,
        };
        let path = tmp.path().join(format!("crs{k}.tif"));
        std::fs::write(
            &path,
            write_compact(&spec, &pyramid(full.clone(), -9999.0), 6).unwrap(),
        )
        .unwrap();
        let proj4 = stdout_of(Command::new("/usr/bin/python3").arg("-c").arg(format!(
            "from osgeo import gdal; gdal.UseExceptions(); \
             print(gdal.Open('{}').GetSpatialRef().ExportToProj4())",
            path.display()
        )));
        for token in want {
            assert!(proj4.contains(token), "{crs:?}: {token} not in {proj4}");
        }
        let info = stdout_of(Command::new("gdalinfo").arg(&path));
        assert!(info.contains("LAYOUT=COG"), "{info}");
    }
}

/// Uploads every file below `dir` under `prefix/name/`.
fn put_tree(server: &Server, prefix: &str, dir: &std::path::Path, name: &str) {
    let mut items = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                items.push((format!("{prefix}/{name}/{rel}"), std::fs::read(&p).unwrap()));
            }
        }
    }
    server.put_many(items);
}

/// An xarray-written CF store's time steps as COGs: valid COGs, each equal to the zarr-python
/// slice flipped north-up, on the Lambert conformal grid of its `crs` variable; a corrupt chunk
/// gives EIO for its own step only.
#[test]
fn zarr_time_steps_as_cogs_match_zarr_python() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stdout_of(python().arg(script("zarr_store_write.py")).arg(tmp.path()));
    let labels: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("labels "))
        .expect("labels")
        .split(' ')
        .collect();
    assert_eq!(labels, ["1979-10-01", "1979-10-02", "1979-10-03"]);
    let corner: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("corner "))
        .expect("corner")
        .split(' ')
        .collect();
    let server = Server::garage();
    let prefix = unique_prefix("convert-zarr");
    let store = tmp.path().join("store.zarr");
    put_tree(&server, &prefix, &store, "store.zarr");
    // The same store with step 2's first chunk damaged.
    put_tree(&server, &prefix, &store, "bad.zarr");
    server.put(&format!("{prefix}/bad.zarr/T2/1.0.0"), b"not zstd".to_vec());
    let m = Mount::s3(&server, &prefix, &[]);

    let mut names: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["bad.zarr", "bad.zarr.cog", "store.zarr", "store.zarr.cog"]
    );
    let cogdir = m.join("store.zarr.cog");
    let mut vars: Vec<String> = std::fs::read_dir(&cogdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    vars.sort();
    assert_eq!(vars, ["T2"], "only the georeferenced array");
    let mut files: Vec<String> = std::fs::read_dir(cogdir.join("T2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = labels.iter().map(|l| format!("{l}.tif")).collect();
    want.push("preview.png".into());
    assert_eq!(files, want);

    // The quicklook of the first step: the 350x150 overview above a 32-row legend; the
    // south-west corner (NaN in the store) is grey, the rest viridis.
    let png = cogdir.join("T2/preview.png");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(bytes.len() as u64, std::fs::metadata(&png).unwrap().len());
    let px = stdout_of(Command::new("/usr/bin/python3").arg("-c").arg(format!(
        "from osgeo import gdal; gdal.UseExceptions(); d = gdal.Open('{}'); \
         print(d.GetDriver().ShortName, d.RasterXSize, d.RasterYSize, d.RasterCount, \
         [int(d.GetRasterBand(b).ReadAsArray()[149, 0]) for b in (1, 2, 3)], \
         [int(d.GetRasterBand(b).ReadAsArray()[0, 100]) for b in (1, 2, 3)])",
        png.display()
    )));
    assert!(px.starts_with("PNG 350 182 3 [200, 200, 200]"), "{px}");
    let north_west = px.trim_end().rsplit_once('[').map(|(_, p)| p);
    assert!(
        !matches!(north_west, Some("200, 200, 200]" | "255, 255, 255]") | None),
        "a data pixel is coloured: {px}"
    );

    for label in &labels {
        let tif = cogdir.join(format!("T2/{label}.tif"));
        let info = assert_valid_cog(&tif);
        assert!(info.contains("Size is 700, 300"), "{info}");
        let out = stdout_of(
            Command::new("/usr/bin/python3")
                .arg(script("zarr_cog_vs_slice.py"))
                .arg(&tif)
                .arg(tmp.path().join(format!("T2_{label}.npy")))
                .args(&corner)
                .arg("4000"),
        );
        assert!(out.contains(" ok "), "{out}");
    }

    let bad = m.join("bad.zarr.cog/T2");
    let err = std::fs::read(bad.join("1979-10-02.tif")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let good = std::fs::read(bad.join("1979-10-01.tif")).unwrap();
    assert_eq!(
        good.len() as u64,
        std::fs::metadata(bad.join("1979-10-01.tif")).unwrap().len()
    );
    assert!(std::fs::read(m.join("bad.zarr/T2/1.0.0")).is_ok());
    assert!(std::fs::read(cogdir.join("T2/1979-10-02.tif")).is_ok());
}

/// Grid templates 3.0 (0..360 and westward-scanning across 0 degrees), 3.20 and 3.10, written
/// by eccodes at test time with missing points: the Zarr views equal eccodes (values, NaN where
/// the bitmap says missing, coordinates), the COGs are valid COGs placed where GDAL places the
/// source (and where eccodes' coordinates say), with the Zarr's values. A Gaussian (3.40) and
/// a space-view (3.90) file list views without a field, with a log line naming the template.
#[test]
fn grib_templates_latlon_polar_mercator_match_eccodes_and_gdal() {
    let tmp = tempfile::tempdir().unwrap();
    let made = stdout_of(
        python()
            .arg(script("grib_templates_make.py"))
            .arg(tmp.path()),
    );
    let files: Vec<&str> = made.lines().collect();
    assert_eq!(
        files,
        [
            "ll.grib2",
            "llwrap.grib2",
            "ps.grib2",
            "merc.grib2",
            "gaussian.grib2",
            "spaceview.grib2"
        ]
    );
    let unsupported = [
        (
            "gaussian.grib2",
            "template 3.40 (Gaussian latitude/longitude)",
        ),
        ("spaceview.grib2", "template 3.90 (space view)"),
    ];
    let server = Server::garage();
    let prefix = unique_prefix("convert-templates");
    for f in &files {
        server.put(
            &format!("{prefix}/{f}"),
            std::fs::read(tmp.path().join(f)).unwrap(),
        );
    }
    let m = Mount::s3(&server, &prefix, &[]);
    for f in files
        .iter()
        .filter(|f| unsupported.iter().all(|(u, _)| u != *f))
    {
        let src = tmp.path().join(f);
        let out = stdout_of(
            python()
                .arg(script("grib_templates_vs_eccodes.py"))
                .arg(m.join(&format!("{f}.zarr")))
                .arg(&src)
                .arg(tmp.path())
                .arg(f),
        );
        eprintln!("{out}");
        assert!(out.starts_with("ok "), "{out}");
        let cogs: Vec<PathBuf> = std::fs::read_dir(m.join(&format!("{f}.cog")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        assert_eq!(cogs.len(), 1, "{cogs:?}");
        assert_valid_cog(&cogs[0]);
        let mut gdal = Command::new("/usr/bin/python3");
        gdal.arg(script("grib_templates_cog_gdal.py"))
            .arg(&cogs[0])
            .arg(&src)
            .arg(tmp.path().join(format!("{f}.npy")))
            .arg(tmp.path().join(format!("{f}.json")));
        if *f == "llwrap.grib2" {
            // GDAL 3.6's GRIB driver ignores westward i scanning: eccodes' extent only.
            gdal.arg("gdal-wrong");
        }
        let out = stdout_of(&mut gdal);
        eprintln!("{out}");
        assert!(out.lines().any(|l| l.starts_with("ok ")), "{out}");
    }

    // The unsupported templates: left out of their views (which list, without a field),
    // named in the log with the message number; the rest still served.
    for (f, template) in unsupported {
        let meta = std::fs::read_to_string(m.join(&format!("{f}.zarr/.zmetadata"))).unwrap();
        assert!(!meta.contains("GRIB_message"), "{meta}");
        let tifs: Vec<_> = std::fs::read_dir(m.join(&format!("{f}.cog")))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tif"))
            .collect();
        assert!(tifs.is_empty(), "{tifs:?}");
        let log = std::fs::read_to_string(&m.log).unwrap();
        let line = log
            .lines()
            .find(|l| {
                l.contains(&format!("{f}: message 1 left out of the views")) && l.contains(template)
            })
            .unwrap_or_else(|| panic!("no log line names {template} for {f}: {log}"));
        eprintln!("{line}");
        assert_eq!(
            std::fs::read(m.join(f)).unwrap(),
            std::fs::read(tmp.path().join(f)).unwrap()
        );
    }
    assert!(std::fs::read(m.join("ll.grib2.zarr/.zmetadata")).is_ok());
}

/// The words after `TAG ` on the line of a script's output that starts with it.
fn tagged<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{tag}` line in {out}"))
        .split(' ')
        .collect()
}

/// The names in a directory, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// xarray's default encoding (blosc lz4, byte shuffle, float64): the dataset_3d fixture's
/// steps as COGs equal zarr-python's slices (north-up, as float32) on its lon/lat grid, and
/// pass GDAL's COG validator; the preview reads back as a PNG of the right size.
#[test]
fn zarr_cog_blosc_fixture_matches_zarr_python() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = fixtures().join("zarr/dataset_3d.zarr");
    let out = stdout_of(
        python()
            .arg(script("zarr_fixture_slices.py"))
            .arg(&fixture)
            .arg("dataset")
            .arg(tmp.path()),
    );
    let corner = tagged(&out, "corner");
    let server = Server::garage();
    let prefix = unique_prefix("convert-blosc");
    put_tree(&server, &prefix, &fixture, "dataset_3d.zarr");
    let m = Mount::s3(&server, &prefix, &[]);
    assert_eq!(
        names_in(m.path()),
        ["dataset_3d.zarr", "dataset_3d.zarr.cog"]
    );
    let cogdir = m.join("dataset_3d.zarr.cog");
    assert_eq!(names_in(&cogdir), ["dataset"]);
    assert_eq!(
        names_in(&cogdir.join("dataset")),
        ["2022-01-01.tif", "2023-01-01.tif", "preview.png"]
    );
    let shape = &common::reference("zarr/dataset_3d.json")["shape"];
    let size = format!("Size is {}, {}", shape[2], shape[1]);
    for (t, label) in ["2022-01-01", "2023-01-01"].iter().enumerate() {
        let tif = cogdir.join(format!("dataset/{label}.tif"));
        let info = assert_valid_cog(&tif);
        assert!(info.contains(&size), "{info}");
        let out = stdout_of(
            Command::new("/usr/bin/python3")
                .arg(script("zarr_cog_check.py"))
                .arg(&tif)
                .arg(tmp.path().join(format!("dataset_{t}.npy")))
                .args(&corner)
                .arg("+proj=longlat"),
        );
        assert!(out.contains(" ok "), "{out}");
    }
    let png = cogdir.join("dataset/preview.png");
    let first = std::fs::read(&png).unwrap();
    assert_eq!(first.len() as u64, std::fs::metadata(&png).unwrap().len());
    assert!(first.starts_with(b"\x89PNG"));
    assert_eq!(
        std::fs::read(&png).unwrap(),
        first,
        "a second read, from the cache"
    );
}

/// Zarr v3 stores written by xarray / zarr-python 3 (`c/` chunk keys, `dimension_names`):
/// consolidated with blosc (lz4 bit shuffle; zstd byte shuffle for y/x), with zstd, and with
/// zstd chunks in `sharding_indexed` shards; and with zstd and no consolidated metadata (each
/// array's own `zarr.json`). Each step's COG equals the zarr-python slice flipped north-up,
/// on the Lambert conformal grid of the `crs` variable, named by its hourly CF time.
#[test]
fn zarr_cog_v3_stores_match_zarr_python() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stdout_of(
        python()
            .arg(script("zarr_v3_store_write.py"))
            .arg(tmp.path()),
    );
    let labels = tagged(&out, "labels");
    assert_eq!(labels, ["1979-10-01T0000", "1979-10-01T0300"]);
    assert!(out.contains("blosc codecs ['bytes', 'blosc']"), "{out}");
    let corner = tagged(&out, "corner");
    let server = Server::garage();
    let prefix = unique_prefix("convert-zarr3");
    let stores = ["blosc", "zstd", "shard", "plain"];
    for name in stores {
        let store = tmp.path().join(format!("{name}.zarr"));
        put_tree(&server, &prefix, &store, &format!("{name}.zarr"));
    }
    let m = Mount::s3(&server, &prefix, &[]);
    assert_eq!(
        names_in(m.path()),
        [
            "blosc.zarr",
            "blosc.zarr.cog",
            "plain.zarr",
            "plain.zarr.cog",
            "shard.zarr",
            "shard.zarr.cog",
            "zstd.zarr",
            "zstd.zarr.cog"
        ]
    );
    assert!(out.contains("shard codecs ['sharding_indexed']"), "{out}");
    for name in stores {
        let cogdir = m.join(&format!("{name}.zarr.cog"));
        assert_eq!(
            names_in(&cogdir),
            ["T2"],
            "{name}: only the georeferenced array"
        );
        let mut want: Vec<String> = labels.iter().map(|l| format!("{l}.tif")).collect();
        want.push("preview.png".into());
        assert_eq!(names_in(&cogdir.join("T2")), want, "{name}");
        for label in &labels {
            let tif = cogdir.join(format!("T2/{label}.tif"));
            let info = assert_valid_cog(&tif);
            assert!(info.contains("Size is 300, 200"), "{info}");
            let out = stdout_of(
                Command::new("/usr/bin/python3")
                    .arg(script("zarr_cog_check.py"))
                    .arg(&tif)
                    .arg(tmp.path().join(format!("{name}_T2_{label}.npy")))
                    .args(&corner)
                    .args(["3000", "3000"])
                    .args([
                        "+proj=lcc",
                        "+lat_1=30",
                        "+lat_2=50",
                        "+lon_0=-97.9",
                        "+R=6370000",
                    ]),
            );
            assert!(out.contains(" ok "), "{name}: {out}");
        }
    }
}

/// Zarr stores written by zarr-python with one array per numcodecs compressor and filter chain:
/// v2 (zlib, gzip, zstd, bz2, lz4, lzma xz and alone, blosc with each inner compressor and
/// shuffle, shuffle, delta, fixedscaleoffset, quantize, bitround, astype, the checksums crc32,
/// adler32, crc32c, fletcher32, jenkins_lookup3) and v3 (`numcodecs.*`
/// lzma, bz2 + lz4, zlib, shuffle, zstd, delta, fixedscaleoffset, quantize). Each is listed and
/// each step's COG equals zarr-python's slice flipped north-up. The arrays the view cannot make
/// (lzma raw, lzma with SHA-256 checks, a codec only the writer knows, a `transpose`) are not
/// listed, and the mount's log names each with its store.
#[test]
fn zarr_cog_every_numcodecs_codec_matches_zarr_python() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stdout_of(python().arg(script("zarr_codecs_write.py")).arg(tmp.path()));
    let labels = tagged(&out, "labels");
    let corner = tagged(&out, "corner");
    let stores = [
        (
            "codecs",
            tagged(&out, "listed"),
            tagged(&out, "unlisted"),
            "",
        ),
        (
            "codecs3",
            tagged(&out, "listed3"),
            tagged(&out, "unlisted3"),
            "v3_",
        ),
    ];
    assert!(stores[0].1.len() >= 24 && stores[0].2.len() == 3, "{out}");
    assert!(stores[1].1.len() >= 7 && stores[1].2.len() == 2, "{out}");
    let server = Server::garage();
    let prefix = unique_prefix("convert-codecs");
    for (store, ..) in &stores {
        let dir = tmp.path().join(format!("{store}.zarr"));
        put_tree(&server, &prefix, &dir, &format!("{store}.zarr"));
    }
    let m = Mount::s3(&server, &prefix, &[]);
    for (store, listed, _, npy) in &stores {
        let cogdir = m.join(&format!("{store}.zarr.cog"));
        assert_eq!(&names_in(&cogdir), listed, "{store}");
        for name in listed {
            let mut want: Vec<String> = labels.iter().map(|l| format!("{l}.tif")).collect();
            want.push("preview.png".into());
            assert_eq!(names_in(&cogdir.join(name)), want, "{store}/{name}");
            for (t, label) in labels.iter().enumerate() {
                let tif = cogdir.join(format!("{name}/{label}.tif"));
                let out = stdout_of(
                    Command::new("/usr/bin/python3")
                        .arg(script("zarr_cog_check.py"))
                        .arg(&tif)
                        .arg(tmp.path().join(format!("{npy}{name}_{t}.npy")))
                        .args(&corner)
                        .args(["3000", "3000", "+proj=lcc"]),
                );
                assert!(out.contains(" ok "), "{store}/{name}: {out}");
            }
        }
        assert_valid_cog(&cogdir.join(format!("{}/{}.tif", listed[0], labels[0])));
    }
    let log = std::fs::read_to_string(&m.log).unwrap();
    for (store, _, unlisted, _) in &stores {
        for name in unlisted {
            assert!(
                log.contains(&format!(
                    "zarr store {store}.zarr: array {name} not listed as COGs"
                )),
                "{store}/{name} not named in the log:\n{log}"
            );
        }
    }
}
