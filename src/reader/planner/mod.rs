//! Read plans, chosen at open by file name and magic bytes. A plan is the sorted, adjacent byte
//! ranges (units) a format's layout cuts a file into: TIFF tiles, GRIB2 messages, the inner
//! chunks of a Zarr v3 shard, HDF5 chunks. A reader of a planned file fetches the units it
//! touches, whole (`crate::reader::file`).
//!
//! - **Choice.** [`Planners`] asks each [`Planner`] in turn whether it claims the file (by its
//!   name, or what the namespace knows of it); the first that does decides. Its first read (the
//!   bytes that carry the format's magic) is read as an extent of its own, and a file whose
//!   magic is not the format's is read unplanned. No file is read to choose: a file no planner
//!   claims costs nothing at open.
//! - **Cache.** A plan is computed once per (key, ETag), and of its sidecar (GRIB2's `.idx`)
//!   when it has one, and kept as an entry of the shared memory tier, weighed by its bytes in
//!   `--cache-memory`: a second open of an unchanged object computes nothing and makes no
//!   request (while the entry is held; an evicted plan is planned again, from cached probes). A changed object has another ETag, so it is planned
//!   anew. Objects without an ETag are planned at every open (a change could not be told).
//!   A plan that failed on I/O is not kept.
//! - **I/O.** Planners read only through [`PlanIo`]: ranges of the object through the block
//!   cache, each read kept as an extent of its own, so a later open (or mount) that must plan
//!   again reads them from memory or disk.
//!
//! Parsing is the formats' (`crate::formats`); a planner decides what to read and in what order.

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

use super::Units;
use super::file::read_units;
use crate::cache::block::{BlockCache, ObjectRef};
use crate::cache::memory::{DerivedKey, MemoryTier};
use crate::error::FsError;
use crate::formats::zarr::Shard;
use crate::rope::Rope;

mod grib2;
mod hdf5;
mod tiff;
mod zarr_shard;

#[cfg(test)]
mod tests;

/// What a planner is told of the object being opened.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The object, pinned to the ETag seen at open.
    pub obj: &'a ObjectRef,
    /// Its file name (the last segment of its path), as listed.
    pub name: &'a str,
    /// Its shard layout, when the namespace knows it as a shard of a sharded Zarr v3 array.
    pub zarr_shard: Option<Shard>,
    /// The sidecar the planner named ([`Planner::sidecar`]), when it exists (metadata only).
    pub sidecar: Option<ObjectRef>,
}

/// Finds the objects beside the one being opened (metadata only, never bytes).
#[async_trait]
pub trait Sidecars: Send + Sync {
    /// The object named `name` in the same directory, if there is one.
    async fn beside(&self, name: &str) -> Option<ObjectRef>;
}

/// The only I/O a planner has: ranges of objects, read through the cache.
#[derive(Clone, Copy)]
pub struct PlanIo<'a> {
    cache: &'a BlockCache,
}

impl<'a> PlanIo<'a> {
    pub fn new(cache: &'a BlockCache) -> Self {
        Self { cache }
    }

    /// Bytes `range` of `obj`, read as an extent of its own: kept in memory and on disk, so a
    /// later open (or mount) needs no request for them.
    pub async fn read_extent(&self, obj: &ObjectRef, range: Range<u64>) -> Result<Rope, FsError> {
        read_units(self.cache, obj, std::slice::from_ref(&range), range.clone()).await
    }

    /// Bytes `range` of `obj`, read by blocks as any unplanned read is.
    pub async fn read(&self, obj: &ObjectRef, range: Range<u64>) -> Result<Rope, FsError> {
        self.cache.read(obj, range).await
    }

    /// Keeps the `units` wholly inside `data` (bytes `at..` of `obj`), and the head of one that
    /// runs past its end, so the reader's first reads there need no request.
    pub async fn keep(&self, obj: &ObjectRef, units: &[Range<u64>], at: u64, data: &Rope) {
        self.cache.insert_extents(obj, units, at, data).await;
    }
}

/// One format's planning. Implementations hold no state of their own: the same subject always
/// gives the same plan.
#[async_trait]
pub trait Planner: Send + Sync + Debug {
    /// The format's name, for logs.
    fn format(&self) -> &'static str;

