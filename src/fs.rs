//! Filesystem operations, free of fuser types so they run in unit tests without a kernel.
//! `fuse.rs` translates kernel requests into these calls and results into replies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::cache::block::{BlockCache, ObjectRef};
use crate::cache::memory::MemoryTier;
use crate::config::Ownership;
use crate::error::FsError;
use crate::metrics::Metrics;
use crate::namespace::{DirEntry, Namespace, NodeInfo, NodeKind, ROOT_INO};
use crate::reader::planner::Sidecars;
use crate::reader::{FileReader, Known, PrefetchBudget, ReadFor, Reader};
use crate::rope::Rope;
use crate::store::Backend;
use crate::write::{Staged, Writes};

pub mod writing;

/// The hidden, read-only stats file at the mount root (not listed by `readdir`).
pub const STATS_NAME: &str = ".geomount-stats";
/// Its inode: far above any inode the namespace hands out.
pub const STATS_INO: u64 = u64::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
}

/// Attributes as the kernel sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    pub mtime: SystemTime,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The result of `open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// The object is unchanged since the last open: the kernel may keep its cached pages.
    pub keep_cache: bool,
    /// Bypass the page cache for read(2) (the stats file, whose size is not known in advance,
    /// and planned files). A mapping of the file still faults its pages in through the page
    /// cache (the adapter asks the kernel to allow that), with reads for
    /// [`ReadFor::PageCache`].
    pub direct_io: bool,
}

enum Handle {
    File(Arc<FileReader>),
    Stats(Bytes),
    /// A file being written (or read while staged): its bytes are on local disk.
    Staged {
        ino: u64,
        file: Arc<Staged>,
    },
}

/// Where a mount's objects come from: the store, and beside it the converted views, if any.
///
/// Bytes: the block cache reads a key the views derive ([`Backend::is_derived`]) from `views`
/// and every other key straight from `store`. Metadata: with views, the namespace lists and
/// stats through them (they answer for their own folders and files and show the store's entries
/// with the view folders beside them); without, through the store.
#[derive(Debug, Clone)]
pub struct Sources {
    pub store: Arc<dyn Backend>,
    pub views: Option<Arc<dyn Backend>>,
}

pub struct Fs {
    ns: Arc<Namespace>,
    /// Where uploads, deletes and copied-down objects go (never a converted view).
    store: Arc<dyn Backend>,
    /// Present on a `--read-write` mount.
    writes: Option<Arc<Writes>>,
    reader: Reader,
    metrics: Arc<Metrics>,
    own: Ownership,
    /// Directories have no time of their own in an object store: they show the mount time.
    mounted_at: SystemTime,
    handles: Mutex<HashMap<u64, Handle>>,
    dir_handles: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    /// The listing each directory's last opendir served (shared with the namespace, not copied).
    last_listing: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next_fh: AtomicU64,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

impl Fs {
    /// An `Fs` over the store `backend` alone (no converted views), with a memory tier of its
    /// own.
    pub fn new(
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
        own: Ownership,
        ttl: Duration,
        memory_bytes: u64,
    ) -> Self {
        // `--cache-memory` bounds cached bytes and prefetch in flight together.
        let (budget, cache_bytes) = PrefetchBudget::split(memory_bytes);
        Self::with_memory(
            Sources {
                store: backend,
                views: None,
            },
            metrics,
            own,
            ttl,
            budget,
            MemoryTier::new(cache_bytes),
        )
    }

