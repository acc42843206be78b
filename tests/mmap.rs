//! Memory maps of every kind of planned file (opened with direct I/O) through a real FUSE mount
//! of Garage: Python's `mmap` (shared and private) and `numpy.memmap` see exactly the bytes
//! `read()` sees, and those are the source's. The files come from the real producers: the
//! fixtures (GDAL's COG, eccodes' GRIB2, netCDF4's and h5py's HDF5) and a sharded Zarr v3
//! array written by zarr-python at test time; the COG view is geomount's own conversion.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};

use common::{Mount, Server, fixtures, python, sha256, stdout_of, unique_prefix};

const NAME: &str = "hrrr.t00z.wrfsfcf12.grib2";

/// A sharded Zarr v3 array of random floats (inner chunks hardly compress, so the shard is
/// about 1 MB of chunks whose boundaries fall inside pages).
const WRITE_SHARDED: &str = r#"
import sys, zarr, numpy as np
g = zarr.open_group(sys.argv[1], mode="w", zarr_format=3)
a = g.create_array("a", shape=(1000, 1000), chunks=(100, 100), shards=(500, 500), dtype="f4")
a[:] = np.random.default_rng(3).random((1000, 1000), dtype="f4")
zarr.consolidate_metadata(sys.argv[1])
"#;

/// For each path: the SHA-256 of its bytes seen through a shared mapping touched one page at a
/// time in file order (MADV_RANDOM: one page per fault, as a reader of scattered tiles gets;
/// done first, while the mount holds nothing of the file), in reverse order, whole, through a
/// private mapping, through `numpy.memmap`, and through `read()`; and its size before and after.
const MAP: &str = r#"
import hashlib, json, mmap, os, sys
import numpy as np
PAGE = mmap.PAGESIZE
sha = lambda b: hashlib.sha256(b).hexdigest()
out = {}
for path in sys.argv[1:]:
    r = {}
    fd = os.open(path, os.O_RDONLY)
    size = r["size"] = os.fstat(fd).st_size
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
        m.madvise(mmap.MADV_RANDOM)
        r["mmap_pages"] = sha(b"".join(m[o:o + PAGE] for o in range(0, size, PAGE)))
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
        m.madvise(mmap.MADV_RANDOM)
        pages = [m[o:o + PAGE] for o in reversed(range(0, size, PAGE))]
        r["mmap_reverse"] = sha(b"".join(reversed(pages)))
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
        r["mmap"] = sha(m[:])
    with mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
        r["private"] = sha(m[:])
    r["size_mapped"] = os.fstat(fd).st_size
    os.close(fd)
    a = np.memmap(path, dtype=np.uint8, mode="r")
    r["memmap"] = sha(a.tobytes())
    r["memmap_len"] = int(a.shape[0])
    del a
    with open(path, "rb") as f:
        r["read"] = sha(f.read())
    r["size_after"] = os.stat(path).st_size
    out[path] = r
print(json.dumps(out))
"#;

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

/// A planned file of the mount and the SHA-256 of its source (`None` for a converted view,
/// whose only reference is its own `read()`).
struct Case {
    what: &'static str,
    path: PathBuf,
    source: Option<String>,
    size: u64,
}

