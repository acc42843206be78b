//! Reads of planned units: sorted, adjacent byte ranges a format's layout gives (TIFF tiles,
//! GRIB2 messages, shard inner chunks) or the aligned pieces small random reads are served
//! from. A unit a read lies in, or covers, is fetched whole, once, and kept in memory and on
//! disk; adjacent missing pieces are fetched with one GET.
//!
//! Buffered readers (stdio, GDAL's VSI layer) read through aligned buffers, so reading one unit
//! also grazes its neighbours. A graze is served by how the reader got there ([`Access`]):
//! - a small read that continues where the reader's previous small read ended (a stdio buffer
//!   fill), and would end in the head of a unit not held, is cut short at that unit's start.
//!   Planned files are opened with direct I/O, so the reader's read(2) returns short and it asks
//!   again from there, where the unit is fetched whole, but only if the reader really goes on.
//!   (Short reads are legal and every buffered reader loops on them; the caller, the per-file
//!   reader, only asks for this when the read is a whole read(2), never part of a larger one);
//! - a read after a seek that starts in a unit's tail and ends in the next unit's head reads the
//!   next unit whole (the reader aligned its seek down to a buffer boundary);
//! - any other graze fetches just the bytes asked for. A tail is kept (in memory, and on disk by
//!   its exact range), so the same aligned read later needs no request; a head is kept in memory
//!   and completed when its unit is read.

use std::ops::Range;

use super::{BlockCache, BlockKey, ObjectRef, Part, disk_get, disk_put};
use crate::error::FsError;
use crate::metrics::Metrics;
use crate::rope::Rope;

/// A read of a planned unit starting this close to the unit's start fetches the unit whole.
const HEAD_SLACK: u64 = 4 << 10;

/// How a read of a planned file relates to the reader's previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A small read starting where the previous small read ended: it may be cut short.
    Continue,
    /// Anything else: a first read, or one after a seek.
    Seek,
    /// Every unit touched is wanted whole (pieces of a random read).
    Whole,
}

impl BlockCache {
    /// Key of the cached head (first bytes) of a unit.
    fn head_key(obj: &ObjectRef, unit: &Range<u64>) -> BlockKey {
        BlockKey {
            part: Part::Head,
            ..Self::unit_key(obj, unit)
        }
    }

    /// Key of the cached tail (last bytes) of a unit.
    fn tail_key(obj: &ObjectRef, unit: &Range<u64>) -> BlockKey {
        BlockKey {
            part: Part::Tail,
            ..Self::unit_key(obj, unit)
        }
    }

    fn unit_key(obj: &ObjectRef, unit: &Range<u64>) -> BlockKey {
        BlockKey {
            index: unit.start,
            end: unit.end,
            ..Self::key(obj, 0)
        }
    }

    /// Caches the units wholly inside `data`, which holds bytes `at..` of `obj`, and the head
    /// of a unit that starts inside it and runs past its end (in memory only), so a reader's
    /// first read past the parsed prefix needs no request for the bytes already fetched.
    pub async fn insert_units(&self, obj: &ObjectRef, units: &[Range<u64>], at: u64, data: &Rope) {
        let end = at + data.len() as u64;
        let mut fresh = Vec::new();
        for u in units.iter().filter(|u| u.start >= at && u.start < end) {
            let b = data.slice((u.start - at) as usize..(u.end.min(end) - at) as usize);
            if u.end <= end {
                self.cache.insert(Self::unit_key(obj, u), b.clone()).await;
                fresh.push(((u.start, u.end), b));
            } else {
                self.cache.insert(Self::head_key(obj, u), b).await;
            }
        }
        disk_put(&self.disk, obj, fresh).await;
    }

    /// Bytes `range` of `obj` served from planned units, as after a seek (never short).
    pub async fn read_units(
        &self,
        obj: &ObjectRef,
        units: &[Range<u64>],
        range: Range<u64>,
    ) -> Result<Rope, FsError> {
        self.read_planned(obj, units, range, Access::Seek).await
    }

