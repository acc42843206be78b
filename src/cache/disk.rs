//! The persistent disk tier of the block cache. One file per block, named by a hash of
//! (source, key, ETag, block index), so a changed object never matches its old blocks and two
//! sources never share one. Blocks are cached only for objects with an ETag.
//!
//! File layout: a 32-byte header (magic, payload length, xxh3-64 of the payload, xxh3-64 of the
//! identity) and the payload. A read checks all four plus the file length; any mismatch (a
//! flipped byte, a truncated file, a foreign file) drops the file and reports a miss, so a
//! corrupt block is refetched, never served. Files are written to a temporary name and renamed,
//! so a crash leaves whole entries or none. Files are mode 0600 in a 0700 directory.
//!
//! Eviction is least-recently-used to the byte budget: the index (name -> size, last use) is
//! rebuilt from the directory at start, using file modification times as last use, and a hit
//! touches the file so recency survives a remount. Several mounts may share one directory: an
//! entry another process evicted is a miss here, and each process keeps the budget with its own
//! view (the directory may briefly exceed it by what the others wrote meanwhile). When the file
//! system runs out of room (ENOSPC, EDQUOT) the budget drops below what the cache holds, so the
//! cache keeps working at the size the disk has room for; a read never fails for it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use std::time::SystemTime;

use anyhow::{Context, Result};
use bytes::Bytes;
use parking_lot::Mutex;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::error::{CacheError, CacheErrorKind};
use crate::metrics::Metrics;
use crate::rope::Rope;
use crate::store::ObjectInfo;

const MAGIC: &[u8; 8] = b"GMBLOCK1";
const HEADER: usize = 32;
/// Suffix of finished entries; anything else in the directory is ignored (or cleared).
const EXT: &str = "blk";
/// After an eviction the cache is at most this fraction of the budget, so evictions batch.
const LOW_WATER: f64 = 0.9;

/// Identifies one block: the same values always give the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockId<'a> {
    pub key: &'a str,
    pub etag: &'a str,
    /// Block index, or the start offset of a planned unit.
    pub index: u64,
    /// 0 for a fixed-size block; the end offset of a planned unit (a GRIB2 message, ...).
    pub end: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    last_use: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    bytes: u64,
    clock: u64,
}

/// What `stats` reports about a cache directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirStats {
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    /// Bytes the entries may take: `--cache-disk`, lowered when the file system is full.
    budget: AtomicU64,
    /// A full file system was reported (once per mount).
    full_reported: AtomicBool,
    /// Hash of the source (endpoint, bucket, prefix) mixed into every name.
    scope: String,
    index: Mutex<Index>,
    tmp_seq: AtomicU64,
    metrics: Arc<Metrics>,
}

