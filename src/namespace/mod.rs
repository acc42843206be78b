//! Inodes and metadata. Paths map to inode numbers that never change for the life of the mount.
//! Listings, attributes and missing names are cached for the metadata TTL.
//!
//! The namespace holds metadata only. An object a lookup fetches whole (a Zarr chunk, a Zarr
//! metadata document) is fetched through the block cache, which keeps its bytes keyed by (key,
//! ETag) for the read that follows; the namespace keeps its attributes.
//!
//! Invariants:
//! - one inode per path; a path that is a directory (it has keys below `path/`, or a `path/`
//!   marker) is a directory even if an object `path` also exists: **the directory wins** and that
//!   object is hidden (as in mountpoint-s3);
//! - the table lock is never held across an `.await`.
//!
//! Memory: what the namespace keeps is metadata, outside `--cache-memory`. Missing names are
//! bounded by bytes ([`MAX_NEGATIVE_BYTES`]). Inodes (and each directory's latest listing) grow
//! with the paths the mount has seen, as the kernel's own inode cache does: an inode number never
//! changes for the life of the mount, so they are not evicted. Zarr layouts are kept per store
//! with consolidated metadata, for the life of the mount.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::RwLock;

use crate::cache::block::BlockCache;
use crate::cache::disk::DiskCache;
use crate::error::FsError;
use crate::formats::zarr::ZarrLayout;
use crate::metrics::Metrics;
use crate::store::{Backend, Listing, ObjectInfo, valid_name};

mod local;
mod zarr;

pub const ROOT_INO: u64 = 1;
/// Bound on the bytes of remembered missing names (paths plus [`NEGATIVE_OVERHEAD`] each); past
/// it expired ones are dropped (all, if that is not enough). Outside `--cache-memory`: it is
/// metadata, bounded here, and at most this much whatever the workload.
const MAX_NEGATIVE_BYTES: usize = 8 << 20;
/// What a remembered missing name costs beyond its path: the map's slot, the string's header
/// and the instant.
const NEGATIVE_OVERHEAD: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File {
        size: u64,
        mtime: SystemTime,
        etag: Option<String>,
    },
}

/// What the filesystem layer needs to know of one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub ino: u64,
    /// Path relative to the mount root, no leading or trailing `/` (empty for the root).
    pub path: String,
    pub kind: NodeKind,
}

/// One entry of a directory listing, with its inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub name: String,
    pub is_dir: bool,
}

#[derive(Debug)]
struct Node {
    info: NodeInfo,
    parent: u64,
    /// When `info.kind` was last confirmed by the server.
    validated: Instant,
    listing: Option<(Arc<Vec<DirEntry>>, Instant)>,
    /// ETag of the last open, to keep the kernel page cache while it is unchanged.
    opened_etag: Option<String>,
}

#[derive(Debug, Default)]
struct Tables {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    /// Paths known missing, and when that was learned.
    negative: HashMap<String, Instant>,
    /// Bytes of `negative`, as weighed by [`Tables::negative_weight`].
    negative_bytes: usize,
    next_ino: u64,
    /// Entries a writable mount made, by parent inode and name ([`local`]).
    pinned: HashMap<u64, BTreeMap<String, u64>>,
}

impl Tables {
    fn negative_weight(path: &str) -> usize {
        path.len() + NEGATIVE_OVERHEAD
    }

    /// Remembers `path` as missing now, within [`MAX_NEGATIVE_BYTES`].
    fn remember_missing(&mut self, path: String, ttl: Duration) {
        let weight = Self::negative_weight(&path);
        if self.negative_bytes + weight > MAX_NEGATIVE_BYTES {
            self.negative.retain(|_, at| at.elapsed() < ttl);
            self.negative_bytes = self.negative.keys().map(|p| Self::negative_weight(p)).sum();
            if self.negative_bytes + weight > MAX_NEGATIVE_BYTES {
                self.negative.clear();
                self.negative_bytes = 0;
            }
        }
        if self.negative.insert(path, Instant::now()).is_none() {
            self.negative_bytes += weight;
        }
    }

    fn forget_missing(&mut self, path: &str) {
        if self.negative.remove(path).is_some() {
            self.negative_bytes -= Self::negative_weight(path);
        }
    }
}

