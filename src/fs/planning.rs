//! Read plans chosen at open, by file name and magic bytes: a GRIB2 file with a `.idx` sidecar
//! is read by whole messages; a TIFF (classic or BigTIFF, tiled or stripped) by whole tiles,
//! from IFDs parsed once at open with one or two small ranged reads; a Zarr v3 shard by its
//! inner chunks, from the shard index; an HDF5 (NetCDF-4) file by whole chunks, from its chunk
//! indexes, walked with a few batched reads (each cached as a unit). Other files use the
//! generic block path (Zarr chunks are already fetched whole at lookup by the namespace).

use std::ops::Range;
use std::sync::Arc;

use super::Fs;
use crate::cache::block::ObjectRef;
use crate::formats::grib2::{is_grib_name, messages_from_idx};
use crate::formats::hdf5::{Step, Walker, is_hdf5_name};
use crate::formats::tiff::{TiffError, has_size_leaders, tile_ranges};
use crate::formats::units;
use crate::formats::zarr::Shard;
use crate::namespace::{NodeInfo, NodeKind};
use crate::rope::Rope;

/// Larger inventories are not read (a real one is tens of KiB).
const MAX_IDX_BYTES: u64 = 16 << 20;
/// First read of a TIFF, as GDAL's /vsis3/ makes it: a COG's IFDs usually fit, with room for a
/// reader's first buffered read (kept as the head of the first tile's unit); if the IFDs do not
/// fit, exactly the missing bytes follow.
const TIFF_FIRST_READ: u64 = 16 << 10;
/// A TIFF whose IFDs and tile arrays do not fit in this many first bytes is read unplanned.
const TIFF_MAX_PREFIX: u64 = 4 << 20;
/// First read of an HDF5 file: libnetcdf and h5py put the superblock, the object headers and
/// the first chunk index nodes at the start, so one read usually finds most of them.
const HDF5_FIRST_READ: u64 = 64 << 10;

impl Fs {
    /// The message units of GRIB file `info`: from its `.idx` sidecar if it has a usable one,
    /// else from section-0 hops (the first 64 messages). Any failure means no plan (or a plan
    /// of the messages found so far), never an error.
    pub(super) async fn grib_plan(
        &self,
        info: &NodeInfo,
        size: u64,
    ) -> Option<Arc<Vec<Range<u64>>>> {
        let name = info.path.rsplit('/').next()?;
        if !is_grib_name(name) {
            return None;
        }
        if let Some(plan) = self.grib_idx_plan(info, name, size).await {
            return Some(plan);
        }
        let NodeKind::File { ref etag, .. } = info.kind else {
            return None;
        };
        let obj = ObjectRef {
            key: info.path.as_str().into(),
            etag: etag.as_deref().map(Into::into),
            size,
        };
        self.grib_hop_plan(&obj).await
    }

    async fn grib_idx_plan(
        &self,
        info: &NodeInfo,
        name: &str,
        size: u64,
    ) -> Option<Arc<Vec<Range<u64>>>> {
        let parent = self.ns.parent_of(info.ino);
        let idx = self.ns.lookup(parent, &format!("{name}.idx")).await.ok()?;
        let NodeKind::File {
            size: idx_size,
            etag,
            ..
        } = idx.kind
        else {
            return None;
        };
        if idx_size > MAX_IDX_BYTES {
            return None;
        }
        let obj = ObjectRef {
            key: idx.path.into(),
            etag: etag.map(Into::into),
            size: idx_size,
        };
        let text = self.cache.read(&obj, 0..idx_size).await.ok()?.to_bytes();
        let messages = messages_from_idx(std::str::from_utf8(&text).ok()?, size);
        if messages.is_none() {
            tracing::debug!(
                file = info.path,
                "the .idx sidecar does not fit the file: no message plan"
            );
        }
        messages.map(Arc::new)
    }

    /// Message units from section 0 of each message: one small ranged read per message, in
    /// series (each start comes from the previous length), each cached as a unit of its own so
    /// that a later open needs no request. The walk stops after `GRIB_MAX_HOPS` messages or
    /// at anything that is not a GRIB2 message; reads past the planned units take the generic
    /// block path. (A lazier plan, finding the next boundary when a read reaches past the known
    /// ones, would need plans that grow while a file is open; readers hold a fixed one.)
    async fn grib_hop_plan(&self, obj: &ObjectRef) -> Option<Arc<Vec<Range<u64>>>> {
        use crate::formats::grib2::{PROBE_BYTES, hop_units, message_at};
        /// Messages planned at open: each costs one serial small request on the first open
        /// (1-5 s for all 64 at 20-80 ms per request); later messages take the block path.
        const GRIB_MAX_HOPS: usize = 64;
        let (mut probes, mut messages, mut tail) = (Vec::new(), Vec::new(), None);
        let mut pos = 0;
        let mut scratch = Vec::new();
        while messages.len() < GRIB_MAX_HOPS {
            if pos + 16 > obj.size {
                tail = Some(obj.size);
                break;
            }
            let probe = pos..(pos + PROBE_BYTES).min(obj.size);
            let bytes = self.read_prefix_unit(obj, probe.clone()).await?;
            match bytes.with_contiguous(&mut scratch, |b| message_at(b, pos, obj.size)) {
                Ok(m) if m.end >= probe.end => {
                    pos = m.end;
                    probes.push(probe);
                    messages.push(m);
                }
                Ok(m) => {
                    tracing::debug!(key = %obj.key, "GRIB2 message {m:?} shorter than its probe: plan ends there");
                    break;
                }
                Err(e) => {
                    tracing::debug!(key = %obj.key, "GRIB2 message walk stops at byte {pos}: {e:#}");
                    break;
                }
            }
        }
        if messages.is_empty() {
            return None;
        }
        Some(Arc::new(hop_units(&probes, &messages, tail)))
    }

