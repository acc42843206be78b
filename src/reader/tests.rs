//! Tests of the per-file read policy over object_store's in-memory store, counted by the
//! metered wrapper: the prefetch window, random-read pieces, planned units and graze rules.

use super::file::*;
use super::*;
use crate::cache::block::testing::setup;
use crate::config::MAX_READ;
use crate::rope::Rope;
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
    reader_with(len, cache_bytes, PrefetchBudget::new(cache_bytes / 4)).await
}

/// A reader of an object of its own, in a cache of its own, drawing on `budget`.
async fn reader_with(
    len: u64,
    cache_bytes: u64,
    budget: PrefetchBudget,
) -> (FileReader, Vec<u8>, Arc<Metrics>) {
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
    let rd = FileReader::new(obj, cache, budget, metrics.clone());
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

#[tokio::test]
async fn planned_units_are_fetched_whole_and_grazed_ones_only_in_part() {
    let len = 300_000usize;
    let (cache, obj, data, metrics) = setup(len).await;
    let units = vec![0..100_000, 100_000..200_000, 200_000..300_000];
    let fetched = || metrics.bytes_fetched.load(Relaxed);
    let gets = || metrics.get_requests.load(Relaxed);
    // A read covering unit 1 and grazing unit 2's head: unit 1 whole, that head only.
    let got = read_units(&cache, &obj, &units, 100_000..205_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[100_000..205_000]);
    assert_eq!((fetched(), gets()), (105_000, 1));
    // A read inside unit 2 fetches the rest of it (its head is kept), and then it is cached.
    let got = read_units(&cache, &obj, &units, 205_000..210_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[205_000..210_000]);
    assert_eq!((fetched(), gets()), (200_000, 2));
    let got = read_units(&cache, &obj, &units, 150_000..300_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[150_000..300_000]);
    assert_eq!(gets(), 2);
    // A read starting in unit 0's tail and covering unit 1: that tail only, then kept.
    let got = read_units(&cache, &obj, &units, 99_000..200_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[99_000..200_000]);
    assert_eq!((fetched(), gets()), (201_000, 3));
    let got = read_units(&cache, &obj, &units, 99_500..150_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[99_500..150_000]);
    assert_eq!(gets(), 3, "a kept tail serves a later read of it");
}

#[tokio::test]
async fn a_buffered_readers_grazes_cost_no_extra_request() {
    // GDAL through stdio: a seek aligned down into the previous tile's tail, the tile, and
    // a continuation that runs into the next tile's head.
    let (cache, obj, data, metrics) = setup(300_000).await;
    let units = vec![0..100_000, 100_000..200_000, 200_000..300_000];
    let gets = || metrics.get_requests.load(Relaxed);
    let fetched = || metrics.bytes_fetched.load(Relaxed);
    // After a seek, from unit 0's tail into unit 1's head: unit 1 is fetched whole.
    let got = read_planned(&cache, &obj, &units, 98_304..106_496, Access::Seek)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[98_304..106_496]);
    assert_eq!((gets(), fetched()), (1, 101_696));
    let got = read_planned(&cache, &obj, &units, 106_496..196_608, Access::Continue)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[106_496..196_608]);
    // Continuing into unit 2's head: cut short at unit 2, no request.
    let got = read_planned(&cache, &obj, &units, 196_608..204_800, Access::Continue)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[196_608..200_000]);
    assert_eq!(gets(), 1);
    // The reader goes on from there: unit 2 whole.
    let got = read_planned(&cache, &obj, &units, 200_000..204_800, Access::Continue)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[200_000..204_800]);
    assert_eq!((gets(), fetched()), (2, 201_696));
    // The same reads again (a warm pass) need nothing, and are not cut short.
    let got = read_planned(&cache, &obj, &units, 196_608..204_800, Access::Continue)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[196_608..204_800]);
    let got = read_planned(&cache, &obj, &units, 98_304..106_496, Access::Seek)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[98_304..106_496]);
    assert_eq!(gets(), 2);
}

#[tokio::test]
async fn small_random_reads_fetch_aligned_pieces_and_keep_them() {
    let len = 4 * BLOCK_SIZE as usize;
    let (cache, obj, data, metrics) = setup(len).await;
    let fetched = || metrics.bytes_fetched.load(Relaxed);
    let at = BLOCK_SIZE + 70_000;
    let got = read_pieces(&cache, &obj, at..at + 4_096, 16_384)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[at as usize..at as usize + 4_096]);
    assert_eq!(fetched(), 16_384);
    // Straddling two pieces: the held one serves, the other is fetched.
    let got = read_pieces(&cache, &obj, at + 10_000..at + 16_000, 16_384)
        .await
        .unwrap();
    assert_eq!(
        &got.to_bytes()[..],
        &data[at as usize + 10_000..at as usize + 16_000]
    );
    assert_eq!(fetched(), 2 * 16_384);
    assert_eq!(metrics.get_requests.load(Relaxed), 2);
    // Held blocks serve as they are.
    cache.read(&obj, 0..10).await.unwrap();
    let got = read_pieces(&cache, &obj, 500..600, 16_384).await.unwrap();
    assert_eq!(&got.to_bytes()[..], &data[500..600]);
    assert_eq!(metrics.get_requests.load(Relaxed), 3);
}