#[test]
fn every_kind_of_planned_file_maps_with_its_exact_bytes() {
    let server = Server::garage();
    let prefix = unique_prefix("mmap");
    let tmp = tempfile::tempdir().unwrap();
    let zarr = tmp.path().join("sh.zarr");
    common::run_ok(python().args(["-c", WRITE_SHARDED]).arg(&zarr));
    put_tree(&server, &zarr, &format!("{prefix}/sh.zarr"));
    let grib = fixtures().join(common::HRRR);
    server.put(
        &format!("{prefix}/{NAME}.idx"),
        std::fs::read(grib.with_extension("grib2.idx")).unwrap(),
    );
    let files = [
        ("a COG", fixtures().join("cog/cog_ovr.tif"), "cog.tif"),
        ("a GRIB2 file", grib, NAME),
        (
            "a NetCDF-4 file",
            fixtures().join("netcdf/air.nc"),
            "air.nc",
        ),
        (
            "an HDF5 file",
            fixtures().join("hdf5/latest.h5"),
            "latest.h5",
        ),
    ];
    for (_, local, key) in &files {
        server.put(&format!("{prefix}/{key}"), std::fs::read(local).unwrap());
    }
    let m = Mount::s3(&server, &prefix, &[]);
    let source = |p: &Path| Some(sha256(&std::fs::read(p).unwrap()));
    let mut cases: Vec<Case> = files
        .iter()
        .map(|(what, local, key)| Case {
            what,
            path: m.join(key),
            source: source(local),
            size: std::fs::metadata(local).unwrap().len(),
        })
        .collect();
    let shard = zarr.join("a/c/1/0");
    cases.push(Case {
        what: "a Zarr v3 shard",
        path: m.join("sh.zarr/a/c/1/0"),
        source: source(&shard),
        size: std::fs::metadata(&shard).unwrap().len(),
    });
    let view = m.join(&format!("{NAME}.cog/APCP_surface_0_12_hour_acc_fcst.tif"));
    cases.push(Case {
        what: "a converted COG view",
        size: std::fs::metadata(&view).unwrap().len(),
        path: view,
        source: None,
    });
    let zchunk = std::fs::read_dir(m.join(&format!("{NAME}.zarr")))
        .unwrap()
        .map(|e| e.unwrap().path().join("0.0"))
        .find(|p| p.exists())
        .expect("a chunk 0.0 in the Zarr view");
    cases.push(Case {
        what: "a Zarr view chunk",
        size: std::fs::metadata(&zchunk).unwrap().len(),
        path: zchunk,
        source: None,
    });

    let out = stdout_of(
        python()
            .args(["-c", MAP])
            .args(cases.iter().map(|c| &c.path)),
    );
    let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for c in &cases {
        let r = &got[c.path.to_string_lossy().as_ref()];
        eprintln!("{}: {r}", c.what);
        assert!(c.size > 4096, "{}: too small to span pages", c.what);
        for k in ["size", "size_mapped", "size_after", "memmap_len"] {
            assert_eq!(r[k].as_u64(), Some(c.size), "{}: {k}: {r}", c.what);
        }
        let read = r["read"].as_str().unwrap();
        if let Some(want) = &c.source {
            assert_eq!(read, want, "{}: read() differs from the source", c.what);
        }
        for k in ["mmap_pages", "mmap_reverse", "mmap", "private", "memmap"] {
            assert_eq!(
                r[k].as_str(),
                Some(read),
                "{}: {k} differs from read(): {r}",
                c.what
            );
        }
    }
}

/// Maps `argv[1]` (MADV_RANDOM: one page per fault), touches its first page, says `mapped`,
/// waits for the file `argv[2]`, then touches its last page and says `read`.
const MAP_THEN_WAIT: &str = r#"
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
m.madvise(mmap.MADV_RANDOM)
first = m[:4]
print("mapped", first.hex(), flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
last = m[len(m) - 1]
print("read", last, flush=True)
"#;

/// A mapping keeps to the object version it was opened on: once the object is replaced, a page
/// whose bytes must be fetched again faults with SIGBUS (the fetch is pinned to the old ETag and
/// refused), never showing the new object's bytes in the old mapping.
#[test]
fn a_mapping_of_a_replaced_object_faults_with_sigbus() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let server = Server::garage();
    let prefix = unique_prefix("mmap-replaced");
    let grib = fixtures().join(common::HRRR);
    let data = std::fs::read(&grib).unwrap();
    let key = format!("{prefix}/{NAME}");
    server.put(&key, data.clone());
    server.put(
        &format!("{key}.idx"),
        std::fs::read(grib.with_extension("grib2.idx")).unwrap(),
    );
    let m = Mount::s3(&server, &prefix, &["--metadata-ttl", "1s"]);
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let mut child = python()
        .args(["-c", MAP_THEN_WAIT])
        .arg(m.join(NAME))
        .arg(&go)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if line.trim() != "mapped 47524942" {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the first page is the GRIB2 header: {line:?}");
    }
    // The same size, other bytes in the last message (which the mapping has not read yet).
    let mut changed = data.clone();
    let n = changed.len();
    for b in &mut changed[n - 1000..n - 4] {
        *b ^= 0x5a;
    }
    server.put(&key, changed);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::fs::write(&go, b"").unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGBUS),
        "{status:?}, printed {rest:?}"
    );
    // A new open sees the new object whole.
    let got = std::fs::read(m.join(NAME)).unwrap();
    assert_eq!(got.len(), n);
    assert_eq!(got[n - 1000], data[n - 1000] ^ 0x5a);
}