#[derive(Debug)]
pub struct Namespace {
    backend: Arc<dyn Backend>,
    /// Where the bytes of objects fetched whole at lookup go.
    cache: BlockCache,
    ttl: Duration,
    metrics: Arc<Metrics>,
    tables: RwLock<Tables>,
    /// Zarr stores with consolidated metadata, by store path: lookups inside need no LIST.
    zarr_stores: RwLock<HashMap<String, Arc<ZarrLayout>>>,
    /// Attributes of whole-fetched objects kept on disk, trusted for the TTL (even across mounts).
    attr_cache: Option<Arc<DiskCache>>,
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn dir_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

fn file_kind(o: &ObjectInfo) -> NodeKind {
    NodeKind::File {
        size: o.size,
        mtime: o.mtime,
        etag: o.etag.clone(),
    }
}

impl Namespace {
    /// A namespace over `backend`; objects fetched whole at lookup are kept in `cache`.
    pub fn new(
        backend: Arc<dyn Backend>,
        cache: BlockCache,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut t = Tables {
            next_ino: ROOT_INO + 1,
            ..Default::default()
        };
        t.nodes.insert(
            ROOT_INO,
            Node {
                info: NodeInfo {
                    ino: ROOT_INO,
                    path: String::new(),
                    kind: NodeKind::Dir,
                },
                parent: ROOT_INO,
                validated: Instant::now(),
                listing: None,
                opened_etag: None,
            },
        );
        t.by_path.insert(String::new(), ROOT_INO);
        Self {
            backend,
            cache,
            ttl,
            metrics,
            tables: RwLock::new(t),
            zarr_stores: RwLock::default(),
            attr_cache: None,
        }
    }

    /// Fetches whole objects through `cache` from now on, and keeps their attributes in the disk
    /// cache `disk` too.
    pub fn set_caches(&mut self, cache: BlockCache, disk: Option<Arc<DiskCache>>) {
        self.cache = cache;
        self.attr_cache = disk;
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether `path` is made by a converted view (read-only whatever the mount).
    pub fn is_derived(&self, path: &str) -> bool {
        self.backend.is_derived(path)
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    pub fn get(&self, ino: u64) -> Result<NodeInfo, FsError> {
        self.tables
            .read()
            .nodes
            .get(&ino)
            .map(|n| n.info.clone())
            .ok_or(FsError::NotFound)
    }

    pub fn parent_of(&self, ino: u64) -> u64 {
        self.tables
            .read()
            .nodes
            .get(&ino)
            .map_or(ROOT_INO, |n| n.parent)
    }

    /// Records `kind` for `parent/name` and returns its inode (allocated on first sight).
    fn upsert(t: &mut Tables, parent: u64, path: String, kind: NodeKind) -> u64 {
        t.forget_missing(&path);
        if let Some(&ino) = t.by_path.get(&path) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                if n.info.kind != kind {
                    // A file that became a directory (or back) loses its cached listing.
                    if matches!(kind, NodeKind::File { .. }) {
                        n.listing = None;
                    }
                    n.info.kind = kind;
                }
                n.validated = Instant::now();
            }
            return ino;
        }
        let ino = t.next_ino;
        t.next_ino += 1;
        t.by_path.insert(path.clone(), ino);
        t.nodes.insert(
            ino,
            Node {
                info: NodeInfo { ino, path, kind },
                parent,
                validated: Instant::now(),
                listing: None,
                opened_etag: None,
            },
        );
        ino
    }

    /// Stores a fresh listing of directory `dir` and returns its entries.
    fn store_listing(&self, dir: u64, dir_path: &str, listing: Listing) -> Arc<Vec<DirEntry>> {
        let mut t = self.tables.write();
        let mut entries = Vec::with_capacity(listing.dirs.len() + listing.files.len());
        for d in &listing.dirs {
            let ino = Self::upsert(&mut t, dir, join(dir_path, d), NodeKind::Dir);
            entries.push(DirEntry {
                ino,
                name: d.clone(),
                is_dir: true,
            });
        }
        for f in &listing.files {
            // The directory wins over an object of the same name.
            if listing.dirs.binary_search(&f.name).is_ok() {
                tracing::debug!(
                    dir = dir_path,
                    name = f.name.as_str(),
                    "object hidden by a directory of the same name"
                );
                continue;
            }
            let ino = Self::upsert(&mut t, dir, join(dir_path, &f.name), file_kind(f));
            entries.push(DirEntry {
                ino,
                name: f.name.clone(),
                is_dir: false,
            });
        }
        // What this mount made wins over what the server listed.
        let pinned = t.pinned_in(dir);
        if !pinned.is_empty() {
            entries.retain(|e| !pinned.iter().any(|p| p.name == e.name));
            entries.extend(pinned);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let entries = Arc::new(entries);
        if let Some(n) = t.nodes.get_mut(&dir) {
            n.listing = Some((entries.clone(), Instant::now()));
        }
        entries
    }

    /// The entries of directory `ino`, from the cache while fresh, otherwise listed anew.
    pub async fn list(&self, ino: u64) -> Result<Arc<Vec<DirEntry>>, FsError> {
        let info = {
            let t = self.tables.read();
            let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
            if let Some((entries, at)) = &n.listing
                && self.fresh(*at)
            {
                Metrics::inc(&self.metrics.listing_hits);
                return Ok(entries.clone());
            }
            n.info.clone()
        };
        if !matches!(info.kind, NodeKind::Dir) {
            return Err(FsError::NotADirectory);
        }
        let listing = self.backend.list(&dir_prefix(&info.path)).await?;
        Ok(self.store_listing(ino, &info.path, listing))
    }

    /// Finds `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<NodeInfo, FsError> {
        Metrics::inc(&self.metrics.lookups);
        if !valid_name(name) {
            return Err(FsError::NotFound);
        }
        let parent_info = self.get(parent)?;
        if !matches!(parent_info.kind, NodeKind::Dir) {
            return Err(FsError::NotADirectory);
        }
        let path = join(&parent_info.path, name);
        {
            let t = self.tables.read();
            if let Some(ino) = t.pinned.get(&parent).and_then(|m| m.get(name))
                && let Some(n) = t.nodes.get(ino)
            {
                return Ok(n.info.clone());
            }
            if let Some(at) = t.negative.get(&path)
                && self.fresh(*at)
            {
                Metrics::inc(&self.metrics.negative_hits);
                return Err(FsError::NotFound);
            }
            let parent_node = t.nodes.get(&parent).ok_or(FsError::NotFound)?;
            if let Some((entries, at)) = &parent_node.listing
                && self.fresh(*at)
            {
                Metrics::inc(&self.metrics.listing_hits);
                return match entries.binary_search_by(|e| e.name.as_str().cmp(name)) {
                    Ok(i) => t
                        .nodes
                        .get(&entries[i].ino)
                        .map(|n| n.info.clone())
                        .ok_or(FsError::NotFound),
                    Err(_) => Err(FsError::NotFound),
                };
            }
            // A node confirmed recently (e.g. by a listing of its parent) needs no request.
            if let Some(n) = t.by_path.get(&path).and_then(|i| t.nodes.get(i))
                && self.fresh(n.validated)
            {
                return Ok(n.info.clone());
            }
        }
        if let Some(found) = self.lookup_zarr(parent, &path).await {
            return found;
        }
        self.lookup_remote(parent, path).await
    }