    /// An `Fs` over `sources` whose block cache lives in `memory`, the tier the rest of the
    /// process (the converted views) shares, with `budget` for prefetch in flight beside it.
    pub fn with_memory(
        sources: Sources,
        metrics: Arc<Metrics>,
        own: Ownership,
        ttl: Duration,
        budget: PrefetchBudget,
        memory: MemoryTier,
    ) -> Self {
        let Sources { store, views } = sources;
        let mut cache = BlockCache::with_memory(store.clone(), metrics.clone(), memory);
        if let Some(v) = &views {
            cache = cache.with_views(v.clone());
        }
        let metadata = views.unwrap_or_else(|| store.clone());
        Self {
            ns: Arc::new(Namespace::new(
                metadata,
                cache.clone(),
                ttl,
                metrics.clone(),
            )),
            store,
            writes: None,
            reader: Reader::new(cache, budget, metrics.clone()),
            metrics,
            own,
            mounted_at: SystemTime::now(),
            handles: Mutex::new(HashMap::new()),
            dir_handles: Mutex::new(HashMap::new()),
            last_listing: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// Adds the persistent disk tier below the memory block cache.
    pub fn with_disk(mut self, disk: Option<Arc<crate::cache::disk::DiskCache>>) -> Self {
        let cache = self.reader.cache().clone().with_disk(disk.clone());
        Arc::get_mut(&mut self.ns)
            .expect("the disk tier is added before the namespace is shared")
            .set_caches(cache.clone(), disk);
        self.reader.set_cache(cache);
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// TTL for kernel entry and attribute caching: the metadata TTL, never zero (rclone found
    /// zero TTLs blow up memory and listing time).
    pub fn ttl(&self) -> Duration {
        self.ns.ttl().max(Duration::from_millis(100))
    }

    fn attr_of(&self, info: &NodeInfo) -> Attr {
        match &info.kind {
            NodeKind::Dir => Attr {
                ino: info.ino,
                kind: FileKind::Dir,
                size: 4096,
                mtime: self.mounted_at,
                perm: self.own.dir_mode,
                nlink: 2,
                uid: self.own.uid,
                gid: self.own.gid,
            },
            NodeKind::File { size, mtime, etag } => {
                let mut a = Attr {
                    ino: info.ino,
                    kind: FileKind::File,
                    size: *size,
                    mtime: *mtime,
                    perm: self.own.file_mode,
                    nlink: 1,
                    uid: self.own.uid,
                    gid: self.own.gid,
                };
                if let Some(w) = &self.writes {
                    if let Some(s) = w.attr(info.ino) {
                        (a.size, a.mtime, a.perm) = (s.size, s.mtime, s.mode);
                    } else if let Some(t) = w.uploaded_mtime(&info.path, etag.as_deref()) {
                        a.mtime = t;
                    }
                }
                a
            }
        }
    }

    fn stats_attr(&self) -> Attr {
        Attr {
            ino: STATS_INO,
            kind: FileKind::File,
            size: self.metrics.render().len() as u64,
            mtime: SystemTime::now(),
            perm: 0o444,
            nlink: 1,
            uid: self.own.uid,
            gid: self.own.gid,
        }
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        if parent == ROOT_INO && name == STATS_NAME {
            return Ok(self.stats_attr());
        }
        let info = self.ns.lookup(parent, name).await?;
        Ok(self.attr_of(&info))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        self.attr(ino)
    }

    /// The attributes held for `ino`, with no request (what `readdirplus` returns per entry).
    pub fn attr(&self, ino: u64) -> Result<Attr, FsError> {
        if ino == STATS_INO {
            return Ok(self.stats_attr());
        }
        Ok(self.attr_of(&self.ns.get(ino)?))
    }

    /// Snapshots a directory's entries for a stable `readdir` across calls. `keep_cache` tells
    /// the kernel it may reuse its cached entries: true only when the listing is the very one
    /// served to the previous opendir (not refreshed since).
    pub async fn opendir(&self, ino: u64) -> Result<Opened, FsError> {
        let entries = self.ns.list(ino).await?;
        let keep_cache = {
            let mut last = self.last_listing.lock();
            let same = last
                .get(&ino)
                .is_some_and(|prev| Arc::ptr_eq(prev, &entries));
            last.insert(ino, entries.clone());
            same
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dir_handles.lock().insert(fh, entries);
        Ok(Opened {
            fh,
            keep_cache,
            direct_io: false,
        })
    }

    /// Entries from `offset` on, `.` and `..` first. Each carries the offset of the next one.
    pub fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
    ) -> Result<Vec<(u64, FileKind, String, u64)>, FsError> {
        let entries = self
            .dir_handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let parent = self.ns.parent_of(ino);
        // An object named like the stats file is shadowed by it at the root.
        let shadowed = |e: &&DirEntry| ino == ROOT_INO && e.name == STATS_NAME;
        let dots = [
            (ino, FileKind::Dir, ".".to_string()),
            (parent, FileKind::Dir, "..".to_string()),
        ];
        let all = dots
            .into_iter()
            .chain(entries.iter().filter(|e| !shadowed(e)).map(|e| {
                let kind = if e.is_dir {
                    FileKind::Dir
                } else {
                    FileKind::File
                };
                (e.ino, kind, e.name.clone())
            }));
        Ok(all
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (ino, k, n))| (ino, k, n, i as u64 + 1))
            .collect())
    }

    pub fn releasedir(&self, fh: u64) {
        self.dir_handles.lock().remove(&fh);
    }

    /// Opens a file. Write access (or `O_TRUNC`) needs a writable mount (EROFS otherwise) and
    /// stages the file; a staged file is read from its staged bytes.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<Opened, FsError> {
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if writing || self.writes.as_ref().is_some_and(|w| w.is_staged(ino)) {
            match self.open_staged(ino, flags, writing).await {
                Err(FsError::NotStaged) => {}
                res => return res,
            }
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        if ino == STATS_INO {
            self.handles
                .lock()
                .insert(fh, Handle::Stats(Bytes::from(self.metrics.render())));
            return Ok(Opened {
                fh,
                keep_cache: false,
                direct_io: true,
            });
        }
        let (info, keep_cache) = self.ns.open_file(ino).await?;
        let NodeKind::File { size, ref etag, .. } = info.kind else {
            return Err(FsError::IsADirectory);
        };
        let obj = ObjectRef {
            key: info.path.as_str().into(),
            etag: etag.as_deref().map(Into::into),
            size,
        };
        let name = info.path.rsplit('/').next().unwrap_or_default();
        let known = Known {
            zarr_shard: self.ns.zarr_shard(&info.path),
        };
        let beside = Beside {
            ns: &self.ns,
            dir: self.ns.parent_of(info.ino),
        };
        let reader = self.reader.open(obj, name, known, &beside).await;
        // A planned file bypasses the page cache: kernel readahead would otherwise widen a read
        // into the neighbouring unit and fetch it too.
        let direct_io = reader.is_planned();
        self.handles
            .lock()
            .insert(fh, Handle::File(Arc::new(reader)));
        Ok(Opened {
            fh,
            keep_cache: keep_cache && !direct_io,
            direct_io,
        })
    }

    /// A read for a process's read(2) (see [`ReadFor::Process`]).
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Rope, FsError> {
        self.read_for(fh, offset, size, ReadFor::Process).await
    }

    /// Reads `size` bytes at `offset` of handle `fh`, for `of`: a read for the page cache
    /// returns every byte up to the file's end.
    pub async fn read_for(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
        of: ReadFor,
    ) -> Result<Rope, FsError> {
        let reader = match self.handles.lock().get(&fh) {
            Some(Handle::File(r)) => r.clone(),
            Some(Handle::Stats(b)) => {
                let start = (offset as usize).min(b.len());
                let end = (start + size as usize).min(b.len());
                return Ok(b.slice(start..end).into());
            }
            Some(Handle::Staged { file, .. }) => {
                let file = file.clone();
                let w = self.writes.as_ref().ok_or(FsError::BadHandle)?;
                return w.read(&file, offset, size).map(Into::into);
            }
            None => return Err(FsError::BadHandle),
        };
        reader.read_for(offset, size, of).await.inspect_err(|e| {
            if matches!(e, FsError::Stale { .. }) {
                tracing::warn!(key = %reader.object().key, "object changed while open: read refused with ESTALE");
            }
        })
    }

    pub fn release(&self, fh: u64) {
        let gone = self.handles.lock().remove(&fh);
        if let (Some(Handle::Staged { ino, .. }), Some(w)) = (gone, &self.writes)
            && let Err(e) = w.released(ino)
        {
            tracing::warn!(ino, error = %e, "a closed file could not be journaled for upload");
        }
    }

    pub fn open_handles(&self) -> usize {
        self.handles.lock().len()
    }
}

/// The objects beside an opened file, found through the namespace (so within its TTL a
/// lookup needs no request).
struct Beside<'a> {
    ns: &'a Namespace,
    dir: u64,
}

#[async_trait]
impl Sidecars for Beside<'_> {
    async fn beside(&self, name: &str) -> Option<ObjectRef> {
        let info = self.ns.lookup(self.dir, name).await.ok()?;
        let NodeKind::File { size, etag, .. } = info.kind else {
            return None;
        };
        Some(ObjectRef {
            key: info.path.into(),
            etag: etag.map(Into::into),
            size,
        })
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;
