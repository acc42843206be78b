//! The read policy of one open file.
//!
//! **Unplanned files.** A reader that keeps reading forward (small skips and slightly
//! out-of-order kernel readahead tolerated) gets a prefetch window that doubles at each new block
//! up to a cap; prefetch is issued as parallel multi-block GETs. A jump resets the window, and
//! the read after it is served from aligned pieces sized from the reader's random reads
//! ([`learned_piece`]), not whole blocks. Prefetch takes permits from a shared budget, so
//! in-flight prefetch memory stays bounded; each sequential reader's window is capped at its
//! equal share of that budget, so concurrent streams all keep prefetching.
//!
//! **Planned files** (units from a [`crate::reader::planner::Planner`]: TIFF tiles, GRIB2
//! messages, shard inner chunks, HDF5 chunks) are read by their units: a unit a read lies in, or
//! covers, is fetched whole, once, and kept in memory and on disk; adjacent missing pieces are
//! fetched with one GET. The small pieces of a random read are read the same way.
//!
//! **Reading ahead along a walk.** Where the planner says readers walk the units in file order
//! (HDF5 chunks along the record dimension, GRIB2 messages), a reader whose reads have moved on
//! to the next unit (or the one after it) [`WALK_START`] times in a row is walking (once is
//! enough after the mount's first walk: readers of a folder of yearly files walk each file as
//! they walked the one before): the units after its read are fetched ahead, whole, within a
//! window that starts at what the walk has read so far (or, if larger, at how far the mount's
//! recent walks went, up to one run) and doubles per unit reached (so the mount's first walk
//! that stops costs at most what it read),
//! adjacent missing ones merged into GETs of up to [`MAX_RUN_BLOCKS`] blocks, under the shared
//! prefetch budget. A walk may go against file order (seen: a point's series read through
//! `xr.open_mfdataset` and h5netcdf asks for its chunks back to front), and then the units
//! before the read are fetched ahead the same way. One open file keeps up to [`MAX_WALKS`]
//! walks apart (readers sharing a handle interleave their reads); a read continues the walk it
//! follows, else starts one. A reader that reaches a unit being fetched waits for that GET. A
//! reader of one unit (one GRIB2 message) or of a subset whose chunks lie apart never starts a
//! walk.
//!
//! Buffered readers (stdio, GDAL's VSI layer) read through aligned buffers, so reading one unit
//! also grazes its neighbours. A graze is served by how the reader got there ([`Access`]):
//! - a small read that continues where the reader's previous small read ended (a stdio buffer
//!   fill), and would end in the head of a unit not held, is cut short at that unit's start.
//!   Planned files are opened with direct I/O, so the reader's read(2) returns short and it asks
//!   again from there, where the unit is fetched whole, but only if the reader really goes on.
//!   (Short reads are legal and every buffered reader loops on them; [`FileReader`] only asks
//!   for this when the read is a whole read(2), never part of a larger one, and never for a
//!   read that fills the kernel's page cache: a mapped planned file faults its pages in
//!   through the page cache, and there a short answer would be taken for the file's end);
//! - a read after a seek that starts in a unit's tail and ends in the next unit's head reads the
//!   next unit whole (the reader aligned its seek down to a buffer boundary);
//! - any other graze fetches just the bytes asked for. A tail is kept (in memory, and on disk by
//!   its exact range), so the same aligned read later needs no request; a head is kept in memory
//!   and completed when its unit is read.

use std::ops::Range;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{PrefetchBudget, Units};
use crate::cache::block::{BLOCK_SIZE, BlockCache, Missing, ObjectRef};
use crate::config::MAX_READ;
use crate::error::FsError;
use crate::metrics::Metrics;
use crate::rope::Rope;

/// First prefetch window after a sequential start.
pub const INITIAL_WINDOW: u64 = BLOCK_SIZE;
/// Largest prefetch window per reader.
pub const MAX_WINDOW: u64 = 64 * BLOCK_SIZE;
/// Largest single prefetch GET.
pub const MAX_RUN_BLOCKS: u64 = 8;
/// A forward jump up to this far still counts as sequential.
pub const MAX_FORWARD_SKIP: u64 = 2 * BLOCK_SIZE;
/// Reads this far behind the furthest read so far still count as sequential (async readahead
/// requests arrive slightly out of order).
pub const MAX_BACKWARD: u64 = BLOCK_SIZE;

