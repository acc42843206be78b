//! NetCDF-4/HDF5 files as Zarr stores (`NAME.nc.zarr/`), checked with the real readers: the
//! fixtures are written at test time by xarray (netcdf4 and h5netcdf engines) and h5py
//! (`tests/convert/nc_zarr_make.py`), uploaded to Garage, and each view is compared with the
//! file by xarray (`open_zarr` against `open_dataset`) and by zarr-python (every array against
//! h5py) (`tests/convert/nc_zarr_check.py`). Counts at the lab proxy: a point series through a
//! view costs one GET per chunk it touches plus the metadata walk, and a remount none.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};

use common::{Mount, Proxy, Server, unique_prefix};

fn script(name: &str) -> PathBuf {
    common::project_root().join("tests/convert").join(name)
}

/// The generated fixtures, written once per test process.
fn fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        common::run_ok(
            common::python()
                .arg(script("nc_zarr_make.py"))
                .arg(d.path()),
        );
        d
    })
    .path()
}

const NAMES: [&str; 3] = ["nc4.nc", "h5.nc", "latest.h5"];

fn upload(server: &Server, test: &str) -> String {
    let prefix = unique_prefix(test);
    for name in NAMES {
        let data = std::fs::read(fixtures().join(name)).unwrap();
        server.put(&format!("{prefix}/{name}"), data);
    }
    prefix
}