impl DiskCache {
    /// Opens (creating, mode 0700) the cache directory with a budget in bytes, for blocks of the
    /// source named `scope`.
    pub fn open(dir: &Path, budget: u64, scope: &str, metrics: Arc<Metrics>) -> Result<Arc<Self>> {
        create_private_dir(dir)?;
        let mut index = Index::default();
        let mut dated = Vec::new();
        for (name, size, mtime) in scan(dir)? {
            dated.push((mtime, name, size));
        }
        // Oldest first, so clock order matches the files' recency.
        dated.sort();
        for (_, name, size) in dated {
            index.clock += 1;
            index.bytes += size;
            index.entries.insert(
                name,
                Entry {
                    size,
                    last_use: index.clock,
                },
            );
        }
        let cache = Arc::new(Self {
            dir: dir.to_path_buf(),
            budget: AtomicU64::new(budget),
            full_reported: AtomicBool::new(false),
            scope: format!("{:032x}", xxh3_128(scope.as_bytes())),
            index: Mutex::new(index),
            tmp_seq: AtomicU64::new(0),
            metrics,
        });
        cache.evict();
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn identity(&self, id: &BlockId) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}",
            self.scope, id.key, id.etag, id.index, id.end
        )
    }

    fn name(identity: &str) -> String {
        format!("{:032x}.{EXT}", xxh3_128(identity.as_bytes()))
    }

    /// Whether the block is in the index (a cheap check, no I/O; the file may still be bad).
    pub fn contains(&self, id: &BlockId) -> bool {
        let name = Self::name(&self.identity(id));
        self.index.lock().entries.contains_key(&name)
    }

    /// The block's bytes if a valid entry of exactly `len` bytes exists. Blocking I/O.
    pub fn get(&self, id: &BlockId, len: usize) -> Option<Bytes> {
        self.lookup(id, Some(len))
    }

    /// Records an object's attributes (for lookups that would otherwise need a request).
    pub fn put_attr(&self, key: &str, info: &ObjectInfo) {
        let Some(etag) = &info.etag else { return };
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let doc = serde_json::json!({
            "size": info.size,
            "etag": etag,
            "mtime": secs(info.mtime),
            "saved": secs(SystemTime::now()),
        });
        let id = attr_id(key);
        // An older record is replaced: remove it from the index so `put` writes anew.
        self.forget(&Self::name(&self.identity(&id)));
        self.put(&id, &Rope::from(doc.to_string().into_bytes()));
    }

    /// The attributes recorded for `key` less than `max_age` ago.
    pub fn get_attr(&self, key: &str, max_age: std::time::Duration) -> Option<ObjectInfo> {
        let bytes = self.lookup(&attr_id(key), None)?;
        attr_record(key, &bytes, max_age)
    }

    fn lookup(&self, id: &BlockId, len: Option<usize>) -> Option<Bytes> {
        let identity = self.identity(id);
        let name = Self::name(&identity);
        if !self.index.lock().entries.contains_key(&name) {
            Metrics::inc(&self.metrics.disk_misses);
            return None;
        }
        let path = self.dir.join(&name);
        match read_entry(&path, xxh3_64(identity.as_bytes()), len) {
            Ok(Some(b)) => {
                Metrics::inc(&self.metrics.disk_hits);
                let _ = File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
                let mut idx = self.index.lock();
                idx.clock += 1;
                let clock = idx.clock;
                if let Some(e) = idx.entries.get_mut(&name) {
                    e.last_use = clock;
                }
                Some(b)
            }
            Ok(None) => {
                // Gone (another mount evicted it, or `cache clear`): a plain miss.
                Metrics::inc(&self.metrics.disk_misses);
                self.forget(&name);
                None
            }
            Err(e) => {
                tracing::warn!(key = id.key, "{e}: dropped, the block is fetched again");
                Metrics::inc(&self.metrics.disk_corrupt);
                Metrics::inc(&self.metrics.disk_misses);
                let _ = std::fs::remove_file(&path);
                self.forget(&name);
                None
            }
        }
    }

    /// Stores a block (atomically: temporary file, then rename). Blocking I/O; a failure is
    /// logged and ignored, the block then simply is not on disk.
    pub fn put(&self, id: &BlockId, data: &Rope) {
        let budget = self.budget.load(Relaxed);
        if budget == 0 || data.len() as u64 + HEADER as u64 > budget {
            return;
        }
        let identity = self.identity(id);
        let name = Self::name(&identity);
        if self.index.lock().entries.contains_key(&name) {
            return;
        }
        if let Err(e) = self.write(&name, &identity, data) {
            self.write_failed(&e);
            return;
        }
        Metrics::inc(&self.metrics.disk_writes);
        {
            let mut idx = self.index.lock();
            idx.clock += 1;
            let entry = Entry {
                size: (HEADER + data.len()) as u64,
                last_use: idx.clock,
            };
            if let Some(old) = idx.entries.insert(name, entry) {
                idx.bytes -= old.size;
            }
            idx.bytes += entry.size;
        }
        self.evict();
    }

    /// A failed write: on a full file system the budget drops to a little below what the cache
    /// holds now (so eviction makes room), reported once; any other failure is logged.
    fn write_failed(&self, e: &CacheError) {
        if e.kind() != CacheErrorKind::Full {
            tracing::warn!("cannot write to the disk cache: {e}");
            return;
        }
        let held = self.index.lock().bytes;
        let cut = (held as f64 * LOW_WATER) as u64;
        let was = self.budget.fetch_min(cut, Relaxed);
        if !self.full_reported.swap(true, Relaxed) {
            tracing::warn!(
                dir = %self.dir.display(),
                "{e}: the disk cache now keeps at most {cut} bytes (of {was}) for this mount"
            );
        } else {
            tracing::debug!(dir = %self.dir.display(), cut, "{e}");
        }
        self.evict();
    }

    fn write(&self, name: &str, identity: &str, data: &Rope) -> Result<(), CacheError> {
        let mut sum = xxhash_rust::xxh3::Xxh3::new();
        for p in data.parts() {
            sum.update(p);
        }
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(data.len() as u64).to_le_bytes());
        header.extend_from_slice(&sum.digest().to_le_bytes());
        header.extend_from_slice(&xxh3_64(identity.as_bytes()).to_le_bytes());
        let tmp = self.dir.join(format!(
            "{name}.tmp.{}.{}",
            std::process::id(),
            self.tmp_seq.fetch_add(1, Relaxed)
        ));
        let res = (|| -> Result<(), CacheError> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| CacheError::io("create", &tmp, e))?;
            let write = |e| CacheError::io("write", &tmp, e);
            f.write_all(&header).map_err(write)?;
            for p in data.parts() {
                f.write_all(p).map_err(write)?;
            }
            let path = self.dir.join(name);
            std::fs::rename(&tmp, &path).map_err(|e| CacheError::io("rename", &path, e))?;
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn forget(&self, name: &str) {
        let mut idx = self.index.lock();
        if let Some(e) = idx.entries.remove(name) {
            idx.bytes -= e.size;
        }
    }

    /// Removes least-recently-used entries until the cache fits the budget (down to the low
    /// water mark, so the next writes do not each evict).
    fn evict(&self) {
        let victims: Vec<String> = {
            let mut idx = self.index.lock();
            let budget = self.budget.load(Relaxed);
            if idx.bytes <= budget {
                return;
            }
            let target = (budget as f64 * LOW_WATER) as u64;
            let mut order: Vec<(u64, String, u64)> = idx
                .entries
                .iter()
                .map(|(n, e)| (e.last_use, n.clone(), e.size))
                .collect();
            order.sort_unstable();
            let mut out = Vec::new();
            for (_, name, size) in order {
                if idx.bytes <= target {
                    break;
                }
                idx.entries.remove(&name);
                idx.bytes -= size;
                out.push(name);
            }
            out
        };
        for name in victims {
            Metrics::inc(&self.metrics.disk_evictions);
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    /// Entries and bytes this process believes are on disk.
    pub fn stats(&self) -> DirStats {
        let idx = self.index.lock();
        DirStats {
            entries: idx.entries.len() as u64,
            bytes: idx.bytes,
        }
    }
}

/// The entry holding an object's attributes: no ETag is known before reading it.
/// The attributes an attribute record (`bytes`, the payload of `key`'s entry) holds, if it was
/// saved less than `max_age` ago.
pub(crate) fn attr_record(
    key: &str,
    bytes: &[u8],
    max_age: std::time::Duration,
) -> Option<ObjectInfo> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let at = |f: &str| -> Option<SystemTime> {
        let secs = doc[f].as_f64()?.max(0.0);
        let since = std::time::Duration::try_from_secs_f64(secs).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(since)
    };
    let saved = at("saved")?;
    if saved.elapsed().map_or(true, |age| age >= max_age) {
        return None;
    }
    Some(ObjectInfo {
        name: key.rsplit('/').next().unwrap_or(key).to_string(),
        size: doc["size"].as_u64()?,
        mtime: at("mtime")?,
        etag: Some(doc["etag"].as_str()?.to_string()),
    })
}

