//! Per-open-file read policy. A reader that keeps reading forward (small skips and slightly
//! out-of-order kernel readahead tolerated) gets a prefetch window that doubles at each new block
//! up to a cap; prefetch is issued as parallel multi-block GETs. A jump resets the window, and
//! the read after it is served from aligned pieces sized from the reader's random reads
//! (`learned_piece`), not whole blocks. Prefetch takes permits from a shared budget, so
//! in-flight prefetch memory stays bounded. A planned file (units from `crate::plan`) is read
//! by its units instead, with the graze rules of `crate::cache::block` (`units`).

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::cache::block::{Access, BLOCK_SIZE, BlockCache, ObjectRef};
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

/// Smallest piece a random read is served from.
pub const MIN_PIECE: u64 = 16 << 10;

/// The piece size for a random read of `len` bytes after pieces of `prev`: a quarter of the
/// read rounded up to a power of two, so an unaligned read fetches at most a quarter more than
/// it asks; never below [`MIN_PIECE`] (so nearby small reads share a piece) nor below half the
/// previous size (one odd small read does not undo what the reader's usual size taught). At
/// least [`BLOCK_SIZE`] means blocks.
fn learned_piece(prev: u64, len: u64) -> u64 {
    (len.div_ceil(4).next_power_of_two())
        .max(MIN_PIECE)
        .max(prev / 2)
        .min(BLOCK_SIZE)
}

#[derive(Debug, Default)]
struct SeqState {
    /// Furthest byte read so far + 1.
    frontier: u64,
    window: u64,
    /// Blocks below this index have been requested by prefetch.
    prefetched_until: u64,
    last_block: Option<u64>,
    /// Size of the pieces a random read is served from, learned from the reader's random
    /// reads (0 before the first).
    piece: u64,
}

/// Shared by all readers of a mount: the prefetch budget in blocks.
#[derive(Debug, Clone)]
pub struct PrefetchBudget {
    permits: Arc<Semaphore>,
    pub max_window: u64,
}

impl PrefetchBudget {
    /// At most `inflight_bytes` of prefetch on the way at once (whole runs, so at least one).
    pub fn new(inflight_bytes: u64) -> Self {
        let blocks = (inflight_bytes / BLOCK_SIZE).max(MAX_RUN_BLOCKS);
        Self {
            permits: Arc::new(Semaphore::new(blocks as usize)),
            max_window: MAX_WINDOW.min(inflight_bytes.max(BLOCK_SIZE)),
        }
    }

    /// Splits a memory budget: a fifth for prefetch in flight, the rest for the block cache, so
    /// the two together stay within it. Returns the budget and the block cache's share.
    pub fn split(memory_bytes: u64) -> (Self, u64) {
        let inflight = memory_bytes / 5;
        (Self::new(inflight), memory_bytes - inflight)
    }
}

