//! The block cache: object bytes in the shared memory tier ([`MemoryTier`]), the disk tier
//! ([`DiskCache`]) and the origin ([`Origin`]). Objects are cut into fixed blocks keyed by (key,
//! ETag, index), so a changed object never shares blocks with its old version. Concurrent misses
//! for one block fetch it once (the first registers its GET in flight, the rest await it), and a run of adjacent blocks is fetched with
//! one ranged GET whose result every waiting block shares. With a disk tier, a memory miss looks
//! on disk before fetching, and every fetched block is written to disk before it is served, except
//! for derived objects ([`Backend::is_derived`], the converted views): their sources' bytes are
//! on disk already, and their own bytes would only take room there.
//!
//! The origin is the store, and beside it, when the mount has them, the converted views. A key
//! the views derive is read from the views; every other key goes straight to the store, so the
//! bytes of a plain object never pass through the views. The cache asks only
//! [`Backend::is_derived`]: which keys are views, and how they are made, is the views' business.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{Shared, join_all};
use parking_lot::Mutex;

use crate::cache::disk::{BlockId, DiskCache};
use crate::cache::memory::MemoryTier;
use crate::error::{FsError, StoreError};
use crate::metrics::Metrics;
use crate::rope::Rope;
use crate::store::Backend;

mod extents;

pub use extents::Missing;

/// Size of one cached block. Reads and prefetch runs are made of whole blocks.
pub const BLOCK_SIZE: u64 = 1 << 20;

/// One open object, pinned to the ETag seen at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub key: Arc<str>,
    pub etag: Option<Arc<str>>,
    pub size: u64,
}

impl ObjectRef {
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK_SIZE)
    }

    fn block_range(&self, index: u64) -> Range<u64> {
        let start = index * BLOCK_SIZE;
        start..(start + BLOCK_SIZE).min(self.size)
    }
}

/// Key of object bytes in the memory tier.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub(crate) struct BlockKey {
    key: Arc<str>,
    etag: Option<Arc<str>>,
    /// Block index, or the start of an extent.
    index: u64,
    /// 0 for a block; the end of an extent.
    end: u64,
    /// Which bytes of the block or extent the entry holds.
    part: Part,
}

impl BlockKey {
    /// Block `index` of the object `key` at `etag`.
    pub(crate) fn block(key: Arc<str>, etag: Option<Arc<str>>, index: u64) -> Self {
        Self {
            key,
            etag,
            index,
            end: 0,
            part: Part::Whole,
        }
    }
}

/// A cache entry holds a whole block or extent, or only the first or last bytes of an extent
/// (the part a fetch covered).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum Part {
    Whole,
    Head,
    Tail,
}

type RunFuture = Shared<futures::future::BoxFuture<'static, Result<Rope, FsError>>>;

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("bytes", &self.cache.weighted_size())
            .field("inflight", &self.inflight.lock().len())
            .finish()
    }
}

/// The block cache's entries in the memory tier: bytes keyed by [`BlockKey`].
#[derive(Clone)]
struct Blocks(MemoryTier);

impl Blocks {
    async fn get(&self, key: &BlockKey) -> Option<Rope> {
        self.0.get_bytes(key).await
    }

    async fn insert(&self, key: BlockKey, bytes: Rope) {
        self.0.insert_bytes(key, bytes).await
    }

    async fn invalidate(&self, key: &BlockKey) {
        self.0.invalidate_bytes(key).await
    }

    fn contains_key(&self, key: &BlockKey) -> bool {
        self.0.contains_bytes(key)
    }

    fn weighted_size(&self) -> u64 {
        self.0.weighted_size()
    }
}

/// Where a block missing from memory and disk comes from: the store, or for the keys they
/// derive, the views beside it.
#[derive(Clone, Debug)]
pub struct Origin {
    store: Arc<dyn Backend>,
    views: Option<Arc<dyn Backend>>,
}

impl Origin {
    /// The backend that holds `key`'s bytes.
    fn of(&self, key: &str) -> &Arc<dyn Backend> {
        match &self.views {
            Some(v) if v.is_derived(key) => v,
            _ => &self.store,
        }
    }