fn attr_id(key: &str) -> BlockId<'_> {
    BlockId {
        key,
        etag: "\0attributes",
        index: 0,
        end: 0,
    }
}

/// Creates `dir` (and parents) and makes it mode 0700.
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make cache directory {} private", dir.display()))
}

/// Finished entries in `dir`: (name, size, modification time).
fn scan(dir: &Path) -> Result<Vec<(String, u64, SystemTime)>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read cache directory {}", dir.display()))?;
    for ent in rd.flatten() {
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if !name.ends_with(&format!(".{EXT}")) {
            continue;
        }
        if let Ok(meta) = ent.metadata()
            && meta.is_file()
        {
            out.push((
                name,
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    Ok(out)
}

/// Reads and checks one entry. `Ok(None)`: no such file; `Err`: the file cannot be read, or is
/// not a valid entry for this identity and length.
fn read_entry(path: &Path, ident: u64, len: Option<usize>) -> Result<Option<Bytes>, CacheError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io("open", path, e)),
    };
    let mut buf = Vec::with_capacity(HEADER + len.unwrap_or(0));
    f.read_to_end(&mut buf)
        .map_err(|e| CacheError::io("read", path, e))?;
    check_entry(path, buf, ident, len).map(Some)
}

/// The payload of entry file `path` whose bytes are `buf`, or why it is not a valid entry for
/// this identity and length (`None`: the length its header gives). The payload is a slice of
/// `buf`: a hostile header allocates nothing.
pub(crate) fn check_entry(
    path: &Path,
    buf: Vec<u8>,
    ident: u64,
    len: Option<usize>,
) -> Result<Bytes, CacheError> {
    let bad = |why: String| CacheError::corrupt(path, why);
    if buf.len() < HEADER {
        return Err(bad(format!("{} bytes, shorter than its header", buf.len())));
    }
    let word = |i: usize| u64::from_le_bytes(buf[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
    if &buf[..8] != MAGIC {
        return Err(bad("bad magic".into()));
    }
    if word(3) != ident {
        return Err(bad("written for another block".into()));
    }
    let stored = word(1);
    let len = len.unwrap_or(stored as usize);
    if stored != len as u64 || buf.len() != HEADER + len {
        return Err(bad(format!(
            "length {} (header says {stored}), block is {len} bytes",
            buf.len() - HEADER
        )));
    }
    let sum = word(2);
    let payload = Bytes::from(buf).slice(HEADER..);
    if xxh3_64(&payload) != sum {
        return Err(bad("checksum mismatch".into()));
    }
    Ok(payload)
}

/// The default cache directory: `/var/cache/geomount/blocks` for root, otherwise
/// `$XDG_CACHE_HOME/geomount/blocks` or `~/.cache/geomount/blocks`.
pub fn default_dir() -> Result<PathBuf> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/cache/geomount/blocks"));
    }
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let base = match env("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env("HOME").context(
            "HOME is not set: pass --cache-dir DIR (or --cache-disk 0 to disable the disk cache)",
        )?)
        .join(".cache"),
    };
    Ok(base.join("geomount").join("blocks"))
}