    /// Bytes `range` of `obj` served from planned `units` (see the module doc). With
    /// [`Access::Continue`] the result may be shorter than asked (never empty unless `range`
    /// is). A read the units do not cover falls back to blocks.
    pub async fn read_planned(
        &self,
        obj: &ObjectRef,
        units: &[Range<u64>],
        range: Range<u64>,
        access: Access,
    ) -> Result<Rope, FsError> {
        let end = range.end.min(obj.size);
        if range.start >= end {
            return Ok(Rope::default());
        }
        let mut r = range.start..end;
        let mut touched = &units[crate::formats::touched(units, r.clone())];
        let covered = touched.first().is_some_and(|u| u.start <= r.start)
            && touched.last().is_some_and(|u| u.end >= r.end)
            && touched.windows(2).all(|w| w[0].end == w[1].start);
        if !covered {
            return self.read(obj, r).await;
        }
        // Per touched unit: the bytes held (from where), once known.
        let mut got: Vec<Option<(u64, Rope)>> = Vec::with_capacity(touched.len());
        for u in touched {
            let b = self.cached_unit(obj, u).await;
            let counter = if b.is_some() {
                &self.metrics.block_hits
            } else {
                &self.metrics.block_misses
            };
            Metrics::inc(counter);
            got.push(b.map(|b| (u.start, b)));
        }
        let whole = access == Access::Whole;
        let grazed_head =
            |r: &Range<u64>, u: &Range<u64>| !whole && r.start < u.start && r.end < u.end;
        // A continuing read that would end in the head of a unit not held stops before it.
        if let ([.., _, last], [.., None]) = (touched, got.as_slice())
            && access == Access::Continue
            && grazed_head(&r, last)
        {
            let held = self.cache.get(&Self::head_key(obj, last)).await;
            if last.start + held.map_or(0, |h| h.len() as u64) < r.end {
                r.end = last.start;
                touched = &touched[..touched.len() - 1];
                got.pop();
            }
        }
        // A read starting at most `HEAD_SLACK` past a unit's start (or inside its cached head)
        // reads the unit from its start: a tile after its size leader, a buffered reader's
        // continuation. The unit is fetched whole (the few bytes before cost nothing).
        let grazed_tail = |u: &Range<u64>, have: u64| {
            !whole && r.start > u.start + have.max(HEAD_SLACK) && r.end > u.end
        };
        // After a seek, a read from one unit's tail into the next unit's head wants that unit.
        let seek_into_next = access == Access::Seek
            && touched.len() == 2
            && grazed_tail(&touched[0], 0)
            && grazed_head(&r, &touched[1]);
        // What to fetch per missing unit, after any head fetched before.
        let mut want: Vec<Range<u64>> = Vec::with_capacity(touched.len());
        let mut heads: Vec<Option<Rope>> = Vec::with_capacity(touched.len());
        for (k, u) in touched.iter().enumerate() {
            let head = match got[k] {
                Some(_) => None,
                None => self.cache.get(&Self::head_key(obj, u)).await,
            };
            let have = head.as_ref().map_or(0, |h| h.len() as u64);
            if got[k].is_some() {
                want.push(u.start..u.start);
                heads.push(None);
            } else if grazed_tail(u, have) {
                got[k] = self.cached_tail(obj, u, r.start).await;
                want.push(r.start..u.end);
                heads.push(None);
            } else if grazed_head(&r, u) && u.start + have >= r.end {
                got[k] = head.map(|h| (u.start, h));
                want.push(u.start..u.start);
                heads.push(None);
            } else if grazed_head(&r, u) && !seek_into_next {
                want.push(u.start + have..r.end);
                heads.push(head);
            } else {
                want.push(u.start + have..u.end);
                heads.push(head);
            }
        }
        // Runs of adjacent missing pieces, each one GET.
        let mut i = 0;
        while i < touched.len() {
            if got[i].is_some() {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < touched.len() && got[j + 1].is_none() && want[j + 1].start == want[j].end
            {
                j += 1;
            }
            let span = want[i].start..want[j].end;
            let len = (span.end - span.start) as usize;
            tracing::debug!(key = %obj.key, units = j + 1 - i, ?span, "fetching planned units");
            let all = self
                .backend
                .get_range(&obj.key, span.clone(), obj.etag.as_deref())
                .await?;
            if all.len() != len {
                return Err(FsError::Remote(format!(
                    "short read of '{}': wanted {len} bytes, server sent {}",
                    obj.key,
                    all.len()
                )));
            }
            let mut kept = Vec::new();
            for k in i..=j {
                let (u, w) = (&touched[k], &want[k]);
                let mut b = heads[k].take().unwrap_or_default();
                b.append(all.slice((w.start - span.start) as usize..(w.end - span.start) as usize));
                let base = w.end - b.len() as u64;
                if base == u.start && w.end == u.end {
                    self.cache.insert(Self::unit_key(obj, u), b.clone()).await;
                    self.cache.invalidate(&Self::head_key(obj, u)).await;
                    kept.push(((u.start, u.end), b.clone()));
                } else if base == u.start {
                    self.cache.insert(Self::head_key(obj, u), b.clone()).await;
                } else if w.end == u.end {
                    self.cache.insert(Self::tail_key(obj, u), b.clone()).await;
                    kept.push(((base, u.end), b.clone()));
                }
                got[k] = Some((base, b));
            }
            disk_put(&self.disk, obj, kept).await;
            i = j + 1;
        }
        let mut out = Rope::default();
        for (base, b) in got.into_iter().flatten() {
            let from = r.start.max(base);
            let to = r.end.min(base + b.len() as u64);
            if from < to {
                out.append(b.slice((from - base) as usize..(to - base) as usize));
            }
        }
        Ok(out)
    }

    /// Unit `u` whole, from memory or disk (a disk hit is put back in memory).
    async fn cached_unit(&self, obj: &ObjectRef, u: &Range<u64>) -> Option<Rope> {
        if let Some(b) = self.cache.get(&Self::unit_key(obj, u)).await {
            return Some(b);
        }
        let b = disk_get(
            &self.disk,
            obj,
            (u.start, u.end),
            (u.end - u.start) as usize,
        )
        .await?;
        self.cache.insert(Self::unit_key(obj, u), b.clone()).await;
        Some(b)
    }

    /// The bytes `from..` of unit `u` from a kept tail: the one in memory if it reaches back
    /// that far, else one kept on disk for exactly this range. Returned with where they start.
    async fn cached_tail(&self, obj: &ObjectRef, u: &Range<u64>, from: u64) -> Option<(u64, Rope)> {
        let key = Self::tail_key(obj, u);
        if let Some(t) = self.cache.get(&key).await {
            let base = u.end - t.len() as u64;
            if base <= from {
                return Some((base, t));
            }
        }
        let t = disk_get(&self.disk, obj, (from, u.end), (u.end - from) as usize).await?;
        self.cache.insert(key, t.clone()).await;
        Some((from, t))
    }

    /// Bytes `range` of `obj` from aligned pieces of `piece` bytes (a small random read): the
    /// pieces it touches are fetched with one GET and kept, so the reader's next read nearby
    /// and a later pass are served without a request. Blocks already held serve it as they are.
    pub async fn read_pieces(
        &self,
        obj: &ObjectRef,
        range: Range<u64>,
        piece: u64,
    ) -> Result<Rope, FsError> {
        let end = range.end.min(obj.size);
        if range.start >= end {
            return Ok(Rope::default());
        }
        let blocks = range.start / super::BLOCK_SIZE..=(end - 1) / super::BLOCK_SIZE;
        if piece == 0 || blocks.clone().all(|b| self.contains(obj, b)) {
            return self.read(obj, range.start..end).await;
        }
        let first = range.start / piece * piece;
        let pieces: Vec<Range<u64>> = (first..end)
            .step_by(piece as usize)
            .map(|s| s..(s + piece).min(obj.size))
            .collect();
        self.read_planned(obj, &pieces, range.start..end, Access::Whole)
            .await
    }
}