/// Largest read of a planned file that may be cut short at a unit boundary: the buffer fills
/// of stdio (8 KiB) and GDAL's VSI layer, with room.
pub const CUT_MAX: u32 = 64 << 10;

/// Reads in a row that moved on to a later unit before a planned file is read ahead (one, once
/// the mount has read a walk ahead).
pub const WALK_START: u32 = 2;

/// Smallest piece a random read is served from.
pub const MIN_PIECE: u64 = 16 << 10;

/// A read of a planned unit starting this close to the unit's start fetches the unit whole.
const HEAD_SLACK: u64 = 4 << 10;

/// The piece size for a random read of `len` bytes after pieces of `prev`: a quarter of the
/// read rounded up to a power of two, so an unaligned read fetches at most a quarter more than
/// it asks; never below [`MIN_PIECE`] (so nearby small reads share a piece) nor below half the
/// previous size (one odd small read does not undo what the reader's usual size taught). At
/// least [`BLOCK_SIZE`] means blocks.
pub(super) fn learned_piece(prev: u64, len: u64) -> u64 {
    (len.div_ceil(4).next_power_of_two())
        .max(MIN_PIECE)
        .max(prev / 2)
        .min(BLOCK_SIZE)
}

/// Whom a read is for, as the kernel's request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFor {
    /// A process's read(2) on a direct-I/O handle: it may be answered short (the process asks
    /// again from where the answer ended).
    Process,
    /// The kernel's page cache (a fault in a mapping, readahead of a cached file): answered
    /// with every byte up to the file's end, since the kernel takes a short answer for the
    /// file's end and shrinks its size to it.
    PageCache,
}

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

#[derive(Debug, Default)]
pub(super) struct SeqState {
    /// Furthest byte read so far + 1.
    frontier: u64,
    pub(super) window: u64,
    /// Blocks below this index have been requested by prefetch.
    prefetched_until: u64,
    last_block: Option<u64>,
    /// Size of the pieces a random read is served from, learned from the reader's random
    /// reads (0 before the first).
    piece: u64,
    /// This reader's share of the prefetch budget, held while it reads sequentially.
    stream: Option<super::Stream>,
}

/// Walks one open file tracks at once: one handle is often read in several places in turn (two
/// variables, the threads of a dask worker).
pub const MAX_WALKS: usize = 4;

/// A walk that no read has continued for this many reads of its file is dropped, giving back
/// its share of the prefetch budget.
const WALK_IDLE_READS: u64 = 16;

/// The direction a walk moves through the units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Dir {
    /// One read so far.
    #[default]
    Unknown,
    Forward,
    Backward,
}

/// A reader's walk through a planned file's units, in file order or against it (see the
/// module doc).
#[derive(Debug, Default)]
pub(super) struct UnitWalk {
    /// The units the walk's last read touched: `lo..=hi`.
    lo: usize,
    hi: usize,
    dir: Dir,
    /// Where the walk began: the start of its first unit going forward, the end of it going
    /// backward.
    start: u64,
    /// Reads in a row that moved on to the next unit in the walk's direction.
    advances: u32,
    /// How far ahead of the reader units are fetched: at first as much as the walk has read
    /// (or how far the mount's recent walks went, [`super::PrefetchBudget::walk_start`]),
    /// doubling with each unit reached, up to the stream's share of the prefetch budget.
    window: u64,
    /// Going forward, units below this index were read ahead (or read by the reader itself);
    /// going backward, units at or above it.
    ahead: usize,
    /// The file's read count at this walk's last read.
    used: u64,
    /// This reader's share of the prefetch budget, held while it walks.
    stream: Option<super::Stream>,
    /// Whether the walk has fetched units ahead of its reader.
    fetched: bool,
}

/// How a read relates to one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Moved on in the walk's direction, skipping at most one unit (of another variable).
    MovedOn(Dir),
    /// Still inside the unit the walk's last read ended in (a unit read in pieces).
    Stayed,
}

impl UnitWalk {
    /// How far the walk has gone when `read` is its latest read: bytes from its start.
    fn went(&self, read: &Range<u64>) -> u64 {
        match self.dir {
            Dir::Backward => self.start.saturating_sub(read.start),
            _ => read.end.saturating_sub(self.start),
        }
    }