#[tokio::test]
async fn a_read_just_past_a_units_start_fetches_it_whole_and_a_parsed_prefix_serves_heads() {
    let (cache, obj, data, metrics) = setup(300_000).await;
    let units = vec![0..1_000, 1_000..100_000, 100_000..200_000, 200_000..300_000];
    let gets = || metrics.get_requests.load(Relaxed);
    // The prefix 0..20_000 holds unit 0 whole and unit 1's head.
    let prefix = Rope::from(data[..20_000].to_vec());
    cache.insert_extents(&obj, &units, 0, &prefix).await;
    // A buffered reader's first read: served from the prefix, no request.
    let got = read_units(&cache, &obj, &units, 0..16_384).await.unwrap();
    assert_eq!(&got.to_bytes()[..], &data[..16_384]);
    assert_eq!(gets(), 0);
    // A tile read after its 4-byte size leader, running into the next unit: unit 2 whole
    // (one GET with unit 3's head), then cached.
    let got = read_units(&cache, &obj, &units, 100_004..210_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[100_004..210_000]);
    assert_eq!(gets(), 1);
    let got = read_units(&cache, &obj, &units, 100_000..200_000)
        .await
        .unwrap();
    assert_eq!(&got.to_bytes()[..], &data[100_000..200_000]);
    assert_eq!(gets(), 1);
}

/// A planned reader of `units` units of `unit` bytes each, read ahead when walked in order.
async fn walker(units: u64, unit: u64, read_ahead: bool) -> (FileReader, Vec<u8>, Arc<Metrics>) {
    let (rd, data, metrics) = reader(units * unit).await;
    let plan: Vec<Range<u64>> = (0..units).map(|i| i * unit..(i + 1) * unit).collect();
    let rd = rd
        .with_units(Some(Arc::new(plan)))
        .with_read_ahead(read_ahead);
    (rd, data, metrics)
}

/// Reads unit `i` of a [`walker`] whole and checks its bytes.
async fn read_unit(rd: &FileReader, data: &[u8], unit: u64, i: u64) {
    let got = rd.read(i * unit, unit as u32).await.unwrap().to_bytes();
    assert_eq!(
        &got[..],
        &data[(i * unit) as usize..((i + 1) * unit) as usize]
    );
}

#[tokio::test]
async fn a_walk_through_units_in_file_order_is_read_ahead_in_merged_gets() {
    let unit = 128 << 10;
    let (rd, data, metrics) = walker(64, unit, true).await;
    for i in 0..64 {
        read_unit(&rd, &data, unit, i).await;
    }
    // Every byte fetched once; the first WALK_START + 1 units one GET each, the rest in runs
    // of up to MAX_RUN_BLOCKS blocks (64 GETs without read-ahead).
    assert_eq!(metrics.bytes_fetched.load(Relaxed), 64 * unit);
    let gets = metrics.get_requests.load(Relaxed);
    assert!(gets <= 3 + 8, "{gets} GETs for 64 units walked in order");
    assert!(metrics.prefetch_requests.load(Relaxed) > 0);
}

#[tokio::test]
async fn units_are_not_read_ahead_without_a_walk_or_for_planners_that_do_not_ask() {
    let unit = 128 << 10;
    // One unit read in pieces, then a jump back: no walk, nothing fetched beyond what was read.
    let (rd, _, metrics) = walker(64, unit, true).await;
    for piece in 0..4 {
        rd.read(10 * unit + piece * (unit / 4), (unit / 4) as u32)
            .await
            .unwrap();
    }
    rd.read(2 * unit, 4096).await.unwrap();
    rd.read(3 * unit, 4096).await.unwrap();
    assert_eq!(metrics.prefetch_requests.load(Relaxed), 0);
    assert_eq!(metrics.bytes_fetched.load(Relaxed), 3 * unit);
    // A walk of a plan whose planner reads out of order (tiles): one GET per unit.
    let (rd, _, metrics) = walker(16, unit, false).await;
    for i in 0..16 {
        rd.read(i * unit, unit as u32).await.unwrap();
    }
    assert_eq!(metrics.get_requests.load(Relaxed), 16);
    assert_eq!(metrics.prefetch_requests.load(Relaxed), 0);
}

