"""Writes two CF Zarr v3 stores with xarray/zarr-python 3 (`zarr_format=3`, consolidated):
`blosc.zarr` (blosc lz4 with bit shuffle for T2, blosc zstd with byte shuffle for x and y)
`zstd.zarr` (zstd, zarr-python 3's default) and `shard.zarr` (zstd inner chunks in
`sharding_indexed` shards), and `plain.zarr` (zstd, not consolidated). T2(time, y, x) on a Lambert conformal grid whose y runs
south to north, chunks that split the plane unevenly, hourly CF time, a `crs` grid-mapping
variable. Saves each step's zarr-python slice as <store>_T2_<label>.npy beside the stores,
and prints the labels and the grid's corner (west, north)."""
import sys

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

out = sys.argv[1]
nt, ny, nx, d = 2, 200, 300, 3000.0
rng = np.random.default_rng(11)
data = rng.normal(280, 10, (nt, ny, nx)).astype("float32")
data[:, :4, :6] = np.nan
x = -450000.0 + d * np.arange(nx)
y = -300000.0 + d * np.arange(ny)  # ascending: south to north
times = pd.date_range("1979-10-01T00:00", periods=nt, freq="3h")
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
time_enc = {"units": "hours since 1979-10-01", "calendar": "proleptic_gregorian",
            "dtype": "int64"}
for name, comp in [
    ("blosc", BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")),
    ("zstd", ZstdCodec(level=5)),
    ("shard", ZstdCodec(level=5)),
    ("plain", ZstdCodec(level=5)),
]:
    enc = {"T2": {"chunks": (1, 64, 128), "compressors": [comp]}, "time": dict(time_enc)}
    if name == "shard":
        # Shards of 2 x 2 x 2 inner chunks; the plane's edge shards are partly empty.
        enc["T2"]["shards"] = (2, 128, 256)
    if name == "blosc":
        for c in ("x", "y"):
            enc[c] = {"compressors": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]}
    store = f"{out}/{name}.zarr"
    # `plain.zarr`: no consolidated metadata, only each array's own zarr.json.
    ds.to_zarr(store, zarr_format=3, consolidated=name != "plain", encoding=enc, mode="w")
    meta = zarr.open_group(store, mode="r", use_consolidated=False)["T2"].metadata.to_dict()
    print(name, "codecs", [c["name"] for c in meta["codecs"]])
    arr = zarr.open_group(store, mode="r", use_consolidated=False)["T2"]
    for t in range(nt):
        np.save(f"{out}/{name}_T2_{times[t]:%Y-%m-%dT%H%M}.npy", arr[t])
print("labels", " ".join(f"{t:%Y-%m-%dT%H%M}" for t in times))
print("corner", x[0] - d / 2, y[-1] + d / 2)