    fn step(&self, touched: &Range<usize>) -> Option<Step> {
        let (first, last) = (touched.start, touched.end - 1);
        let forward = last > self.hi && first <= self.hi + 2;
        let backward = first < self.lo && last + 2 >= self.lo;
        match self.dir {
            Dir::Forward | Dir::Unknown if forward => Some(Step::MovedOn(Dir::Forward)),
            Dir::Backward | Dir::Unknown if backward => Some(Step::MovedOn(Dir::Backward)),
            _ if first == last && (first == self.hi || first == self.lo) => Some(Step::Stayed),
            _ => None,
        }
    }
}

/// The walks of one open file.
#[derive(Debug, Default)]
pub(super) struct Walks {
    list: Vec<UnitWalk>,
    /// Reads of the file so far.
    reads: u64,
    /// Whether a walk of this file has fetched units ahead of its reader.
    read_ahead: bool,
}

#[derive(Debug)]
pub struct FileReader {
    obj: ObjectRef,
    cache: BlockCache,
    budget: PrefetchBudget,
    metrics: Arc<Metrics>,
    pub(super) state: Mutex<SeqState>,
    /// End and asked length of the previous read of a planned file.
    planned_prev: Mutex<(u64, u32)>,
    /// Planned units (e.g. GRIB2 messages): reads fetch the units they touch, whole, and
    /// nothing else (no window prefetch).
    units: Option<Units>,
    /// Whether the plan's units are read ahead when a reader walks them in file order.
    read_ahead: bool,
    walks: Mutex<Walks>,
}