    /// Whether `key`'s bytes are made from other objects rather than stored.
    fn derived(&self, key: &str) -> bool {
        self.of(key).is_derived(key)
    }
}

/// The tiers below memory: the disk tier, if any, and the origin (which also tells which objects
/// are derived, never written to or read from disk).
#[derive(Clone)]
struct DiskTier {
    cache: Option<Arc<DiskCache>>,
    origin: Origin,
}

#[derive(Clone)]
pub struct BlockCache {
    cache: Blocks,
    /// Blocks a prefetch run is fetching right now.
    inflight: Arc<Mutex<HashMap<BlockKey, Pending>>>,
    metrics: Arc<Metrics>,
    disk: DiskTier,
}

impl BlockCache {
    /// A cache over the store `store` with a memory tier of its own holding at most `capacity`
    /// bytes.
    pub fn new(store: Arc<dyn Backend>, metrics: Arc<Metrics>, capacity: u64) -> Self {
        Self::with_memory(store, metrics, MemoryTier::new(capacity))
    }

    /// A cache over the store `store` whose blocks live in `memory`, a tier it may share with
    /// other caches (its capacity then bounds all of them together).
    pub fn with_memory(store: Arc<dyn Backend>, metrics: Arc<Metrics>, memory: MemoryTier) -> Self {
        Self {
            cache: Blocks(memory),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            disk: DiskTier {
                cache: None,
                origin: Origin { store, views: None },
            },
            metrics,
        }
    }

    /// Reads the keys `views` derives ([`Backend::is_derived`]) from `views`; the rest still go
    /// to the store.
    pub fn with_views(mut self, views: Arc<dyn Backend>) -> Self {
        self.disk.origin.views = Some(views);
        self
    }

    /// Adds the persistent tier below the memory cache.
    pub fn with_disk(mut self, disk: Option<Arc<DiskCache>>) -> Self {
        self.disk.cache = disk;
        self
    }

    /// The memory tier the blocks live in.
    pub fn memory(&self) -> &MemoryTier {
        &self.cache.0
    }

    fn key(obj: &ObjectRef, index: u64) -> BlockKey {
        BlockKey::block(obj.key.clone(), obj.etag.clone(), index)
    }

    /// Block `index` cached (in memory or on disk), or being fetched by a run.
    pub fn contains(&self, obj: &ObjectRef, index: u64) -> bool {
        self.holds(obj, &Self::key(obj, index))
    }

    /// The entry `key` of `obj` held in memory or on disk, or being fetched by a run.
    fn holds(&self, obj: &ObjectRef, key: &BlockKey) -> bool {
        self.cache.contains_key(key)
            || self.inflight.lock().contains_key(key)
            || disk_tier(&self.disk, obj).is_some_and(|(d, etag)| {
                d.contains(&BlockId {
                    key: &obj.key,
                    etag,
                    index: key.index,
                    end: key.end,
                })
            })
    }

    /// Bytes `range` of `obj` (clamped to its size), from cached blocks, fetching missing ones.
    /// The result shares the cached pieces: nothing is copied.
    pub async fn read(&self, obj: &ObjectRef, range: Range<u64>) -> Result<Rope, FsError> {
        let end = range.end.min(obj.size);
        if range.start >= end {
            return Ok(Rope::default());
        }
        let first = range.start / BLOCK_SIZE;
        let last = (end - 1) / BLOCK_SIZE;
        let blocks = join_all((first..=last).map(|i| self.block(obj, i))).await;
        let mut out = Rope::default();
        for (i, block) in (first..=last).zip(blocks) {
            let base = i * BLOCK_SIZE;
            let from = range.start.saturating_sub(base) as usize;
            let to = (end - base) as usize;
            out.append(block?.slice(from..to));
        }
        Ok(out)
    }

