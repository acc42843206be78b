use super::*;

fn read(rel: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn air() -> Vec<u8> {
    read("tests/data/netcdf/air.nc")
}

/// What h5py reports of air.nc's variables (all contiguous), in file order: `get_offset()` to
/// `get_offset() + get_storage_size()` (written by tests/data/make.py).
fn air_storage() -> Vec<Range<u64>> {
    let text = String::from_utf8(read("tests/data/netcdf/air.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["storage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let start = s["offset"].as_u64().unwrap();
            start..start + s["size"].as_u64().unwrap()
        })
        .collect()
}

/// Count, sum of offsets and sum of sizes of the storage ranges.
fn summary(s: &[Range<u64>]) -> (usize, u64, u64) {
    (
        s.len(),
        s.iter().map(|r| r.start).sum(),
        s.iter().map(|r| r.end - r.start).sum(),
    )
}

#[test]
fn air_nc_storage_is_what_h5py_reports() {
    let file = air();
    let (w, rounds) = walk_bytes(&file, 64 << 10).unwrap();
    // lat, lon, time, air.
    let want = air_storage();
    assert_eq!(want.len(), 4);
    assert_eq!(w.storage(), want);
    // The metadata lies in the first 64 KiB: no more reads.
    assert_eq!(rounds, 0);
    let units = w.units().unwrap();
    assert_eq!(units[0].start, 0);
    assert!(units.windows(2).all(|p| p[0].end == p[1].start));
    assert_eq!(units.last().unwrap().end, file.len() as u64);
    for r in &want {
        assert_eq!(plan_touched(&units, r), vec![r.clone()]);
    }
}

fn plan_touched(units: &[Range<u64>], r: &Range<u64>) -> Vec<Range<u64>> {
    units[crate::formats::touched(units, r.clone())].to_vec()
}

#[test]
fn a_small_first_read_asks_for_the_rest_in_few_rounds() {
    let file = air();
    let (w, rounds) = walk_bytes(&file, 512).unwrap();
    assert_eq!(w.storage().len(), 4);
    assert!(rounds <= 3, "{rounds} rounds");
}

#[test]
fn btree_v1_chunks_are_what_h5py_reports() {
    // tests/py/hdf5_fixtures.py prints, from h5py's `get_chunk_info` over every chunk (and
    // `get_offset`/`get_storage_size` of the contiguous dataset): 145 ranges, offsets summing
    // to 1,446,201 and sizes to 3,463.
    let file = read("tests/data/hdf5/btree1.h5");
    let (w, rounds) = walk_bytes(&file, 64 << 10).unwrap();
    assert_eq!(summary(&w.storage()), (145, 1_446_201, 3_463));
    assert_eq!(rounds, 0);
    // Asked for piece by piece, the walk still ends, one level per round.
    let (w, rounds) = walk_bytes(&file, 64).unwrap();
    assert_eq!(summary(&w.storage()), (145, 1_446_201, 3_463));
    assert!(rounds <= 8, "{rounds} rounds");
}

#[test]
fn layout_v4_indexes_are_what_h5py_reports() {
    // As above, for the libver="latest" file: fixed array (plain and paged), extensible
    // array with a super block, B-tree v2, single chunk, compact: 1,654 chunks, offsets
    // summing to 28,471,319 and stored sizes to 12,219.
    let file = read("tests/data/hdf5/latest.h5");
    let (w, _) = walk_bytes(&file, 64 << 10).unwrap();
    assert_eq!(summary(&w.storage()), (1654, 28_471_319, 12_219));
    let (w, rounds) = walk_bytes(&file, 600).unwrap();
    assert_eq!(summary(&w.storage()), (1654, 28_471_319, 12_219));
    assert!(rounds <= 8, "{rounds} rounds");
    let units = w.units().unwrap();
    for r in w.storage() {
        assert_eq!(plan_touched(&units, &r), vec![r.clone()]);
    }
}

#[test]
fn not_hdf5_and_truncated_files_get_no_plan() {
    let e = walk_bytes(b"CDF\x01 not netcdf-4", 64)
        .err()
        .expect("refused");
    assert_eq!(e.format(), crate::error::Format::Hdf5);
    assert_eq!(
        e.to_string(),
        "unreadable HDF5 superblock: no HDF5 signature"
    );
    assert!(walk_bytes(&[], 64).is_err());
    let file = air();
    for cut in [8, 40, 100, 1000, 5000, 6000] {
        assert!(walk_bytes(&file[..cut], 64 << 10).is_err(), "cut at {cut}");
    }
}

#[test]
fn flipped_and_random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for name in [
        "tests/data/netcdf/air.nc",
        "tests/data/hdf5/btree1.h5",
        "tests/data/hdf5/latest.h5",
        "tests/data/hdf5/dense.nc",
    ] {
        let good = read(name);
        // Flips land in the metadata (the first 6 KiB of these files hold most of it).
        for n in 0..400 {
            let mut f = good.clone();
            for _ in 0..1 + n % 4 {
                let at = rng.random_range(0..f.len().min(6 << 10));
                f[at] ^= 1 << rng.random_range(0..8);
            }
            let cut = if n % 5 == 0 {
                rng.random_range(0..f.len())
            } else {
                f.len()
            };
            if let Ok((w, _)) = walk_bytes(&f[..cut], 1 << (6 + n % 12)) {
                let _ = w.units();
            }
        }
    }
    for n in 0..300 {
        let mut f = vec![0u8; 64 + n * 7];
        rng.fill(&mut f[..]);
        f[..8].copy_from_slice(SIGNATURE);
        f[8] = (n % 4) as u8;
        let _ = walk_bytes(&f, 4096);
    }
}

