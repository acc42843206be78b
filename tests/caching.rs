//! The persistent block cache, measured at the lab proxy: a remount with the same cache directory
//! makes no GET for cached blocks; a replaced object (new ETag) is never served from its old
//! blocks; a corrupt cache file (flipped byte, truncated) is dropped and refetched, never served.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};

use common::{Mount, Proxy, Server, pseudo_random, sha256, unique_prefix};

const MIB: usize = 1 << 20;

/// A mount of `prefix` through `proxy` using `cache_dir` as its disk cache.
fn mount(proxy: &Proxy, prefix: &str, cache_dir: &Path) -> Mount {
    let dir = cache_dir.to_str().unwrap();
    Mount::s3(&proxy.server(), prefix, &["--cache-dir", dir])
}

/// Reads a whole file through the mount.
fn read(m: &Mount, name: &str) -> Vec<u8> {
    std::fs::read(m.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// GETs (whole or ranged) the proxy has seen.
fn gets(p: &Proxy) -> u64 {
    p.count("get") + p.count("get_range")
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "blk"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_remount_with_the_same_cache_dir_makes_no_get_for_cached_blocks() {
    let server = Server::garage();
    let prefix = unique_prefix("remount");
    let big = pseudo_random(5 * MIB + 12345, 51);
    let small = pseudo_random(3000, 52);
    server.put(&format!("{prefix}/big.bin"), big.clone());
    server.put(&format!("{prefix}/small.bin"), small.clone());
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    {
        let m = mount(&proxy, &prefix, cache.path());
        assert_eq!(sha256(&read(&m, "big.bin")), sha256(&big));
        assert_eq!(read(&m, "small.bin"), small);
        assert!(gets(&proxy) > 0, "the first mount fetched nothing");
        assert!(m.stat("disk_writes") >= 7, "{}", m.stats());
    }
    // Six blocks of big.bin and one of small.bin are on disk.
    assert_eq!(cache_files(cache.path()).len(), 7);
    proxy.reset();
    let m = mount(&proxy, &prefix, cache.path());
    assert_eq!(sha256(&read(&m, "big.bin")), sha256(&big));
    assert_eq!(read(&m, "small.bin"), small);
    assert_eq!(gets(&proxy), 0, "{}", proxy.stats());
    assert_eq!(m.stat("disk_hits"), 7, "{}", m.stats());
    assert!(proxy.count("bytes_out") < 64 * 1024, "{}", proxy.stats());
}

#[test]
fn a_replaced_object_is_never_served_from_its_old_blocks() {
    let server = Server::garage();
    let prefix = unique_prefix("newetag");
    let key = format!("{prefix}/obj.bin");
    let old = pseudo_random(2 * MIB, 61);
    let new = pseudo_random(2 * MIB, 62);
    server.put(&key, old.clone());
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    {
        let m = mount(&proxy, &prefix, cache.path());
        assert_eq!(read(&m, "obj.bin"), old);
    }
    server.put(&key, new.clone());
    proxy.reset();
    let m = mount(&proxy, &prefix, cache.path());
    let got = read(&m, "obj.bin");
    assert!(got == new, "the old blocks were served for the new object");
    assert!(gets(&proxy) >= 1, "{}", proxy.stats());
    assert_eq!(m.stat("disk_hits"), 0, "{}", m.stats());
}

#[test]
fn a_corrupt_cache_file_is_dropped_and_refetched_never_served() {
    let server = Server::garage();
    let prefix = unique_prefix("corrupt");
    let data = pseudo_random(3 * MIB, 71);
    server.put(&format!("{prefix}/obj.bin"), data.clone());
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    {
        let m = mount(&proxy, &prefix, cache.path());
        assert_eq!(read(&m, "obj.bin"), data);
    }
    let files = cache_files(cache.path());
    assert_eq!(files.len(), 3, "{files:?}");
    // One file gets a flipped byte in its payload, another loses its tail.
    let mut flipped = std::fs::read(&files[0]).unwrap();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    std::fs::write(&files[0], &flipped).unwrap();
    let truncated = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &truncated[..truncated.len() - 1000]).unwrap();
    proxy.reset();
    let m = mount(&proxy, &prefix, cache.path());
    assert!(
        read(&m, "obj.bin") == data,
        "corrupt cache bytes were served"
    );
    assert_eq!(m.stat("disk_corrupt"), 2, "{}", m.stats());
    assert_eq!(m.stat("disk_hits"), 1, "{}", m.stats());
    // Exactly the two bad blocks are fetched again, each once.
    assert_eq!(gets(&proxy), 2, "{}", proxy.stats());
    drop(m);
    // They were written again, whole: a third mount fetches nothing.
    assert_eq!(cache_files(cache.path()).len(), 3);
    proxy.reset();
    let m = mount(&proxy, &prefix, cache.path());
    assert!(read(&m, "obj.bin") == data);
    assert_eq!(gets(&proxy), 0, "{}", proxy.stats());
}

#[test]
fn cache_stats_and_clear_report_and_empty_the_directory() {
    let server = Server::garage();
    let prefix = unique_prefix("cachecli");
    server.put(&format!("{prefix}/a.bin"), pseudo_random(MIB + 1, 81));
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("blocks");
    let proxy = Proxy::start(&server, &[]);
    {
        let m = mount(&proxy, &prefix, &dir);
        read(&m, "a.bin");
    }
    let run = |what: &str| {
        let out = common::run_ok(
            common::geomount()
                .args(["cache", what, "--cache-dir"])
                .arg(&dir),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let stats = run("stats");
    assert!(stats.contains("2 blocks"), "{stats}");
    let cleared = run("clear");
    assert!(cleared.contains("removed 2 blocks"), "{cleared}");
    assert!(cache_files(&dir).is_empty());
    assert!(run("stats").contains("0 blocks"));
}

/// Uploads every file below `dir` to `server` under `key_prefix/`.
fn put_tree(server: &Server, dir: &Path, key_prefix: &str) {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut items = Vec::new();
    walk(dir, dir, &mut items);
    let items = items
        .into_iter()
        .map(|(rel, data)| (format!("{key_prefix}/{rel}"), data))
        .collect();
    server.put_many(items);
}

/// The demo's CONUS404-shaped store, generated once per test process.
fn demo_dataset() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        geomount::demo::ensure_dataset(&d.path().join("demo")).unwrap();
        d
    })
    .path()
    .join("demo")
}

const XR_SUBSET: &str = r#"
import sys, json, xarray as xr
ds = xr.open_zarr(sys.argv[1], consolidated=True)
v = ds.T2.isel(time=slice(0, 4), y=slice(0, 60), x=slice(0, 80)).values
print(json.dumps({"sum": float(v.astype("float64").sum()), "shape": list(v.shape)}))
"#;

fn xr_subset(store: &Path) -> serde_json::Value {
    let out = common::run_ok(common::python().args(["-c", XR_SUBSET]).arg(store));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn xarray_subset_of_a_consolidated_store_makes_no_list_and_one_get_per_chunk() {
    let server = Server::garage();
    let prefix = unique_prefix("zarr");
    let data = demo_dataset();
    put_tree(
        &server,
        &data.join("conus404_daily.zarr"),
        &format!("{prefix}/conus404_daily.zarr"),
    );
    let local = xr_subset(&data.join("conus404_daily.zarr"));
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    let m = mount(&proxy, &prefix, cache.path());
    // The mount's own access check is not part of the workload.
    proxy.reset();
    let got = xr_subset(&m.join("conus404_daily.zarr"));
    assert_eq!(got, local);
    let s = proxy.stats();
    println!("xarray subset through the proxy: {s}");
    assert_eq!(proxy.count("list"), 0, "{s}");
    // Metadata: zarr.json (404) and .zmetadata, probed together at the store's lookup, then
    // .zgroup and .zattrs, which zarr-python reads too. Chunks: the index coordinates time, y
    // and x (one chunk each), which xarray loads at open, and the one T2 chunk of the subset.
    // Each is fetched once, whole, with no HEAD.
    let metadata = 4;
    let chunks = 3 + 1;
    assert!(gets(&proxy) <= metadata + chunks, "{s}");
    assert_eq!(proxy.count("head"), 0, "{s}");
    assert_eq!(proxy.count("get_range"), 0, "{s}");
}

const GRIB_FIELD: &str = r#"
import sys, os, json, eccodes
path, want = sys.argv[1], sys.argv[2]
lines = open(path + ".idx").read().splitlines()
offsets = [int(l.split(":")[1]) for l in lines] + [os.stat(path).st_size]
i = next(i for i, l in enumerate(lines) if want in l)
start, end = offsets[i], offsets[i + 1]
fd = os.open(path, os.O_RDONLY)
buf = os.pread(fd, end - start, start)
os.close(fd)
# The fixture has one stray byte before message 2, which its inventory counts in: the message
# proper starts at the "GRIB" marker.
h = eccodes.codes_new_from_message(buf[buf.find(b"GRIB"):])
vals = eccodes.codes_get_values(h)
print(json.dumps({"start": start, "len": end - start, "n": len(vals), "mean": float(vals.mean())}))
"#;

#[test]
fn one_hrrr_field_transfers_at_most_1_02x_its_message() {
    let server = Server::garage();
    let prefix = unique_prefix("hrrr");
    let name = "hrrr.t00z.wrfsfcf12.grib2";
    let dir = common::fixtures().join("grib2");
    for f in [name.to_string(), format!("{name}.idx")] {
        server.put(
            &format!("{prefix}/{f}"),
            std::fs::read(dir.join(&f)).unwrap(),
        );
    }
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    let out = common::run_ok(
        common::python()
            .args(["-c", GRIB_FIELD])
            .arg(m.join(name))
            .arg("11-12 hour acc"),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // eccodes' reading of message 2 of the local file (tests/data/make.py).
    let want = common::hrrr_message(1);
    assert_eq!(v["n"], want["count"]);
    let mean = want["mean"].as_f64().unwrap();
    assert!(
        (v["mean"].as_f64().unwrap() - mean).abs() <= 1e-9 * mean,
        "{v}"
    );
    let message = v["len"].as_u64().unwrap();
    let size = std::fs::metadata(dir.join(name)).unwrap().len();
    assert_eq!(message, size - want["idx_offset"].as_u64().unwrap());
    let s = proxy.stats();
    println!("one HRRR field through the proxy: {s}; message {message} bytes");
    let bytes = proxy.count("bytes_out");
    assert!(
        bytes as f64 <= 1.02 * message as f64,
        "{bytes} bytes for a {message}-byte message: {s}"
    );
}

/// Message 2 of a GRIB2 file read at `start..end` (argv), decoded by eccodes.
const GRIB_RANGE: &str = r#"
import sys, os, json, eccodes
path, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_RDONLY)
buf = os.pread(fd, end - start, start)
os.close(fd)
h = eccodes.codes_new_from_message(buf[buf.find(b"GRIB"):])
vals = eccodes.codes_get_values(h)
print(json.dumps({"n": len(vals), "mean": float(vals.mean()), "sum": float(vals.sum())}))
"#;

/// GETs for message 2 of the HRRR sample without `.idx` on a fresh cache: the probes of
/// messages 1 and 2 at open, then message 2 (after its probe) with the trailing byte, in one.
const GRIB_NOIDX_GETS: u64 = 3;

/// Without its `.idx`, the HRRR sample is planned from section 0 of each message: one 80-byte
/// probe per message (the stray byte before message 2 skipped), each a unit of its own, then
/// reading message 2 fetches message 2 and the trailing byte, nothing of message 1. Its values
/// equal eccodes' on the local file.
#[test]
fn grib_noidx_message_2_transfers_its_message_and_the_probes() {
    let server = Server::garage();
    let prefix = unique_prefix("hrrr-noidx");
    let name = "hrrr.t00z.wrfsfcf12.grib2";
    let local = common::fixtures().join(common::HRRR);
    let data = std::fs::read(&local).unwrap();
    server.put(&format!("{prefix}/{name}"), data.clone());
    let want = common::hrrr_message(1);
    let (start, end) = (want["idx_offset"].as_u64().unwrap(), data.len() as u64);
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    let run = |path: &Path| {
        let out = common::run_ok(
            common::python()
                .args(["-c", GRIB_RANGE])
                .arg(path)
                .arg(start.to_string())
                .arg(end.to_string()),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let v = run(&m.join(name));
    assert_eq!(v, run(&local), "mount vs local file");
    assert_eq!(v["n"], want["count"]);
    let s = proxy.stats();
    // Message 2 proper: from its magic (one stray byte after message 1) to its 7777.
    let message = end - 1 - (start + 1);
    let probes = 2 * geomount::formats::grib2::PROBE_BYTES;
    println!("HRRR message 2 without .idx through the proxy: {s}; message {message} bytes");
    let bytes = proxy.count("bytes_out");
    assert!(
        bytes as f64 <= 1.02 * message as f64 + probes as f64,
        "{bytes} bytes for a {message}-byte message: {s}"
    );
    assert!(bytes >= message, "{bytes} < {message}: {s}");
    assert_eq!(proxy.count("get"), 0, "{s}");
    assert_eq!(gets(&proxy), GRIB_NOIDX_GETS, "{s}");
    // A second open plans from the cached probes: no request but the message's.
    proxy.reset();
    run(&m.join(name));
    assert_eq!(gets(&proxy), 0, "all cached: {}", proxy.stats());
}

/// Bytes and number of the full-resolution tiles a window touches, from GDAL's own block
/// offsets.
const TILE_BYTES: &str = r#"
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1])
b = ds.GetRasterBand(1)
bx, by = b.GetBlockSize()
x0, y0, w, h = map(int, sys.argv[2:6])
total = count = 0
for ty in range(y0 // by, (y0 + h - 1) // by + 1):
    for tx in range(x0 // bx, (x0 + w - 1) // bx + 1):
        total += int(b.GetMetadataItem(f"BLOCK_SIZE_{tx}_{ty}", "TIFF"))
        count += 1
print(total, count)
"#;

#[test]
fn a_512_window_of_a_cog_transfers_at_most_1_1x_its_tiles() {
    let server = Server::garage();
    let prefix = unique_prefix("cog");
    let local = demo_dataset().join("cog/T2_1979-10-01.tif");
    server.put(&format!("{prefix}/t2.tif"), std::fs::read(&local).unwrap());
    let win = ["300", "200", "512", "512"];
    let out = common::run_ok(
        // Debian's python3 has GDAL's bindings (python3-gdal).
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", TILE_BYTES])
            .arg(&local)
            .args(win),
    );
    let out = String::from_utf8(out.stdout).unwrap();
    let (tiles, tile_count) = out.trim().split_once(' ').unwrap();
    let (tiles, tile_count): (u64, u64) = (tiles.parse().unwrap(), tile_count.parse().unwrap());
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    let outdir = tempfile::tempdir().unwrap();
    let translate = |src: &Path, dst: &str| {
        common::run_ok(
            std::process::Command::new("gdal_translate")
                .args(["-q", "-srcwin"])
                .args(win)
                .arg(src)
                .arg(outdir.path().join(dst)),
        );
        std::fs::read(outdir.path().join(dst)).unwrap()
    };
    let got = translate(&m.join("t2.tif"), "mounted.tif");
    let s = proxy.stats();
    println!("512x512 COG window through the proxy: {s}; tiles touched {tiles} bytes");
    assert!(
        got == translate(&local, "local.tif"),
        "the window differs from the local file's"
    );
    let bytes = proxy.count("bytes_out");
    assert!(
        bytes as f64 <= 1.1 * tiles as f64,
        "{bytes} bytes for {tiles} bytes of tiles: {s}"
    );
    // GDAL reads through an 8 KiB stdio buffer: its seeks land in the previous tile's tail and
    // each tile's last buffer fill runs into the next tile. Those grazes cost no request of
    // their own: at most one GET per tile touched, plus the header.
    assert!(gets(&proxy) <= tile_count + 1, "{s}");
    // The same window again is served from what the first read kept, grazes included.
    proxy.reset();
    assert!(got == translate(&m.join("t2.tif"), "again.tif"));
    assert_eq!(gets(&proxy), 0, "{}", proxy.stats());
}

#[test]
fn prefetch_of_a_zarr_subset_warms_the_cache_for_the_next_mount() {
    let server = Server::garage();
    let prefix = unique_prefix("prefetch");
    let data = demo_dataset();
    let store = "conus404_daily.zarr";
    put_tree(&server, &data.join(store), &format!("{prefix}/{store}"));
    let local = xr_subset(&data.join(store));
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    {
        let m = mount(&proxy, &prefix, cache.path());
        let out = common::run_ok(
            common::geomount()
                .arg("prefetch")
                .arg(m.join(store))
                .args(["--vars", "T2", "--time", "0..4", "--jobs", "4"]),
        );
        let out = String::from_utf8(out.stdout).unwrap();
        // The 20 metadata documents .zmetadata names, the coordinates time, x and y (one chunk
        // each), and T2's four chunks at time chunk 0.
        assert!(out.contains("prefetched 27 files"), "{out}");
        assert!(out.contains("0 failed"), "{out}");
    }
    proxy.reset();
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    assert_eq!(xr_subset(&m.join(store)), local);
    let s = proxy.stats();
    println!("xarray subset after prefetch and remount: {s}");
    // Only the store's metadata probe (zarr.json, .zmetadata) goes to the server.
    assert_eq!(proxy.count("list"), 0, "{s}");
    assert!(gets(&proxy) <= 2, "{s}");
    assert!(m.stat("disk_hits") >= 4, "{}", m.stats());
}

const WRITE_SHARDED: &str = r#"
import sys, zarr, numpy as np
g = zarr.open_group(sys.argv[1], mode="w", zarr_format=3)
a = g.create_array("a", shape=(1000, 1000), chunks=(100, 100), shards=(500, 500), dtype="f4",
                   dimension_names=["y", "x"])
a[:] = np.random.default_rng(7).random((1000, 1000), dtype="f4")
zarr.consolidate_metadata(sys.argv[1])
"#;

/// Reads inner chunk (1, 1) of shard `a/c/1/0` through its index, as a reader with byte-range
/// access does (zarr-python's own local store reads a shard from the chunk to its end), and
/// checks it against zarr-python's values of that region.
const READ_INNER_CHUNK: &str = r#"
import sys, os, json, struct, warnings, zarr, numpy as np, numcodecs
warnings.simplefilter("ignore")
store, local = sys.argv[1], sys.argv[2]
path = os.path.join(store, "a", "c", "1", "0")
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
index = os.pread(fd, 25 * 16 + 4, size - (25 * 16 + 4))
off, n = struct.unpack_from("<QQ", index, 16 * (1 * 5 + 1))
raw = numcodecs.Zstd().decode(os.pread(fd, n, off))
os.close(fd)
got = np.frombuffer(raw, dtype="<f4").reshape(100, 100)
want = zarr.open_consolidated(local, mode="r")["a"][600:700, 100:200]
print(json.dumps({"equal": bool((got == want).all()), "chunk": n}))
"#;

#[test]
fn one_inner_chunk_of_a_zarr_v3_shard_is_read_without_the_shard() {
    let server = Server::garage();
    let prefix = unique_prefix("shard");
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("sh.zarr");
    common::run_ok(common::python().args(["-c", WRITE_SHARDED]).arg(&local));
    put_tree(&server, &local, &format!("{prefix}/sh.zarr"));
    let shard = std::fs::metadata(local.join("a/c/1/0")).unwrap().len();
    let cache = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&server, &[]);
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    let out = common::run_ok(
        common::python()
            .args(["-c", READ_INNER_CHUNK])
            .arg(m.join("sh.zarr"))
            .arg(&local),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["equal"], true, "{v}");
    let chunk = v["chunk"].as_u64().unwrap();
    let s = proxy.stats();
    println!("one inner chunk of a {shard}-byte shard through the proxy: {s}");
    assert_eq!(proxy.count("list"), 0, "{s}");
    // Metadata (root zarr.json with the consolidated metadata; .zmetadata is a 404 whose XML
    // error body counts too), then the shard's index (404 bytes) and the one inner chunk of 25,
    // not the shard.
    let metadata = std::fs::metadata(local.join("zarr.json")).unwrap().len();
    let bytes = proxy.count("bytes_out");
    let floor = metadata + 404 + chunk;
    assert!(
        (floor..floor + 1024).contains(&bytes),
        "{bytes} bytes, floor {floor}, shard {shard}: {s}"
    );
}
