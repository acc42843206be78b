//! The NetCDF-as-Zarr description of an HDF5 file (hdf5-reader's object headers, datatypes,
//! attributes and chunk indexes, and our NetCDF conventions on top).
//! Invariants: every stored chunk and contiguous block lies in the file; each variable's chunk
//! shape has its rank, and a chunk's grid index has that rank too.
#![no_main]

use geomount::formats::hdf5::describe::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|file: &[u8]| {
    let Ok(desc) = geomount::fuzzing::hdf5_describe(file) else {
        return;
    };
    let size = file.len() as u64;
    for v in &desc.variables {
        assert_eq!(v.chunk_shape.len(), v.shape.len(), "{}: chunk rank", v.name);
        match &v.layout {
            Layout::Chunked { chunks } => {
                for c in chunks {
                    assert_eq!(c.index.len(), v.shape.len(), "{}: chunk index rank", v.name);
                    assert!(
                        c.at.checked_add(c.len).is_some_and(|e| e <= size),
                        "{}: chunk {}+{} past {size}",
                        v.name,
                        c.at,
                        c.len
                    );
                }
            }
            Layout::Contiguous {
                at: Some((at, len)),
            } => assert!(
                at.checked_add(*len).is_some_and(|e| e <= size),
                "{}: contiguous {at}+{len} past {size}",
                v.name
            ),
            _ => {}
        }
    }
});
