//! The file formats geomount understands, one module each, and each the only place its format
//! is parsed: [`zarr`] (v2/v3 metadata, consolidated metadata, chunk keys, the sharding index),
//! [`tiff`] (classic and BigTIFF IFDs, tile tables, tag numbers), [`grib2`] (the `.idx`
//! inventory, the section-0 walk, the sections of a message's head) and [`hdf5`] (chunk
//! indexes of HDF5 and NetCDF-4 files).
//!
//! Invariant: sans-I/O. A parser reads the bytes it is given and returns a layout, or says which
//! bytes it needs next; it never fetches, and imports nothing of geomount above the leaves
//! (`rope`, `error`). Planners (`fs::planning`, `reader`), views (`convert`) and the namespace
//! consume these layouts; decoding values and writing files (codecs, the COG writer) is theirs.
//!
//! A parser's failure is a [`crate::error::FormatError`]: the format, the structure (`section 0`,
//! `inventory line 3`, `IFD`), its byte offset when known and the underlying error as source;
//! the caller that knows which object it read adds the key ([`crate::error::FormatError::of`]).
//! TIFF's [`tiff::TiffError`] and HDF5's [`hdf5::Step`] also say which bytes are needed next.
//!
//! A layout's read units are sorted, non-overlapping byte ranges; [`units`] cuts an object into
//! them and [`touched`] finds the ones a read reaches.

pub mod grib2;
pub mod hdf5;
pub mod tiff;
pub mod zarr;

use std::ops::Range;

/// Indices of the ranges (sorted, non-overlapping) that `read` touches.
pub fn touched(ranges: &[Range<u64>], read: Range<u64>) -> Range<usize> {
    let first = ranges.partition_point(|r| r.end <= read.start);
    let last = ranges.partition_point(|r| r.start < read.end);
    first..last.max(first)
}

/// Cuts an object of `size` bytes into units: the header (everything before the first range),
/// then one unit per range reaching to the next range's start (so `leader` bytes before a range
/// and any trailer after it go with their range), the last to the end of the object. Every byte
/// is in exactly one unit.
pub fn units(ranges: &[Range<u64>], leader: u64, size: u64) -> Vec<Range<u64>> {
    let mut starts: Vec<u64> = ranges
        .iter()
        .map(|t| t.start.saturating_sub(leader))
        .filter(|&s| s < size)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut out = Vec::with_capacity(starts.len() + 1);
    let mut at = 0;
    for s in starts {
        if s > at {
            out.push(at..s);
            at = s;
        }
    }
    if at < size {
        out.push(at..size);
    }
    out
}

/// Sorted `ranges` merged where at most `gap` bytes lie between them.
pub fn merge_near(ranges: Vec<Range<u64>>, gap: u64) -> Vec<Range<u64>> {
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(m) if r.start <= m.end.saturating_add(gap) => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}
