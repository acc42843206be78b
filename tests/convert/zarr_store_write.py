"""Writes a CF Zarr v2 store with xarray: T2(time, y, x) on a Lambert conformal grid whose y
runs south to north, zstd chunks (as CONUS404's) that split the plane unevenly, and a `crs` grid-mapping
variable. Saves each time step's zarr-python slice as T2_<label>.npy beside the store, and
prints the labels and the grid's corners (west, north)."""
import sys

import numpy as np
import numcodecs
import zarr

from cf_lcc import cf_lcc

out = sys.argv[1]
nt, ny, nx, d = 3, 300, 700, 4000.0
ds, x, y, times = cf_lcc(nt, ny, nx, d, -1400000.0, -600000.0, 7, "D")
enc = {"T2": {"chunks": (1, 128, 256), "compressors": [numcodecs.Zstd(level=9)]},
       "time": {"units": "days since 1979-10-01", "calendar": "proleptic_gregorian",
                "dtype": "int64", "compressors": [numcodecs.Zlib(level=1)]},
       # Coordinates in zlib: one more codec through the view.
       "x": {"compressors": [numcodecs.Zlib(level=1)]},
       "y": {"compressors": [numcodecs.Zlib(level=1)]}}
store = f"{out}/store.zarr"
ds.to_zarr(store, zarr_format=2, consolidated=True, encoding=enc, mode="w")
arr = zarr.open_group(store, mode="r")["T2"]
for t in range(nt):
    np.save(f"{out}/T2_{times[t]:%Y-%m-%d}.npy", arr[t])
print("labels", " ".join(f"{t:%Y-%m-%d}" for t in times))
print("corner", x[0] - d / 2, y[-1] + d / 2)
