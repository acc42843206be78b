//! `geomount prefetch PATH`: warms a running mount's caches by reading files through it.
//!
//! Design: it talks to the mount only through the mounted path, so it needs no socket, no
//! credentials and no knowledge of the daemon's cache layout, and the daemon's own read plans
//! decide what is fetched (Zarr chunks whole, TIFF tiles, GRIB2 messages). What it reads lands
//! in the daemon's memory and disk caches; the disk cache makes it resumable: a second run
//! (after an interruption, or a remount with the same `--cache-dir`) finds what was already
//! fetched and makes no request for it. Files are read in parallel by `--jobs` threads.
//!
//! PATH may be a file, a folder (every file below it), or a Zarr store with consolidated
//! metadata, for which `--vars` picks arrays and `--time START..END` picks a range of indices
//! along the `time` dimension (chunks outside it are skipped; coordinates are always read).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// A file, folder or Zarr store inside a geomount mount.
    pub path: PathBuf,
    /// Zarr only: index range along the `time` dimension, START..END (END exclusive).
    #[arg(long)]
    pub time: Option<String>,
    /// Zarr only: the arrays to warm (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub vars: Vec<String>,
    /// Files read at once.
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
}

/// Parses `START..END` into an index range.
fn parse_time(s: &str) -> Result<std::ops::Range<u64>> {
    let parse = |(a, b): (&str, &str)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?));
    match s.split_once("..").and_then(parse) {
        Some((a, b)) if a < b => Ok(a..b),
        _ => bail!("--time '{s}' is not an index range: use START..END, e.g. 0..24 (END > START)"),
    }
}

/// Every file below `dir`, sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// All chunk keys of an array (C order), with only chunk indices `keep` along dimension `dim`.
fn chunk_keys(grid: &[u64], sep: &str, dim: Option<(usize, std::ops::Range<u64>)>) -> Vec<String> {
    let ranges: Vec<std::ops::Range<u64>> = grid
        .iter()
        .enumerate()
        .map(|(i, &n)| match &dim {
            Some((d, keep)) if *d == i => keep.start.min(n)..keep.end.min(n),
            _ => 0..n,
        })
        .collect();
    if ranges.is_empty() {
        return vec!["0".into()];
    }
    let mut keys = vec![String::new()];
    for (i, r) in ranges.iter().enumerate() {
        let mut next = Vec::with_capacity(keys.len() * (r.end - r.start) as usize);
        for k in &keys {
            for c in r.clone() {
                next.push(if i == 0 {
                    c.to_string()
                } else {
                    format!("{k}{sep}{c}")
                });
            }
        }
        keys = next;
    }
    keys
}

/// The files of a consolidated v2 Zarr store selected by `vars` and `time`.
fn zarr_files(
    store: &Path,
    zmeta: &Value,
    vars: &[String],
    time: Option<std::ops::Range<u64>>,
) -> Result<Vec<PathBuf>> {
    let meta = zmeta
        .get("metadata")
        .and_then(Value::as_object)
        .context("the .zmetadata has no 'metadata' object")?;
    let mut files: Vec<PathBuf> = meta.keys().map(|k| store.join(k)).collect();
    for (key, zarray) in meta {
        let Some(array) = key.strip_suffix("/.zarray") else {
            continue;
        };
        let zattrs = meta.get(&format!("{array}/.zattrs"));
        let a = crate::formats::zarr::ArrayMeta::from_v2(zarray, zattrs)
            .with_context(|| format!("{array}/.zarray"))?;
        let dims: Vec<&str> = a.dims.iter().map(String::as_str).collect();
        let is_coord = dims.len() == 1 && dims[0] == array;
        if !vars.is_empty() && !is_coord && !vars.iter().any(|v| v == array) {
            continue;
        }
        let (grid, chunks) = (a.grid(), &a.chunks);
        let sep = a.keys.sep.to_string();
        let dim = match (&time, dims.iter().position(|d| *d == "time")) {
            (Some(t), Some(d)) if !is_coord => {
                let c = chunks[d];
                Some((d, t.start / c..(t.end - 1) / c + 1))
            }
            _ => None,
        };
        files.extend(
            chunk_keys(&grid, &sep, dim)
                .into_iter()
                .map(|k| store.join(array).join(k)),
        );
    }
    if let Some(missing) = vars
        .iter()
        .find(|v| !meta.contains_key(&format!("{v}/.zarray")))
    {
        bail!(
            "no array '{missing}' in {}: pick from its .zmetadata",
            store.display()
        );
    }
    Ok(files)
}