#[test]
fn units_keep_each_chunk_whole_even_where_a_metadata_read_ends_inside_it() {
    let mut w = Walker::new(1000);
    w.storage = vec![100..200, 300..400];
    w.fetched = vec![0..150, 350..420];
    assert_eq!(
        w.units().unwrap(),
        vec![0..100, 100..200, 200..300, 300..400, 400..420, 420..1000]
    );
}

#[test]
fn a_long_stretch_between_chunks_is_cut_into_pieces() {
    let mut w = Walker::new(20 << 20);
    w.storage = vec![100..200, (10 << 20)..(19 << 20)];
    let u = w.units().unwrap();
    assert_eq!(u[1], 100..200);
    assert_eq!(u[2], 200..200 + CONTIGUOUS_PIECE);
    assert!(u.contains(&((10 << 20)..(19 << 20))), "{u:?}");
    assert!(
        u.iter()
            .all(|r| r.end - r.start <= CONTIGUOUS_PIECE || r.start == 10 << 20)
    );
    assert!(u.windows(2).all(|p| p[0].end == p[1].start));
    assert_eq!(u.last().unwrap().end, 20 << 20);
}

#[test]
fn dense_links_in_a_fractal_heap_are_followed() {
    // tests/py/hdf5_fixtures.py, from h5py: the 12 variables' chunks and the 2 coordinates of
    // dense.nc (14 links, more than the 8 kept in the header): 50 ranges, offsets summing to
    // 1,028,047 and sizes to 3,716.
    let file = read("tests/data/hdf5/dense.nc");
    let (w, _) = walk_bytes(&file, 64 << 10).unwrap();
    assert_eq!(summary(&w.storage()), (50, 1_028_047, 3_716));
    let (w, rounds) = walk_bytes(&file, 512).unwrap();
    assert_eq!(summary(&w.storage()), (50, 1_028_047, 3_716));
    assert!(rounds <= 6, "{rounds} rounds");
}

#[test]
fn small_datasets_are_offered_once_unless_already_fetched() {
    let file = air();
    let want = air_storage();
    // Only the metadata block fed: all four variables (each under 64 KiB) are offered.
    let (mut w, _) = walk_bytes(&file, 20_480).unwrap();
    assert_eq!(w.take_small(), want);
    assert_eq!(w.take_small(), vec![], "offered once");
    // The first 64 KiB fed: lat, lon and time are held; air runs past them.
    let (mut w, _) = walk_bytes(&file, 64 << 10).unwrap();
    assert_eq!(w.take_small(), vec![want[3].clone()]);
}

#[test]
fn small_datasets_offered_stay_within_their_byte_bound() {
    let mut w = Walker::new(1 << 30);
    w.small = (0..64)
        .map(|i| i * SMALL_DATASET..(i + 1) * SMALL_DATASET)
        .collect();
    let offered = w.take_small();
    let bytes: u64 = offered.iter().map(|r| r.end - r.start).sum();
    assert_eq!(bytes, SMALL_TOTAL);
    let last = 1 << 29;
    w.small.push(last..last + 1);
    assert_eq!(w.take_small(), vec![], "the file's bound is spent");
}

/// Found by fuzzing (fuzz target `hdf5_describe`): a truncated file whose metadata is whole
/// described variables stored past its end. Such a file is refused, as the walk refuses it.
#[test]
fn a_description_of_storage_past_the_end_of_the_file_is_an_error() {
    let file = air();
    let whole = describe::describe(
        std::sync::Arc::new(hdf5_reader::storage::BytesStorage::new(file.clone())),
        0,
    );
    assert!(whole.is_ok());
    let cut = file[..61583].to_vec();
    let e = describe::describe(
        std::sync::Arc::new(hdf5_reader::storage::BytesStorage::new(cut)),
        0,
    );
    assert!(e.is_err(), "{e:?}");
}

/// Found by fuzzing (fuzz target `hdf5_walk`, out of memory at 512 MB under AddressSanitizer):
/// a 1667-byte file whose object header continuation blocks name themselves, many times each,
/// so the walk ran its million-structure bound (seconds, hundreds of MB) before refusing. Each
/// continuation block is parsed once: the walk's work is bounded by what the file holds.
#[test]
fn continuation_blocks_that_name_themselves_are_parsed_once() {
    let file = read("src/formats/hdf5/testdata/fuzz_walk_oom.h5");
    let mut w = Walker::new(file.len() as u64);
    w.feed(0, &file);
    while let Step::Need(ranges) = w.step() {
        for r in ranges {
            w.feed(r.start, &file[r.start as usize..r.end as usize]);
        }
    }
    assert!(
        w.tasks_run <= file.len(),
        "{} structures parsed in a {}-byte file",
        w.tasks_run,
        file.len()
    );
}
