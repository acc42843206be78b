//! The corpus check: a folder of real sample files (the optional shared corpus that
//! scripts/test.sh finds beside the checkout) mounted as a local folder, each file read through the mount by the real
//! client of its format and compared with the same client on the local file: `gdalinfo
//! -checksum` on COGs, xarray on Zarr stores and NetCDF-4 files, eccodes on every GRIB2
//! message; the converted views of GRIB2 files and Zarr stores against eccodes and zarr-python;
//! any other file byte for byte.
//!
//! Ignored in the ordinary run: scripts/test.sh runs it with `--ignored` when the folder exists,
//! naming it in `GEOMOUNT_CORPUS`, and reports the count it prints. Without `GEOMOUNT_CORPUS`
//! the test fails: an absent corpus is never a pass.
#![cfg(feature = "lab-tests")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Mount, assert_valid_cog, gdal_checksums, python, sha256, stdout_of, xr_compare};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Cog,
    Zarr,
    NetCdf,
    Grib,
    Bytes,
}

impl Kind {
    fn of(path: &Path) -> Kind {
        let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        match ext {
            "zarr" if path.is_dir() => Kind::Zarr,
            "tif" | "tiff" => Kind::Cog,
            "nc" | "nc4" | "h5" => Kind::NetCdf,
            "grib2" | "grb2" => Kind::Grib,
            _ => Kind::Bytes,
        }
    }

    fn how(self) -> &'static str {
        match self {
            Kind::Cog => "COG by gdalinfo -checksum",
            Kind::Zarr => "Zarr store by xarray, its COG view by zarr-python",
            Kind::NetCdf => "NetCDF-4 by xarray",
            Kind::Grib => "GRIB2 by eccodes, its views too",
            Kind::Bytes => "other byte for byte",
        }
    }
}

/// The files under `dir` (a Zarr store is one entry), relative to `root`, sorted.
fn entries(root: &Path, dir: &Path, out: &mut Vec<(Kind, String)>) {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    list.sort();
    for p in list {
        let kind = Kind::of(&p);
        if p.is_dir() && kind != Kind::Zarr {
            entries(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((kind, rel));
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn script(rel: &str) -> PathBuf {
    common::project_root().join(rel)
}

/// The Zarr store's COG view: every step of every array is a valid COG equal to zarr-python's
/// slice of the local store (north-up). Returns the number of COGs checked.
fn zarr_cog_view(local: &Path, view: &Path, tmp: &Path) -> usize {
    let mut n = 0;
    for var in names(view) {
        let out = stdout_of(
            python()
                .arg(script("tests/convert/zarr_fixture_slices.py"))
                .arg(local)
                .arg(&var)
                .arg(tmp),
        );
        let corner: Vec<&str> = out
            .lines()
            .find_map(|l| l.strip_prefix("corner "))
            .unwrap_or_else(|| panic!("no corner for {var}: {out}"))
            .split(' ')
            .collect();
        let tifs: Vec<String> = names(&view.join(&var))
            .into_iter()
            .filter(|f| f.ends_with(".tif"))
            .collect();
        for (t, tif) in tifs.iter().enumerate() {
            let path = view.join(&var).join(tif);
            assert_valid_cog(&path);
            let out = stdout_of(
                Command::new("/usr/bin/python3")
                    .arg(script("tests/convert/zarr_cog_check.py"))
                    .arg(&path)
                    .arg(tmp.join(format!("{var}_{t}.npy")))
                    .args(&corner),
            );
            assert!(out.contains(" ok "), "{path:?}: {out}");
            n += 1;
        }
    }
    n
}

#[test]
#[ignore = "the corpus check: scripts/test.sh runs it when the shared corpus exists"]
fn corpus_files_read_the_same_through_a_mount() {
    let root = std::env::var_os("GEOMOUNT_CORPUS")
        .map(PathBuf::from)
        .expect("GEOMOUNT_CORPUS names the corpus folder (scripts/test.sh sets it)");
    let root = root
        .canonicalize()
        .unwrap_or_else(|e| panic!("corpus {root:?}: {e}"));
    let mut files = Vec::new();
    entries(&root, &root, &mut files);
    assert!(!files.is_empty(), "the corpus {root:?} is empty");
    let m = Mount::with_args(&[format!("file://{}", root.display())], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut checked: BTreeMap<Kind, usize> = BTreeMap::new();
    for (kind, rel) in &files {
        let (local, mounted) = (root.join(rel), m.join(rel));
        eprintln!("corpus: {rel} ({kind:?})");
        match kind {
            Kind::Cog => {
                let want = gdal_checksums(&local);
                assert!(!want.is_empty(), "gdalinfo gave no checksum for {local:?}");
                assert_eq!(gdal_checksums(&mounted), want, "{rel}");
            }
            Kind::Zarr | Kind::NetCdf => {
                let engine = if *kind == Kind::Zarr {
                    "zarr"
                } else {
                    "h5netcdf"
                };
                let v = xr_compare(engine, &local, &mounted);
                assert_eq!(v["identical"], true, "{rel}: {v}");
                let equal = v["equal"].as_object().unwrap();
                assert!(
                    !equal.is_empty() && equal.values().all(|e| e == true),
                    "{rel}: {v}"
                );
                let view = m.join(&format!("{rel}.cog"));
                if *kind == Kind::Zarr && view.is_dir() {
                    let dir = tmp.path().join(rel);
                    std::fs::create_dir_all(&dir).unwrap();
                    assert!(
                        zarr_cog_view(&local, &view, &dir) > 0,
                        "{rel}: empty COG view"
                    );
                }
            }
            Kind::Grib => {
                let mut cmd = python();
                cmd.arg(script("tests/py/corpus_grib.py"))
                    .arg(&local)
                    .arg(&mounted);
                let v: serde_json::Value =
                    serde_json::from_str(stdout_of(&mut cmd).trim()).unwrap();
                assert!(v["messages"].as_u64() > Some(0), "{rel}: {v}");
                // The views: each message as eccodes reads it, or left out by name in the log.
                let out = stdout_of(
                    python()
                        .arg(script("tests/convert/grib_fidelity_check.py"))
                        .arg(m.path())
                        .arg(&root)
                        .arg(&m.log)
                        .arg(rel),
                );
                let s: serde_json::Value =
                    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap();
                eprintln!("corpus: {rel} views: {}", s[rel.as_str()]);
                let ok = s[rel.as_str()]["ok"].as_array().map_or(0, Vec::len);
                let cogs: Vec<String> = names(&m.join(&format!("{rel}.cog")))
                    .into_iter()
                    .filter(|f| f.ends_with(".tif"))
                    .collect();
                assert_eq!(cogs.len(), ok, "{rel}");
                for tif in cogs {
                    assert_valid_cog(&m.join(&format!("{rel}.cog/{tif}")));
                }
            }
            Kind::Bytes => {
                let want = std::fs::read(&local).unwrap();
                let got = std::fs::read(&mounted).unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert_eq!(sha256(&got), sha256(&want), "{rel}");
            }
        }
        *checked.entry(*kind).or_default() += 1;
    }
    let total: usize = checked.values().sum();
    assert_eq!(total, files.len());
    let parts: Vec<String> = checked
        .iter()
        .map(|(k, n)| format!("{n} {}", k.how()))
        .collect();
    eprintln!(
        "corpus: checked {total} files from {} ({})",
        root.display(),
        parts.join(", ")
    );
}