impl FileReader {
    pub fn new(
        obj: ObjectRef,
        cache: BlockCache,
        budget: PrefetchBudget,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            obj,
            cache,
            budget,
            metrics,
            state: Mutex::new(SeqState {
                window: INITIAL_WINDOW,
                ..Default::default()
            }),
            planned_prev: Mutex::new((u64::MAX, u32::MAX)),
            units: None,
            read_ahead: false,
            walks: Mutex::default(),
        }
    }

    /// Reads the planned units ahead when a reader walks them in file order.
    pub fn with_read_ahead(mut self, read_ahead: bool) -> Self {
        self.read_ahead = read_ahead;
        self
    }

    /// Serves reads from these planned units instead of blocks and prefetch windows.
    pub fn with_units(mut self, units: Option<Units>) -> Self {
        self.units = units;
        self
    }

    pub fn object(&self) -> &ObjectRef {
        &self.obj
    }

    #[cfg(test)]
    pub(super) fn budget(&self) -> &PrefetchBudget {
        &self.budget
    }

    #[cfg(test)]
    pub(super) fn cache(&self) -> &BlockCache {
        &self.cache
    }

    #[cfg(test)]
    pub(super) fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Whether reads are served from planned units.
    pub fn is_planned(&self) -> bool {
        self.units.is_some()
    }

    /// A read for a process (see [`ReadFor::Process`]).
    pub async fn read(&self, offset: u64, len: u32) -> Result<Rope, FsError> {
        self.read_for(offset, len, ReadFor::Process).await
    }

    /// Reads `len` bytes at `offset` (fewer only at the file's end, or for a process's read
    /// continuing a buffer fill into a unit not held, see the module doc).
    pub async fn read_for(&self, offset: u64, len: u32, of: ReadFor) -> Result<Rope, FsError> {
        let end = (offset + len as u64).min(self.obj.size);
        if offset >= end {
            return Ok(Rope::default());
        }
        Metrics::inc(&self.metrics.fuse_reads);
        if let Some(units) = &self.units {
            let (prev_end, prev_len) =
                std::mem::replace(&mut *self.planned_prev.lock(), (u64::MAX, u32::MAX));
            // Only a process's buffer fill may be cut short: a small read (at most `CUT_MAX`)
            // continuing a previous read that ended where it starts and was shorter than the
            // kernel's request size (so it ended its read(2): the kernel cuts a larger read(2)
            // into requests of `MAX_READ`). A read for the page cache is never cut.
            let access = if of == ReadFor::Process
                && prev_end == offset
                && prev_len < MAX_READ
                && len <= CUT_MAX
            {
                Access::Continue
            } else {
                Access::Seek
            };
            if self.read_ahead {
                for run in self.plan_unit_read_ahead(units, offset..end) {
                    self.spawn_unit_run(units, run);
                }
            }
            let data = read_planned(&self.cache, &self.obj, units, offset..end, access).await?;
            *self.planned_prev.lock() = (offset + data.len() as u64, len);
            Metrics::add(&self.metrics.bytes_read, data.len() as u64);
            return Ok(data);
        }
        let (runs, piece) = self.plan_prefetch(offset, end);
        for (first, count) in runs {
            self.spawn_prefetch(first, count);
        }
        let data = match piece {
            Some(piece) => read_pieces(&self.cache, &self.obj, offset..end, piece).await?,
            None => self.cache.read(&self.obj, offset..end).await?,
        };
        Metrics::add(&self.metrics.bytes_read, data.len() as u64);
        Ok(data)
    }

    /// Updates the sequential state for a read of `offset..end` and returns the block runs to
    /// prefetch (first block, count), and for a random read the piece size to serve it from.
    pub(super) fn plan_prefetch(&self, offset: u64, end: u64) -> (Vec<(u64, u64)>, Option<u64>) {
        let mut st = self.state.lock();
        let sequential =
            offset + MAX_BACKWARD >= st.frontier && offset <= st.frontier + MAX_FORWARD_SKIP;
        let block = offset / BLOCK_SIZE;
        if sequential {
            if st.last_block.is_some_and(|b| block > b) {
                if st.stream.is_none() {
                    st.stream = Some(self.budget.stream());
                }
                st.window *= 2;
            }
            // A stream's window follows its share: it shrinks when other streams start.
            if st.stream.is_some() {
                st.window = st.window.min(self.budget.stream_window());
            }
        } else {
            st.window = INITIAL_WINDOW;
            st.prefetched_until = 0;
            st.stream = None;
        }
        st.last_block = Some(block);
        // After a jump the reader goes on from where it landed, behind or ahead.
        st.frontier = if sequential {
            st.frontier.max(end)
        } else {
            end
        };
        if !sequential {
            st.piece = learned_piece(st.piece, end - offset);
            return (Vec::new(), Some(st.piece).filter(|&p| p < BLOCK_SIZE));
        }
        let want_end = (end + st.window).min(self.obj.size).div_ceil(BLOCK_SIZE);
        let reader_block = end.div_ceil(BLOCK_SIZE);
        let from = st.prefetched_until.max(reader_block);
        if from >= want_end {
            return (Vec::new(), None);
        }
        // While prefetched data is still ahead of the reader, wait until a whole run can be
        // requested: otherwise a saturated window advances one block per GET.
        let batch = MAX_RUN_BLOCKS.min((st.window / BLOCK_SIZE).max(1));
        let tail = want_end == self.obj.size.div_ceil(BLOCK_SIZE);
        if from > reader_block && want_end - from < batch && !tail {
            return (Vec::new(), None);
        }
        let mut runs = Vec::new();
        let mut i = from;
        while i < want_end {
            if self.cache.contains(&self.obj, i) {
                i += 1;
                continue;
            }
            let mut n = 1;
            while i + n < want_end && n < MAX_RUN_BLOCKS && !self.cache.contains(&self.obj, i + n) {
                n += 1;
            }
            runs.push((i, n));
            i += n;
        }
        st.prefetched_until = want_end;
        (runs, None)
    }

    /// Updates the walks for a read of `read` and returns the runs of units to read ahead
    /// (indices into `units`; each run adjacent, missing, at most [`MAX_RUN_BLOCKS`] blocks
    /// unless one unit is larger).
    pub(super) fn plan_unit_read_ahead(
        &self,
        units: &[Range<u64>],
        read: Range<u64>,
    ) -> Vec<Range<usize>> {
        let touched = crate::formats::touched(units, read.clone());
        if touched.is_empty() {
            return Vec::new();
        }
        let mut walks = self.walks.lock();
        walks.reads += 1;
        let reads = walks.reads;
        walks.list.retain(|w| w.used + WALK_IDLE_READS >= reads);
        // The walk this read continues: one that moved on in its direction first, then one
        // read in pieces, then one whose direction this read sets.
        let found = walks
            .list
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let step = w.step(&touched)?;
                let rank = match step {
                    Step::MovedOn(_) if w.dir != Dir::Unknown => 0,
                    Step::Stayed => 1,
                    Step::MovedOn(_) => 2,
                };
                Some((rank, i, step))
            })
            .min_by_key(|&(rank, i, _)| (rank, i));
        let (first, last) = (touched.start, touched.end - 1);
        let Some((_, i, step)) = found else {
            if walks.list.len() == MAX_WALKS {
                let lru = (0..MAX_WALKS)
                    .min_by_key(|&i| walks.list[i].used)
                    .unwrap_or(0);
                walks.list.swap_remove(lru);
            }
            walks.list.push(UnitWalk {
                lo: first,
                hi: last,
                start: units[first].start,
                used: reads,
                ..Default::default()
            });
            return Vec::new();
        };
        // Until a walk of this file has fetched ahead, a walk may start on what the mount's
        // walks did (walks through units already held, such as the coordinates fetched with
        // the plan, do not count).
        let first_walk = !walks.read_ahead;
        let w = &mut walks.list[i];
        w.used = reads;
        if let Step::MovedOn(dir) = step {
            if w.dir == Dir::Unknown {
                w.dir = dir;
                if dir == Dir::Backward {
                    w.start = units[w.hi].end;
                    w.ahead = usize::MAX;
                }
            }
            w.advances += 1;
            // A walk starts after WALK_START moves; the file's first one after one move when
            // the mount has read a walk ahead (the reader walks the next file of a folder as
            // it walked the one before).
            let starts = w.advances >= WALK_START || (first_walk && self.budget.walked_before());
            if w.stream.is_none() && starts {
                w.stream = Some(self.budget.stream());
                let walked = w.went(&read);
                w.window = if first_walk {
                    self.budget.walk_start(walked)
                } else {
                    walked
                };
            } else if w.stream.is_some() {
                w.window = w.window.saturating_mul(2);
            }
            w.window = w.window.min(self.budget.stream_window());
        }
        let went = w.went(&read);
        // Only walks that fetched ahead teach the mount how far walks go.
        if w.fetched {
            self.budget.walk_reached(went);
        }
        (w.lo, w.hi) = (first, last);
        if w.stream.is_none() {
            return Vec::new();
        }
        let (from, to) = if w.dir == Dir::Backward {
            let until = read.start.saturating_sub(w.window);
            let from = units.partition_point(|u| u.end <= until);
            (from, first.min(w.ahead))
        } else {
            let from = w.ahead.max(touched.end);
            let until = (read.end + w.window).min(self.obj.size);
            (
                from,
                from + units[from..].partition_point(|u| u.start < until),
            )
        };
        if from >= to {
            return Vec::new();
        }
        // While units read ahead are still ahead of the reader, wait until half a window can be
        // asked for at once: otherwise a full window advances one unit per GET.
        let span = units[to - 1].end - units[from].start;
        let (still_ahead, at_edge) = match w.dir {
            Dir::Backward => (to < first, from == 0),
            _ => (from > touched.end, to == units.len()),
        };
        if still_ahead && span < w.window / 2 && !at_edge {
            return Vec::new();
        }
        w.ahead = if w.dir == Dir::Backward { from } else { to };
        let first_fetch = !walks.read_ahead;
        let max_run = MAX_RUN_BLOCKS * BLOCK_SIZE;
        let mut runs: Vec<Range<usize>> = Vec::new();
        for i in from..to {
            if self.cache.holds_extent(&self.obj, &units[i]) {
                continue;
            }
            match runs.last_mut() {
                Some(r)
                    if r.end == i
                        && units[i - 1].end == units[i].start
                        && units[i].end - units[r.start].start <= max_run =>
                {
                    r.end = i + 1
                }
                _ => runs.push(i..i + 1),
            }
        }
        if !runs.is_empty() && !walks.list[i].fetched {
            walks.list[i].fetched = true;
            if first_fetch {
                walks.read_ahead = true;
                self.budget.walk_fetched();
            }
            self.budget.walk_reached(went);
        }
        runs
    }

    /// Fetches the adjacent units `run` ahead of the reader with one GET, under the prefetch
    /// budget.
    fn spawn_unit_run(&self, units: &[Range<u64>], run: Range<usize>) {
        let (first_index, end_index) = (run.start, run.end);
        let units = &units[run];
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return;
        };
        let blocks = (last.end - first.start).div_ceil(BLOCK_SIZE).max(1);
        let Ok(permit) = self
            .budget
            .permits
            .clone()
            .try_acquire_many_owned(blocks.min(u32::MAX as u64) as u32)
        else {
            Metrics::inc(&self.metrics.prefetch_skipped);
            // Let a later read try again from these units.
            for w in &mut self.walks.lock().list {
                match w.dir {
                    Dir::Backward => w.ahead = w.ahead.max(end_index),
                    _ => w.ahead = w.ahead.min(first_index),
                }
            }
            return;
        };
        Metrics::inc(&self.metrics.prefetch_requests);
        let run = self.cache.start_extent_run(&self.obj, units);
        let (key, span) = (self.obj.key.clone(), first.start..last.end);
        tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::debug!(%key, ?span, error = %e, "read-ahead of units failed");
            }
            drop(permit);
        });
    }

    fn spawn_prefetch(&self, first: u64, count: u64) {
        let Ok(permit) = self
            .budget
            .permits
            .clone()
            .try_acquire_many_owned(count as u32)
        else {
            Metrics::inc(&self.metrics.prefetch_skipped);
            // Let a later read try again for these blocks.
            let mut st = self.state.lock();
            st.prefetched_until = st.prefetched_until.min(first);
            return;
        };
        Metrics::inc(&self.metrics.prefetch_requests);
        let run = self.cache.start_run(&self.obj, first, count);
        let key = self.obj.key.clone();
        tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::debug!(%key, first, count, error = %e, "prefetch failed");
            }
            drop(permit);
        });
    }
}

