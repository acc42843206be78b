//! Converted views through a real FUSE mount of Garage, checked with real clients: eccodes and
//! xarray (lab venv), GDAL (Debian python3-gdal: Zarr driver, GRIB driver, COG validator).
#![cfg(feature = "lab-tests")]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Mount, Server, fixtures, python, run_ok, unique_prefix};

const GRIB: &str = "hrrr/subset_20201214_hrrr.t00z.wrfsfcf12.grib2";
const NAME: &str = "hrrr.t00z.wrfsfcf12.grib2";

fn script(name: &str) -> PathBuf {
    common::project_root().join("tests/convert").join(name)
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout).into_owned()
}

fn validator_script() -> PathBuf {
    let out = stdout_of(Command::new("dpkg").args(["-L", "python3-gdal"]));
    out.lines()
        .find(|l| l.ends_with("/validate_cloud_optimized_geotiff.py"))
        .map(PathBuf::from)
        .expect("python3-gdal ships validate_cloud_optimized_geotiff.py")
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

    let validator = validator_script();
    for var in [
        "APCP_surface_0_12_hour_acc_fcst",
        "APCP_surface_11_12_hour_acc_fcst",
    ] {
        let tif = cogdir.join(format!("{var}.tif"));
        let info = stdout_of(Command::new("gdalinfo").arg(&tif));
        assert!(info.contains("LAYOUT=COG"), "{info}");
        assert!(info.contains("COMPRESSION=DEFLATE"), "{info}");
        let v = stdout_of(
            Command::new("/usr/bin/python3")
                .arg(&validator)
                .arg("--full-check=yes")
                .arg(&tif),
        );
        assert!(v.contains("is a valid cloud optimized GeoTIFF"), "{v}");
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