    /// One block, fetched once however many readers miss it at the same time: a reader's own
    /// fetch is registered in flight like a run's, so readers and prefetch runs arriving
    /// meanwhile await it instead of requesting it again, and a block a run is fetching is
    /// awaited from that run.
    pub async fn block(&self, obj: &ObjectRef, index: u64) -> Result<Rope, FsError> {
        let key = Self::key(obj, index);
        if let Some(b) = self.cache.get(&key).await {
            Metrics::inc(&self.metrics.block_hits);
            return Ok(b);
        }
        let pending = self.inflight.lock().get(&key).cloned();
        if let Some(p) = pending {
            Metrics::inc(&self.metrics.block_hits);
            return p.slice().await;
        }
        let range = obj.block_range(index);
        let want = (range.end - range.start) as usize;
        if let Some(b) = disk_get(&self.disk, obj, (index, 0), want).await {
            Metrics::inc(&self.metrics.block_hits);
            self.cache.insert(key, b.clone()).await;
            return Ok(b);
        }
        let run = self.run(obj, range.clone());
        let mine = Pending {
            run: run.clone(),
            from: 0,
            to: want,
        };
        let theirs = match self.inflight.lock().entry(key.clone()) {
            Entry::Occupied(e) => Some(e.get().clone()),
            Entry::Vacant(v) => {
                v.insert(mine.clone());
                None
            }
        };
        if let Some(p) = theirs {
            Metrics::inc(&self.metrics.block_hits);
            return p.slice().await;
        }
        Metrics::inc(&self.metrics.block_misses);
        // Spawned, so that the block is cached and its registration removed even if this
        // reader goes away before the GET ends; awaited, so that the block is on disk before
        // it is served.
        let _ = tokio::spawn(self.finish(obj, run, vec![(key, mine.clone())])).await;
        mine.slice().await
    }

    /// Caches a whole object fetched in one piece (memory and disk), block by block.
    pub async fn insert_whole(&self, obj: &ObjectRef, data: Rope) {
        if data.len() as u64 != obj.size {
            return;
        }
        let blocks: Vec<((u64, u64), Rope)> = (0..obj.blocks())
            .map(|i| {
                let r = obj.block_range(i);
                ((i, 0), data.slice(r.start as usize..r.end as usize))
            })
            .collect();
        for ((i, _), b) in &blocks {
            self.cache.insert(Self::key(obj, *i), b.clone()).await;
        }
        disk_put(&self.disk, obj, blocks).await;
    }