/// Bytes `range` of `obj` served from planned units, as after a seek (never short).
pub async fn read_units(
    cache: &BlockCache,
    obj: &ObjectRef,
    units: &[Range<u64>],
    range: Range<u64>,
) -> Result<Rope, FsError> {
    read_planned(cache, obj, units, range, Access::Seek).await
}

/// Bytes `range` of `obj` served from planned `units` (see the module doc). With
/// [`Access::Continue`] the result may be shorter than asked (never empty unless `range` is).
/// A read the units do not cover falls back to blocks.
pub async fn read_planned(
    cache: &BlockCache,
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
        return cache.read(obj, r).await;
    }
    // Per touched unit: the bytes held (from where), once known.
    let mut got: Vec<Option<(u64, Rope)>> = Vec::with_capacity(touched.len());
    for u in touched {
        got.push(cache.extent(obj, u).await.map(|b| (u.start, b)));
    }
    let whole = access == Access::Whole;
    let grazed_head = |r: &Range<u64>, u: &Range<u64>| !whole && r.start < u.start && r.end < u.end;
    // A continuing read that would end in the head of a unit not held stops before it.
    if let ([.., _, last], [.., None]) = (touched, got.as_slice())
        && access == Access::Continue
        && grazed_head(&r, last)
    {
        let held = cache.extent_head(obj, last).await;
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
    // What to fetch per missing unit, after any head held.
    let mut missing: Vec<(usize, Missing)> = Vec::with_capacity(touched.len());
    for (k, u) in touched.iter().enumerate() {
        if got[k].is_some() {
            continue;
        }
        let head = cache.extent_head(obj, u).await;
        let have = head.as_ref().map_or(0, |h| h.len() as u64);
        let (want, head) = if grazed_tail(u, have) {
            got[k] = cache.extent_tail(obj, u, r.start).await;
            (r.start..u.end, None)
        } else if grazed_head(&r, u) && u.start + have >= r.end {
            got[k] = head.map(|h| (u.start, h));
            continue;
        } else if grazed_head(&r, u) && !seek_into_next {
            (u.start + have..r.end, head)
        } else {
            (u.start + have..u.end, head)
        };
        if got[k].is_none() {
            let extent = u.clone();
            missing.push((k, Missing { extent, want, head }));
        }
    }
    let (slots, missing): (Vec<usize>, Vec<Missing>) = missing.into_iter().unzip();
    for (k, b) in slots
        .into_iter()
        .zip(cache.fetch_extents(obj, missing).await?)
    {
        got[k] = Some(b);
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

/// Bytes `range` of `obj` from aligned pieces of `piece` bytes (a small random read): the
/// pieces it touches are fetched with one GET and kept, so the reader's next read nearby and a
/// later pass are served without a request. Blocks already held serve it as they are.
pub async fn read_pieces(
    cache: &BlockCache,
    obj: &ObjectRef,
    range: Range<u64>,
    piece: u64,
) -> Result<Rope, FsError> {
    let end = range.end.min(obj.size);
    if range.start >= end {
        return Ok(Rope::default());
    }
    let blocks = range.start / BLOCK_SIZE..=(end - 1) / BLOCK_SIZE;
    if piece == 0 || blocks.clone().all(|b| cache.contains(obj, b)) {
        return cache.read(obj, range.start..end).await;
    }
    let first = range.start / piece * piece;
    let pieces: Vec<Range<u64>> = (first..end)
        .step_by(piece as usize)
        .map(|s| s..(s + piece).min(obj.size))
        .collect();
    read_planned(cache, obj, &pieces, range.start..end, Access::Whole).await
}