/// Counts entries and bytes in a cache directory without opening it for use.
pub fn dir_stats(dir: &Path) -> Result<DirStats> {
    if !dir.exists() {
        return Ok(DirStats::default());
    }
    let mut s = DirStats::default();
    for (_, size, _) in scan(dir)? {
        s.entries += 1;
        s.bytes += size;
    }
    Ok(s)
}

/// Removes every entry (and leftover temporary file) from a cache directory; returns what was
/// removed. Other files are left alone.
pub fn clear_dir(dir: &Path) -> Result<DirStats> {
    if !dir.exists() {
        return Ok(DirStats::default());
    }
    let mut s = DirStats::default();
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read cache directory {}", dir.display()))?;
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let ours = name.ends_with(&format!(".{EXT}")) || name.contains(&format!(".{EXT}.tmp."));
        if !ours {
            continue;
        }
        let size = ent.metadata().map(|m| m.len()).unwrap_or(0);
        std::fs::remove_file(ent.path())
            .with_context(|| format!("cannot remove {}", ent.path().display()))?;
        s.entries += 1;
        s.bytes += size;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u64) -> BlockId<'static> {
        BlockId {
            key: "a/b.nc",
            etag: "\"e1\"",
            index,
            end: 0,
        }
    }

    fn data(n: usize, seed: u8) -> Rope {
        Rope::from(
            (0..n)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect::<Vec<u8>>(),
        )
    }

    fn only_file(dir: &Path) -> PathBuf {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files.pop().unwrap()
    }

    #[test]
    fn a_block_survives_reopening_and_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("blocks");
        let d = data(5000, 1);
        DiskCache::open(&dir, 1 << 20, "s3://b/", Arc::default())
            .unwrap()
            .put(&id(0), &d);
        let again = DiskCache::open(&dir, 1 << 20, "s3://b/", Arc::default()).unwrap();
        assert!(again.contains(&id(0)));
        assert_eq!(again.get(&id(0), 5000).unwrap(), d.to_bytes());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&only_file(&dir)), 0o600);
    }

    #[test]
    fn another_etag_source_or_index_does_not_match() {
        let tmp = tempfile::tempdir().unwrap();
        let c = DiskCache::open(tmp.path(), 1 << 20, "s3://b/", Arc::default()).unwrap();
        c.put(&id(0), &data(100, 1));
        let other_etag = BlockId {
            etag: "\"e2\"",
            ..id(0)
        };
        assert!(c.get(&other_etag, 100).is_none());
        assert!(c.get(&id(1), 100).is_none());
        let other_source =
            DiskCache::open(tmp.path(), 1 << 20, "s3://other/", Arc::default()).unwrap();
        assert!(other_source.get(&id(0), 100).is_none());
        // A length other than the block's is never served.
        assert!(c.get(&id(0), 99).is_none());
        assert_eq!(c.metrics.disk_corrupt.load(Relaxed), 1);
    }

    #[test]
    fn a_flipped_byte_or_truncation_is_dropped_not_served() {
        for damage in ["flip", "truncate", "flip-header"] {
            let tmp = tempfile::tempdir().unwrap();
            let c = DiskCache::open(tmp.path(), 1 << 20, "s3://b/", Arc::default()).unwrap();
            c.put(&id(0), &data(4096, 7));
            let f = only_file(tmp.path());
            let mut bytes = std::fs::read(&f).unwrap();
            match damage {
                "flip" => bytes[HEADER + 1000] ^= 0x01,
                "flip-header" => bytes[9] ^= 0x80,
                _ => bytes.truncate(HEADER + 4000),
            }
            std::fs::write(&f, &bytes).unwrap();
            assert!(c.get(&id(0), 4096).is_none(), "{damage}");
            assert!(!f.exists(), "{damage}: the corrupt file is removed");
            assert!(!c.contains(&id(0)));
            assert_eq!(c.metrics.disk_corrupt.load(Relaxed), 1);
            // Written again, it is served again.
            c.put(&id(0), &data(4096, 7));
            assert_eq!(c.get(&id(0), 4096).unwrap(), data(4096, 7).to_bytes());
        }
    }

    #[test]
    fn eviction_keeps_the_budget_and_drops_the_least_recently_used() {
        let tmp = tempfile::tempdir().unwrap();
        let block = 1000;
        let budget = 5 * (block + HEADER) as u64;
        let c = DiskCache::open(tmp.path(), budget, "s", Arc::default()).unwrap();
        for i in 0..5 {
            c.put(&id(i), &data(block, i as u8));
        }
        // Block 0 is used again, so block 1 is now the oldest.
        assert!(c.get(&id(0), block).is_some());
        c.put(&id(5), &data(block, 5));
        assert!(c.stats().bytes <= budget);
        assert!(c.contains(&id(0)) && c.contains(&id(5)));
        assert!(!c.contains(&id(1)));
        assert_eq!(dir_stats(tmp.path()).unwrap(), c.stats());
        // Reopened with a smaller budget, it shrinks at once.
        let small =
            DiskCache::open(tmp.path(), 2 * (block + HEADER) as u64, "s", Arc::default()).unwrap();
        assert!(dir_stats(tmp.path()).unwrap().bytes <= 2 * (block + HEADER) as u64);
        assert!(small.contains(&id(5)), "the most recent entry stays");
    }

    #[test]
    fn a_full_file_system_lowers_the_budget_below_what_is_held() {
        let tmp = tempfile::tempdir().unwrap();
        let block = 1000;
        let c = DiskCache::open(tmp.path(), 1 << 20, "s", Arc::default()).unwrap();
        for i in 0..10 {
            c.put(&id(i), &data(block, i as u8));
        }
        let held = c.stats().bytes;
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        c.write_failed(&CacheError::io("write", tmp.path(), full));
        let budget = c.budget.load(Relaxed);
        assert!(budget < held, "{budget} < {held}");
        assert!(c.stats().bytes <= budget);
        assert_eq!(dir_stats(tmp.path()).unwrap(), c.stats());
        // The most recent entries stay, and new ones still go in (evicting old ones).
        assert!(c.contains(&id(9)) && !c.contains(&id(0)));
        c.put(&id(10), &data(block, 10));
        assert!(c.contains(&id(10)) && c.stats().bytes <= budget);
        // Another I/O failure leaves the budget alone.
        let other = std::io::Error::from_raw_os_error(libc::EIO);
        c.write_failed(&CacheError::io("write", tmp.path(), other));
        assert_eq!(c.budget.load(Relaxed), budget);
    }

    #[test]
    fn an_entry_removed_behind_our_back_is_a_miss_and_clear_empties() {
        let tmp = tempfile::tempdir().unwrap();
        let c = DiskCache::open(tmp.path(), 1 << 20, "s", Arc::default()).unwrap();
        c.put(&id(0), &data(10, 0));
        c.put(&id(1), &data(10, 1));
        std::fs::write(tmp.path().join("unrelated.txt"), b"keep").unwrap();
        let removed = clear_dir(tmp.path()).unwrap();
        assert_eq!(removed.entries, 2);
        assert!(c.get(&id(0), 10).is_none());
        assert_eq!(c.metrics.disk_corrupt.load(Relaxed), 0);
        assert!(tmp.path().join("unrelated.txt").exists());
        assert_eq!(dir_stats(tmp.path()).unwrap(), DirStats::default());
    }

    #[test]
    fn attributes_are_kept_for_their_age_limit_only() {
        let tmp = tempfile::tempdir().unwrap();
        let c = DiskCache::open(tmp.path(), 1 << 20, "s", Arc::default()).unwrap();
        let info = ObjectInfo {
            name: "0.0".into(),
            size: 1234,
            mtime: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000),
            etag: Some("\"abc\"".into()),
        };
        c.put_attr("s.zarr/T2/0.0", &info);
        let hour = std::time::Duration::from_secs(3600);
        let again = DiskCache::open(tmp.path(), 1 << 20, "s", Arc::default()).unwrap();
        assert_eq!(again.get_attr("s.zarr/T2/0.0", hour), Some(info.clone()));
        assert_eq!(
            again.get_attr("s.zarr/T2/0.0", std::time::Duration::ZERO),
            None
        );
        assert_eq!(again.get_attr("s.zarr/T2/0.1", hour), None);
        // A newer record replaces the old one.
        let newer = ObjectInfo { size: 99, ..info };
        again.put_attr("s.zarr/T2/0.0", &newer);
        assert_eq!(again.get_attr("s.zarr/T2/0.0", hour), Some(newer));
    }

    /// Found by fuzzing (fuzz target `disk_block`): times in a record that no `SystemTime`
    /// holds are no record, never a panic.
    #[test]
    fn attribute_records_with_times_out_of_range_are_no_records() {
        let day = std::time::Duration::from_secs(86400);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let cases = [
            ("1", "1e300"),
            ("1", "1.8e19"),
            ("1.8e19", &now),
            ("1e300", &now),
        ];
        for (mtime, saved) in cases {
            let doc = format!(r#"{{"size":1,"etag":"e","mtime":{mtime},"saved":{saved}}}"#);
            assert_eq!(attr_record("a/b", doc.as_bytes(), day), None, "{doc}");
        }
    }
}
