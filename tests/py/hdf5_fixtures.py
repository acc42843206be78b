"""Writes the small HDF5 files of src/formats/hdf5's unit tests (tests/data/hdf5/) and prints,
per file, what h5py reports of its chunks (and contiguous storage): count, sum of byte offsets, sum of stored sizes.

    python tests/py/hdf5_fixtures.py tests/data/hdf5
"""
import sys

import h5py
import numpy as np


def write(out):
    rng = np.random.default_rng(5)
    # Default libver: superblock v0, old-style groups, B-tree v1 chunk index of two levels.
    with h5py.File(f"{out}/btree1.h5", "w") as f:
        g = f.create_group("g").create_group("h")
        g.create_dataset("z", data=rng.integers(0, 9, (48, 48), dtype="i1"),
                         chunks=(4, 4), compression="gzip")
        f.create_dataset("c", data=np.arange(10, dtype="i2"))
    # libver="latest": superblock v3, v2 object headers, link messages, layout v4 indexes.
    with h5py.File(f"{out}/latest.h5", "w", libver="latest") as f:
        f.create_dataset("fixed", data=rng.integers(0, 9, (40, 40), dtype="i1"),
                         chunks=(4, 4), compression="gzip")
        f.create_dataset("paged", data=rng.integers(0, 9, (72, 64), dtype="i1"), chunks=(2, 2))
        e = f.create_dataset("ext", shape=(0, 8), maxshape=(None, 8), chunks=(1, 8), dtype="i1",
                             compression="gzip")
        e.resize((300, 8))
        e[...] = rng.integers(0, 9, (300, 8), dtype="i1")
        b = f.create_dataset("bt2", shape=(20, 20), maxshape=(None, None), chunks=(2, 2),
                             dtype="i1")
        b[...] = rng.integers(0, 9, (20, 20), dtype="i1")
        f.create_dataset("single", data=rng.integers(0, 9, (5, 6), dtype="i1"), chunks=(5, 6),
                         compression="gzip")
        f.create_dataset("compact", data=np.arange(4, dtype="i1"))
    # xarray (h5netcdf): links tracked in creation order, so more than 8 go to a fractal heap.
    import xarray as xr
    ds = xr.Dataset({f"v{i}": (("y", "x"), rng.random((8, 8), dtype="f4")) for i in range(12)},
                    coords={"y": np.arange(8), "x": np.arange(8)})
    ds.to_netcdf(f"{out}/dense.nc", engine="h5netcdf",
                 encoding={f"v{i}": {"zlib": True, "chunksizes": (4, 4)} for i in range(12)})
    for name in ("btree1.h5", "latest.h5", "dense.nc"):
        with h5py.File(f"{out}/{name}", "r") as f:
            chunks = []

            def visit(_, obj):
                if isinstance(obj, h5py.Dataset):
                    d = obj.id
                    if obj.chunks is None:
                        if d.get_offset() is not None:
                            chunks.append((d.get_offset(), d.get_storage_size()))
                        return
                    for i in range(d.get_num_chunks()):
                        c = d.get_chunk_info(i)
                        chunks.append((c.byte_offset, c.size))

            f.visititems(visit)
            print(name, len(chunks), sum(o for o, _ in chunks), sum(s for _, s in chunks))


write(sys.argv[1])
