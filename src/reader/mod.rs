//! Read policy: how the bytes of an open file are fetched, and which plan a file is read by.
//!
//! - [`file`]: one open file's reads. Unplanned files get a sequential prefetch window and, for
//!   random reads, aligned pieces sized from the reader's own reads; planned files are read by
//!   their units, with the graze rules for buffered readers.
//! - [`planner`]: the [`planner::Planner`] of each format (TIFF, HDF5, Zarr v3 shards, GRIB2),
//!   chosen at open by name and magic bytes, and the plans they made, cached per (key, ETag).
//!
//! Bytes come from the block cache (`crate::cache::block`), which holds ranges of objects in
//! memory and on disk and fetches what is missing; it knows nothing of formats or policy.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::Semaphore;

use crate::cache::block::{BLOCK_SIZE, BlockCache, ObjectRef};
use crate::metrics::Metrics;

pub mod file;
pub mod planner;

#[cfg(test)]
mod tests;

pub use file::{Access, FileReader, ReadFor};
use planner::{PlanIo, Planners, Sidecars, Subject};

/// A file's plan: sorted, adjacent byte ranges, each fetched whole.
pub type Units = Arc<Vec<Range<u64>>>;

/// Shared by all readers of a mount: the prefetch budget in blocks, shared fairly among the
/// readers reading sequentially at the time (each a [`Stream`]).
#[derive(Debug, Clone)]
pub struct PrefetchBudget {
    permits: Arc<Semaphore>,
    /// Bytes of prefetch allowed in flight, in all.
    inflight: u64,
    pub max_window: u64,
    /// How many readers read sequentially now.
    streams: Arc<AtomicU64>,
    /// How far the mount's recent walks through planned files went, in bytes
    /// ([`PrefetchBudget::walk_start`]).
    walks_went: Arc<AtomicU64>,
}

/// One reader's claim to a share of the prefetch budget, while it reads sequentially.
#[derive(Debug)]
pub struct Stream(Arc<AtomicU64>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl PrefetchBudget {
    /// At most `inflight_bytes` of prefetch on the way at once (whole runs, so at least one).
    pub fn new(inflight_bytes: u64) -> Self {
        let blocks = (inflight_bytes / BLOCK_SIZE).max(file::MAX_RUN_BLOCKS);
        Self {
            permits: Arc::new(Semaphore::new(blocks as usize)),
            inflight: blocks * BLOCK_SIZE,
            max_window: file::MAX_WINDOW.min(inflight_bytes.max(BLOCK_SIZE)),
            streams: Arc::default(),
            walks_went: Arc::default(),
        }
    }

    /// The window a new walk through a planned file starts with, when it has read `walked`
    /// bytes: at least those, and at least as far as the mount's recent walks went, up to one
    /// run (`MAX_RUN_BLOCKS` blocks). Readers of a folder of files (`open_mfdataset` of
    /// yearly files) walk each file as they walked the one before.
    pub fn walk_start(&self, walked: u64) -> u64 {
        let went = self
            .walks_went
            .load(Relaxed)
            .min(file::MAX_RUN_BLOCKS * BLOCK_SIZE);
        walked.max(went)
    }

    /// Whether a walk through a planned file has been read ahead in this mount.
    pub fn walked_before(&self) -> bool {
        self.walks_went.load(Relaxed) > 0
    }

    /// Records how far a walk has gone (bytes from its start).
    pub fn walk_reached(&self, went: u64) {
        self.walks_went.fetch_max(went, Relaxed);
    }

    /// A file's first walk fetched ahead: what earlier walks reached counts half from now on,
    /// so a mount whose walks grow shorter starts them smaller.
    pub fn walk_fetched(&self) {
        let _ = self
            .walks_went
            .fetch_update(Relaxed, Relaxed, |w| Some(w / 2));
    }

    /// Counts a reader as reading sequentially until the returned claim is dropped.
    pub fn stream(&self) -> Stream {
        self.streams.fetch_add(1, Relaxed);
        Stream(self.streams.clone())
    }

    /// How many readers read sequentially now.
    #[cfg(test)]
    pub(crate) fn streams(&self) -> u64 {
        self.streams.load(Relaxed)
    }

    /// The largest window of one sequential reader now: an equal share of the budget among
    /// the readers reading sequentially (so N streams each keep their window in flight rather
    /// than the first ones taking it all), at least one run, at most [`Self::max_window`].
    pub fn stream_window(&self) -> u64 {
        let share = self.inflight / self.streams.load(Relaxed).max(1);
        share
            .max(file::MAX_RUN_BLOCKS * BLOCK_SIZE)
            .min(self.max_window)
    }

    /// Splits a memory budget: a fifth for prefetch in flight, the rest for the block cache, so
    /// the two together stay within it. Returns the budget and the block cache's share.
    pub fn split(memory_bytes: u64) -> (Self, u64) {
        let inflight = memory_bytes / 5;
        (Self::new(inflight), memory_bytes - inflight)
    }
}

/// What is known of a file at open, besides its object: what the namespace holds of its layout.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Its shard layout, when it is a shard of a sharded Zarr v3 array.
    pub zarr_shard: Option<crate::formats::zarr::Shard>,
}

/// The read side of a mount: the block cache every reader shares, the prefetch budget, and the
/// planners with their plans.
#[derive(Debug)]
pub struct Reader {
    cache: BlockCache,
    budget: PrefetchBudget,
    metrics: Arc<Metrics>,
    planners: Planners,
}

impl Reader {
    pub fn new(cache: BlockCache, budget: PrefetchBudget, metrics: Arc<Metrics>) -> Self {
        Self {
            cache,
            budget,
            metrics,
            planners: Planners::default(),
        }
    }

    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// Reads through `cache` from now on (plans live in its memory tier).
    pub fn set_cache(&mut self, cache: BlockCache) {
        self.cache = cache;
    }

    /// The reader of `obj`, named `name`: planned when a planner claims it and its layout gives
    /// units (planned once per (key, ETag)), else read by the prefetch window.
    pub async fn open(
        &self,
        obj: ObjectRef,
        name: &str,
        known: Known,
        sidecars: &dyn Sidecars,
    ) -> FileReader {
        let subject = Subject {
            obj: &obj,
            name,
            zarr_shard: known.zarr_shard,
            sidecar: None,
        };
        let in_order = self.planners.read_in_order(&subject);
        let units = self
            .planners
            .plan(subject, sidecars, PlanIo::new(&self.cache))
            .await;
        FileReader::new(
            obj,
            self.cache.clone(),
            self.budget.clone(),
            self.metrics.clone(),
        )
        .with_units(units)
        .with_read_ahead(in_order)
    }
}