/// The files PATH stands for.
fn select(args: &PrefetchArgs) -> Result<Vec<PathBuf>> {
    let p = &args.path;
    let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
    let zmeta_path = p.join(".zmetadata");
    let zarr = meta.is_dir() && zmeta_path.is_file();
    if !zarr && (args.time.is_some() || !args.vars.is_empty()) {
        bail!(
            "--time and --vars need a Zarr store with consolidated metadata (.zmetadata); {} is not one",
            p.display()
        );
    }
    if zarr {
        let text = std::fs::read(&zmeta_path)
            .with_context(|| format!("cannot read {}", zmeta_path.display()))?;
        let zmeta: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", zmeta_path.display()))?;
        let time = args.time.as_deref().map(parse_time).transpose()?;
        return zarr_files(p, &zmeta, &args.vars, time);
    }
    if meta.is_dir() {
        let mut out = Vec::new();
        walk(p, &mut out)?;
        return Ok(out);
    }
    Ok(vec![p.clone()])
}

pub fn run(args: PrefetchArgs) -> Result<()> {
    if args.jobs == 0 || args.jobs > 256 {
        bail!("--jobs must be between 1 and 256");
    }
    let files = select(&args)?;
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files, {msg} [{elapsed_precise}, eta {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let queue = Mutex::new(files.into_iter().rev().collect::<Vec<_>>());
    let (bytes, missing, failed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..args.jobs {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                // The guard is consumed by `map`: the queue is not locked while a file is read.
                while let Some(f) = queue.lock().map(|mut q| q.pop()).unwrap_or(None) {
                    match read_all(&f, &mut buf) {
                        Ok(n) => {
                            bytes.fetch_add(n, Relaxed);
                        }
                        // A chunk never written (fill value) is not an error.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            missing.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            failed.fetch_add(1, Relaxed);
                            bar.println(format!("geomount prefetch: {}: {e}", f.display()));
                        }
                    }
                    bar.set_message(format!("{} MiB", bytes.load(Relaxed) >> 20));
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let (n, b, m, f) = (
        bar.position(),
        bytes.load(Relaxed),
        missing.load(Relaxed),
        failed.load(Relaxed),
    );
    println!("prefetched {n} files, {b} bytes ({m} absent, {f} failed)");
    if f > 0 {
        bail!("{f} files could not be read (see above); run again to retry them");
    }
    Ok(())
}

fn read_all(path: &Path, buf: &mut [u8]) -> std::io::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    let mut total = 0;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zarr_subsets_select_coordinates_metadata_and_the_time_chunks() {
        let zmeta = json!({"metadata": {
            ".zgroup": {},
            "time/.zarray": {"shape": [8], "chunks": [8]},
            "time/.zattrs": {"_ARRAY_DIMENSIONS": ["time"]},
            "T2/.zarray": {"shape": [8, 120, 160], "chunks": [4, 60, 80]},
            "T2/.zattrs": {"_ARRAY_DIMENSIONS": ["time", "y", "x"]},
            "P/.zarray": {"shape": [8, 120, 160], "chunks": [4, 60, 80]},
            "P/.zattrs": {"_ARRAY_DIMENSIONS": ["time", "y", "x"]}
        }});
        let files = zarr_files(Path::new("/s"), &zmeta, &["T2".into()], Some(4..6)).unwrap();
        let mut chunks: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix("/s").unwrap().to_string_lossy().into_owned())
            .filter(|p| !p.contains("/.") && !p.starts_with('.'))
            .collect();
        chunks.sort();
        assert_eq!(
            chunks,
            ["T2/1.0.0", "T2/1.0.1", "T2/1.1.0", "T2/1.1.1", "time/0"]
        );
        assert!(zarr_files(Path::new("/s"), &zmeta, &["NOPE".into()], None).is_err());
        assert_eq!(parse_time("0..24").unwrap(), 0..24);
        assert!(parse_time("1979-10-01..1979-10-02").is_err());
        assert!(parse_time("5..5").is_err());
    }
}
