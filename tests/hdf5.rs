//! NetCDF-4/HDF5 files read by whole chunks, measured at the lab proxy: xarray (h5netcdf) reading
//! a subset transfers about the bytes of the chunks it touches plus a bounded amount of
//! metadata, with about one GET per chunk; a remount with the same cache directory reads the
//! subset again with no GET. The files are written at test time by xarray and h5py: B-tree v1
//! chunk indexes and dense links (default libver) and libver="latest" ones (fixed array,
//! extensible array, B-tree v2).
#![cfg(feature = "lab-tests")]

mod common;

use std::path::Path;

use common::{Mount, Proxy, Server, unique_prefix};

/// Metadata a planned read may add to the chunks' bytes: the planning reads and the headers,
/// heaps and index nodes the HDF5 library reads.
const METADATA_BYTES: u64 = 256 << 10;
/// GETs beyond one per chunk: the planning rounds and metadata units outside them.
const METADATA_GETS: u64 = 8;

const WRITE: &str = r#"
import sys, numpy as np, xarray as xr, h5py
out = sys.argv[1]
rng = np.random.default_rng(11)
# (a) xarray's h5netcdf engine, default libver: B-tree v1 chunk index of two levels; with
# more than 8 variables, the root group's links are in a fractal heap (dense storage).
ds = xr.Dataset(
    {"t2": (("time", "y", "x"), rng.random((40, 256, 256), dtype="f4"))}
    | {f"v{i}": (("y", "x"), rng.random((256, 256), dtype="f4")) for i in range(8)},
    coords={"time": np.arange(40), "y": np.arange(256.0), "x": np.arange(256.0)},
)
ds.to_netcdf(f"{out}/btree1.nc", engine="h5netcdf",
             encoding={"t2": {"zlib": True, "chunksizes": (1, 128, 128)}})
# (b) h5py with libver="latest": fixed array, extensible array (one unlimited dimension),
# B-tree v2 (two unlimited dimensions).
with h5py.File(f"{out}/latest.h5", "w", libver="latest") as f:
    f.create_dataset("fa", data=rng.random((40, 256, 256), dtype="f4"), chunks=(1, 128, 128),
                     compression="gzip")
    ea = f.create_dataset("ea", shape=(0, 256, 256), maxshape=(None, 256, 256),
                          chunks=(1, 128, 128), dtype="f4", compression="gzip")
    ea.resize((40, 256, 256))
    ea[...] = rng.random((40, 256, 256), dtype="f4")
    bt = f.create_dataset("bt2", shape=(40, 256), maxshape=(None, None), chunks=(2, 64),
                          dtype="f8", compression="gzip")
    bt[...] = rng.random((40, 256))
# (c) WRF-CMIP6-shaped: one variable of a year, one chunk per time step (written in order).
ds = xr.Dataset({"t2": (("time", "y", "x"), rng.random((146, 64, 64), dtype="f4"))},
                coords={"time": np.arange(146), "y": np.arange(64.0), "x": np.arange(64.0)})
ds.to_netcdf(f"{out}/wrf.nc", engine="h5netcdf",
             encoding={"t2": {"zlib": True, "chunksizes": (1, 64, 64)}})
"#;

/// Reads `var[sel]` with xarray (h5netcdf) and prints its sum and shape.
const READ: &str = r#"
import sys, json, xarray as xr
path, var = sys.argv[1], sys.argv[2]
sel = json.loads(sys.argv[3])
ds = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort")
da = ds[var]
v = da[tuple(slice(a, b) for a, b in sel)].values
print(json.dumps({"sum": float(v.astype("float64").sum()), "shape": list(v.shape)}))
"#;

/// From the local file (h5py): the chunks of `var` that `sel` touches (count, stored bytes),
/// plus the storage of the dimension scales (the coordinates xarray loads at open).
const TOUCHED: &str = r#"
import sys, json, h5py
path, var = sys.argv[1], sys.argv[2]
sel = json.loads(sys.argv[3])
n = size = 0
with h5py.File(path, "r") as f:
    d = f[var]
    for i in range(d.id.get_num_chunks()):
        c = d.id.get_chunk_info(i)
        if all(o < b and o + k > a for o, k, (a, b) in zip(c.chunk_offset, d.chunks, sel)):
            n += 1
            size += c.size
    other = []
    f.visititems(lambda name, o: other.append(o) if isinstance(o, h5py.Dataset)
                 and o.attrs.get("CLASS") == b"DIMENSION_SCALE" else None)
    for o in other:
        if o.id.get_storage_size():
            n += o.id.get_num_chunks() if o.chunks else 1
            size += o.id.get_storage_size()
print(json.dumps({"chunks": n, "bytes": size}))
"#;

fn json_of(cmd: &mut std::process::Command) -> serde_json::Value {
    serde_json::from_str(&common::stdout_of(cmd)).unwrap()
}

fn gets(p: &Proxy) -> u64 {
    p.count("get") + p.count("get_range")
}