    /// Starts fetching blocks `first..first+count` with one ranged GET. The blocks are
    /// registered as in flight before this returns, so readers arriving meanwhile wait for this
    /// run instead of fetching again; the returned future drives the GET and caches each block.
    pub fn start_run(
        &self,
        obj: &ObjectRef,
        first: u64,
        count: u64,
    ) -> impl std::future::Future<Output = Result<(), FsError>> + Send + 'static {
        let start = first * BLOCK_SIZE;
        let end = ((first + count) * BLOCK_SIZE).min(obj.size).max(start);
        let parts = (first..first + count)
            .filter(|i| i * BLOCK_SIZE < end)
            .map(|i| {
                (
                    Self::key(obj, i),
                    i * BLOCK_SIZE..((i + 1) * BLOCK_SIZE).min(end),
                )
            })
            .collect();
        self.start_parts(obj, start..end, parts)
    }

    /// Starts one ranged GET that fills the entries `parts` (sorted, adjacent, each key with the
    /// bytes of the object it holds, together `span`), less the parts at either end already
    /// held or in flight. Each part is registered as in flight before this returns (unless a
    /// run already fetches it), so a reader arriving meanwhile awaits this run; the returned future drives the GET, caches each part in memory and on disk, and
    /// removes its registrations. An extent fetched whole drops its kept head.
    pub(crate) fn start_parts(
        &self,
        obj: &ObjectRef,
        span: Range<u64>,
        parts: Vec<(BlockKey, Range<u64>)>,
    ) -> impl std::future::Future<Output = Result<(), FsError>> + Send + 'static {
        let mut inflight = self.inflight.lock();
        // Parts at either end that a reader or another run fetches, or that are cached, are
        // left out, so that a reader's fetch that began after this run was planned is not
        // requested twice. (Held parts in the middle are fetched again: one GET still beats
        // two.)
        let held = |k: &BlockKey| inflight.contains_key(k) || self.cache.contains_key(k);
        let mut parts = parts;
        while parts.last().is_some_and(|(k, _)| held(k)) {
            parts.pop();
        }
        let skip = parts.iter().take_while(|(k, _)| held(k)).count();
        parts.drain(..skip);
        let (Some((_, first)), Some((_, last))) = (parts.first(), parts.last()) else {
            return futures::future::ready(Ok(())).right_future();
        };
        let span = first.start.max(span.start)..last.end.min(span.end);
        let start = span.start;
        let run = self.run(obj, span);
        let parts: Vec<(BlockKey, Pending)> = parts
            .into_iter()
            .map(|(k, r)| {
                let pending = Pending {
                    run: run.clone(),
                    from: (r.start - start) as usize,
                    to: (r.end - start) as usize,
                };
                (k, pending)
            })
            .collect();
        for (k, p) in &parts {
            inflight.entry(k.clone()).or_insert_with(|| p.clone());
        }
        drop(inflight);
        self.finish(obj, run, parts).left_future()
    }

    /// One ranged GET of `span` of `obj`, shared by every entry it fills; it starts when first
    /// polled.
    fn run(&self, obj: &ObjectRef, span: Range<u64>) -> RunFuture {
        let backend = self.disk.origin.of(&obj.key).clone();
        let obj = obj.clone();
        async move { backend.get_range(&obj.key, span, obj.etag.as_deref()).await }
            .boxed()
            .shared()
    }

    /// Drives `run`, caches each of `parts` it fetched whole in memory and on disk (a short
    /// body caches nothing: the kernel would take it for end of file), and removes the parts'
    /// registrations in flight (only their own, never a later run's for the same entry).
    fn finish(
        &self,
        obj: &ObjectRef,
        run: RunFuture,
        parts: Vec<(BlockKey, Pending)>,
    ) -> impl std::future::Future<Output = Result<(), FsError>> + Send + 'static {
        let cache = self.cache.clone();
        let inflight = self.inflight.clone();
        let disk = self.disk.clone();
        let obj = obj.clone();
        async move {
            let res = run.await;
            if let Ok(all) = &res {
                let entries = parts
                    .iter()
                    .filter(|(_, p)| p.to <= all.len())
                    .map(|(k, p)| ((k.index, k.end), all.slice(p.from..p.to)))
                    .collect();
                disk_put(&disk, &obj, entries).await;
            }
            for (k, p) in parts {
                if let Ok(all) = &res
                    && p.to <= all.len()
                {
                    cache.insert(k.clone(), all.slice(p.from..p.to)).await;
                    if k.end != 0 {
                        let head = BlockKey {
                            part: Part::Head,
                            ..k.clone()
                        };
                        cache.invalidate(&head).await;
                    }
                }
                let mut map = inflight.lock();
                // Only remove our own registration, not a later run's for the same entry.
                if map.get(&k).is_some_and(|q| q.run.ptr_eq(&p.run)) {
                    map.remove(&k);
                }
            }
            res.map(drop)
        }
    }
}

/// The disk tier and the object's ETag, when the object's blocks may live on disk: only objects
/// with an ETag (without one a changed object could not be told from the old) that are stored,
/// not derived.
fn disk_tier<'a>(disk: &'a DiskTier, obj: &'a ObjectRef) -> Option<(&'a Arc<DiskCache>, &'a str)> {
    let d = disk.cache.as_ref()?;
    let etag = obj.etag.as_deref()?;
    (!disk.origin.derived(&obj.key)).then_some((d, etag))
}

/// Block `index` (or extent `index..end`) of `obj` from disk, if a valid entry of `len` bytes is
/// there.
async fn disk_get(
    disk: &DiskTier,
    obj: &ObjectRef,
    (index, end): (u64, u64),
    len: usize,
) -> Option<Rope> {
    let (d, etag) = disk_tier(disk, obj)?;
    let (d, etag, key) = (d.clone(), etag.to_string(), obj.key.clone());
    tokio::task::spawn_blocking(move || {
        d.get(
            &BlockId {
                key: &key,
                etag: &etag,
                index,
                end,
            },
            len,
        )
    })
    .await
    .ok()
    .flatten()
    .map(Rope::from)
}

