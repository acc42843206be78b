"""Writes a CF Zarr v2 store with xarray: T2(time, y, x) on a Lambert conformal grid whose y
runs south to north, zstd chunks (as CONUS404's) that split the plane unevenly, and a `crs` grid-mapping
variable. Saves each time step's zarr-python slice as T2_<label>.npy beside the store, and
prints the labels and the grid's corners (west, north)."""
import sys

import numpy as np
import numcodecs
import pandas as pd
import xarray as xr
import zarr

out = sys.argv[1]
nt, ny, nx, d = 3, 300, 700, 4000.0
rng = np.random.default_rng(7)
data = rng.normal(280, 10, (nt, ny, nx)).astype("float32")
data[:, :5, :7] = np.nan
x = -1400000.0 + d * np.arange(nx)
y = -600000.0 + d * np.arange(ny)  # ascending: south to north
times = pd.date_range("1979-10-01", periods=nt, freq="D")
ds = xr.Dataset(
    {"T2": (("time", "y", "x"), data, {"units": "K", "grid_mapping": "crs"}),
     "crs": ((), np.int32(0), {
         "grid_mapping_name": "lambert_conformal_conic",
         "standard_parallel": [30.0, 50.0],
         "latitude_of_projection_origin": 39.100006,
         "longitude_of_central_meridian": -97.9,
         "false_easting": 0.0, "false_northing": 0.0,
         "semi_major_axis": 6370000.0, "semi_minor_axis": 6370000.0})},
    coords={"time": times, "y": ("y", y, {"units": "m"}), "x": ("x", x, {"units": "m"})},
)
enc = {"T2": {"chunks": (1, 128, 256), "compressors": [numcodecs.Zstd(level=9)]},
       "time": {"units": "days since 1979-10-01", "calendar": "proleptic_gregorian",
                "dtype": "int64", "compressors": [numcodecs.Zlib(level=1)]},
       # geomount decodes zlib, gzip, zstd and uncompressed chunks (not xarray's default blosc).
       "x": {"compressors": [numcodecs.Zlib(level=1)]},
       "y": {"compressors": [numcodecs.Zlib(level=1)]}}
store = f"{out}/store.zarr"
ds.to_zarr(store, zarr_format=2, consolidated=True, encoding=enc, mode="w")
arr = zarr.open_group(store, mode="r")["T2"]
for t in range(nt):
    np.save(f"{out}/T2_{times[t]:%Y-%m-%d}.npy", arr[t])
print("labels", " ".join(f"{t:%Y-%m-%d}" for t in times))
print("corner", x[0] - d / 2, y[-1] + d / 2)
