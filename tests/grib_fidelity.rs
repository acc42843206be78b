//! GRIB files shaped as real archives hold them, made with eccodes, and every GRIB2 sample
//! eccodes ships, through a FUSE mount of a local folder: each message's Zarr view against
//! eccodes (values, latitudes, longitudes), or refused alone with its reason in the log, the
//! rest of its file still listed and read (tests/convert/grib_fidelity_check.py).
#![cfg(feature = "lab-tests")]

mod common;

use std::path::PathBuf;

use common::{Mount, assert_valid_cog, python, stdout_of};

fn script(name: &str) -> PathBuf {
    common::project_root().join("tests/convert").join(name)
}

#[test]
fn grib_views_hold_on_real_file_shapes_and_every_eccodes_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let made = stdout_of(
        python()
            .arg(script("grib_fidelity_make.py"))
            .arg(tmp.path()),
    );
    let files: Vec<&str> = made.lines().collect();
    let samples = files.iter().filter(|f| f.starts_with("sample_")).count();
    assert!(samples > 20, "{samples} eccodes samples: {files:?}");
    let m = Mount::with_args(&[format!("file://{}", tmp.path().display())], &[]);
    let out = stdout_of(
        python()
            .arg(script("grib_fidelity_check.py"))
            .arg(m.path())
            .arg(tmp.path())
            .arg(&m.log)
            .args(&files),
    );
    let summary: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a summary line")).expect("JSON");
    let numbers = |f: &str, what: &str| -> Vec<u64> {
        summary[f][what]
            .as_array()
            .unwrap_or_else(|| panic!("{f}: {summary}"))
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let refused = |f: &str| -> Vec<(String, String)> {
        summary[f]["refused"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(n, why)| (n.clone(), why.as_str().unwrap().to_string()))
            .collect()
    };
    // Padding, record markers, GRIB1 mixed in, several fields in one message.
    assert_eq!(numbers("padded.grib2", "ok"), [1, 2, 3]);
    assert_eq!(numbers("fortran.grib2", "ok"), [1, 2, 3]);
    assert_eq!(numbers("mixed.grib2", "ok"), [2, 4]);
    assert_eq!(numbers("mixed.grib2", "skipped"), [1, 3]);
    assert_eq!(numbers("multi.grib2", "ok"), [1, 2, 3, 4]);
    // Packings beyond 5.0/5.2/5.3, a constant field, secant Lambert cones in both orders.
    for f in [
        "ccsds.grib2",
        "jpeg.grib2",
        "png.grib2",
        "constant.grib2",
        "lcc_up.grib2",
        "lcc_down.grib2",
    ] {
        assert_eq!(numbers(f, "ok"), [1], "{f}: {}", summary[f]);
    }
    // Increments against the first and last points: columns from the points as eccodes
    // places them; rows eccodes places unevenly refused, named.
    assert_eq!(numbers("ll_iinc.grib2", "ok"), [1]);
    let jinc = refused("ll_jinc.grib2");
    assert!(
        jinc.len() == 1 && jinc[0].1.contains("j increment"),
        "{jinc:?}"
    );
    // One unusable message among good ones: refused alone, named; the rest listed and read.
    assert_eq!(numbers("badmix.grib2", "ok"), [1, 3]);
    let bad = refused("badmix.grib2");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, "2");
    assert!(bad[0].1.contains("grid spacing"), "{bad:?}");
    let mut cogs: Vec<String> = std::fs::read_dir(m.join("badmix.grib2.cog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tif"))
        .collect();
    cogs.sort();
    assert_eq!(cogs.len(), 2, "{cogs:?}");
    for c in &cogs {
        let tif = std::fs::read(m.join("badmix.grib2.cog").join(c)).unwrap();
        assert_eq!(&tif[..4], b"II*\0");
    }
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("badmix.grib2") && l.contains("hold no message")),
        "no log line for the trailing junk"
    );
    // Every converted field of the made files is a COG that passes GDAL's validator.
    for f in files.iter().filter(|f| !f.starts_with("sample_")) {
        let dir = m.join(&format!("{f}.cog"));
        let tifs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        assert_eq!(tifs.len(), numbers(f, "ok").len(), "{f}: {tifs:?}");
        for tif in &tifs {
            assert_valid_cog(tif);
        }
    }
    // Every sample: converted or refused with a reason; report which.
    let mut converted = 0;
    for f in files.iter().filter(|f| f.starts_with("sample_")) {
        let ok = numbers(f, "ok");
        converted += usize::from(!ok.is_empty());
        for (n, why) in refused(f) {
            eprintln!("{f} message {n} refused: {why}");
        }
    }
    eprintln!("eccodes samples: {converted} of {samples} converted");
    for f in [
        "sample_GRIB2.grib2",
        "sample_regular_ll_sfc_grib2.grib2",
        "sample_regular_ll_pl_grib2.grib2",
        "sample_ccsds_grib2.grib2",
    ] {
        assert_eq!(numbers(f, "ok"), [1], "{f}: {}", summary[f]);
    }
    // A view whose every message is left out still lists, empty.
    let empty = std::fs::read_dir(m.join("sample_sh_sfc_grib2.grib2.cog")).unwrap();
    assert_eq!(empty.count(), 0);
    // The polar stereographic samples scan -j, where eccodes and WMO's flags disagree.
    for f in [
        "sample_polar_stereographic_sfc_grib2.grib2",
        "sample_polar_stereographic_pl_grib2.grib2",
    ] {
        let why = refused(f);
        assert!(
            why.len() == 1 && why[0].1.contains("scanning mode 0b00000000"),
            "{f}: {why:?}"
        );
    }
    // The sources themselves read as they are.
    assert_eq!(
        std::fs::read(m.join("badmix.grib2")).unwrap(),
        std::fs::read(tmp.path().join("badmix.grib2")).unwrap()
    );
}