/// Writes fetched blocks (`(index, 0)`) or extents (`(start, end)`) of `obj` to disk; returns
/// once they are there (or failed, logged).
async fn disk_put(disk: &DiskTier, obj: &ObjectRef, blocks: Vec<((u64, u64), Rope)>) {
    let Some((d, etag)) = disk_tier(disk, obj) else {
        return;
    };
    let (d, etag, key) = (d.clone(), etag.to_string(), obj.key.clone());
    let _ = tokio::task::spawn_blocking(move || {
        for ((index, end), data) in blocks {
            let id = BlockId {
                key: &key,
                etag: &etag,
                index,
                end,
            };
            d.put(&id, &data);
        }
    })
    .await;
}

/// A block being fetched as part of a run: where it lies in the run's bytes.
#[derive(Clone)]
struct Pending {
    run: RunFuture,
    from: usize,
    to: usize,
}

impl Pending {
    async fn slice(self) -> Result<Rope, FsError> {
        let all = self.run.await?;
        if self.to > all.len() {
            return Err(StoreError::short_read(
                "a shared run of blocks",
                self.to as u64,
                all.len() as u64,
            )
            .into());
        }
        Ok(all.slice(self.from..self.to))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A block cache over object_store's `InMemory` holding one object `obj` of a known
    //! pattern, for the tests of the cache and of the readers above it.
    use super::*;
    use crate::store::metered::Metered;
    use crate::store::object::{Lister, ObjectBackend};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use std::time::Duration;

    pub(crate) async fn setup(len: usize) -> (BlockCache, ObjectRef, Vec<u8>, Arc<Metrics>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mem = Arc::new(InMemory::new());
        let r = mem
            .put(&Path::from("obj"), PutPayload::from(data.clone()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let backend = Metered::new(
            ObjectBackend::new(mem, String::new(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        );
        let cache = BlockCache::new(Arc::new(backend), metrics.clone(), 64 << 20);
        let obj = ObjectRef {
            key: "obj".into(),
            etag: r.e_tag.map(Into::into),
            size: len as u64,
        };
        (cache, obj, data, metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::{Lister, ObjectBackend};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use std::sync::atomic::Ordering::Relaxed;

    use super::testing::setup;

    /// A backend whose objects under `v/` are derived (as a converted view's are).
    #[derive(Debug)]
    struct Deriving(Arc<dyn Backend>);

    #[async_trait::async_trait]
    impl Backend for Deriving {
        async fn list(&self, dir: &str) -> Result<crate::store::Listing, FsError> {
            self.0.list(dir).await
        }
        async fn probe(&self) -> Result<(), FsError> {
            self.0.probe().await
        }
        async fn head(&self, key: &str) -> Result<crate::store::ObjectInfo, FsError> {
            self.0.head(key).await
        }
        async fn get_range(
            &self,
            key: &str,
            range: Range<u64>,
            etag: Option<&str>,
        ) -> Result<Rope, FsError> {
            self.0.get_range(key, range, etag).await
        }
        fn is_derived(&self, key: &str) -> bool {
            key.starts_with("v/")
        }
    }

    #[tokio::test]
    async fn derived_objects_stay_in_memory_and_stored_ones_go_to_disk() {
        let mem = Arc::new(InMemory::new());
        let data = vec![7u8; (2 * BLOCK_SIZE) as usize];
        let mut objs = Vec::new();
        for key in ["s/obj", "v/obj"] {
            let r = mem
                .put(&Path::from(key), PutPayload::from(data.clone()))
                .await
                .unwrap();
            objs.push(ObjectRef {
                key: key.into(),
                etag: r.e_tag.map(Into::into),
                size: data.len() as u64,
            });
        }
        let metrics = Arc::new(Metrics::default());
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCache::open(dir.path(), 64 << 20, "test", metrics.clone()).unwrap();
        let backend = Deriving(Arc::new(ObjectBackend::new(
            mem,
            String::new(),
            Lister::Generic,
        )));
        let cache =
            BlockCache::new(Arc::new(backend), metrics, 64 << 20).with_disk(Some(disk.clone()));
        cache.read(&objs[1], 0..data.len() as u64).await.unwrap();
        assert_eq!(
            disk.stats().entries,
            0,
            "a derived object's blocks are not on disk"
        );
        assert!(cache.contains(&objs[1], 1), "but they are in memory");
        cache.read(&objs[0], 0..data.len() as u64).await.unwrap();
        assert_eq!(disk.stats().entries, 2, "a stored object's blocks are");
    }

    /// Views beside the store: they derive the keys under `v/` (bytes of 9) and count reads.
    #[derive(Debug, Default)]
    struct Views {
        reads: std::sync::atomic::AtomicU64,
    }

    #[async_trait::async_trait]
    impl Backend for Views {
        async fn list(&self, _: &str) -> Result<crate::store::Listing, FsError> {
            Err(FsError::NotFound)
        }
        async fn probe(&self) -> Result<(), FsError> {
            Ok(())
        }
        async fn head(&self, _: &str) -> Result<crate::store::ObjectInfo, FsError> {
            Err(FsError::NotFound)
        }
        async fn get_range(
            &self,
            key: &str,
            range: Range<u64>,
            _: Option<&str>,
        ) -> Result<Rope, FsError> {
            assert!(
                self.is_derived(key),
                "a stored key read from the views: {key}"
            );
            self.reads.fetch_add(1, Relaxed);
            Ok(Rope::from(vec![9u8; (range.end - range.start) as usize]))
        }
        fn is_derived(&self, key: &str) -> bool {
            key.starts_with("v/")
        }
    }

    #[tokio::test]
    async fn derived_keys_are_read_from_the_views_and_the_rest_from_the_store() {
        let (cache, stored, data, metrics) = setup((BLOCK_SIZE + 10) as usize).await;
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskCache::open(dir.path(), 64 << 20, "test", metrics.clone()).unwrap();
        let views = Arc::new(Views::default());
        let cache = cache
            .with_views(views.clone())
            .with_disk(Some(disk.clone()));
        let derived = ObjectRef {
            key: "v/obj.tif".into(),
            etag: Some("e.cog".into()),
            size: 2 * BLOCK_SIZE,
        };
        let got = cache.read(&derived, 0..2 * BLOCK_SIZE).await.unwrap();
        assert!(got.to_bytes().iter().all(|&b| b == 9));
        assert_eq!(views.reads.load(Relaxed), 2, "one read per derived block");
        assert_eq!(
            metrics.get_requests.load(Relaxed),
            0,
            "none of them at the store"
        );
        assert_eq!(disk.stats().entries, 0, "derived blocks stay off the disk");
        let other = ObjectRef {
            key: "v/other.tif".into(),
            ..derived.clone()
        };
        cache.start_run(&other, 0, 2).await.unwrap();
        assert_eq!(
            (
                views.reads.load(Relaxed),
                metrics.get_requests.load(Relaxed)
            ),
            (3, 0)
        );

        let got = cache.read(&stored, 0..stored.size).await.unwrap();
        assert_eq!(&got.to_bytes()[..], &data[..]);
        assert_eq!(
            metrics.get_requests.load(Relaxed),
            2,
            "stored blocks from the store"
        );
        assert_eq!(views.reads.load(Relaxed), 3, "and none through the views");
        assert_eq!(disk.stats().entries, 2, "stored blocks go to disk");
        let (info, _) = cache.fetch_whole("obj").await.unwrap();
        assert_eq!(info.size, stored.size);
        assert_eq!(
            (
                views.reads.load(Relaxed),
                metrics.get_requests.load(Relaxed)
            ),
            (3, 3)
        );
    }

    #[tokio::test]
    async fn reads_across_blocks_match_the_source() {
        let len = (3 * BLOCK_SIZE + 123) as usize;
        let (cache, obj, data, _) = setup(len).await;
        for (a, b) in [
            (0, 10),
            (BLOCK_SIZE - 5, BLOCK_SIZE + 5),
            (0, len as u64),
            (len as u64 - 3, len as u64 + 100),
        ] {
            let got = cache.read(&obj, a..b).await.unwrap().to_bytes();
            assert_eq!(&got[..], &data[a as usize..(b as usize).min(len)]);
        }
        assert!(
            cache
                .read(&obj, len as u64..len as u64 + 5)
                .await
                .unwrap()
                .to_bytes()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn concurrent_misses_fetch_once() {
        let (cache, obj, _, metrics) = setup(BLOCK_SIZE as usize).await;
        let reads = (0..16).map(|_| cache.read(&obj, 0..100));
        for r in join_all(reads).await {
            r.unwrap();
        }
        assert_eq!(metrics.get_requests.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_run_is_one_get_and_fills_every_block() {
        let len = (4 * BLOCK_SIZE) as usize;
        let (cache, obj, data, metrics) = setup(len).await;
        cache.start_run(&obj, 0, 4).await.unwrap();
        assert_eq!(metrics.get_requests.load(Relaxed), 1);
        for i in 0..4 {
            assert!(cache.contains(&obj, i));
        }
        let got = cache.read(&obj, 0..len as u64).await.unwrap().to_bytes();
        assert_eq!(&got[..], &data[..]);
        assert_eq!(metrics.get_requests.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_read_of_a_block_in_flight_waits_for_the_run() {
        let len = (4 * BLOCK_SIZE) as usize;
        let (cache, obj, data, metrics) = setup(len).await;
        // The run is registered before it is polled: the read must not issue its own GET.
        let run = cache.start_run(&obj, 0, 4);
        assert!(cache.contains(&obj, 2));
        let (r, got) = tokio::join!(run, cache.read(&obj, 2 * BLOCK_SIZE..2 * BLOCK_SIZE + 10));
        r.unwrap();
        let b = 2 * BLOCK_SIZE as usize;
        assert_eq!(&got.unwrap().to_bytes()[..], &data[b..b + 10]);
        assert_eq!(metrics.get_requests.load(Relaxed), 1);
        assert!(
            cache.inflight.lock().is_empty(),
            "finished runs leave no registration"
        );
    }

    #[tokio::test]
    async fn a_readers_own_fetch_is_in_flight_for_runs_and_other_readers() {
        let (cache, obj, data, metrics) = setup(2 * BLOCK_SIZE as usize).await;
        let mut first = Box::pin(cache.block(&obj, 1));
        // One poll registers the GET; on this one-thread runtime it cannot have finished.
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(
            cache.contains(&obj, 1),
            "a prefetch run would fetch the block again"
        );
        let (a, b) = tokio::join!(first, cache.block(&obj, 1));
        let b1 = BLOCK_SIZE as usize;
        assert_eq!(&a.unwrap().to_bytes()[..], &data[b1..]);
        assert_eq!(&b.unwrap().to_bytes()[..], &data[b1..]);
        assert_eq!(metrics.get_requests.load(Relaxed), 1);
        assert!(cache.inflight.lock().is_empty());
        assert!(cache.cache.contains_key(&BlockCache::key(&obj, 1)));
    }

    #[tokio::test]
    async fn a_run_leaves_out_the_blocks_a_reader_is_fetching() {
        let (cache, obj, data, metrics) = setup(3 * BLOCK_SIZE as usize).await;
        let mut reader = Box::pin(cache.block(&obj, 2));
        assert!(futures::poll!(reader.as_mut()).is_pending());
        // Planned before the reader came: blocks 0..3. Block 2 is the reader's already.
        let (r, got) = tokio::join!(cache.start_run(&obj, 0, 3), reader);
        r.unwrap();
        assert_eq!(
            &got.unwrap().to_bytes()[..],
            &data[2 * BLOCK_SIZE as usize..]
        );
        assert_eq!(metrics.get_requests.load(Relaxed), 2);
        assert_eq!(metrics.bytes_fetched.load(Relaxed), data.len() as u64);
        // A run of blocks all held makes no request.
        cache.start_run(&obj, 0, 3).await.unwrap();
        assert_eq!(metrics.get_requests.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn a_short_body_is_an_error_and_is_not_cached() {
        let (cache, mut obj, _, _) = setup(100).await;
        // The object is smaller than the size it was opened with.
        obj.size = 200;
        obj.etag = None;
        let err = cache.read(&obj, 0..150).await.unwrap_err();
        assert!(
            matches!(&err, FsError::Store(e)
                if matches!(e.kind(), crate::error::StoreErrorKind::ShortRead { got: 100, .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("short read"), "{err}");
        assert_eq!(err.errno(), libc::EIO, "{err}");
        assert!(!cache.contains(&obj, 0));
    }
}