    /// Asks the server whether `path` is a directory (keys below it) or an object, concurrently.
    async fn lookup_remote(&self, parent: u64, path: String) -> Result<NodeInfo, FsError> {
        let prefix = dir_prefix(&path);
        let (as_dir, as_file) = tokio::join!(self.backend.list(&prefix), self.backend.head(&path));
        let as_dir = match as_dir {
            Ok(l) if !l.dirs.is_empty() || !l.files.is_empty() || l.marker => Some(l),
            Ok(_) | Err(FsError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if let Some(listing) = as_dir {
            let ino = {
                let mut t = self.tables.write();
                Self::upsert(&mut t, parent, path.clone(), NodeKind::Dir)
            };
            self.store_listing(ino, &path, listing);
            return self.get(ino);
        }
        match as_file {
            Ok(o) => {
                let mut t = self.tables.write();
                let ino = Self::upsert(&mut t, parent, path, file_kind(&o));
                Ok(t.nodes[&ino].info.clone())
            }
            Err(FsError::NotFound) => Err(self.remember_missing(path)),
            Err(e) => Err(e),
        }
    }

    /// Records `path` as missing for the TTL; returns the error to give.
    fn remember_missing(&self, path: String) -> FsError {
        self.tables.write().remember_missing(path, self.ttl);
        FsError::NotFound
    }

    /// Records a file seen by a request; returns its info.
    fn record_file(&self, parent: u64, path: String, info: &ObjectInfo) -> NodeInfo {
        let mut t = self.tables.write();
        let ino = Self::upsert(&mut t, parent, path, file_kind(info));
        t.nodes[&ino].info.clone()
    }

    /// Records a directory and returns its info.
    fn record_dir(&self, parent: u64, path: String) -> NodeInfo {
        let mut t = self.tables.write();
        let ino = Self::upsert(&mut t, parent, path, NodeKind::Dir);
        t.nodes[&ino].info.clone()
    }

    /// Confirms a file's size and ETag for `open`, with a HEAD when the cached facts are older
    /// than the TTL. Returns the file info and whether the kernel may keep its page cache (the
    /// ETag equals the one of the previous open).
    pub async fn open_file(&self, ino: u64) -> Result<(NodeInfo, bool), FsError> {
        let (info, validated) = {
            let t = self.tables.read();
            let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
            (n.info.clone(), n.validated)
        };
        if matches!(info.kind, NodeKind::Dir) {
            return Err(FsError::IsADirectory);
        }
        let kind = if self.fresh(validated) {
            info.kind.clone()
        } else {
            match self.backend.head(&info.path).await {
                Ok(o) => file_kind(&o),
                Err(FsError::NotFound) => return Err(FsError::NotFound),
                Err(e) => return Err(e),
            }
        };
        let mut t = self.tables.write();
        let n = t.nodes.get_mut(&ino).ok_or(FsError::NotFound)?;
        n.info.kind = kind;
        n.validated = Instant::now();
        let etag = match &n.info.kind {
            NodeKind::File { etag, .. } => etag.clone(),
            NodeKind::Dir => None,
        };
        let keep_cache = etag.is_some() && n.opened_etag == etag;
        n.opened_etag = etag;
        Ok((n.info.clone(), keep_cache))
    }
}

#[cfg(test)]
mod tests;