#[test]
fn nc_zarr_views_equal_the_files_as_xarray_and_zarr_read_them() {
    let server = Server::garage();
    let prefix = upload(&server, "nc-zarr");
    let m = Mount::s3(&server, &prefix, &[]);
    let mut names: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "h5.nc",
            "h5.nc.zarr",
            "latest.h5",
            "latest.h5.zarr",
            "nc4.nc",
            "nc4.nc.zarr"
        ]
    );
    let out = common::stdout_of(
        common::python()
            .arg(script("nc_zarr_check.py"))
            .arg(m.path())
            .args(NAMES),
    );
    println!("{out}");
    // Every file was checked, and what Zarr cannot hold is left out, the rest shown.
    assert_eq!(out.lines().count(), NAMES.len(), "{out}");
    assert!(
        out.contains(r#""arrays": ["bt2", "contig", "ea", "fa"]"#),
        "{out}"
    );
    let zarray = std::fs::read_to_string(m.join("h5.nc.zarr/tas/.zarray")).unwrap();
    assert!(zarray.contains(r#""id":"fletcher32""#), "{zarray}");

    let plain = Mount::s3(&server, &prefix, &["--no-convert"]);
    assert!(!plain.join("nc4.nc.zarr").exists());
    assert!(plain.join("nc4.nc").exists());
}

/// A broken chunk index makes its file's view EIO (a view without that variable would look
/// complete); the file itself and the other files' views are still served.
#[test]
fn nc_zarr_a_corrupt_chunk_index_gives_eio_for_that_view_only() {
    let server = Server::garage();
    let prefix = upload(&server, "nc-zarr-bad");
    let mut bad = std::fs::read(fixtures().join("nc4.nc")).unwrap();
    // Every B-tree v1 node of chunks ("TREE", type 1) loses its signature.
    let nodes: Vec<usize> = bad
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"TREE\x01")
        .map(|(i, _)| i)
        .collect();
    assert!(!nodes.is_empty());
    for i in nodes {
        bad[i..i + 4].copy_from_slice(b"XXXX");
    }
    server.put(&format!("{prefix}/bad.nc"), bad.clone());
    let m = Mount::s3(&server, &prefix, &[]);
    let err = std::fs::read_dir(m.join("bad.nc.zarr")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = std::fs::read(m.join("bad.nc.zarr/.zmetadata")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(std::fs::read(m.join("bad.nc")).unwrap(), bad);
    let out = common::stdout_of(
        common::python()
            .arg(script("nc_zarr_check.py"))
            .arg(m.path())
            .arg("h5.nc"),
    );
    assert!(out.contains(r#""file": "h5.nc""#), "{out}");
}

/// Reads a point's series through a view with `xr.open_zarr` and prints its sum and length.
const SERIES: &str = r#"
import sys, json, xarray as xr
ds = xr.open_zarr(sys.argv[1], consolidated=True)
v = ds.tas.isel(y=7, x=9).values
print(json.dumps({"sum": float(v.astype("float64").sum()), "len": len(v)}))
"#;

/// The metadata walk's reads (8 for this file: the first read, then two rounds) and the
/// structures it does not fetch (local and global heaps), with room for other library versions'
/// layouts.
const METADATA_GETS: u64 = 12;

#[test]
fn nc_zarr_a_point_series_costs_a_get_per_chunk_and_a_remount_none() {
    let server = Server::garage();
    let prefix = upload(&server, "nc-zarr-series");
    let proxy = Proxy::start(&server, &[]);
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let local = common::stdout_of(
        common::python()
            .args([
                "-c",
                SERIES
                    .replace(
                        "open_zarr(sys.argv[1], consolidated=True)",
                        "open_dataset(sys.argv[1], engine='h5netcdf')",
                    )
                    .as_str(),
            ])
            .arg(fixtures().join("nc4.nc")),
    );
    let m = Mount::s3(&proxy.server(), &prefix, &args);
    proxy.reset();
    let got = common::stdout_of(
        common::python()
            .args(["-c", SERIES])
            .arg(m.join("nc4.nc.zarr")),
    );
    assert_eq!(got, local);
    // tas is chunked (1, 30, 40): one chunk per time step; the coordinates are one each.
    let chunks = 24 + 3;
    let gets = proxy.count("get") + proxy.count("get_range");
    println!("first mount: {gets} GETs, {}", proxy.stats());
    assert!(
        gets <= chunks + METADATA_GETS,
        "{gets} GETs for {chunks} chunks"
    );
    drop(m);
    let m = Mount::s3(&proxy.server(), &prefix, &args);
    proxy.reset();
    let again = common::stdout_of(
        common::python()
            .args(["-c", SERIES])
            .arg(m.join("nc4.nc.zarr")),
    );
    assert_eq!(again, local);
    let gets = proxy.count("get") + proxy.count("get_range");
    assert_eq!(gets, 0, "a remount: {}", proxy.stats());
}

/// The folder-view fixtures (`tests/convert/nc_dir_make.py`), written once per test process.
fn dir_fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        common::run_ok(common::python().arg(script("nc_dir_make.py")).arg(d.path()));
        d
    })
    .path()
}

/// Uploads every folder of the folder-view fixtures below a new prefix.
fn upload_dirs(server: &Server, test: &str) -> String {
    let prefix = unique_prefix(test);
    for folder in ["wrf", "misaligned"] {
        for e in std::fs::read_dir(dir_fixtures().join(folder)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            server.put(
                &format!("{prefix}/{folder}/{name}"),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    prefix
}

/// One day's field and a point's series through a folder view, with `open_zarr`.
const FOLDER_READS: &str = r#"
import sys, json, xarray as xr
ds = xr.open_zarr(sys.argv[1], consolidated=True)
s = ds.tas.isel(y=7, x=9).values
f = ds.tas.isel(time=40).values
print(json.dumps({"series": float(s.astype("float64").sum()), "len": len(s),
                  "field": float(f.astype("float64").sum()),
                  "days": [str(ds.time.values[0])[:10], str(ds.time.values[-1])[:10]]}))
"#;

#[test]
fn nc_zarr_a_folder_of_yearly_files_is_one_store_equal_to_the_files_joined() {
    let server = Server::garage();
    let prefix = upload_dirs(&server, "nc-dir");
    let m = Mount::s3(&server, &prefix, &[]);
    let mut names: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // A folder of NetCDF files is shown with its view before the files are read.
    assert_eq!(names, ["misaligned", "misaligned.zarr", "wrf", "wrf.zarr"]);
    let out = common::stdout_of(
        common::python()
            .arg(script("nc_dir_check.py"))
            .arg(m.path())
            .arg("wrf"),
    );
    println!("{out}");
    assert!(out.contains(r#""time": 90"#), "{out}");
    assert!(
        out.contains(r#""variables": ["crs", "lat", "tas", "time", "x", "y"]"#),
        "{out}"
    );
    // Files whose chunks do not line up have no view, and the log says why.
    let err = std::fs::read_dir(m.join("misaligned.zarr")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(
        log.contains("no folder view misaligned.zarr: 'tas' has 31 steps along 'time' in tas_2001.nc, not a multiple of its chunk (4)"),
        "{log}"
    );
    // Each file's own view is still there, and the files.
    assert!(m.join("wrf/tas_2002.nc.zarr/.zmetadata").exists());
    let plain = Mount::s3(&server, &prefix, &["--no-convert"]);
    assert!(!plain.join("wrf.zarr").exists());
    assert!(plain.join("wrf/tas_2001.nc").exists());
}

#[test]
fn nc_zarr_a_folder_view_costs_a_get_per_chunk_and_a_remount_none() {
    let server = Server::garage();
    let prefix = upload_dirs(&server, "nc-dir-series");
    let proxy = Proxy::start(&server, &[]);
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let files: Vec<PathBuf> = ["2001", "2002", "2003"]
        .iter()
        .map(|y| dir_fixtures().join(format!("wrf/tas_{y}.nc")))
        .collect();
    let local = common::stdout_of(
        common::python()
            .args([
                "-c",
                FOLDER_READS
                    .replace(
                        "xr.open_zarr(sys.argv[1], consolidated=True)",
                        "xr.concat([xr.open_dataset(f, engine='h5netcdf') for f in sys.argv[1:]], \
                         dim='time', data_vars='minimal', coords='minimal', \
                         combine_attrs='override')",
                    )
                    .as_str(),
            ])
            .args(&files),
    );
    let m = Mount::s3(&proxy.server(), &prefix, &args);
    proxy.reset();
    let got = common::stdout_of(
        common::python()
            .args(["-c", FOLDER_READS])
            .arg(m.join("wrf.zarr")),
    );
    assert_eq!(got, local);
    // tas is chunked (1, 30, 40): a chunk per day for the series, one more for the field (held
    // already); the coordinates are served from the values read while describing.
    let chunks = 90;
    let gets = proxy.count("get") + proxy.count("get_range");
    println!("first mount: {gets} GETs, {}", proxy.stats());
    assert!(
        gets <= chunks + 3 * METADATA_GETS,
        "{gets} GETs for {chunks} chunks and 3 files"
    );
    drop(m);
    let m = Mount::s3(&proxy.server(), &prefix, &args);
    proxy.reset();
    let again = common::stdout_of(
        common::python()
            .args(["-c", FOLDER_READS])
            .arg(m.join("wrf.zarr")),
    );
    assert_eq!(again, local);
    // No file is read again. Opened by its path on a fresh mount, before any listing shows it,
    // `wrf.zarr/` is first probed for a stored store's metadata (`zarr.json`, `.zmetadata`:
    // two GETs answered 404), then found to be a folder view.
    assert_eq!(proxy.count("get_range"), 0, "a remount: {}", proxy.stats());
    assert!(proxy.count("get") <= 2, "a remount: {}", proxy.stats());
}