    /// The plan of a file at open: its units, or `None` for the generic path.
    pub(super) async fn plan(
        &self,
        info: &NodeInfo,
        obj: &ObjectRef,
    ) -> Option<Arc<Vec<Range<u64>>>> {
        let name = info.path.rsplit('/').next()?.to_ascii_lowercase();
        if name.ends_with(".tif") || name.ends_with(".tiff") {
            return self.tiff_plan(obj).await;
        }
        if is_hdf5_name(&name) {
            return self.hdf5_plan(obj).await;
        }
        if let Some(shard) = self.ns.zarr_shard(&info.path) {
            return self.shard_plan(obj, shard).await;
        }
        self.grib_plan(info, obj.size).await
    }

    /// Tile units of a TIFF, from a first read of its IFDs (and one more if the tile arrays lie
    /// further). The tile units those reads hold whole are cached from them.
    async fn tiff_plan(&self, obj: &ObjectRef) -> Option<Arc<Vec<Range<u64>>>> {
        let mut want = TIFF_FIRST_READ.min(obj.size);
        // Read as units of their own, so a later open (or mount) finds them cached.
        let mut prefix = self.read_prefix_unit(obj, 0..want).await?;
        let mut scratch = Vec::new();
        let tiles = loop {
            match prefix.with_contiguous(&mut scratch, tile_ranges) {
                Ok(t) => break t,
                Err(TiffError::NeedPrefix(n)) if n <= TIFF_MAX_PREFIX.min(obj.size) && n > want => {
                    let more = self.read_prefix_unit(obj, want..n).await?;
                    prefix.append(more);
                    want = n;
                }
                Err(e) => {
                    tracing::debug!(key = %obj.key, "no tile plan for this TIFF: {e:?}");
                    return None;
                }
            }
        };
        let leader = if prefix.with_contiguous(&mut scratch, has_size_leaders) {
            4
        } else {
            0
        };
        let units = units(&tiles, leader, obj.size);
        self.cache.insert_units(obj, &units, 0, &prefix).await;
        Some(Arc::new(units))
    }

    /// Inner-chunk units of a Zarr v3 shard, from its index (read as a unit of its own): a read
    /// of one inner chunk fetches that chunk, not the shard.
    async fn shard_plan(&self, obj: &ObjectRef, shard: Shard) -> Option<Arc<Vec<Range<u64>>>> {
        let len = shard.index_len();
        if len > obj.size {
            return None;
        }
        let at = if shard.index_at_end {
            obj.size - len
        } else {
            0
        };
        let index = self.read_prefix_unit(obj, at..at + len).await?;
        let mut scratch = Vec::new();
        let mut ranges =
            index.with_contiguous(&mut scratch, |b| shard.chunk_ranges(b, obj.size))?;
        // The index is a unit of its own too, so no chunk's unit runs into it.
        ranges.push(at..at + len);
        ranges.sort_by_key(|r| r.start);
        Some(Arc::new(units(&ranges, 0, obj.size)))
    }

    /// Chunk units of an HDF5 file: the walker's reads (each a unit of its own, fetched
    /// concurrently per round) and the units they hold whole are cached.
    async fn hdf5_plan(&self, obj: &ObjectRef) -> Option<Arc<Vec<Range<u64>>>> {
        let mut walker = Walker::new(obj.size);
        let first = 0..HDF5_FIRST_READ.min(obj.size);
        let mut reads = vec![(0, self.read_prefix_unit(obj, first).await?)];
        walker.feed(0, &reads[0].1.to_bytes());
        loop {
            match walker.step() {
                Step::Done => break,
                Step::Unsupported(why) => {
                    tracing::debug!(key = %obj.key, "no chunk plan for this HDF5 file: {why}");
                    return None;
                }
                Step::Need(ranges) => {
                    let got = futures::future::join_all(
                        ranges.iter().map(|r| self.read_prefix_unit(obj, r.clone())),
                    )
                    .await;
                    for (r, data) in ranges.into_iter().zip(got) {
                        let data = data?;
                        walker.feed(r.start, &data.to_bytes());
                        reads.push((r.start, data));
                    }
                }
            }
        }
        let units = walker.units()?;
        for (at, data) in &reads {
            self.cache.insert_units(obj, &units, *at, data).await;
        }
        Some(Arc::new(units))
    }

    /// `range` read as a unit of its own (cached in memory and on disk, so a later open or
    /// mount needs no request to plan the file).
    async fn read_prefix_unit(&self, obj: &ObjectRef, range: Range<u64>) -> Option<Rope> {
        let unit = std::slice::from_ref(&range);
        self.cache.read_units(obj, unit, range.clone()).await.ok()
    }
}
