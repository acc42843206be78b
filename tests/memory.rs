//! The process's memory budget with converted views: every cache draws from `--cache-memory`,
//! so the daemon's peak RSS stays within it plus a fixed allowance however many views are read,
//! and the disk cache keeps the sources' bytes, not the views' padded tiles.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Mount, Server, python, stdout_of, unique_prefix};

const COPIES: usize = 12;
const VARS: [&str; 2] = [
    "APCP_surface_0_12_hour_acc_fcst",
    "APCP_surface_11_12_hour_acc_fcst",
];
/// `--cache-memory` of the mount, and the most the daemon's peak RSS may exceed it by.
const CACHE_MEMORY: u64 = 64 << 20;
const ALLOWANCE: u64 = 96 << 20;

/// The PID of the daemon serving `mountpoint`: the one process whose command line names it.
fn daemon_pid(mountpoint: &Path) -> u32 {
    let want = mountpoint.as_os_str().as_encoded_bytes();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmd.split(|&b| b == 0).any(|arg| arg == want)
                && cmd.split(|&b| b == 0).any(|arg| arg == b"mount")
        })
        .collect();
    assert_eq!(pids.len(), 1, "daemons of {mountpoint:?}: {pids:?}");
    pids[0]
}

/// A field of `/proc/PID/status` in bytes (`VmHWM`, `VmRSS`: reported in kB).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kb << 10
}

/// Bytes of the files below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Every `Checksum=N` gdalinfo prints for `tif` (the band's, then each overview's).
fn checksums(tif: &Path) -> Vec<u64> {
    let info = stdout_of(Command::new("gdalinfo").arg("-checksum").arg(tif));
    let sums: Vec<u64> = info
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Checksum="))
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert!(!sums.is_empty(), "no checksum for {tif:?}: {info}");
    sums
}

/// 24 GRIB2->COG views (12 copies of an HRRR-size file, 2 messages each), each read whole by
/// `gdalinfo -checksum`, and one Zarr view array read by xarray, under `--cache-memory 64MiB`:
/// the copies' checksums agree, the daemon's peak RSS (`VmHWM`) is at most 64 + 96 MiB, and the
/// disk cache holds no more than the sources' bytes (the views' padded tiles are not kept there).
#[test]
fn converted_views_stay_within_the_memory_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let grib = tmp.path().join("hrrr.grib2");
    let out = stdout_of(
        python()
            .arg(common::project_root().join("tests/memory/hrrr_like_make.py"))
            .arg(&grib),
    );
    eprintln!("{out}");
    let means: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("mean "))
        .map(|m| m.parse().unwrap())
        .collect();
    assert_eq!(means.len(), 2, "{out}");
    let bytes = std::fs::read(&grib).unwrap();
    let idx = std::fs::read(grib.with_extension("grib2.idx")).unwrap();
    assert!(
        bytes.len() > 1 << 20,
        "an HRRR-size file: {} bytes",
        bytes.len()
    );

    let server = Server::garage();
    let prefix = unique_prefix("memory-views");
    let names: Vec<String> = (0..COPIES).map(|k| format!("copy{k:02}.grib2")).collect();
    let mut items = Vec::new();
    for n in &names {
        items.push((format!("{prefix}/{n}"), bytes.clone()));
        items.push((format!("{prefix}/{n}.idx"), idx.clone()));
    }
    let sources = (COPIES * (bytes.len() + idx.len())) as u64;
    server.put_many(items);

    let m = Mount::s3(&server, &prefix, &["--cache-memory", "64MiB"]);
    let pid = daemon_pid(m.path());
    let mut first: Vec<Option<Vec<u64>>> = vec![None; VARS.len()];
    for n in &names {
        for (v, var) in VARS.iter().enumerate() {
            let tif: PathBuf = m.join(&format!("{n}.cog/{var}.tif"));
            let sums = checksums(&tif);
            match &first[v] {
                None => first[v] = Some(sums),
                Some(want) => assert_eq!(&sums, want, "{tif:?} differs from the first copy"),
            }
        }
    }
    assert_ne!(first[0], first[1], "the two messages are different fields");

    // One Zarr view array through xarray: the generator's mean.
    let zarr = m.join(&format!("{}.zarr", names[COPIES - 1]));
    let mean: f64 = stdout_of(python().arg("-c").arg(format!(
        "import xarray as xr; ds = xr.open_zarr('{}', consolidated=True); \
         print(float(ds['{}'].astype('float64').mean()))",
        zarr.display(),
        VARS[1]
    )))
    .trim()
    .parse()
    .unwrap();
    assert!(
        (mean - means[1]).abs() <= 1e-4 * means[1].abs().max(1.0),
        "mean {mean} vs {means:?}"
    );

    let hwm = status_bytes(pid, "VmHWM");
    let rss = status_bytes(pid, "VmRSS");
    let disk = dir_bytes(&m.path().with_extension("cache"));
    eprintln!(
        "daemon {pid}: VmHWM {} MiB, VmRSS {} MiB; disk cache {disk} bytes for {sources} source bytes",
        hwm >> 20,
        rss >> 20
    );
    assert!(
        hwm <= CACHE_MEMORY + ALLOWANCE,
        "peak RSS {} MiB exceeds --cache-memory 64 MiB + 96 MiB",
        hwm >> 20
    );
    // The sources' messages and inventories (plus the few KiB each view's inventory read as a
    // unit of its own, and per-entry headers), never a view's tiles.
    assert!(
        disk <= sources + sources / 10 + (1 << 20),
        "disk cache {disk} bytes for {sources} bytes of sources"
    );
    assert!(
        disk >= sources / 2,
        "the sources are cached on disk: {disk} bytes"
    );
}