fn mount(proxy: &Proxy, prefix: &str, cache_dir: &Path) -> Mount {
    Mount::s3(
        &proxy.server(),
        prefix,
        &["--cache-dir", cache_dir.to_str().unwrap()],
    )
}

/// The generated files, written once per test process.
fn files() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        common::run_ok(common::python().args(["-c", WRITE]).arg(d.path()));
        d
    })
    .path()
}

/// What one read of a subset cost at the proxy.
#[derive(Debug)]
struct Cost {
    bytes: u64,
    gets: u64,
}

/// Reads `var[sel]` of `name` through a fresh mount behind `proxy` (cache in `cache`), checks
/// the values against the local file's, and returns the proxy's counts for the read.
fn read_subset(
    proxy: &Proxy,
    prefix: &str,
    name: &str,
    var: &str,
    sel: &str,
    cache: &Path,
) -> Cost {
    let local = files().join(name.trim_end_matches(".bin"));
    let want = json_of(
        common::python()
            .args(["-c", READ])
            .arg(&local)
            .args([var, sel]),
    );
    let m = mount(proxy, prefix, cache);
    proxy.reset();
    let got = json_of(
        common::python()
            .args(["-c", READ])
            .arg(m.join(name))
            .args([var, sel]),
    );
    assert_eq!(got, want, "{name} {var}{sel}");
    let cost = Cost {
        bytes: proxy.count("bytes_out"),
        gets: gets(proxy),
    };
    println!("{name} {var}{sel}: {cost:?}, {}", proxy.stats());
    cost
}

/// Uploads `name` (and a copy named `name.bin`, which no plan recognises), reads the subset
/// planned, unplanned, and planned again after a remount; asserts the planned read's bounds.
fn check(name: &str, var: &str, sel: &str) {
    let server = Server::garage();
    let prefix = unique_prefix("hdf5");
    let data = std::fs::read(files().join(name)).unwrap();
    server.put(&format!("{prefix}/{name}"), data.clone());
    server.put(&format!("{prefix}/{name}.bin"), data);
    let touched = json_of(
        common::python()
            .args(["-c", TOUCHED])
            .arg(files().join(name))
            .args([var, sel]),
    );
    let (chunks, chunk_bytes) = (
        touched["chunks"].as_u64().unwrap(),
        touched["bytes"].as_u64().unwrap(),
    );
    let cache = tempfile::tempdir().unwrap();
    // One proxy for all mounts: the disk cache is kept per endpoint.
    let proxy = Proxy::start(&server, &[]);
    let planned = read_subset(&proxy, &prefix, name, var, sel, cache.path());
    let generic = read_subset(
        &proxy,
        &prefix,
        &format!("{name}.bin"),
        var,
        sel,
        tempfile::tempdir().unwrap().path(),
    );
    let bound = (1.1 * chunk_bytes as f64) as u64 + METADATA_BYTES;
    println!(
        "{name}: {chunks} chunks touched ({chunk_bytes} bytes, bound {bound}); \
         planned {planned:?}, generic {generic:?}"
    );
    assert!(
        planned.bytes <= bound,
        "{} bytes for {chunk_bytes} bytes of chunks",
        planned.bytes
    );
    assert!(
        planned.gets <= chunks + METADATA_GETS,
        "{} GETs for {chunks} chunks",
        planned.gets
    );
    // The bounds are tight enough that the generic block path breaks one of them.
    assert!(
        generic.bytes > bound || generic.gets > chunks + METADATA_GETS,
        "the generic path is within the bounds too: {generic:?}"
    );
    // A remount with the same cache directory: plan and chunks come from the disk cache.
    let again = read_subset(&proxy, &prefix, name, var, sel, cache.path());
    assert_eq!(again.gets, 0, "{again:?}");
}

#[test]
fn hdf5_xarray_subset_of_a_btree_v1_netcdf4_fetches_whole_chunks() {
    check("btree1.nc", "t2", "[[3, 5], [0, 100], [100, 200]]");
}

#[test]
fn hdf5_subsets_of_libver_latest_indexes_fetch_whole_chunks() {
    check("latest.h5", "fa", "[[3, 5], [0, 100], [100, 200]]");
    check("latest.h5", "ea", "[[30, 33], [0, 100], [0, 100]]");
    check("latest.h5", "bt2", "[[4, 10], [0, 100]]");
}

/// A point's time series of a file with one chunk per time step (WRF-CMIP6): the HDF5 library
/// reads the chunks one after another, in file order; the reader sees the walk and fetches the
/// chunks ahead in merged GETs, so the series costs a few GETs, not one per chunk, and no
/// chunk is fetched twice.
#[test]
fn hdf5_a_point_series_read_chunk_after_chunk_is_read_ahead_in_few_gets() {
    let server = Server::garage();
    let prefix = unique_prefix("hdf5-walk");
    let name = "wrf.nc";
    let data = std::fs::read(files().join(name)).unwrap();
    server.put(&format!("{prefix}/{name}"), data.clone());
    let sel = "[[0, 146], [20, 21], [30, 31]]";
    let touched = json_of(
        common::python()
            .args(["-c", TOUCHED])
            .arg(files().join(name))
            .args(["t2", sel]),
    );
    let chunks = touched["chunks"].as_u64().unwrap();
    assert!(chunks >= 146, "{touched}");
    let proxy = Proxy::start(&server, &[]);
    let cache = tempfile::tempdir().unwrap();
    let cost = read_subset(&proxy, &prefix, name, "t2", sel, cache.path());
    assert!(
        cost.gets <= chunks / 4,
        "{} GETs for {chunks} chunks read in file order",
        cost.gets
    );
    // Each chunk once, beside the planning reads that overlap the first units.
    assert!(
        cost.bytes <= data.len() as u64 + METADATA_BYTES,
        "{} bytes fetched of a {}-byte file",
        cost.bytes,
        data.len()
    );
}