#[derive(Debug)]
pub struct FileReader {
    obj: ObjectRef,
    cache: BlockCache,
    budget: PrefetchBudget,
    metrics: Arc<Metrics>,
    state: Mutex<SeqState>,
    /// End and asked length of the previous read of a planned file.
    planned_prev: Mutex<(u64, u32)>,
    /// Planned units (e.g. GRIB2 messages): reads fetch the units they touch, whole, and
    /// nothing else (no window prefetch).
    units: Option<Arc<Vec<std::ops::Range<u64>>>>,
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
        }
    }

    /// Serves reads from these planned units instead of blocks and prefetch windows.
    pub fn with_units(mut self, units: Option<Arc<Vec<std::ops::Range<u64>>>>) -> Self {
        self.units = units;
        self
    }

    pub fn object(&self) -> &ObjectRef {
        &self.obj
    }

    pub async fn read(&self, offset: u64, len: u32) -> Result<Rope, FsError> {
        let end = (offset + len as u64).min(self.obj.size);
        if offset >= end {
            return Ok(Rope::default());
        }
        Metrics::inc(&self.metrics.fuse_reads);
        if let Some(units) = &self.units {
            let (prev_end, prev_len) =
                std::mem::replace(&mut *self.planned_prev.lock(), (u64::MAX, u32::MAX));
            // Only a buffer fill may be cut short: a small read (at most `CUT_MAX`) continuing
            // a previous read that ended where it starts and was shorter than the kernel's
            // request size (so it ended its read(2): the kernel cuts a larger read(2) into
            // requests of `MAX_READ`).
            let access = if prev_end == offset && prev_len < MAX_READ && len <= CUT_MAX {
                Access::Continue
            } else {
                Access::Seek
            };
            let data = self
                .cache
                .read_planned(&self.obj, units, offset..end, access)
                .await?;
            *self.planned_prev.lock() = (offset + data.len() as u64, len);
            Metrics::add(&self.metrics.bytes_read, data.len() as u64);
            return Ok(data);
        }
        let (runs, piece) = self.plan_prefetch(offset, end);
        for (first, count) in runs {
            self.spawn_prefetch(first, count);
        }
        let data = match piece {
            Some(piece) => {
                self.cache
                    .read_pieces(&self.obj, offset..end, piece)
                    .await?
            }
            None => self.cache.read(&self.obj, offset..end).await?,
        };
        Metrics::add(&self.metrics.bytes_read, data.len() as u64);
        Ok(data)
    }

    /// Updates the sequential state for a read of `offset..end` and returns the block runs to
    /// prefetch (first block, count), and for a random read the piece size to serve it from.
    fn plan_prefetch(&self, offset: u64, end: u64) -> (Vec<(u64, u64)>, Option<u64>) {
        let mut st = self.state.lock();
        let sequential =
            offset + MAX_BACKWARD >= st.frontier && offset <= st.frontier + MAX_FORWARD_SKIP;
        let block = offset / BLOCK_SIZE;
        if sequential {
            if st.last_block.is_some_and(|b| block > b) {
                st.window = (st.window * 2).min(self.budget.max_window);
            }
        } else {
            st.window = INITIAL_WINDOW;
            st.prefetched_until = 0;
        }
        st.last_block = Some(block);
        st.frontier = st.frontier.max(end);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metered::Metered;
    use crate::store::object::{Lister, ObjectBackend};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    async fn reader(len: u64) -> (FileReader, Vec<u8>, Arc<Metrics>) {
        reader_with_cache(len, 512 << 20).await
    }

    async fn reader_with_cache(len: u64, cache_bytes: u64) -> (FileReader, Vec<u8>, Arc<Metrics>) {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mem = Arc::new(InMemory::new());
        let r = mem
            .put(&Path::from("f"), PutPayload::from(data.clone()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let backend = Arc::new(Metered::new(
            ObjectBackend::new(mem, String::new(), Lister::Generic),
            metrics.clone(),
            Duration::from_secs(5),
        ));
        let cache = BlockCache::new(backend, metrics.clone(), cache_bytes);
        let obj = ObjectRef {
            key: "f".into(),
            etag: r.e_tag.map(Into::into),
            size: len,
        };
        let rd = FileReader::new(
            obj,
            cache,
            PrefetchBudget::new(cache_bytes / 4),
            metrics.clone(),
        );
        (rd, data, metrics)
    }

    #[tokio::test]
    async fn sequential_reads_plan_growing_multi_block_runs() {
        let len = 200 * BLOCK_SIZE;
        let (rd, _, _) = reader(len).await;
        let mut planned: Vec<(u64, u64)> = Vec::new();
        let mut off = 0;
        while off < 100 * BLOCK_SIZE {
            planned.extend(rd.plan_prefetch(off, off + 128 * 1024).0);
            off += 128 * 1024;
        }
        assert_eq!(rd.state.lock().window, MAX_WINDOW);
        // Runs are contiguous, never overlap, never exceed the run cap, and start right after
        // the first read.
        assert_eq!(planned[0].0, 1);
        for w in planned.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0, "runs {w:?} leave a gap or overlap");
        }
        assert!(
            planned
                .iter()
                .all(|&(_, n)| (1..=MAX_RUN_BLOCKS).contains(&n))
        );
        assert!(
            planned
                .iter()
                .filter(|&&(_, n)| n == MAX_RUN_BLOCKS)
                .count()
                > 10
        );
        // Prefetch runs ahead of the reader by the window, less at most one run still batching.
        let (first, n) = *planned.last().unwrap();
        let target = (100 * BLOCK_SIZE + MAX_WINDOW) / BLOCK_SIZE;
        assert!(
            (target - MAX_RUN_BLOCKS..=target).contains(&(first + n)),
            "{first}+{n}"
        );
    }

    // Prefetch runs as spawned tasks, as in the daemon's multi-threaded runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sequential_reads_return_the_source_bytes_with_prefetch() {
        let len = 40 * BLOCK_SIZE;
        let (rd, data, metrics) = reader(len).await;
        let mut off = 0;
        while off < len {
            let got = rd.read(off, 128 * 1024).await.unwrap().to_bytes();
            assert_eq!(&got[..], &data[off as usize..off as usize + got.len()]);
            off += got.len() as u64;
        }
        assert!(metrics.prefetch_requests.load(Relaxed) > 0);
    }

    #[tokio::test]
    async fn small_forward_skips_keep_the_window_and_jumps_reset_it() {
        let (rd, _, _) = reader(100 * BLOCK_SIZE).await;
        for i in 0..6 {
            rd.read(i * BLOCK_SIZE, 4096).await.unwrap().to_bytes();
        }
        let grown = rd.state.lock().window;
        assert!(grown > INITIAL_WINDOW);
        rd.read(6 * BLOCK_SIZE + 300_000, 4096)
            .await
            .unwrap()
            .to_bytes();
        assert!(
            rd.state.lock().window >= grown,
            "a small skip must not reset"
        );
        rd.read(90 * BLOCK_SIZE, 4096).await.unwrap().to_bytes();
        assert_eq!(rd.state.lock().window, INITIAL_WINDOW);
    }

    #[tokio::test]
    async fn random_reads_fetch_only_pieces_around_them() {
        let (rd, data, metrics) = reader(50 * BLOCK_SIZE).await;
        for off in [30 * BLOCK_SIZE + 7, 10 * BLOCK_SIZE + 99, 45 * BLOCK_SIZE] {
            let got = rd.read(off, 4096).await.unwrap().to_bytes();
            assert_eq!(&got[..], &data[off as usize..off as usize + 4096]);
        }
        assert_eq!(metrics.prefetch_requests.load(Relaxed), 0);
        assert_eq!(metrics.bytes_fetched.load(Relaxed), 3 * MIN_PIECE);
        // 256 KiB reads: 64 KiB pieces, so an unaligned read fetches five.
        let off = 20 * BLOCK_SIZE + 1000;
        let got = rd.read(off, 256 << 10).await.unwrap().to_bytes();
        assert_eq!(&got[..], &data[off as usize..off as usize + (256 << 10)]);
        assert_eq!(
            metrics.bytes_fetched.load(Relaxed),
            3 * MIN_PIECE + 5 * (64 << 10)
        );
    }

    #[tokio::test]
    async fn only_whole_small_continuing_reads_of_planned_units_are_cut_short() {
        let (rd, data, _) = reader(3 * BLOCK_SIZE).await;
        let b = BLOCK_SIZE;
        let rd = rd.with_units(Some(Arc::new(vec![0..b, b..2 * b, 2 * b..3 * b])));
        let read = |off: u64, len: u32| {
            let rd = &rd;
            async move { rd.read(off, len).await.unwrap().to_bytes() }
        };
        // A read after a seek, from unit 0's tail into unit 1's head: served whole.
        assert_eq!(read(b - 16_384, 8192).await.len(), 8192);
        let got = read(b - 4096, 8192).await;
        assert_eq!(&got[..], &data[b as usize - 4096..b as usize + 4096]);
        // A stdio-like reader's next fill, running into unit 2's head: cut at unit 2.
        let at = 2 * b - 4096;
        read(at - 8192, 8192).await;
        let got = read(at, 8192).await;
        assert_eq!(&got[..], &data[at as usize..2 * b as usize]);
        // A read continuing one of the kernel's full request size may be the rest of the same
        // read(2): never cut.
        let (rd2, _, _) = reader(3 * BLOCK_SIZE).await;
        let rd2 = rd2.with_units(Some(Arc::new(vec![0..2 * b, 2 * b..3 * b])));
        rd2.read(2 * b - 4096 - MAX_READ as u64, MAX_READ)
            .await
            .unwrap();
        let got = rd2.read(2 * b - 4096, 8192).await.unwrap();
        assert_eq!(got.len(), 8192);
    }

    #[test]
    fn piece_sizes_follow_the_readers_random_read_sizes() {
        assert_eq!(learned_piece(0, 4096), MIN_PIECE);
        assert_eq!(learned_piece(0, 64 << 10), MIN_PIECE);
        assert_eq!(learned_piece(0, 1 << 20), 256 << 10);
        assert_eq!(learned_piece(0, 8 << 20), BLOCK_SIZE);
        // One small read after large ones halves the piece, not more.
        assert_eq!(learned_piece(256 << 10, 4096), 128 << 10);
    }

    /// A stream eight times the cache budget is fetched exactly once: prefetched blocks are
    /// admitted and kept until read, never dropped and fetched again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_longer_than_the_cache_is_fetched_once() {
        let cache_bytes = 16 * BLOCK_SIZE;
        let len = 8 * cache_bytes;
        let (rd, data, metrics) = reader_with_cache(len, cache_bytes).await;
        // Like the kernel: a short first read, then 1 MiB reads that straddle two blocks, so
        // every resident block is read twice (which TinyLFU admission would favour over new ones).
        let mut off = 0;
        let mut size = 128 * 1024;
        while off < len {
            let got = rd.read(off, size).await.unwrap().to_bytes();
            assert_eq!(&got[..], &data[off as usize..off as usize + got.len()]);
            off += got.len() as u64;
            size = 1 << 20;
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.bytes_fetched.load(Relaxed), len);
    }
}