#[tokio::test]
async fn read_ahead_stays_within_the_prefetch_budget() {
    let unit = 1 << 20;
    // A budget of 8 blocks: at most 8 MiB read ahead at once, so later runs are skipped and
    // retried by later reads, and the walk still returns every byte right.
    let (rd, data, metrics) = reader_with_cache(48 * unit, 32 << 20).await;
    let plan: Vec<Range<u64>> = (0..48).map(|i| i * unit..(i + 1) * unit).collect();
    let rd = rd.with_units(Some(Arc::new(plan))).with_read_ahead(true);
    for i in 0..48 {
        let got = rd.read(i * unit, 1 << 16).await.unwrap().to_bytes();
        assert_eq!(
            &got[..],
            &data[(i * unit) as usize..(i * unit) as usize + (1 << 16)]
        );
    }
    assert_eq!(metrics.bytes_fetched.load(Relaxed), 48 * unit);
}

#[tokio::test]
async fn concurrent_sequential_readers_share_the_prefetch_budget_equally() {
    let len = 200 * BLOCK_SIZE;
    // A budget of 128 MiB in flight: one stream may take the whole 64 MiB window, four streams
    // 32 MiB each; a stream that ends gives its share back.
    let (a, _, _) = reader_with_cache(len, 512 << 20).await;
    let budget = a.budget().clone();
    let walk = |rd: &FileReader| {
        let mut off = 0;
        while off < 100 * BLOCK_SIZE {
            rd.plan_prefetch(off, off + (256 << 10));
            off += 256 << 10;
        }
    };
    walk(&a);
    assert_eq!(a.state.lock().window, MAX_WINDOW);
    let others: Vec<FileReader> = (0..3)
        .map(|_| {
            let (obj, cache, metrics) = (a.object().clone(), a.cache().clone(), a.metrics());
            FileReader::new(obj, cache, budget.clone(), metrics)
        })
        .collect();
    // Each stream's window follows its share as the others start.
    for rd in others.iter().chain([&a]) {
        walk(rd);
    }
    for rd in others.iter().chain([&a]) {
        rd.plan_prefetch(100 * BLOCK_SIZE, 100 * BLOCK_SIZE + 4096);
    }
    for rd in others.iter().chain([&a]) {
        assert_eq!(rd.state.lock().window, 32 << 20);
    }
    drop(others);
    assert_eq!(budget.stream_window(), MAX_WINDOW);
    // A jump ends the stream: its share goes back.
    a.plan_prefetch(0, 4096);
    assert_eq!(budget.stream_window(), MAX_WINDOW);
    assert_eq!(budget.streams(), 0);
}

#[tokio::test]
async fn a_walk_against_file_order_is_read_ahead_too() {
    let unit = 128 << 10;
    let (rd, data, metrics) = walker(64, unit, true).await;
    for i in (0..64).rev() {
        read_unit(&rd, &data, unit, i).await;
    }
    assert_eq!(metrics.bytes_fetched.load(Relaxed), 64 * unit);
    let gets = metrics.get_requests.load(Relaxed);
    assert!(
        gets <= 3 + 8,
        "{gets} GETs for 64 units walked back to front"
    );
}

#[tokio::test]
async fn interleaved_walks_through_one_handle_are_each_read_ahead() {
    let unit = 64 << 10;
    // Two readers of one handle take turns: one walks units 127 down to 64, the other 63 down
    // to 0 (two variables, or two threads of a dask worker).
    let (rd, data, metrics) = walker(128, unit, true).await;
    for k in 0..64 {
        for i in [127 - k, 63 - k] {
            read_unit(&rd, &data, unit, i).await;
        }
    }
    assert_eq!(metrics.bytes_fetched.load(Relaxed), 128 * unit);
    let gets = metrics.get_requests.load(Relaxed);
    assert!(
        gets <= 2 * (3 + 8),
        "{gets} GETs for two interleaved walks of 64 units"
    );
}

#[tokio::test]
async fn the_next_files_walk_starts_where_the_last_one_got() {
    let (units, unit) = (64, 128 << 10);
    // Two yearly files opened one after the other in one mount (one prefetch budget), each
    // walked back to front as open_mfdataset reads a point's series.
    let budget = PrefetchBudget::new(128 << 20);
    let mut gets = Vec::new();
    for _ in 0..2 {
        let (rd, data, metrics) = reader_with(units * unit, 512 << 20, budget.clone()).await;
        let plan: Vec<Range<u64>> = (0..units).map(|i| i * unit..(i + 1) * unit).collect();
        let rd = rd.with_units(Some(Arc::new(plan))).with_read_ahead(true);
        for i in (0..units).rev() {
            read_unit(&rd, &data, unit, i).await;
        }
        assert_eq!(metrics.bytes_fetched.load(Relaxed), units * unit);
        gets.push(metrics.get_requests.load(Relaxed));
    }
    // The first walk starts small and doubles; the second is seen at its second read and
    // fetches the other 62 units (7.75 MiB, within one run) with one GET.
    assert!(gets[0] > 4, "{gets:?}");
    assert_eq!(gets[1], 3, "{gets:?}");
}