    /// Whether a file so named (or so known to the namespace) may be of this format.
    fn claims(&self, subject: &Subject<'_>) -> bool;

    /// The name of a sidecar object in the same directory that the plan is read from too.
    fn sidecar(&self, _subject: &Subject<'_>) -> Option<String> {
        None
    }

    /// The first bytes to read: they carry the format's magic ([`Planner::magic`]) and are
    /// handed to [`Planner::plan`]. `None`: nothing is read before planning starts.
    fn first_read(&self, _subject: &Subject<'_>) -> Option<Range<u64>> {
        None
    }

    /// Whether `first`, the bytes of [`Planner::first_read`], may begin a file of this format.
    fn magic(&self, _first: &[u8], _subject: &Subject<'_>) -> bool {
        true
    }

    /// Whether readers usually walk the units in file order (HDF5 chunks along the record
    /// dimension, GRIB2 messages one after another): the reader then reads ahead once it sees
    /// such a walk. Not for tiles, whose readers go row by row through a window.
    fn read_in_order(&self) -> bool {
        false
    }

    /// The units of the object, or `None` when its layout gives none (the file is then read
    /// unplanned). An error is an I/O failure: the file is read unplanned and not marked so.
    async fn plan(
        &self,
        subject: &Subject<'_>,
        first: Option<Rope>,
        io: PlanIo<'_>,
    ) -> Result<Option<Vec<Range<u64>>>, FsError>;
}

/// A plan as the memory tier keeps it (its own type, so no other maker's value is read as one).
struct Plan(Option<Units>);

/// The plans, as entries of the shared memory tier (`crate::cache::memory`), so they draw from
/// `--cache-memory` with everything else the process keeps. A plan is keyed by the object's key
/// and ETag, and its size and sidecar's identity (key, ETag, size) in the entry's `what`; it
/// weighs its units and keys. Concurrent opens of one object plan it once; a failure is not kept.
struct PlanCache;

impl PlanCache {
    /// The tier key of the subject's plan; `None` when the object (or its sidecar) has no ETag:
    /// a change could not be told.
    fn key(s: &Subject<'_>) -> Option<(DerivedKey, usize)> {
        let etag = s.obj.etag.as_deref()?;
        // Length-prefixed, so no key or ETag can make two identities print the same.
        let mut what = format!("plan/{}", s.obj.size);
        let mut ids = s.obj.key.len() + etag.len();
        if let Some(o) = &s.sidecar {
            let se = o.etag.as_deref()?;
            what.push_str(&format!(
                "/{}:{}{}:{}/{}",
                o.key.len(),
                o.key,
                se.len(),
                se,
                o.size
            ));
            ids += o.key.len() + se.len();
        }
        let key = DerivedKey::of::<Plan>(&s.obj.key, Some(etag), what.as_str());
        Some((key, ids + what.len()))
    }

    /// The plan under `key`, computed by `plan` unless held (errors are returned, not kept).
    async fn get_or_plan<F>(
        memory: &MemoryTier,
        (key, ids): (DerivedKey, usize),
        plan: F,
    ) -> Result<Option<Units>, FsError>
    where
        F: Future<Output = Result<Option<Units>, FsError>>,
    {
        let plan = memory
            .get_or_make(key, async {
                let units = plan.await?;
                let bytes = ids
                    + units
                        .as_ref()
                        .map_or(0, |u| u.len() * size_of::<Range<u64>>());
                Ok((Arc::new(Plan(units)), bytes))
            })
            .await?;
        Ok(plan.0.clone())
    }
}

/// The registry: the planners in the order they are asked. The plans they made are kept in the
/// memory tier of the block cache they read through ([`PlanIo`]).
#[derive(Debug)]
pub struct Planners {
    planners: Vec<Box<dyn Planner>>,
}

impl Default for Planners {
    /// The planners of every format read planned.
    fn default() -> Self {
        Self::with(vec![
            Box::new(tiff::Tiff),
            Box::new(hdf5::Hdf5),
            Box::new(zarr_shard::ZarrShard),
            Box::new(grib2::Grib2),
        ])
    }
}

impl Planners {
    /// A registry of these planners, asked in this order.
    pub fn with(planners: Vec<Box<dyn Planner>>) -> Self {
        Self { planners }
    }

    /// Whether the planner claiming the subject reads in file order ([`Planner::read_in_order`]).
    pub fn read_in_order(&self, subject: &Subject<'_>) -> bool {
        self.planners
            .iter()
            .find(|p| p.claims(subject))
            .is_some_and(|p| p.read_in_order())
    }

    /// The plan of the subject, or `None` to read it unplanned. Never an error: a failure to
    /// plan means no plan.
    pub async fn plan(
        &self,
        mut subject: Subject<'_>,
        sidecars: &dyn Sidecars,
        io: PlanIo<'_>,
    ) -> Option<Units> {
        let planner = self.planners.iter().find(|p| p.claims(&subject))?;
        if let Some(name) = planner.sidecar(&subject) {
            subject.sidecar = sidecars.beside(&name).await;
        }
        let compute = async {
            let units = Self::compute(planner.as_ref(), &subject, io).await?;
            Ok(units.map(Arc::new))
        };
        let planned = match PlanCache::key(&subject) {
            Some(key) => PlanCache::get_or_plan(io.cache.memory(), key, compute).await,
            None => compute.await,
        };
        planned.unwrap_or_else(|e| {
            tracing::debug!(key = %subject.obj.key, format = planner.format(), "no plan this open: {e}");
            None
        })
    }

    async fn compute(
        planner: &dyn Planner,
        subject: &Subject<'_>,
        io: PlanIo<'_>,
    ) -> Result<Option<Vec<Range<u64>>>, FsError> {
        let first = match planner.first_read(subject) {
            Some(r) => {
                let first = io.read_extent(subject.obj, r).await?;
                let mut scratch = Vec::new();
                if !first.with_contiguous(&mut scratch, |b| planner.magic(b, subject)) {
                    tracing::debug!(key = %subject.obj.key, format = planner.format(), "no plan: not the format's magic");
                    return Ok(None);
                }
                Some(first)
            }
            None => None,
        };
        planner.plan(subject, first, io).await
    }
}
