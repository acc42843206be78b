//! Format-aware read planning: per-format readers of layout (no I/O policy), consulted by the
//! namespace and the readers to fetch exactly the objects and ranges a reader will need.

pub mod grib;
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
