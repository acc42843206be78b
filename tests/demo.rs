//! `geomount demo`: generates the sample dataset into a fresh cache directory, mounts it, and
//! real clients (GDAL, GDAL's COG validator, xarray) read it through the mount.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_valid_cog, geomount, python, sha256, stdout_of, unmount_until_gone};

const TIF: &str = "cog/T2_1979-10-01.tif";
const GRIB: &str = "hrrr/hrrr.t00z.wrfsfcf00.grib2";

/// Unmounts its directory when dropped, also when the test panicked.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        unmount_until_gone(&self.0);
    }
}

/// Runs `geomount demo MP` with the cache at `cache`; returns the unmount guard and stdout.
fn demo(cache: &Path, mp: &Path, log: &Path) -> (Unmount, String) {
    // The guard exists before the mount does, so a failed assertion below still unmounts.
    let guard = Unmount(mp.to_path_buf());
    let out = geomount()
        .arg("demo")
        .arg(mp)
        .arg("--log-file")
        .arg(log)
        .env("XDG_CACHE_HOME", cache)
        .env("GEOMOUNT_LOG", "geomount=debug,info")
        .output()
        .expect("run geomount demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "geomount demo failed: {}\n{stdout}\nlog: {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert!(
        common::is_mounted(mp),
        "demo returned but {mp:?} is not mounted"
    );
    (guard, stdout)
}

#[test]
fn demo_generates_mounts_and_real_clients_read_it() {
    let tmp = tempfile::Builder::new()
        .prefix("gm-demo-")
        .tempdir()
        .expect("tempdir");
    let cache = tmp.path().join("cache");
    let mp = tmp.path().join("mnt");
    std::fs::create_dir(&mp).expect("mountpoint");
    let mp = mp.canonicalize().expect("canonical mountpoint");
    let log = tmp.path().join("demo.log");

    let (guard, hints) = demo(&cache, &mp, &log);
    eprintln!("{hints}");
    let m = mp.display().to_string();
    assert!(hints.contains(&format!("mounted at {m}")), "hints: {hints}");
    assert!(
        hints.contains(&format!("gdalinfo {m}/{TIF}")),
        "hints: {hints}"
    );
    assert!(
        hints.contains(&format!("geomount unmount {m}")),
        "hints: {hints}"
    );
    let data = cache.join("geomount/demo");
    assert!(
        data.join(".geomount-demo-version").is_file(),
        "no dataset in {data:?}"
    );

    // GDAL sees a COG, and GDAL's own validator agrees (reading through the mount).
    let info = assert_valid_cog(&mp.join(TIF));
    assert!(info.contains("Size is 1280, 960"), "gdalinfo: {info}");

    // The GRIB2 has 3 messages -> 3 GDAL bands.
    let info = stdout_of(Command::new("gdalinfo").arg(mp.join(GRIB)));
    let bands = info.lines().filter(|l| l.starts_with("Band ")).count();
    assert_eq!(bands, 3, "gdalinfo: {info}");
    let idx = std::fs::read_to_string(mp.join(format!("{GRIB}.idx"))).expect("read .idx");
    let first = idx.lines().next().unwrap_or_default();
    assert!(first.starts_with("1:0:"), "first .idx line: {first:?}");
    assert_eq!(idx.lines().count(), 3, ".idx: {idx}");

    // xarray reads the Zarr store.
    let script = r#"
import json, sys
import numpy as np, xarray as xr
ds = xr.open_zarr(sys.argv[1])
t2 = ds.T2.isel(time=0)
print(json.dumps({"mean": float(t2.mean().values), "min": float(t2.min().values),
    "max": float(t2.max().values), "time": [str(t)[:10] for t in ds.time.values],
    "vars": sorted(ds.variables), "units": ds.T2.attrs.get("units")}))
"#;
    let out = stdout_of(
        python()
            .arg("-c")
            .arg(script)
            .arg(mp.join("conus404_daily.zarr")),
    );
    eprintln!("zarr: {out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("zarr JSON");
    let mean = v["mean"].as_f64().expect("mean");
    assert!(
        mean.is_finite() && (200.0..330.0).contains(&mean),
        "T2 mean {mean}"
    );
    let (min, max) = (v["min"].as_f64().unwrap(), v["max"].as_f64().unwrap());
    assert!(
        min >= 180.0 && max <= 340.0 && min < max,
        "T2 range {min}..{max}"
    );
    assert_eq!(v["units"], "K");
    let days: Vec<String> = (1..=8).map(|d| format!("1979-10-{d:02}")).collect();
    assert_eq!(v["time"], serde_json::json!(days));
    for var in ["T2", "PREC_ACC_NC", "HGT", "lat", "lon", "crs", "time"] {
        assert!(
            v["vars"].as_array().unwrap().iter().any(|x| x == var),
            "no {var} in {}",
            v["vars"]
        );
    }

    // A second demo on another mountpoint reuses the generated dataset.
    let marker = data.join(".geomount-demo-version");
    let marker_mtime = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let tif1 = sha256(&std::fs::read(mp.join(TIF)).expect("read tif via mount 1"));
    assert_eq!(tif1, sha256(&std::fs::read(data.join(TIF)).unwrap()));
    let mp2 = tmp.path().join("mnt2");
    std::fs::create_dir(&mp2).expect("mountpoint 2");
    let mp2 = mp2.canonicalize().unwrap();
    let (guard2, hints2) = demo(&cache, &mp2, &tmp.path().join("demo2.log"));
    assert!(
        hints2.contains(&format!("mounted at {}", mp2.display())),
        "{hints2}"
    );
    let tif2 = sha256(&std::fs::read(mp2.join(TIF)).expect("read tif via mount 2"));
    assert_eq!(tif2, tif1, "second demo served another tif");
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        marker_mtime,
        "second demo regenerated the dataset"
    );

    drop(guard2);
    drop(guard);
    assert!(!common::is_mounted(&mp) && !common::is_mounted(&mp2));
}

/// The Python one-liner the demo prints under "Try:" runs as printed (a user pastes it).
#[test]
fn demo_python_hint_runs_as_printed() {
    let tmp = tempfile::Builder::new()
        .prefix("gm-demo-hint-")
        .tempdir()
        .expect("tempdir");
    let mp = tmp.path().join("mnt");
    std::fs::create_dir(&mp).expect("mountpoint");
    let mp = mp.canonicalize().expect("canonical mountpoint");
    let (_guard, hints) = demo(&tmp.path().join("cache"), &mp, &tmp.path().join("demo.log"));
    let start = hints.find("python3 -c '").expect("a python3 -c hint") + "python3 -c '".len();
    let len = hints[start..]
        .find('\'')
        .expect("closing quote of the python hint");
    let code = &hints[start..start + len];
    assert!(
        code.contains(&format!("{}/conus404_daily.zarr", mp.display())),
        "{code}"
    );
    let out = stdout_of(python().arg("-c").arg(code));
    let mean: f64 = out
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("hint printed {out:?}: {e}"));
    assert!(
        (200.0..330.0).contains(&mean),
        "hint printed T2 mean {mean}"
    );
}
