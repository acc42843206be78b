//! Real clients (GDAL, xarray + zarr, xarray + h5netcdf) reading the fixture files of tests/data
//! (written by GDAL and xarray) through real mounts of the lab's S3 servers, compared with what
//! the same client reads from the local copy. Seeding, mounting and unmounting come from
//! `tests/common`.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};

use common::{Mount, Server, fixtures, gdal_checksums, unique_prefix, xr_compare};

/// Every file under `root` (dotfiles included), as paths relative to `root`, sorted.
fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}")) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// Uploads every file of the local directory `dir` under `key_prefix/`.
fn put_tree(server: &Server, dir: &Path, key_prefix: &str) -> Vec<String> {
    let files = walk(dir);
    let items = files
        .iter()
        .map(|rel| {
            let data = std::fs::read(dir.join(rel)).expect("read fixture");
            (format!("{key_prefix}/{rel}"), data)
        })
        .collect();
    server.put_many(items);
    files
}

fn cog_fixtures() -> Vec<PathBuf> {
    let mut tifs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("cog"))
        .expect("fixtures/cog")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect();
    tifs.sort();
    assert!(!tifs.is_empty(), "no fixtures/cog/*.tif");
    tifs
}

/// Seeds the COG fixtures on `server`, mounts them and compares gdalinfo's checksums.
fn cog_checksums_match(server: &Server, test: &str) {
    let prefix = unique_prefix(test);
    let tifs = cog_fixtures();
    for tif in &tifs {
        let name = tif.file_name().unwrap().to_string_lossy();
        server.put(
            &format!("{prefix}/cog/{name}"),
            std::fs::read(tif).expect("read tif"),
        );
    }
    let mount = Mount::s3(server, &prefix, &[]);
    let mut found = 0;
    for tif in &tifs {
        let name = tif.file_name().unwrap().to_string_lossy();
        let local = gdal_checksums(tif);
        assert!(
            !local.is_empty(),
            "gdalinfo gave no checksum for local {tif:?}"
        );
        let mounted = gdal_checksums(&mount.join(&format!("cog/{name}")));
        eprintln!("{name}: local {local:?} mounted {mounted:?}");
        assert_eq!(mounted, local, "{name}: checksums through the mount differ");
        found += local.len();
    }
    assert!(found >= tifs.len());
    assert!(mount.stat("get_requests") > 0, "no GET went to the server");
}

#[test]
fn gdal_cog_checksums_garage() {
    cog_checksums_match(&Server::garage(), "cog-garage");
}

#[test]
fn gdal_cog_checksums_moto_unsigned() {
    cog_checksums_match(&Server::moto(), "cog-moto");
}

fn assert_all_equal(v: &serde_json::Value, vars: &[&str]) {
    assert_eq!(v["identical"], true, "datasets are not identical: {v}");
    let equal = v["equal"].as_object().expect("equal map");
    let mut names: Vec<&str> = equal.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, vars);
    for (k, eq) in equal {
        assert_eq!(eq, true, "variable {k} differs through the mount");
    }
}

#[test]
fn xarray_zarr_blosc_garage() {
    let server = Server::garage();
    let prefix = unique_prefix("zarr");
    let local = fixtures().join("zarr/dataset_3d.zarr");
    let files = put_tree(&server, &local, &format!("{prefix}/dataset_3d.zarr"));
    for dot in [".zmetadata", ".zgroup", ".zattrs", "dataset/.zarray"] {
        assert!(files.iter().any(|f| f == dot), "fixture lacks {dot}");
    }
    let mount = Mount::s3(&server, &prefix, &[]);
    let mounted = mount.join("dataset_3d.zarr");
    assert_eq!(walk(&mounted), files, "the mounted tree lists other files");

    let v = xr_compare("zarr", &local, &mounted);
    assert_all_equal(&v, &["dataset", "time", "x", "y"]);
    // What xarray read from the store when tests/data/make.py wrote it: sizes, and each
    // variable's shape, first and last value and mean.
    let want = &common::reference("zarr/dataset_3d.json")["xarray"];
    assert_eq!(v["sizes"], want["sizes"]);
    assert_eq!(v["vars"], want["vars"]);
    assert_eq!(v["vars"]["time"]["first"], "2022-01-01T00:00:00.000000000");
    // The chunks (float64, blosc-lz4 compressed) were fetched from the server.
    assert!(mount.stat("bytes_fetched") > 0);
}

#[test]
fn xarray_h5netcdf_garage() {
    let server = Server::garage();
    let prefix = unique_prefix("netcdf");
    let local = fixtures().join("netcdf/air.nc");
    let data = std::fs::read(&local).expect("air.nc");
    server.put(&format!("{prefix}/netcdf/air.nc"), data.clone());
    let mount = Mount::s3(&server, &prefix, &[]);
    let mounted = mount.join("netcdf/air.nc");
    assert_eq!(
        std::fs::metadata(&mounted).expect("stat air.nc").len(),
        data.len() as u64
    );

    let v = xr_compare("h5netcdf", &local, &mounted);
    assert_all_equal(&v, &["air", "lat", "lon", "time"]);
    // What xarray read from the file when tests/data/make.py wrote it.
    let want = &common::reference("netcdf/air.json")["xarray"];
    assert_eq!(v["sizes"], want["sizes"]);
    assert_eq!(v["vars"], want["vars"]);
    assert_eq!(v["vars"]["time"]["last"], "2014-10-31T18:00:00.000000000");
    assert!(mount.stat("bytes_fetched") > 0);
}