/// Opens every file given with `xr.open_mfdataset` (dask, h5netcdf), reading no data variable,
/// and prints the time axis' length.
const OPEN_ALL: &str = r#"
import sys, json, xarray as xr
ds = xr.open_mfdataset(sys.argv[1:], engine="h5netcdf", combine="nested", concat_dim="time")
print(json.dumps({"time": int(ds.sizes["time"]), "t2": list(ds.t2.dims)}))
"#;

/// Yearly files of the WRF-CMIP6 shape, uploaded under a new prefix, and their names.
fn yearly_files(server: &Server, test: &str, n: usize) -> (String, Vec<String>, Vec<u8>) {
    let prefix = unique_prefix(test);
    let data = std::fs::read(files().join("wrf.nc")).unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("t2_{i}.nc")).collect();
    for name in &names {
        server.put(&format!("{prefix}/{name}"), data.clone());
    }
    (prefix, names, data)
}

/// `open_mfdataset` reads each file's metadata and its coordinates (`time`, `y`, `x`, small
/// contiguous variables at the file's end). The coordinates are fetched with the planning
/// walk's rounds, so once the files are planned (opened with h5py, which reads no data),
/// `open_mfdataset` makes no request (3 GETs per file when each coordinate cost one).
#[test]
fn hdf5_opening_yearly_files_with_open_mfdataset_costs_only_the_walks_gets() {
    let server = Server::garage();
    let (prefix, names, _) = yearly_files(&server, "hdf5-mf-open", 3);
    let proxy = Proxy::start(&server, &[]);
    let cache = tempfile::tempdir().unwrap();
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    let paths: Vec<_> = names.iter().map(|n| m.join(n)).collect();
    let open_only = "import sys, h5py\nfor p in sys.argv[1:]:\n    h5py.File(p, 'r').close()";
    common::run_ok(common::python().args(["-c", open_only]).args(&paths));
    let walks = gets(&proxy);
    println!("planning: {walks} GETs, {}", proxy.stats());
    assert!(walks >= 3, "{walks} GETs: each file is planned");
    let got = json_of(common::python().args(["-c", OPEN_ALL]).args(&paths));
    assert_eq!(got["time"], 3 * 146, "{got}");
    assert_eq!(gets(&proxy), walks, "open_mfdataset: {}", proxy.stats());
}

/// Reads a point's series from every file given with `xr.open_mfdataset` (dask, h5netcdf) and
/// prints its sum and length.
const SERIES: &str = r#"
import sys, json, xarray as xr
ds = xr.open_mfdataset(sys.argv[1:], engine="h5netcdf", combine="nested", concat_dim="time")
v = ds.t2.isel(y=20, x=30).values
print(json.dumps({"sum": float(v.astype("float64").sum()), "len": len(v)}))
"#;

/// The WRF-CMIP6 workflow: a point's series over yearly files with `xr.open_mfdataset`. Its
/// chunk reads arrive back to front and interleaved through one handle; each file's walk is
/// still seen and read ahead, so the series costs far fewer GETs than chunks, each chunk once.
#[test]
fn hdf5_a_point_series_over_files_with_open_mfdataset_is_read_ahead_in_few_gets() {
    let server = Server::garage();
    let (prefix, names, data) = yearly_files(&server, "hdf5-mf", 3);
    let local: Vec<_> = names.iter().map(|_| files().join("wrf.nc")).collect();
    let want = json_of(common::python().args(["-c", SERIES]).args(&local));
    let proxy = Proxy::start(&server, &[]);
    let cache = tempfile::tempdir().unwrap();
    let m = mount(&proxy, &prefix, cache.path());
    proxy.reset();
    let paths: Vec<_> = names.iter().map(|n| m.join(n)).collect();
    let got = json_of(common::python().args(["-c", SERIES]).args(&paths));
    assert_eq!(got, want);
    let chunks = 3 * 146;
    let gets = gets(&proxy);
    println!("{gets} GETs, {}", proxy.stats());
    assert!(gets <= chunks / 4, "{gets} GETs for {chunks} chunks");
    assert!(
        proxy.count("bytes_out") <= 3 * (data.len() as u64 + METADATA_BYTES),
        "{} bytes fetched of 3 files of {} bytes",
        proxy.count("bytes_out"),
        data.len()
    );
}
