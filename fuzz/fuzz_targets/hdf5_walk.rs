//! The HDF5 planning walk (object headers, symbol tables, fractal heaps, chunk B-trees and
//! array indexes) over a whole file held in memory, fed the ranges it asks for.
//! Invariants: every range asked for lies in the file and was not fetched before; every
//! storage range lies in the file; the units tile the file from 0 to its end.
#![no_main]

use geomount::formats::hdf5::{FIRST_READ, Step, Walker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|file: &[u8]| {
    let size = file.len() as u64;
    let mut w = Walker::new(size);
    w.feed(0, &file[..file.len().min(FIRST_READ as usize)]);
    let mut fetched = Vec::new();
    fetched.push(0..size.min(FIRST_READ));
    loop {
        match w.step() {
            Step::Done => break,
            Step::Unsupported(_) => return,
            Step::Need(ranges) => {
                assert!(!ranges.is_empty(), "an empty Need");
                for r in ranges {
                    assert!(r.start < r.end && r.end <= size, "need {r:?} of {size}");
                    assert!(
                        fetched.iter().all(|f| r.end <= f.start || r.start >= f.end),
                        "need {r:?} again"
                    );
                    w.feed(r.start, &file[r.start as usize..r.end as usize]);
                    fetched.push(r);
                }
            }
        }
        for r in w.take_small() {
            assert!(r.start < r.end && r.end <= size, "small {r:?} of {size}");
            w.feed(r.start, &file[r.start as usize..r.end as usize]);
            fetched.push(r);
        }
    }
    for r in w.storage() {
        assert!(r.start < r.end && r.end <= size, "storage {r:?} of {size}");
    }
    if let Some(units) = w.units() {
        let mut at = 0;
        for u in units {
            assert!(u.start == at && u.end > u.start, "unit {u:?} after {at}");
            at = u.end;
        }
        assert_eq!(at, size, "units end before the file");
    }
});
